"""Notebook 07's verbs and steps (:mod:`gross.pipeline.own_network`) under the smoke profile.

One chain (base training, decomposition, GroSS fine-tuning, latency table, search, ONNX
export: one epoch each on synthetic data, a 1/16-width ResNet-18) is made once per module
in a private ``runs/`` folder; each test checks one verb, and that the steps called with the
verbs' results write what they write when called bare. No wall time is asserted.
"""

import json

import pandas as pd
import pytest
import torch
from torch import nn

import gross
import gross.runs.config
from gross.method.decomposition import gross_layers, search_space
from gross.method.macs import count_macs
from gross.method.space import config_str, parse_config
from gross.pipeline import EXPECTED_OUTPUTS, NOTEBOOK_ORDER, PIPELINE, STEPS, common
from gross.pipeline import own_network as own
from gross.runs import store
from gross.utils import paths

NB = "07_gross_on_your_network"
#: A smaller chain than the smoke profile's: two sizes per layer, one BFS step.
OVERRIDES = dict(own_network__group_sizes=[1, 4], own_network__bfs_max_steps=1)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp_path_factory.mktemp("runs")))
        mp.setenv("GROSS_OUTPUTS", str(tmp_path_factory.mktemp("out")))
        cfg = gross.runs.config.load("smoke", device="cpu", **OVERRIDES)
        common.setup(cfg)
        yield cfg


@pytest.fixture(scope="module")
def chain(env):
    cfg = env
    with store.watch() as made:
        model = own.base_network(cfg)
        init = own.decompose(cfg, model)
        tuned, history = own.finetune(cfg, init)
        table = own.latency_table(cfg, tuned)
        found, evaluated = own.search(cfg, tuned, table)
        found = own.confirm(cfg, tuned, found)
        config = own.chosen_config(cfg, found)
        exported = own.onnx_check(cfg, tuned, config)
    return dict(cfg=cfg, model=model, init=init, tuned=tuned, history=history, table=table, found=found,
                evaluated=evaluated, config=config, exported=exported, made=list(made))


def test_notebook_is_registered():
    assert NOTEBOOK_ORDER[7] == NB == own.NOTEBOOK
    steps = ("own_base_network", "own_decomposition", "own_finetuning", "own_search", "own_export")
    assert {STEPS[s].notebook for s in steps} == {NB}
    assert [s.__name__ for s in PIPELINE[-7:-2]] == list(steps)
    outs = EXPECTED_OUTPUTS[NB]
    for name in ("own_network_base", "own_network_layers", "own_network_btd_errors", "own_network_finetune_history",
                 "own_network_uniform", "own_network_search", "own_network_evaluated", "own_network_export"):
        assert {name + e for e in (".csv", ".md", ".meta.json")} <= set(outs)
    for name in ("fig_own_network_btd_error", "fig_own_network_finetuning", "fig_own_network_search"):
        assert {name + e for e in (".png", ".pdf", ".meta.json")} <= set(outs)


def test_width_is_auto_on_cpu_unless_fixed():
    cfg = gross.runs.config.load("smoke", device="cpu")
    assert cfg["own_network"]["width_mult"] == 0.0
    with gross.runs.config.recording() as reads:
        assert own.width(cfg) == cfg["own_network"]["cpu_width_mult"] == 0.0625
    assert {"own_network.width_mult", "own_network.cpu_width_mult"} <= reads
    fixed = gross.runs.config.load("smoke", device="cpu", own_network__width_mult=0.125)
    with gross.runs.config.recording() as reads:
        assert own.width(fixed) == 0.125
    assert "own_network.cpu_width_mult" not in reads  # read only when it is used
    assert gross.runs.config.load("paper")["own_network"]["width_mult"] == 0.0  # paper: auto (full width on a GPU)
    with pytest.raises(ValueError, match="must be >= 0"):
        gross.runs.config.load("smoke", own_network__width_mult=-1.0)


def test_load_data_subsets_and_normalises(env):
    cfg = gross.runs.config.load("smoke", device="cpu", own_network__n_train=100, own_network__n_val=50,
                                 own_network__n_test=40)
    data = own.load_data(cfg)
    assert (len(data.train), len(data.val), len(data.test)) == (100, 50, 40)
    assert data.mean == own.CIFAR10_MEAN and data.std == own.CIFAR10_STD
    whole = own.load_data(env)
    assert (len(whole.train), len(whole.val), len(whole.test)) == (256, 128, 128)  # 0: the profile's data


