"""Tests of gross.pipeline.table2 (notebook 03): the verbs of the exhaustive search and the step composed of them.

The verbs that need no trained network run on small hand-made spaces and tables. The others
use a ``runs/`` folder holding the smoke profile's 4-layer base network, decomposition and
GroSS fine-tune (module fixture); the step called with the verbs' results (as notebook 03
does, cell by cell) must write exactly what the step called bare writes.
"""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gross.method.decomposition import search_space
from gross.method.vbmf import select_config
from gross.pipeline import base, common, finetune, table2
from gross.runs import config
from gross.search.costs import MacLookup, model_mac_lookup
from gross.search.evaluation import evaluate_configs

SPACE = {"a": (1, 2), "b": (1, 2, 4)}


#: A MAC lookup of SPACE: total 100 x the sum of the group sizes, grouped convolutions the sum.
_cost = MacLookup(SPACE, lambda c: (100 * sum(c), sum(c)))


def _table(acc: dict) -> pd.DataFrame:
    configs = [(a, b) for a in SPACE["a"] for b in SPACE["b"]]
    return pd.DataFrame({"config": configs, "macs": [_cost(c).total for c in configs],
                         "gconv_macs": [_cost(c).gconv for c in configs],
                         "accuracy": [acc.get(c, 10.0) for c in configs]})


def test_space_table_lists_layers_and_counts_configurations():
    df = table2.space_table(SPACE)
    assert list(df["layer"]) == ["a", "b", "configurations"]
    assert list(df["group_sizes"]) == ["1 2", "1 2 4", ""]
    assert list(df["count"]) == [2, 3, 6]


def test_space_table_of_the_four_layer_network_has_252_configurations():
    model = common.build_model(config.load("smoke"), "four_layer")
    sizes = {name: tuple(2 ** i for i in range(width.bit_length()) if 2 ** i <= width)
             for name, width in (("conv2", 32), ("conv3", 32), ("conv4", 64))}
    assert model.conv4.in_channels == 64
    assert table2.space_table(sizes)["count"].iloc[-1] == 252


def test_uniform_baselines_follow_the_config():
    cfg = config.load("smoke", four_layer__baselines=[4, 2, 8])
    assert table2.uniform_baselines(cfg, SPACE) == [(2, 4), (2, 2), (2, 4)]


def test_select_configs_most_accurate_within_each_budget_ties_to_fewer_macs():
    # under 400 MACs (2, 2) is the most accurate; (1, 4) is as accurate but costs 500; under 300, (2, 1)
    evaluated = _table({(2, 4): 90.0, (1, 4): 80.0, (2, 2): 80.0, (2, 1): 70.0})
    found = table2.select_configs(evaluated, SPACE, [(2, 4), (2, 2), (1, 2)], _cost)
    assert list(found.columns) == ["baseline", "baseline_macs", "baseline_accuracy", "config", "macs", "gconv_macs",
                                   "accuracy"]
    assert list(found["baseline"]) == [(2, 4), (2, 2), (1, 2)]
    assert list(found["baseline_macs"]) == [600, 400, 300]
    assert list(found["config"]) == [(2, 4), (2, 2), (2, 1)]
    assert list(found["accuracy"]) == [90.0, 80.0, 70.0]
    assert list(found["baseline_accuracy"]) == [90.0, 80.0, 10.0]
    assert (found["macs"] <= found["baseline_macs"]).all()


def test_exhaustive_figure_marks_baselines_and_found():
    evaluated = _table({(2, 2): 80.0})
    found = table2.select_configs(evaluated, SPACE, [(2, 4), (1, 2)], _cost)
    fig = table2.exhaustive_figure(evaluated, found)
    assert isinstance(fig, Figure)
    gids = {a.get_gid() for a in fig.axes[0].collections}
    assert {"baselines", "found"} <= gids


