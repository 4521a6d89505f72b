"""Notebook 06's steps (:mod:`gross.pipeline.latency`) under the smoke profile.

A smoke 4-layer GroSS model is trained by the pipeline's own steps (base, BTD, GroSS
fine-tune: one epoch each on synthetic data); the latency steps then run end to end
through the step writer. Timings are real but tiny; no wall time is asserted.
"""

import json

import pytest
import torch

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


@pytest.fixture(scope="module")
def bare(cfg):
    """Each step called bare (``step(cfg)``), as the pipeline and scripts call it; run once, shared by the tests."""
    return {}


def _bare(bare, cfg, name):
    if name not in bare:
        bare[name] = getattr(study, name)(cfg)
    return bare[name]


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


def test_predictor_validation(cfg, bare):
    res = _bare(bare, cfg, "predictor_validation")
    summary = res.tables["latency_predictor_validation"]
    predictors = gross.runs.config.load("smoke")["latency"]["predictors"]  # another profile: not a read of cfg
    assert len(summary) == 2 * len(cfg["latency"]["batch_sizes"]) * len(predictors)
    assert list(dict.fromkeys(summary["predictor"])) == predictors
    assert set(summary["batch_size"]) == set(cfg["latency"]["batch_sizes"])
    assert summary["median_abs_rel_error"].ge(0).all() and summary["spearman"].between(-1, 1).all()
    configs = res.tables["latency_predictor_configs"]
    assert len(configs) == 3 * len(summary) and configs["measured_s"].gt(0).all()
    assert configs["measured_repeat_s"].gt(0).all()  # the noise ceiling: a second, independent measurement
    assert summary["spearman_repeat"].between(-1, 1).all() and summary["repeat_rel_diff"].ge(0).all()
    for (model, b), group in configs.groupby(["model", "batch_size"]):
        rows = summary[(summary["model"] == model) & (summary["batch_size"] == b)]
        for predictor, one in group.groupby("predictor"):
            row = rows[rows["predictor"] == predictor].iloc[0]
            assert row["spearman_repeat"] == pytest.approx(L.spearman(one["measured_s"], one["measured_repeat_s"]))
            assert row["median_abs_rel_error"] == pytest.approx(one["rel_error"].abs().median())
        # every predictor is scored on the same validation configurations and measurements
        assert group.groupby("predictor")["config"].apply(tuple).nunique() == 1
        assert group.groupby("predictor")["measured_s"].apply(tuple).nunique() == 1
    fitted = summary[summary["predictor"] != "additive"]
    assert fitted["n_fit"].gt(0).all() and fitted["fixed_s"].isna().all()
    assert summary["holds"].isin(["yes", "no"]).sum() + summary["holds"].str.startswith("not applicable").sum() \
        == len(summary)
    text = (paths.results_dir("smoke") / "latency_predictor_validation.md").read_text()
    assert "load average" in text and "noise ceiling" in text and "round-robin" in text
    reads = set(_meta("latency_predictor_validation")["settings_read"])
    assert {"latency.n_validation", "latency.validation_models", "latency.vgg16_width_mult", "latency.rounds",
            "latency.predictors", "latency.n_fit"} <= reads
    assert not {"latency.scatter_configs", "latency.baselines"} & reads


def test_latency_vs_macs(cfg, bare):
    res = _bare(bare, cfg, "latency_vs_macs")
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


def test_latency_search(cfg, bare):
    df = _bare(bare, cfg, "latency_search").tables["table_latency_search"]
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
        study.validation_model(cfg, "resnet")


def test_tables_are_store_artefacts_keyed_by_device(cfg):
    from gross.search import latency as L

    model = study.validation_model(cfg, "four_layer")
    study.tables(cfg, model)
    files = sorted((paths.run_dir("smoke") / "latency").glob("*.json"))
    assert files
    env = json.loads(files[0].read_text())
    assert {"latency.repeats", "latency.warmup", "latency.mode", "latency.rounds", "seed"} <= set(env["settings"])
    assert "latency.n_validation" not in env["settings"]
    assert L.table_path(model, num_threads=1, directory="latency") != L.table_path(model, num_threads=2,
                                                                                   directory="latency")


