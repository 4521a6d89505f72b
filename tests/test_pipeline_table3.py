"""Tests of gross.pipeline.table3 (notebook 04): the verbs of the VGG-16 breadth-first search and Table 3.

One smoke VGG-16 (base network, decomposition, GroSS fine-tune: store artefacts only) backs them; the
verbs run once (module fixture) and the step is checked against them, bare and given their results.
"""

import pandas as pd
import pytest

from gross.method.decomposition import search_space
from gross.method.space import SearchSpace, config_str
from gross.pipeline import base, common, decomposition, finetune, table3
from gross.runs import config
from gross.search.costs import model_mac_lookup


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """``(cfg, verbs)``: the smoke VGG-16's artefacts in a private runs folder and every verb's result, in order.

    ``GROSS_RUNS`` stays set while the module's tests run.
    """
    tmp = tmp_path_factory.mktemp("table3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp / "runs"))
        cfg = config.load("smoke", device="cpu")
        base.base_model(cfg, "vgg16")
        decomposition.gross_decompose(cfg, "vgg16", 0)
        finetune.finetune_gross(cfg, "vgg16", 0)
        v = {"data": common.prepare_data(cfg, "vgg16"), "model": decomposition.load_gross(cfg, "vgg16", 0)}
        v["baselines"] = table3.baseline_table(cfg, v["model"])
        v["step"] = table3.first_step(cfg, v["model"], v["data"], v["baselines"])
        v["searches"] = table3.bfs_searches(cfg, v["model"], v["data"], v["baselines"], known=v["step"])
        v["entries"] = table3.table_entries(cfg, v["model"], v["baselines"], v["searches"][0])
        v["finetunes"] = table3.true_finetunes(cfg, v["entries"])
        v["tidy"] = table3.table_rows(cfg, v["model"], v["data"], v["entries"])
        v["figure"] = table3.fig4(*v["searches"][1:], v["baselines"], v["searches"][0])
        yield cfg, v


def test_space_table(smoke):
    _, v = smoke
    layers = table3.space_table(v["model"])
    space = search_space(v["model"])
    assert list(layers["layer"]) == list(space)
    assert list(layers["group_sizes"]) == [config_str(s) for s in space.values()]
    assert layers["n_sizes"].prod() == SearchSpace(space).num_configs
    assert (layers["width"] <= layers["in_channels"]).all()


def test_baseline_table_in_ascending_macs(smoke):
    cfg, v = smoke
    b = v["baselines"]
    space, lookup = search_space(v["model"]), model_mac_lookup(v["model"])
    assert list(b["size"]) == sorted(cfg["vgg16"]["baselines"])  # smoke: [4, 16], ascending MACs
    assert list(b["config"]) == [common.uniform(space, s) for s in b["size"]]
    assert list(b["macs"]) == [lookup(c).total for c in b["config"]] and b["macs"].is_monotonic_increasing
    reversed_order = config.load("smoke", device="cpu", vgg16__baselines=[16, 4])
    assert table3.baseline_table(reversed_order, v["model"]).equals(b)


def test_first_step_is_the_searchs_first_step(smoke):
    cfg, v = smoke
    step, (best, trace), b = v["step"], v["searches"], v["baselines"]
    first = trace[(trace["baseline"] == config_str(b["config"][0])) & (trace["run"] == 0)]
    assert step.iloc[0]["role"] == "current"
    assert step.iloc[0]["config"] == first[first["step"] == 0]["config"].iloc[0]
    columns = ["config", "macs", "gconv_macs", "accuracy", "selected"]
    here = step[(step["role"] == "neighbour") & step["within_budget"]][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(here, first[first["step"] == 1][columns].reset_index(drop=True))
    assert (step["within_budget"] == (step["macs"] <= b["macs"][0])).all()
    assert not step["accuracy"].isna().any()  # over-budget neighbours evaluated for display
    # that the search re-using the step's accuracies (known=) finds what it finds without them: the last test
    assert len(best) == len(b) and (best["macs"] <= best["budget"]).all()


def test_entries_and_finetunes(smoke):
    cfg, v = smoke
    entries, best = v["entries"], v["searches"][0]
    assert entries["role"].tolist()[0] == "full" and entries["role"].tolist()[-1] == "depthwise"
    assert entries["config"][0] is None and pd.isna(entries["macs"][0])
    found = entries[entries["role"] == "found"]["config"].tolist()
    assert found == [tuple(c) for c in best["config"]][::-1]  # largest budget first
    assert (entries["role"] == "vbmf").sum() == 1
    ft = v["finetunes"]
    assert len(ft) == (len(entries) - 1) * common.true_repeats(cfg, "vgg16")
    for c, r, acc in zip(ft["config"], ft["repeat"], ft["test_acc"]):
        assert acc == finetune.true_accuracy(cfg, "vgg16", c, r)["test_acc"]


def test_step_given_the_verbs_equals_the_bare_step(smoke):
    cfg, v = smoke
    bare = table3.bfs_vgg16(config.load("smoke", device="cpu"))
    given = table3.bfs_vgg16(cfg, **{k: x for k, x in v.items() if k != "step"})  # as the notebook's last cell
    # the given search re-used first_step's accuracies (known=), the bare one did not: the same trace
    assert bare.tables.keys() == given.tables.keys()
    for name in bare.tables:
        pd.testing.assert_frame_equal(bare.tables[name], given.tables[name], obj=name)
    pd.testing.assert_frame_equal(given.tables["table3_bfs_vgg16"], table3.paper_table(v["tidy"]))
    assert given.figures["fig4_bfs_vgg16"] is v["figure"]
    assert bare.notes == given.notes
    assert set(bare.reads) <= set(given.reads)  # the settings the verbs' cells read are credited to the step