def test_recipes_follow_the_config(env):
    base, tune = own.base_recipe(env), own.gross_recipe(env)
    assert (base.epochs, base.lr, base.batch_size, base.weight_decay) == (1, 0.1, 128, 5e-4)
    assert (tune.epochs, tune.lr, tune.batch_size) == (1, 1e-4, 256)
    paper = gross.runs.config.load("paper")
    assert own.base_recipe(paper).milestones == (100, 150) and own.gross_recipe(paper).epochs == 200
    assert own.base_recipe(paper).mean == own.CIFAR10_MEAN


def test_base_network_is_trained_once_and_cached(chain):
    cfg, model = chain["cfg"], chain["model"]
    assert isinstance(model, torchvision_resnet()) and not model.training
    assert model.conv1.out_channels == 4  # width 1/16
    assert any(p.endswith("_base.pt") for p in chain["made"])
    with store.watch() as made:
        again = own.base_network(cfg)
    assert made == []
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    history = own.base_history(cfg)
    assert list(history["epoch"]) == [1] and {"train_loss", "val_acc"} <= set(history.columns)


def torchvision_resnet():
    import torchvision

    return torchvision.models.ResNet


def test_base_summary_counts_batch_norm(chain):
    cfg, model = chain["cfg"], chain["model"]
    summary = own.base_summary(cfg, model)
    row = summary.iloc[0]
    assert row["macs"] == count_macs(model, (3, 32, 32)).total
    outputs = []  # batch norm: 2 MACs per output element
    hooks = [m.register_forward_hook(lambda m, a, out: outputs.append(out[0].numel()))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert len(outputs) == 20 and row["batchnorm_macs"] == 2 * sum(outputs)
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert row["decomposable_layers"] == 16 and row["source"] == "trained here" and row["epochs"] == 1
    assert 0 <= row["val_acc"] <= 100 and 0 <= row["test_acc"] <= 100
    assert row["val_acc"] == common.evaluate(cfg, model, own.load_data(cfg), "val")


def test_weights_are_loaded_with_weights_only(env, tmp_path):
    from gross.models import resnet18_cifar

    torch.manual_seed(5)
    net = resnet18_cifar(width_mult=0.0625)
    torch.save(net.state_dict(), tmp_path / "mynet.pt")
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    for name in ("mynet.pt", "checkpoint.pt"):
        cfg = gross.runs.config.load("smoke", device="cpu", own_network__weights=str(tmp_path / name))
        loaded = own.base_network(cfg)
        for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), k
        assert own.base_history(cfg).empty
        assert own.base_summary(cfg, loaded).iloc[0]["source"] == str(tmp_path / name)
    wrong = gross.runs.config.load("smoke", device="cpu", own_network__weights=str(tmp_path / "mynet.pt"),
                                   own_network__width_mult=0.125)
    with pytest.raises(ValueError, match="does not fit resnet18_cifar"):
        own.base_network(wrong)
    missing = gross.runs.config.load("smoke", device="cpu", own_network__weights=str(tmp_path / "nothing.pt"))
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        own.base_network(missing)


def test_layer_table_lists_every_block_conv_followed_by_batch_norm(chain):
    layers = own.layer_table(chain["cfg"], chain["model"])
    assert list(layers["layer"]) == gross.decomposable_layers(chain["model"])
    assert len(layers) == 16 and set(layers["followed_by"]) == {"BatchNorm2d"}
    assert "conv1" not in set(layers["layer"])
    for _, row in layers.iterrows():
        sizes = [int(s) for s in row["group_sizes"].split()]
        assert sizes == [s for s in (1, 4) if row["in_channels"] % s == 0]
        assert row["macs_smallest"] <= row["macs_largest"]
    plain = count_macs(chain["model"], (3, 32, 32)).total
    smallest = count_macs(chain["model"], (3, 32, 32), config=tuple(int(s.split()[0]) for s in layers["group_sizes"]))
    assert plain - layers["macs"].sum() + layers["macs_smallest"].sum() == smallest.total


