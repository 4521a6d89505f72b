"""Tests of gross.pipeline.outputs: step declarations, EXPECTED_OUTPUTS, the table writer."""

import json

import pandas as pd
import pytest

from gross.runs import config
from gross.utils import paths
from gross.pipeline import EXPECTED_OUTPUTS, STEPS, expected_outputs, expected_paths, outputs


def test_expected_outputs_derive_from_step_declarations():
    assert list(EXPECTED_OUTPUTS) == list(outputs.NOTEBOOK_ORDER)
    declared = {n for s in STEPS.values() if not s.optional for n in s.tables + s.figures}
    listed = {f.split(".")[0] for files in EXPECTED_OUTPUTS.values() for f in files}
    assert listed == declared
    names = {f for files in EXPECTED_OUTPUTS.values() for f in files}
    for stem in ("btd_errors", "table_macs", "finetune_history", "uniform_before_after", "table2_exhaustive_search",
                 "exhaustive_search_all", "table3_bfs_vgg16", "bfs_vgg16_trace", "table5_average_precision",
                 "ap_configs", "inference_timing", "grouped_conv_costs", "psi_expansion_check"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.meta.json"} <= names
    for stem in ("fig_btd_error", "fig_finetuning_curves", "fig3_exhaustive_search", "fig4_bfs_vgg16",
                 "fig5_search_vs_true", "fig2_expansion"):
        assert {f"{stem}.png", f"{stem}.pdf", f"{stem}.meta.json"} <= names
    assert "table4_imagenet.csv" in expected_outputs(include_optional=True)["04_breadth_first_search"]
    assert "table4_imagenet.csv" not in names


def test_expected_paths_split_tables_and_figures(gross_runs):
    files = expected_paths("smoke")["03_exhaustive_search"]
    assert gross_runs / "smoke" / "results" / "table2_exhaustive_search.csv" in files
    assert gross_runs / "smoke" / "figures" / "fig3_exhaustive_search.png" in files
    assert gross_runs / "smoke" / "figures" / "fig3_exhaustive_search.meta.json" in files


def test_gross_outputs_redirects_every_profile(tmp_path, monkeypatch, gross_runs):
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "elsewhere"))
    for profile in ("cpu", "paper", "smoke"):
        assert paths.results_dir(profile) == tmp_path / "elsewhere" / "results"
        assert paths.executed_dir(profile) == tmp_path / "elsewhere" / "executed" / profile
    monkeypatch.delenv("GROSS_OUTPUTS")
    assert paths.results_dir("paper") == paths.RESULTS
    assert paths.results_dir("smoke") == gross_runs / "smoke" / "results"
    assert paths.executed_dir("smoke") == gross_runs / "smoke" / "executed"  # GROSS_RUNS is set by conftest
    assert paths.executed_dir("cpu") == paths.EXECUTED / "cpu"  # committed beside results/


def test_step_writes_declared_outputs_with_reductions_of_keys_read(gross_runs):
    @outputs.step("05_ap_comparison", tables=("demo_table",))
    def demo(cfg):
        return outputs.StepResult(tables={"demo_table": pd.DataFrame({"a": [cfg["ap"]["k"]]})}, notes=["a note"])

    try:
        cfg = config.load("smoke", device="cpu")
        result = demo(cfg)
        assert result.reads == ["ap.k"]
        directory = paths.results_dir("smoke")
        meta = json.loads((directory / "demo_table.meta.json").read_text())
        assert meta["reductions_vs_paper"] == ["ap.k = 2 (paper: 5)"] and meta["settings_read"] == ["ap.k"]
        md = (directory / "demo_table.md").read_text()
        assert md.startswith("Profile `smoke`: reduced vs the paper: ap.k = 2 (paper: 5).\n\nNote: a note")
        assert meta["recipe"] is None  # the step read no recipe setting
        assert pd.read_csv(directory / "demo_table.csv")["a"].tolist() == [2]
    finally:
        del outputs.STEPS["demo"]


