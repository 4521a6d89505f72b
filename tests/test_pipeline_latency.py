"""Notebook 06's steps (:mod:`gross.pipeline.latency`) under the smoke profile.

A smoke 4-layer GroSS model is trained by the pipeline's own steps (base, BTD, GroSS
fine-tune: one epoch each on synthetic data); the latency steps then run end to end
through the step writer. Timings are real but tiny; no wall time is asserted.
"""

import json

import pytest

import gross.runs.config
from gross.search import latency as L
from gross.utils import paths
from gross.method.macs import count_macs
from gross.pipeline import EXPECTED_OUTPUTS, STEPS, common
from gross.pipeline import latency as study
from gross.pipeline.base import base_model
from gross.pipeline.decomposition import gross_decompose, load_gross
from gross.pipeline.finetune import finetune_gross_models


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp_path_factory.mktemp("runs")))
        mp.setenv("GROSS_OUTPUTS", str(tmp_path_factory.mktemp("out")))
        cfg = gross.runs.config.load("smoke", device="cpu", latency__n_validation=3, latency__scatter_configs=5)
        common.setup(cfg)
        base_model(cfg, "four_layer")
        gross_decompose(cfg, "four_layer", 0)
        finetune_gross_models(cfg, ["four_layer"])
        yield cfg


def _meta(name):
    return json.loads((paths.results_dir("smoke") / f"{name}.meta.json").read_text())


def test_declared_outputs_are_notebook_06s():
    outs = EXPECTED_OUTPUTS["06_latency_aware_search"]
    for name in ("latency_predictor_validation", "latency_predictor_configs", "latency_all_configs",
                 "table_latency_search"):
        assert {name + e for e in (".csv", ".md", ".meta.json")} <= set(outs)
    assert {"fig_latency_vs_macs" + e for e in (".png", ".pdf", ".meta.json")} <= set(outs)
    assert {STEPS[s].notebook for s in ("predictor_validation", "latency_vs_macs", "latency_search")} == {
        "06_latency_aware_search"}


def test_predictor_validation(cfg):
    res = study.predictor_validation(cfg)
    summary = res.tables["latency_predictor_validation"]
    assert len(summary) == 2 * len(cfg["latency"]["batch_sizes"])
    assert set(summary["batch_size"]) == set(cfg["latency"]["batch_sizes"])
    assert summary["median_abs_rel_error"].ge(0).all() and summary["spearman"].between(-1, 1).all()
    configs = res.tables["latency_predictor_configs"]
    assert len(configs) == 3 * len(summary) and configs["measured_s"].gt(0).all()
    assert configs["measured_repeat_s"].gt(0).all()  # the noise ceiling: a second, independent measurement
    assert summary["spearman_repeat"].between(-1, 1).all() and summary["repeat_rel_diff"].ge(0).all()
    for (model, b), group in configs.groupby(["model", "batch_size"]):
        row = summary[(summary["model"] == model) & (summary["batch_size"] == b)].iloc[0]
        assert row["spearman_repeat"] == pytest.approx(L.spearman(group["measured_s"], group["measured_repeat_s"]))
    text = (paths.results_dir("smoke") / "latency_predictor_validation.md").read_text()
    assert "load average" in text and "noise ceiling" in text and "round-robin" in text
    reads = set(_meta("latency_predictor_validation")["settings_read"])
    assert {"latency.n_validation", "latency.validation_models", "latency.vgg16_width_mult", "latency.rounds"} <= reads
    assert not {"latency.scatter_configs", "latency.baselines"} & reads


def test_latency_vs_macs(cfg):
    res = study.latency_vs_macs(cfg)
    df = res.tables["latency_all_configs"]
    assert len(df) == 5 * len(cfg["latency"]["batch_sizes"]) and df["measured_s"].gt(0).all()
    assert (paths.figures_dir("smoke") / "fig_latency_vs_macs.png").is_file()
    assert len(res.figures["fig_latency_vs_macs"].axes) == len(cfg["latency"]["batch_sizes"])
    reads = set(_meta("latency_all_configs")["settings_read"])
    latency_reads = {k for k in reads if k.startswith("latency.")}
    assert "latency.scatter_configs" in latency_reads
    assert not {"latency.n_validation", "latency.baselines", "latency.vgg16_width_mult"} & latency_reads
    # the reductions line lists only keys this step read
    reds = _meta("latency_all_configs")["reductions_vs_paper"]
    assert all(r.split(" = ")[0] in reads for r in reds)
    assert any(r.startswith("latency.scatter_configs") for r in reds)
    assert not any(r.startswith("latency.n_validation") for r in reds)


def test_latency_search(cfg):
    df = study.latency_search(cfg).tables["table_latency_search"]
    n_baselines = len(cfg["latency"]["baselines"])
    assert len(df) == 2 * n_baselines * len(cfg["latency"]["batch_sizes"])
    assert set(df["budget"]) == {"MACs", "latency"}
    base = load_gross(cfg, "four_layer", 0)
    for _, row in df[df["budget"] == "MACs"].iterrows():
        assert row["macs"] <= count_macs(base, config=tuple(map(int, row["baseline"].split()))).total
    assert df["gross_val_acc"].ge(df["baseline_val_acc"]).all()  # the baseline is itself a candidate
    assert "latency.baselines" in _meta("table_latency_search")["settings_read"]


@pytest.mark.parametrize("key, value, match", [
    ("mode", "fast", "latency.mode"), ("statistic", "mean", "latency.statistic"), ("clock", "cycles", "latency.clock"),
    ("rounds", 0, "latency.rounds")])
def test_bad_settings(cfg, key, value, match):
    bad = {**cfg, "latency": {**cfg["latency"], key: value}}
    with pytest.raises(ValueError, match=match):
        study.settings(bad)


def test_unknown_validation_model(cfg):
    with pytest.raises(ValueError, match="validation_models.*resnet"):
        study._validation_model(cfg, "resnet")


def test_tables_are_store_artefacts_keyed_by_device(cfg):
    from gross.search import latency as L

    model = study._validation_model(cfg, "four_layer")
    study.tables(cfg, model)
    files = sorted((paths.run_dir("smoke") / "latency").glob("*.json"))
    assert files
    env = json.loads(files[0].read_text())
    assert {"latency.repeats", "latency.warmup", "latency.mode", "latency.rounds", "seed"} <= set(env["settings"])
    assert "latency.n_validation" not in env["settings"]
    assert L.table_path(model, num_threads=1, directory="latency") != L.table_path(model, num_threads=2,
                                                                                   directory="latency")
