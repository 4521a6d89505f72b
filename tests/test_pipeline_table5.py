"""Tests of gross.pipeline.table5: the verbs of notebook 05 (Table 5, Fig. 5) and the step composed of them.

The average-precision verbs run on hand-made estimates (no training, fast). The verbs that
read stored networks (``slow``) share one smoke-profile ``runs/`` (4-layer base network,
decomposition and GroSS fine-tune), and the step called with the verbs' results must equal
the step called bare.
"""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gross.method.decomposition import search_space
from gross.method.macs import count_macs
from gross.pipeline import finetune, table5
from gross.runs import config
from gross.search import ap

SPACE = {"conv2": (1, 2, 4, 8, 16, 32), "conv3": (1, 2, 4, 8, 16, 32), "conv4": (1, 2, 4, 8, 16, 32, 64)}


def _smoke(**overrides):
    return config.load("smoke", device="cpu", **overrides)


def _estimates(n=8, seed=0):
    """Hand-made estimates: GroSS ranks like the truth, no fine-tuning the reverse, partial at random."""
    rng = np.random.default_rng(seed)
    true = np.round(60 + 20 * rng.random(n), 3)
    frame = pd.DataFrame({"config": [f"{i} {i} {i}" for i in range(n)], "macs": np.arange(n) * 1000})
    return table5.estimates_table(frame, true_acc=list(true), none=list(-true), partial=list(rng.random(n)),
                                  gross=list(true - 5))


# --------------------------------------------------------------------------- verbs without artefacts


def test_ap_configs_seeded_distinct_and_nested():
    cfg = _smoke()
    configs = table5.ap_configs(cfg, SPACE)
    assert len(configs) == cfg["ap"]["n_configs"] == len(set(configs))
    assert all(isinstance(c, tuple) and all(s in SPACE[n] for s, n in zip(c, SPACE)) for c in configs)
    assert configs == table5.ap_configs(cfg, SPACE)
    assert table5.ap_configs(_smoke(ap__n_configs=10), SPACE)[:len(configs)] == configs
    assert table5.ap_configs(_smoke(ap__seed=1), SPACE) != configs


def test_estimates_table_columns_and_lengths():
    df = _estimates(5)
    assert list(df.columns) == ["config", "macs", "true_acc", "none", "partial", "gross"]
    assert len(df) == 5 and df["true_acc"].dtype == float
    frame = df[["config", "macs"]]
    with pytest.raises(ValueError, match="partial has 4 values for 5 configurations"):
        table5.estimates_table(frame, true_acc=[1.0] * 5, none=[1.0] * 5, partial=[1.0] * 4, gross=[1.0] * 5)


def test_table5_average_precision_is_ap_table_rounded():
    cfg = _smoke(ap__k=2, ap__drops=[0, 2, 4])
    est = _estimates(8)
    table = table5.table5_average_precision(cfg, est)
    assert list(table.columns) == ["Fine-tune Strategy", "All", "2 ↓", "4 ↓", "Mean"]
    assert list(table["Fine-tune Strategy"]) == list(table5.SPACES.values())
    gross = table.set_index("Fine-tune Strategy").loc["GroSS"]
    assert (gross == 100.0).all()  # GroSS ranks exactly like the truth here
    ref = ap.ap_table(est["true_acc"], {"No Fine-tuning": est["none"]}, drops=[0, 2, 4], k=2)
    assert table.iloc[0, 1:].tolist() == ref.round(1).iloc[0].tolist()


def test_ap_slices_are_table5_before_rounding():
    cfg = _smoke(ap__k=2, ap__drops=[0, 3])
    est = _estimates(9, seed=3)
    slices = table5.ap_slices(cfg, est)
    assert len(slices) == 2 * len(table5.SPACES)
    assert (slices["n_configs"] == [9] * 3 + [6] * 3).all() and (slices["n_positives"] == 2).all()
    wide = slices.pivot(index="space", columns="slice", values="ap").round(1)
    table = table5.table5_average_precision(cfg, est).set_index("Fine-tune Strategy")
    for space in table.index:
        assert wide.loc[space, "All"] == table.loc[space, "All"]
        assert wide.loc[space, "3 ↓"] == table.loc[space, "3 ↓"]
    top = est.sort_values("true_acc", ascending=False)
    assert slices.loc[0, "positives"] == ", ".join(top["config"].iloc[:2])  # drawing order of the kept rows
    assert slices.loc[3, "kth_true_acc"] == top["true_acc"].iloc[4]  # 3 dropped: 4th and 5th best are positive