def test_step_missing_a_declared_output_fails(gross_runs):
    @outputs.step("05_ap_comparison", tables=("t1",), figures=("f1",))
    def broken(cfg):
        return outputs.StepResult(tables={"t1": pd.DataFrame()})

    try:
        with pytest.raises(ValueError, match=r"step broken declares outputs \['f1'\] but did not return them"):
            broken(config.load("smoke"))
    finally:
        del outputs.STEPS["broken"]
    with pytest.raises(ValueError, match="unknown notebook '06_x'"):
        outputs.step("06_x")


def test_paper_profile_outputs_say_paper_settings(gross_runs):
    cfg = config.load("paper", device="cpu")
    assert config.reductions(cfg, keys=["four_layer.gross_epochs", "seed"]) == []


def test_step_reads_include_cells_run_before_it(gross_runs):
    """A notebook runs a step's parts cell by cell, then the step: the table lists what those cells read."""
    try:
        @outputs.step("03_exhaustive_search", tables=("test_cells_then_step",))
        def cells_then_step(cfg, value):
            cfg["four_layer"]["repeats"]
            return outputs.StepResult(tables={"test_cells_then_step": pd.DataFrame({"x": [value]})})

        cfg = config.load("smoke")
        cfg["four_layer"]["gross_epochs"]  # a cell before the step
        result = cells_then_step(cfg, 1)
        assert result.reads == ["four_layer.gross_epochs", "four_layer.repeats"]
        assert cells_then_step(cfg, 2).reads == ["four_layer.repeats"]  # only since the previous step
        meta = json.loads((paths.results_dir("smoke") / "test_cells_then_step.meta.json").read_text())
        assert meta["settings_read"] == ["four_layer.repeats"]
    finally:
        STEPS.pop("cells_then_step", None)


def test_tables_name_the_recipe_a_step_used(gross_runs):
    @outputs.step("05_ap_comparison", tables=("demo_recipe",))
    def demo(cfg):
        return outputs.StepResult(tables={"demo_recipe": pd.DataFrame({"pad": [cfg["four_layer"]["augment_padding"]]})})

    try:
        directory = paths.results_dir("smoke")
        demo(config.load("smoke", device="cpu"))
        md = (directory / "demo_recipe.md").read_text()
        assert md.startswith("Profile `smoke`, recipe: paper text: the paper's settings.")
        demo(config.load("smoke", base="paper_code", device="cpu"))
        md = (paths.results_dir("smoke-paper_code") / "demo_recipe.md").read_text()
        assert md.startswith("Profile `smoke-paper_code`, recipe: authors' code: reduced vs the paper: "
                             "four_layer.augment_padding = 4 (paper: 2).")
    finally:
        del outputs.STEPS["demo"]
def test_figure_pdf_is_drawn_for_the_profile_figure_style(gross_runs):
    """PNG: the notebook figure; PDF: redrawn at the style's width (TrueType fonts); the style is no step's read."""
    from gross.pipeline.figures import pdf_facts
    from gross.report import plots

    fig = plots.fig5_search_vs_true(pd.DataFrame({"config": ["1 1", "2 2"], "true_acc": [70.0, 75.0],
                                                  "gross": [69.0, 74.0]}))
    hand_made, _ = plots.panel_axes(1, 1)  # not made by a figure_builder: saved as drawn

    try:
        @outputs.step("05_ap_comparison", figures=("test_fig_styled", "test_fig_as_drawn"))
        def figs(cfg):
            return outputs.StepResult(figures={"test_fig_styled": fig, "test_fig_as_drawn": hand_made})

        result = figs(config.load("smoke", figure_style="ieee"))
        assert result.reads == []  # figure.style changes no number: not a setting of the step
        directory = paths.figures_dir("smoke")
        meta = json.loads((directory / "test_fig_styled.meta.json").read_text())
        assert meta["figure"]["style"] == "ieee" and meta["figure"]["pdf_size_in"][0] == 3.5
        facts = pdf_facts(directory / "test_fig_styled.pdf")
        assert facts["width_in"] == pytest.approx(3.5) and "/Type3" not in facts["font_types"]
        as_drawn = json.loads((directory / "test_fig_as_drawn.meta.json").read_text())["figure"]
        assert as_drawn["style"] is None and as_drawn["pdf_size_in"] == [4.5, 3.4]
        assert pdf_facts(directory / "test_fig_as_drawn.pdf")["width_in"] == pytest.approx(4.5)  # not cropped
    finally:
        STEPS.pop("figs", None)
