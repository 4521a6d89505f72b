"""Fast unit tests of the experiment pipeline helpers (gross.experiments).

The full smoke run of the notebooks is in tests/test_notebooks.py; here only the
pieces that need no training (or a few seconds of it on tiny synthetic data).
"""

import json

import pandas as pd
import pytest
import torch

from gross import config, experiments as ex, paths
from gross.decomposition import decompose, search_space, set_config


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Isolated runs/ folder (so nothing under the repository is touched)."""
    monkeypatch.setenv("GROSS_RUNS", str(tmp_path))
    return tmp_path


@pytest.fixture
def cfg(runs):
    return config.load("smoke", device="cpu")


def test_require_names_the_notebook_and_profile(tmp_path):
    missing = tmp_path / "vgg16_gross_0.pt"
    with pytest.raises(FileNotFoundError) as err:
        ex.require(missing, "02_finetuning", "cpu")
    msg = str(err.value)
    assert str(missing) in msg
    assert "run notebooks/02_finetuning.ipynb first (profile 'cpu')" in msg
    missing.write_text("x")
    assert ex.require(missing, "02_finetuning") == missing


def test_missing_predecessor_gives_clear_message(cfg):
    with pytest.raises(FileNotFoundError, match=r"four_layer_gross_0\.pt is missing: run notebooks/02_finetuning"):
        ex.load_gross(cfg, "four_layer", 0)
    with pytest.raises(FileNotFoundError, match=r"run notebooks/01_decomposition\.ipynb first \(profile 'smoke'\)"):
        ex.load_gross(cfg, "four_layer", 0, tuned=False)
    with pytest.raises(FileNotFoundError, match=r"01_decomposition"):
        ex.base_model(cfg, "vgg16", train=False)


def test_expected_outputs_cover_every_notebook_and_paper_names():
    assert set(ex.EXPECTED_OUTPUTS) == {
        "00_grouped_convolutions", "01_decomposition", "02_finetuning", "03_exhaustive_search", "04_breadth_first_search", "05_ap_comparison"}
    names = {f for files in ex.EXPECTED_OUTPUTS.values() for f in files}
    for stem in ("btd_errors", "table_macs", "finetune_history", "uniform_before_after",
                 "table2_exhaustive_search", "exhaustive_search_all", "table3_bfs_vgg16", "bfs_vgg16_trace",
                 "table5_average_precision", "ap_configs", "inference_timing"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.meta.json"} <= names
    for stem in ("fig_btd_error", "fig_finetuning_curves", "fig3_exhaustive_search", "fig4_bfs_vgg16",
                 "fig5_search_vs_true"):
        assert {f"{stem}.png", f"{stem}.pdf", f"{stem}.meta.json"} <= names


def test_expected_paths_split_tables_and_figures(runs):
    out = ex.expected_paths("smoke")
    files = out["03_exhaustive_search"]
    assert runs / "smoke" / "results" / "table2_exhaustive_search.csv" in files
    assert runs / "smoke" / "figures" / "fig3_exhaustive_search.png" in files
    assert runs / "smoke" / "figures" / "fig3_exhaustive_search.meta.json" in files


def test_gross_outputs_redirects_every_profile(tmp_path, monkeypatch, runs):
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "elsewhere"))
    for profile in ("cpu", "paper", "smoke"):
        assert paths.results_dir(profile) == tmp_path / "elsewhere" / "results"
        assert paths.figures_dir(profile) == tmp_path / "elsewhere" / "figures"
    monkeypatch.delenv("GROSS_OUTPUTS")
    assert paths.results_dir("paper") == paths.RESULTS
    assert paths.results_dir("smoke") == runs / "smoke" / "results"


def test_models_argument_is_validated(cfg):
    with pytest.raises(ValueError, match=r"unknown model 'resnet'"):
        ex.base_models(cfg, models=("resnet",))
    with pytest.raises(ValueError, match=r"at least one of \('four_layer', 'vgg16'\)"):
        ex.finetune_gross_models(cfg, models=())


def test_models_argument_restricts_the_step(cfg, runs):
    df = ex.base_models(cfg, models="four_layer").tables["base_models"]
    assert list(df["model"]) == ["four_layer"]
    assert not (runs / "smoke" / "vgg16_base.pt").exists()


def test_recipe_scales_epochs_and_seeds(cfg):
    r = ex.recipe(cfg, "four_layer", "gross", seed=5)
    assert r.epochs == cfg["four_layer"]["gross_epochs"] and r.seed == 5
    paper = config.load("paper")
    full = ex.recipe(paper, "four_layer", "gross")
    assert (full.epochs, full.milestones, full.lr) == (150, (80, 120), 1e-4)
    assert ex.recipe(paper, "vgg16", "config").milestones == (80,)
    assert ex.recipe(paper, "four_layer", "partial").epochs == 5
    half = ex.recipe(config.load("paper", four_layer__gross_epochs=75), "four_layer", "gross")
    assert half.milestones == (40, 60)
    with pytest.raises(ValueError, match="unknown recipe kind"):
        ex.recipe(cfg, "four_layer", "fast")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        ex.recipe(cfg, "resnet", "base")


def test_uniform_configs_cap_at_each_layers_sizes():
    space = {"a": (1, 4), "b": (1, 4, 16), "c": (1, 4, 16, 32)}
    assert ex._uniform(space, 4) == (4, 4, 4)
    assert ex._uniform(space, 32) == (4, 16, 32)
    assert ex._uniform(space, 1) == (1, 1, 1)
    # a size below every allowed one falls back to the smallest
    assert ex._uniform({"a": (2, 4)}, 1) == (2,)


def test_vbmf_group_is_cheapest_baseline_not_below():
    baselines = {"32s": 121, "16s": 95, "4s": 75}
    assert ex._vbmf_group(118, baselines) == "32s"
    assert ex._vbmf_group(95, baselines) == "16s"
    assert ex._vbmf_group(200, baselines) == "32s"


def test_save_table_writes_reductions_into_markdown_and_meta(cfg, runs):
    df = pd.DataFrame({"a": [1, 2]})
    ex.save_table(cfg, df, "demo", "four_layer", wall_time_s=1.5, notes=["a note"])
    directory = paths.results_dir("smoke")
    meta = json.loads((directory / "demo.meta.json").read_text())
    assert meta["profile"] == "smoke" and meta["wall_time_s"] == 1.5
    assert meta["config"]["four_layer"]["repeats"] == cfg["four_layer"]["repeats"]
    reds = meta["reductions_vs_paper"]
    assert "four_layer.gross_epochs = 1 (paper: 150)" in reds
    assert not any(r.startswith("vgg16.") or r.startswith("ap.") for r in reds)  # out of scope
    md = (directory / "demo.md").read_text()
    assert md.startswith("Profile `smoke`: reduced vs the paper: ")
    assert "four_layer.gross_epochs = 1 (paper: 150)" in md and "Note: a note" in md
    assert pd.read_csv(directory / "demo.csv")["a"].tolist() == [1, 2]


def test_paper_profile_outputs_say_paper_settings(runs):
    cfg = config.load("paper", device="cpu")
    assert ex._reductions(cfg, "both") == []


def test_prepare_data_smoke_sizes_and_normalisation(cfg):
    four = ex.prepare_data(cfg, "four_layer")
    vgg = ex.prepare_data(cfg, "vgg16")
    assert (len(four.train), len(four.val), len(four.test)) == (256, 128, 128)
    assert len(vgg.val) == cfg["vgg16"]["n_val"] and len(vgg.train) == 256
    assert four.std == (0.5, 0.5, 0.5) and vgg.std == (0.225, 0.225, 0.225)
    # VGG's validation subset is drawn from the same validation split
    assert set(map(tuple, vgg.val.images.flatten(1)[:, :8].tolist())) <= \
        set(map(tuple, four.val.images.flatten(1)[:, :8].tolist()))


def test_gross_file_round_trip_and_stale_settings(cfg, runs):
    torch.manual_seed(0)
    model = ex.build_model(cfg, "four_layer")
    decompose(model, tol=1e-2, max_iter=1)
    path = runs / "m.pt"
    settings = ex._settings(cfg, "four_layer", "init")
    ex._save_gross_file(model, path, settings, wall_time_s=0.1)
    loaded = ex._load_gross_file(cfg, "four_layer", path, settings)
    assert search_space(loaded) == search_space(model)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    for c in [(1, 1, 1), (32, 4, 64)]:
        set_config(model, c)
        set_config(loaded, c)
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.conv2.btd_errors.keys() == model.conv2.btd_errors.keys()
    other = ex._settings(config.load("smoke", four_layer__btd_tol=0.5), "four_layer", "init")
    with pytest.raises(ValueError, match=r"different settings \(differing: \['btd_tol'\]\)"):
        ex._load_gross_file(cfg, "four_layer", path, other)


def test_mac_table_matches_every_printed_paper_value(cfg, runs):
    table = ex.mac_table(cfg).tables["table_macs"]
    paper_rows = table[table["width_mult"] == 1.0]
    assert len(paper_rows) == len(ex._PAPER_MACS)
    assert paper_rows["matches_paper"].all(), paper_rows[~paper_rows["matches_paper"].astype(bool)]
    assert (paths.results_dir("smoke") / "table_macs.csv").exists()