def test_decompose_leaves_the_base_alone_and_keeps_batch_norm(chain):
    model, init = chain["model"], chain["init"]
    assert not gross_layers(model)  # the base network is not modified
    assert list(gross_layers(init)) == gross.decomposable_layers(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in init.modules()) == 20
    for name, module in model.named_modules():  # batch norms, stem, downsamples and fc: the base network's
        if isinstance(module, (nn.BatchNorm2d, nn.Linear)) or name in ("conv1", "layer2.0.downsample.0"):
            for k, v in module.state_dict().items():
                assert torch.equal(v, init.get_submodule(name).state_dict()[k]), (name, k)
    errors = own.btd_errors(init)
    assert list(errors.columns) == ["layer", "group_size", "error"]
    assert len(errors) == sum(len(s) for s in search_space(init).values())
    with store.watch() as made:
        own.decompose(chain["cfg"], model)
    assert made == []


def test_btd_error_figure(chain):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    errors = own.btd_errors(chain["init"])
    fig = own.btd_error_figure(errors)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # the plot and its colour bar
    layers = list(dict.fromkeys(errors["layer"]))
    assert len(layers) == 16 and fig.axes[0].get_legend() is None  # too many layers for category colours:
    bar_labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]  # coloured by depth, named on the bar
    assert bar_labels == layers[::2]
    fig2, ax = plt.subplots()
    assert own.btd_error_figure(errors, ax=ax) is fig2
    plt.close(fig2)


def test_finetune_trains_only_the_gross_layers(chain):
    init, tuned, history = chain["init"], chain["tuned"], chain["history"]
    assert list(history["epoch"]) == [1] and {"val_acc_smallest", "val_acc_largest"} <= set(history.columns)
    gross_params = {f"{n}.{k}" for n, layer in gross_layers(init).items() for k in layer.state_dict()}
    changed = [k for k, v in init.state_dict().items() if not torch.equal(v, tuned.state_dict()[k])]
    assert changed and set(changed) <= gross_params  # batch norm statistics included: frozen
    uniform = own.uniform_accuracies(chain["cfg"], init, tuned)
    assert list(uniform.columns) == ["config", "macs", "before", "after"]
    assert list(uniform["config"]) == [config_str(c) for c in common.uniform_configs(search_space(init))]
    assert list(uniform["macs"]) == [count_macs(init, (3, 32, 32), config=parse_config(c)).total
                                     for c in uniform["config"]]


def test_search_respects_both_budgets(chain):
    cfg, tuned, table, found, evaluated = (chain[k] for k in ("cfg", "tuned", "table", "found", "evaluated"))
    assert own.search_method(cfg, search_space(tuned)) == "bfs"  # 2^16 configurations > max_exhaustive
    assert list(found["budget_kind"]) == ["MACs", "latency"] and set(found["method"]) == {"bfs"}
    macs_row, lat_row = found.iloc[0], found.iloc[1]
    assert macs_row["macs"] <= macs_row["baseline_macs"] == macs_row["budget"]
    assert lat_row["predicted_ms"] <= lat_row["baseline_predicted_ms"] + 1e-6
    assert lat_row["budget"] == round(table.predict(parse_config(lat_row["baseline"])) * 1e9)
    acc = dict(zip(evaluated["config"], evaluated["accuracy"]))
    for _, row in found.iterrows():
        assert acc[row["config"]] == row["gross_val_acc"]
        assert row["macs"] == count_macs(tuned, (3, 32, 32), config=parse_config(row["config"])).total
    assert evaluated["macs"].gt(0).all() and evaluated["predicted_ms"].gt(0).all()
    assert found["gross_test_acc"].between(0, 100).all() and found["measured_ms"].gt(0).all()
    assert (found["speedup_vs_baseline"] == found["baseline_measured_ms"] / found["measured_ms"]).all()


def test_exhaustive_search_on_a_small_space(env):
    """A space within ``max_exhaustive`` is searched exhaustively: the winner is the best evaluated one."""
    cfg = gross.runs.config.load("smoke", device="cpu", own_network__group_sizes=[1, 32], own_network__baselines=[32])
    model = own.base_network(cfg)
    tuned, _ = own.finetune(cfg, own.decompose(cfg, model))
    space = search_space(tuned)
    assert gross.method.decomposition.num_configs(space) == 8  # only the three 32-wide layers have a choice
    assert own.search_method(cfg, space) == "exhaustive"
    found, evaluated = own.search(cfg, tuned, own.latency_table(cfg, tuned))
    assert set(found["method"]) == {"exhaustive"} and len(evaluated) == 8
    for _, row in found.iterrows():
        limit = "macs" if row["budget_kind"] == "MACs" else "predicted_ms"
        feasible = evaluated[evaluated[limit] <= row[f"baseline_{limit}"] + (1e-6 if limit != "macs" else 0)]
        assert row["gross_val_acc"] == feasible["accuracy"].max()