# ----------------------------------------------------------------------------- the verbs (one per notebook cell)


def test_validation_model_is_seeded_and_gross(cfg):
    from gross.method.decomposition import search_space

    a, b = study.validation_model(cfg, "four_layer"), study.validation_model(cfg, "four_layer")
    assert list(search_space(a)) == ["conv2", "conv3", "conv4"] and not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    vgg = study.validation_model(cfg, "vgg16")
    assert len(search_space(vgg)) > 3


def test_layer_latencies(cfg):
    model = study.validation_model(cfg, "four_layer")
    tables = study.tables(cfg, model)
    df = study.layer_latencies(tables)
    assert list(df.columns) == ["layer", "group_size"] + [f"b{b}_ms" for b in cfg["latency"]["batch_sizes"]]
    b = cfg["latency"]["batch_sizes"][0]
    assert df[f"b{b}_ms"].tolist() == pytest.approx((tables[b].to_frame()["seconds"] * 1e3).tolist())
    assert df.iloc[-1]["layer"] == "(fixed)" and len(df) == sum(map(len, tables[b].sizes)) + 1


def test_predict_config_is_the_sum_of_its_terms(cfg):
    model = study.validation_model(cfg, "four_layer")
    tables = study.tables(cfg, model)
    df = study.predict_config(cfg, model, (4, 8, 16), tables)
    assert list(df["batch_size"]) == cfg["latency"]["batch_sizes"] and set(df["config"]) == {"4 8 16"}
    terms = df[["fixed_ms", "conv2_ms", "conv3_ms", "conv4_ms"]].sum(axis=1)
    assert df["predicted_ms"].tolist() == pytest.approx(terms.tolist())
    for _, row in df.iterrows():
        assert row["predicted_ms"] == pytest.approx(tables[row["batch_size"]].predict((4, 8, 16)) * 1e3)
    assert df["measured_ms"].gt(0).all()
    assert df["rel_error"].tolist() == pytest.approx(((df["predicted_ms"] - df["measured_ms"]) / df["measured_ms"]).tolist())
    with pytest.raises(ValueError):
        study.predict_config(cfg, model, (3, 8, 16), tables)


def test_validation_verbs_and_step_with_their_results(cfg, bare):
    cfg.take_reads()  # the notebook's cells run the verbs; the keys they read are credited to the step
    models = study.validation_models(cfg)
    assert list(models) == ["four_layer", f"vgg16 x{cfg['latency']['vgg16_width_mult']:g}"]
    configs = study.validation_configs(cfg, models)
    predictors = cfg["latency"]["predictors"]
    assert len(configs) == 3 * len(models) * len(cfg["latency"]["batch_sizes"]) * len(predictors)
    assert {"predictor", "n_fit", "config", "macs", "predicted_s", "measured_s", "measured_repeat_s", "model",
            "batch_size"} <= set(configs)
    summary = study.validation_summary(cfg, configs, models)
    assert list(zip(summary["model"], summary["batch_size"], summary["predictor"])) == [
        (m, b, p) for m in models for b in cfg["latency"]["batch_sizes"] for p in predictors]
    additive = summary[summary["predictor"] == "additive"]
    assert additive["fixed_s"].tolist() == [study.tables(cfg, m)[b].fixed for m in models.values()
                                            for b in cfg["latency"]["batch_sizes"]]
    wide = study.predictors_side_by_side(summary)
    assert list(wide.index) == [(m, b) for m in models for b in cfg["latency"]["batch_sizes"]]
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == ["repeat ceiling"] + predictors
    for (m, b), row in wide.iterrows():
        for p in predictors:
            match = summary[(summary["model"] == m) & (summary["batch_size"] == b) & (summary["predictor"] == p)]
            assert row[(p, "median_abs_rel_error")] == match["median_abs_rel_error"].item()
            assert row[(p, "holds")] == match["holds"].item()
    res = study.predictor_validation(cfg, configs=configs, summary=summary)
    assert res.tables["latency_predictor_configs"] is configs and res.tables["latency_predictor_validation"] is summary
    plain = _bare(bare, cfg, "predictor_validation")
    assert set(res.reads) == set(plain.reads)
    for col in ("predictor", "model", "batch_size", "config", "macs"):  # all but the timings
        assert plain.tables["latency_predictor_configs"][col].tolist() == configs[col].tolist()
    table_rows = configs["predictor"] == "additive"  # the fitted predictors' predictions come from timings
    assert plain.tables["latency_predictor_configs"]["predicted_s"][table_rows].tolist() == \
        configs["predicted_s"][table_rows].tolist()