def test_precision_at_ranks_gives_the_average_precision():
    cfg = _smoke(ap__k=3)
    est = _estimates(8, seed=1)
    for space in table5.SPACES:
        for drop in (0, 2):
            ranks = table5.precision_at_ranks(cfg, est, space=space, drop=drop)
            assert len(ranks) == 8 - drop and list(ranks["rank"]) == list(range(1, 9 - drop))
            assert ranks["search_acc"].is_monotonic_decreasing and ranks["positive"].sum() == 3
            keep = est.sort_values("true_acc", ascending=False).iloc[drop:].sort_index()
            expected = ap.average_precision(keep["true_acc"], keep[space], k=3)  # no ties: the plain mean
            assert ranks.loc[ranks["positive"], "precision"].mean() == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown space"):
        table5.precision_at_ranks(cfg, est, space="true_acc")


def test_fig5_one_panel_per_space():
    fig = table5.fig5(_estimates(6))
    assert isinstance(fig, Figure) and len(fig.axes) == len(table5.SPACES)


# --------------------------------------------------------------------------- verbs on stored networks


@pytest.mark.slow
def test_load_ap_models_before_and_after_gross_fine_tuning(prepared):
    cfg = _smoke()
    init, tuned = table5.load_ap_models(cfg)
    assert search_space(init) == search_space(tuned)
    w_init, w_tuned = init.state_dict(), tuned.state_dict()
    assert any(not np.array_equal(w_init[k].numpy(), w_tuned[k].numpy()) for k in w_init)


@pytest.mark.slow
def test_config_table_counts_macs(prepared):
    cfg = _smoke()
    init, _ = table5.load_ap_models(cfg)
    configs = table5.ap_configs(cfg, search_space(init))[:3]
    df = table5.config_table(init, configs)
    assert list(df["config"]) == [" ".join(map(str, c)) for c in configs]
    assert list(df["macs"]) == [count_macs(init, (3, 32, 32), config=c).total for c in configs]


@pytest.mark.slow
def test_search_and_individual_accuracies(prepared):
    cfg = _smoke()
    init, tuned = table5.load_ap_models(cfg)
    configs = table5.ap_configs(cfg, search_space(init))[:2]
    none = table5.search_accuracies(cfg, init, configs)
    assert len(none) == 2 and all(0 <= a <= 100 for a in none)
    true = table5.individual_accuracies(cfg, configs, kind="config")
    partial = table5.individual_accuracies(cfg, configs, kind="partial")
    runs = finetune.true_accuracies(cfg, "four_layer", configs, [0])
    assert true == [runs[(c, 0)]["val_acc"] for c in configs]
    assert finetune.partial_is_prefix(cfg)  # smoke: the 1-epoch partial is the 1-epoch individual fine-tune
    assert partial == [runs[(c, 0)]["history_val_acc"][0] for c in configs]


@pytest.mark.slow
def test_step_with_the_verbs_results_equals_the_bare_step(prepared):
    cfg = _smoke()
    bare = table5.ap_comparison(cfg)
    cfg = _smoke()
    init, tuned = table5.load_ap_models(cfg)
    configs = table5.ap_configs(cfg, search_space(init))
    estimates = table5.estimates_table(
        table5.config_table(init, configs), true_acc=table5.individual_accuracies(cfg, configs, "config"),
        none=table5.search_accuracies(cfg, init, configs),
        partial=table5.individual_accuracies(cfg, configs, "partial"),
        gross=table5.search_accuracies(cfg, tuned, configs))
    table = table5.table5_average_precision(cfg, estimates)
    composed = table5.ap_comparison(cfg, estimates=estimates, table=table, figure=table5.fig5(estimates))
    for name in bare.tables:
        pd.testing.assert_frame_equal(composed.tables[name], bare.tables[name], check_exact=True, obj=name)
    assert composed.notes == bare.notes
    assert composed.reads == bare.reads  # the cells' reads are credited to the step (Config.take_reads)
    out = prepared / "out" / "results"
    assert pd.read_csv(out / "ap_configs.csv").shape == bare.tables["ap_configs"].shape