def test_search_figure_draws_two_panels(chain):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = own.search_figure(chain["found"], chain["evaluated"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig2, axes = plt.subplots(1, 2)
    assert own.search_figure(chain["found"], chain["evaluated"], ax=axes) is fig2
    with pytest.raises(ValueError, match="2 Axes"):
        own.search_figure(chain["found"], chain["evaluated"], ax=axes[:1])
    plt.close(fig2)


def test_chosen_config(chain):
    cfg, found = chain["cfg"], chain["found"]
    assert chain["config"] == parse_config(found[found["budget_kind"] == "MACs"].iloc[0]["config"])
    text = " ".join(["1"] * 16)
    assert own.chosen_config(gross.runs.config.load("smoke", own_network__export_config=text), found) == (1,) * 16


def test_onnx_check_matches_pytorch(chain):
    row = chain["exported"].iloc[0]
    assert row["config"] == config_str(chain["config"])
    assert bool(row["groups_match"]) and row["max_abs_diff"] < 1e-4
    assert row["exported_test_acc"] == row["gross_test_acc"]
    plain = gross.export(chain["tuned"], chain["config"])
    assert row["macs"] == count_macs(plain, (3, 32, 32)).total == count_macs(chain["tuned"], (3, 32, 32),
                                                                               config=chain["config"]).total
    assert row["grouped_convs"] == sum(isinstance(m, nn.Conv2d) and m.groups > 1 for m in plain.modules())
    onnx_file = store.Store(chain["cfg"]).path(row["file"])
    assert onnx_file.is_file() and onnx_file.stat().st_size > 0
    onnx_file.unlink()  # a missing file is exported again, not reported from the cache
    again = own.onnx_check(chain["cfg"], chain["tuned"], chain["config"])
    assert onnx_file.is_file()
    pd.testing.assert_frame_equal(again, chain["exported"])


def test_mac_lookup_on_meta_equals_counting_the_model(chain):
    tuned = chain["tuned"]
    lookup = own._mac_lookup(tuned)
    for config in (tuple(min(s) for s in search_space(tuned).values()), chain["config"]):
        assert lookup(config) == count_macs(tuned, (3, 32, 32), config=config)


def test_steps_with_the_verbs_results_equal_the_steps_called_bare(chain):
    cfg = chain["cfg"]
    out = paths.results_dir("smoke")
    given = {
        "own_base_network": own.own_base_network(cfg, model=chain["model"],
                                                 summary=own.base_summary(cfg, chain["model"])),
        "own_decomposition": own.own_decomposition(cfg, model=chain["model"], gross=chain["init"],
                                                   layers=own.layer_table(cfg, chain["model"]),
                                                   errors=own.btd_errors(chain["init"])),
        "own_finetuning": own.own_finetuning(cfg, init=chain["init"], tuned=chain["tuned"], history=chain["history"],
                                             uniform_acc=own.uniform_accuracies(cfg, chain["init"], chain["tuned"])),
        "own_search": own.own_search(cfg, tuned=chain["tuned"], table=chain["table"], found=chain["found"],
                                     evaluated=chain["evaluated"]),
        "own_export": own.own_export(cfg, exported=chain["exported"]),
    }
    with store.watch() as made:
        bare = {name: getattr(own, name)(cfg) for name in given}
    assert made == []  # everything came from the store
    for name, result in given.items():
        for table, df in result.tables.items():
            pd.testing.assert_frame_equal(df.reset_index(drop=True), bare[name].tables[table].reset_index(drop=True),
                                          obj=f"{name}: {table}")
            meta = json.loads((out / f"{table}.meta.json").read_text())
            assert meta["settings_read"] == bare[name].reads
    reads = set().union(*(r.reads for r in bare.values()))
    own_keys = {f"own_network.{k}" for k in gross.runs.config.load("paper").to_dict()["own_network"]}
    assert not own_keys - reads, sorted(own_keys - reads)  # every key of [own_network] is read by a step
    assert "own_network.export_config" in bare["own_export"].reads