@pytest.mark.parametrize("key, value, match", [
    ("predictors", ["additive", "ridge"], "latency.predictors"), ("predictors", [], "latency.predictors"),
    ("predictors", ["additive", "additive"], "latency.predictors"), ("n_fit", -1, "latency.n_fit")])
def test_bad_predictor_settings(cfg, key, value, match):
    bad = {**cfg, "latency": {**cfg["latency"], key: value}}
    with pytest.raises(ValueError, match=match):
        study.validation_configs(bad, {})
    cfg.take_reads()  # copying the section read every latency key: not a read of the next step


def test_scatter_configs(cfg):
    model = study.validation_model(cfg, "four_layer")
    configs = study.scatter_configs(cfg, model)
    assert len(configs) == 5 == len(set(configs)) and configs == sorted(configs)
    assert configs == study.scatter_configs(cfg, model)  # seeded
    everything = gross.runs.config.load("smoke", latency__scatter_configs=1000)
    assert len(study.scatter_configs(everything, model)) == 252


def test_configs_latency_and_step_with_it(cfg, bare):
    cfg.take_reads()
    model = study.validation_model(cfg, "four_layer")
    df = study.configs_latency(cfg, model, tables=study.tables(cfg, model))
    assert list(df.columns) == ["batch_size", "config", "macs", "predicted_s", "measured_s"]
    res = study.latency_vs_macs(cfg, measured=df)
    assert res.tables["latency_all_configs"] is df
    plain = _bare(bare, cfg, "latency_vs_macs")
    assert set(res.reads) == set(plain.reads)
    for col in ("batch_size", "config", "macs", "predicted_s"):
        assert plain.tables["latency_all_configs"][col].tolist() == df[col].tolist()


def test_search_verbs_and_step_with_their_results(cfg, bare):
    cfg.take_reads()
    accuracy = study.search_accuracy(cfg)
    assert len(accuracy) == 252 and all(0 <= a <= 100 for a in accuracy.values())
    found = study.budget_search(cfg, accuracy=accuracy)
    assert list(found.columns) == ["batch_size", "baseline", "budget", "config", "gross_val_acc",
                                   "baseline_val_acc", "macs", "predicted_ms"]
    assert found["gross_val_acc"].tolist() == [accuracy[tuple(map(int, c.split()))] for c in found["config"]]
    measured = study.measure_winners(cfg, found)
    assert measured[list(found.columns)].equals(found)
    assert measured["speedup_vs_baseline"].tolist() == pytest.approx(
        (measured["baseline_measured_ms"] / measured["measured_ms"]).tolist())
    res = study.latency_search(cfg, measured=measured)
    plain = _bare(bare, cfg, "latency_search")
    assert set(res.reads) == set(plain.reads)
    table = plain.tables["table_latency_search"]
    assert table[list(found.columns)].equals(found)  # everything but the timings is the same
    wide = study.side_by_side(table)
    assert list(wide.index) == list(dict.fromkeys(zip(table["batch_size"], table["baseline"])))
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == ["MACs", "latency"]
    for (b, baseline), row in wide.iterrows():
        for kind in ("MACs", "latency"):
            match = table[(table["batch_size"] == b) & (table["baseline"] == baseline) & (table["budget"] == kind)]
            assert row[(kind, "config")] == match["config"].item()