def test_table_entries_in_the_papers_order():
    cfg = config.load("smoke", four_layer__depthwise=1)
    found = pd.DataFrame({"baseline": [(2, 4), (1, 2)], "config": [(2, 2), (2, 1)]})
    entries = table2.table_entries(cfg, SPACE, found, (1, 4), _cost)
    assert list(entries.columns) == ["group", "role", "config", "macs"]
    assert list(entries["role"]) == ["full", "baseline", "vbmf", "found", "baseline", "found", "depthwise"]
    assert entries["config"].iloc[0] is None and entries["macs"].isna().iloc[0]
    assert list(entries["config"].iloc[1:]) == [(2, 4), (1, 4), (2, 2), (1, 2), (2, 1), (1, 1)]
    assert list(entries["macs"].iloc[1:]) == [600, 500, 400, 300, 300, 200]
    assert entries["group"].iloc[2] == "2 4"  # VBMF (500 MACs): with the cheapest baseline not below it


# ----------------------------------------------------------------------------- with stored networks


def _smoke(**overrides):
    return config.load("smoke", device="cpu", **overrides)


@pytest.fixture
def runs(prepared, monkeypatch):
    monkeypatch.setenv("GROSS_RUNS", str(prepared / "runs"))
    monkeypatch.setenv("GROSS_OUTPUTS", str(prepared / "out"))
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    return prepared


def test_evaluate_space_matches_evaluate_configs(runs):
    cfg = _smoke()
    models = table2.gross_models(cfg)
    assert len(models) == cfg["four_layer"]["repeats"]
    data = common.prepare_data(cfg, "four_layer")
    configs = [(1, 1, 1), (32, 16, 64), (4, 4, 4)]
    evaluated = table2.evaluate_space(cfg, models, data, configs=configs)
    assert list(evaluated.columns) == ["config", "macs", "gconv_macs", "accuracy", "val_acc_r0", "val_acc_std"]
    assert list(evaluated["config"]) == configs
    expected = evaluate_configs(models[0], configs, data, split="val", **common.eval_kwargs(cfg, data))
    np.testing.assert_array_equal(evaluated["accuracy"], expected["accuracy"])
    lookup = model_mac_lookup(models[0])
    assert list(evaluated["macs"]) == [lookup(c).total for c in configs]
    assert len(evaluated.attrs["eval_s"]) == len(models)


def test_vbmf_config_is_select_config(runs):
    cfg = _smoke()
    net = base.base_model(cfg, "four_layer", train=False)
    space = search_space(table2.gross_models(cfg)[0])
    layers = table2.vbmf_layers(net, space)
    assert list(layers["layer"]) == list(space)
    assert table2.vbmf_config(layers) == select_config(net, sizes=dict(space))


@pytest.mark.slow
def test_step_with_the_verbs_results_equals_the_step_alone(runs):
    """Notebook 03 runs the verbs cell by cell and passes their results to the step: same outputs, same settings."""
    cfg = _smoke()
    common.setup(cfg)
    alone = table2.exhaustive_search(cfg)

    cfg = _smoke()
    common.setup(cfg)
    models = table2.gross_models(cfg)
    space = search_space(models[0])
    lookup = model_mac_lookup(models[0])
    data = common.prepare_data(cfg, "four_layer")
    evaluated = table2.evaluate_space(cfg, models, data)
    assert len(evaluated) == 252
    found = table2.select_configs(evaluated, space, table2.uniform_baselines(cfg, space), lookup)
    fig = table2.exhaustive_figure(evaluated, found)
    net = base.base_model(cfg, "four_layer", train=False)
    vbmf = table2.vbmf_config(table2.vbmf_layers(net, space))
    entries = table2.table_entries(cfg, space, found, vbmf, lookup)
    finetunes = table2.true_finetunes(cfg, entries)
    assert len(finetunes) == (len(entries) - 1) * cfg["four_layer"]["true_repeats"]
    for row in finetunes.itertuples():
        assert row.test_acc == finetune.true_accuracy(cfg, "four_layer", row.config, row.repeat)["test_acc"]
    cells = table2.exhaustive_search(cfg, models=models, data=data, evaluated=evaluated, found=found, figure=fig,
                                     base=net, vbmf=vbmf, entries=entries, finetunes=finetunes)

    assert cells.figures["fig3_exhaustive_search"] is fig
    assert set(cells.tables) == set(alone.tables)
    for name in alone.tables:
        pd.testing.assert_frame_equal(cells.tables[name], alone.tables[name], obj=name)
    assert cells.reads == alone.reads  # the keys the cells read are credited to the step
