"""Notebook 06's steps (:mod:`gross.latency_study`) under the smoke profile.

A smoke 4-layer GroSS model is trained by the pipeline's own steps (base, BTD, GroSS
fine-tune: one epoch each on synthetic data); the latency steps then run end to end.
Timings are real but tiny; no wall time is asserted.
"""

import pytest

import gross.config
import gross.experiments as ex
from gross import latency_study as study
from gross import paths
from gross.macs import count_macs


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp_path_factory.mktemp("runs")))
        cfg = gross.config.load("smoke", device="cpu", latency__n_validation=3, latency__scatter_configs=5)
        ex.setup(cfg)
        ex.base_model(cfg, "four_layer")
        ex.gross_decompose(cfg, "four_layer", 0)
        ex.finetune_gross_models(cfg, ["four_layer"])
        yield cfg


def test_predictor_validation(cfg):
    res = study.predictor_validation(cfg)
    summary = res.tables["latency_predictor_validation"]
    assert len(summary) == 2 * len(cfg["latency"]["batch_sizes"])
    assert set(summary["batch_size"]) == set(cfg["latency"]["batch_sizes"])
    assert summary["median_abs_rel_error"].ge(0).all() and summary["spearman"].between(-1, 1).all()
    configs = res.tables["latency_predictor_configs"]
    assert len(configs) == 3 * len(summary) and configs["measured_s"].gt(0).all()
    assert (paths.results_dir("smoke") / "latency_predictor_validation.md").is_file()
    assert "load average" in (paths.results_dir("smoke") / "latency_predictor_validation.md").read_text()


def test_latency_vs_macs(cfg):
    res = study.latency_vs_macs(cfg)
    df = res.tables["latency_all_configs"]
    assert len(df) == 5 * len(cfg["latency"]["batch_sizes"]) and df["measured_s"].gt(0).all()
    assert (paths.figures_dir("smoke") / "fig_latency_vs_macs.png").is_file()
    assert len(res.figures["fig_latency_vs_macs"].axes) == len(cfg["latency"]["batch_sizes"])


def test_latency_search(cfg):
    df = study.latency_search(cfg).tables["table_latency_search"]
    n_baselines = len(cfg["latency"]["baselines"])
    assert len(df) == 2 * n_baselines * len(cfg["latency"]["batch_sizes"])
    assert set(df["budget"]) == {"MACs", "latency"}
    macs_rows = df[df["budget"] == "MACs"]
    # the MAC-budget winner never has more MACs than its baseline (uniform config's MACs)
    base = ex.load_gross(cfg, "four_layer", 0)
    for _, row in macs_rows.iterrows():
        assert row["macs"] <= count_macs(base, config=tuple(map(int, row["baseline"].split()))).total
    assert df["gross_val_acc"].ge(df["baseline_val_acc"]).all()  # the baseline is itself a candidate
    assert (paths.results_dir("smoke") / "table_latency_search.csv").is_file()


def test_bad_settings(cfg):
    with pytest.raises(ValueError, match="latency.mode"):
        study.settings({**cfg, "latency": {**cfg["latency"], "mode": "fast"}})
    with pytest.raises(ValueError, match="latency.statistic"):
        study.settings({**cfg, "latency": {**cfg["latency"], "statistic": "mean"}})
    with pytest.raises(ValueError, match="latency.clock"):
        study.settings({**cfg, "latency": {**cfg["latency"], "clock": "cycles"}})
    with pytest.raises(ValueError, match="validation_models"):
        study.settings({**cfg, "latency": {**cfg["latency"], "validation_models": ["resnet"]}})
