"""Notebook 02's verbs (gross.pipeline.finetune): what each cell computes, and the steps built from them.

One smoke runs/ folder (4-layer network only: base network, decomposition, GroSS fine-tune) backs
these tests; each test works on a copy of it. The replayed sampler draws must be the draws the
fine-tune itself makes, and a step called with the verbs' results must write what the bare step
writes, without training anything again.
"""

import copy
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from gross.pipeline import decomposition, finetune
from gross.pipeline.common import prepare_data
from gross.pipeline.decomposition import load_gross
from gross.report import plots
from gross.runs import config, store
from gross.search.evaluation import accuracy
from gross.training import loop

MODEL = ["four_layer"]


def _smoke(**overrides):
    return config.load("smoke", device="cpu", **overrides)


@pytest.fixture
def runs(smoke_four_layer_runs, tmp_path, monkeypatch):
    """A private copy of the session's smoke runs/ (conftest) (``$GROSS_RUNS``) and output folder."""
    shutil.copytree(smoke_four_layer_runs, tmp_path / "runs")
    monkeypatch.setenv("GROSS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "out"))
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    return tmp_path / "runs"


def test_search_space_table_is_the_papers_252_configurations(runs):
    space = finetune.search_space_table(_smoke(), "four_layer")
    assert list(space["layer"]) == ["conv2", "conv3", "conv4"]
    assert list(space["width"]) == [32, 32, 64]  # bottleneck width = input channels (Sec. 4.3)
    assert space["group_sizes"].iloc[-1] == "1 2 4 8 16 32 64"
    assert space["n_sizes"].prod() == 252


def test_sampled_configs_are_the_draws_of_the_fine_tune(runs, monkeypatch):
    cfg = _smoke(four_layer__gross_epochs=4)  # 256 training images: one iteration (one draw) per epoch
    replayed = finetune.sampled_configs(cfg, "four_layer", repeat=0, n=10)
    assert list(replayed.columns) == ["iteration", "epoch", "conv2", "conv3", "conv4", "config"]
    assert list(replayed["iteration"]) == [1, 2, 3, 4] and list(replayed["epoch"]) == [1, 2, 3, 4]  # capped
    drawn = []
    original = loop.draw_config
    monkeypatch.setattr(loop, "draw_config", lambda layers, sampler: drawn.append(original(layers, sampler)) or
                        drawn[-1])
    with store.watch() as made:
        finetune.finetune_gross(cfg, "four_layer", 0)  # trains: 4 epochs are not stored
    assert made == [decomposition.tuned_path("four_layer", 0)]
    assert [tuple(r) for r in replayed[["conv2", "conv3", "conv4"]].itertuples(index=False)] == drawn
    assert list(replayed["config"]) == [" ".join(map(str, c)) for c in drawn]
    assert len(set(drawn)) > 1
    pd.testing.assert_frame_equal(finetune.sampled_configs(cfg, "four_layer", n=2), replayed.head(2))


def test_sampled_configs_draw_every_size_of_a_layer_equally_often(runs):
    draws = finetune.sampled_configs(_smoke(four_layer__gross_epochs=3000), n=3000)  # replayed, nothing trains
    assert len(draws) == 3000 and draws["epoch"].iloc[-1] == 3000
    for layer, sizes in [("conv2", 6), ("conv4", 7)]:
        share = draws[layer].value_counts(normalize=True)
        assert len(share) == sizes and (share - 1 / sizes).abs().max() < 0.03, share


def test_schedules_are_the_papers_recipes():
    cfg = config.load("paper")
    gross_, individual = finetune.schedules(cfg, "gross"), finetune.schedules(cfg, "config")
    four = gross_.set_index("model").loc["four_layer"]
    assert (four["epochs"], four["batch_size"], four["lr"], four["milestones"]) == (150, 256, 1e-4, "80 120")
    assert gross_.set_index("model").loc["vgg16", "milestones"] == "100 150"
    assert list(individual["epochs"]) == [100, 100] and list(individual["lr"]) == [1e-3, 1e-3]
    assert set(individual["milestones"]) == {"80"} and set(individual["trains"]) == {"decomposed layers"}
    assert list(finetune.schedules(_smoke(), "gross")["milestones"]) == ["", ""]  # 1 epoch: no decay
    with pytest.raises(ValueError, match="kind must be 'gross'"):
        finetune.schedules(cfg, "partial")


def test_finetune_step_with_the_verbs_results_equals_the_bare_step(runs):
    cfg = _smoke()
    with store.watch() as made:
        history = finetune.gross_histories(cfg, MODEL)
        curves = finetune.finetuning_curves(history)
        given = finetune.finetune_gross_models(cfg, MODEL, history=history, figure=curves)
        bare = finetune.finetune_gross_models(cfg, MODEL)
    assert made == []  # loaded, never trained again
    assert list(history.columns[:3]) == ["model", "repeat", "epoch"]
    assert {"val_acc_smallest", "val_acc_largest", "train_loss"} <= set(history.columns)
    pd.testing.assert_frame_equal(given.tables["finetune_history"], bare.tables["finetune_history"])
    assert given.figures["fig_finetuning_curves"] is curves
    assert given.reads == bare.reads and "four_layer.gross_epochs" in given.reads


def test_finetuning_curves_draw_on_given_axes(runs):
    history = finetune.gross_histories(_smoke(), MODEL)
    fig, axes = plots.panel_axes(1, 2)
    assert finetune.finetuning_curves(history, ax=axes[0]) is fig
    assert axes[0, 0].get_lines() and axes[0, 1].get_lines()


def test_uniform_accuracies_and_their_step(runs):
    cfg = _smoke()
    with store.watch() as made:
        accuracies = finetune.uniform_accuracies(cfg, MODEL)
        bare = finetune.uniform_before_after(cfg, MODEL).tables["uniform_before_after"]
    assert made == []
    assert list(accuracies.columns) == ["model", "repeat", "config", "before", "after", "improved", "lost", "gained",
                                        "n_images"]
    change = 100.0 * (accuracies["gained"] - accuracies["lost"]) / accuracies["n_images"]
    np.testing.assert_allclose(change, accuracies["after"] - accuracies["before"], atol=1e-9)
    tuned = load_gross(cfg, "four_layer", 0)  # independent: accuracy() of the fine-tuned model, one configuration
    assert accuracies["after"].iloc[-1] == pytest.approx(accuracy(tuned, prepare_data(cfg, "four_layer"), config="32 32 64"),
                                                         abs=1e-9)
    assert list(accuracies["config"]) == ["1 1 1", "2 2 2", "4 4 4", "8 8 8", "16 16 16", "32 32 32", "32 32 64"]
    assert (accuracies["improved"] == (accuracies["after"] >= accuracies["before"])).all()
    given = finetune.uniform_before_after(cfg, MODEL, accuracies=accuracies).tables["uniform_before_after"]
    pd.testing.assert_frame_equal(given, bare)
    pd.testing.assert_frame_equal(given, accuracies)


def test_uniform_finetunes_and_their_step(runs):
    cfg = _smoke()
    finetunes = finetune.uniform_finetunes(cfg, MODEL)  # trains the 3 missing 1-epoch fine-tunes
    assert list(finetunes["config"]) == ["32 32 32", "4 4 4", "1 1 1"]  # baselines [32, 4], then 1s
    assert set(finetunes["epochs"]) == {1} and finetunes["test_acc"].notna().all()
    n_val = _smoke()["data"]["n_val"]
    change = 100.0 * (finetunes["val_gained"] - finetunes["val_lost"]) / n_val
    np.testing.assert_allclose(change, finetunes["val_acc"] - finetunes["no_finetune_val_acc"], atol=1e-9)
    with store.watch() as made:
        bare = finetune.individual_finetunes(cfg, MODEL).tables["individual_finetunes"]
        given = finetune.individual_finetunes(cfg, MODEL, finetunes=finetunes).tables["individual_finetunes"]
    assert made == []  # stored: nothing trains again
    pd.testing.assert_frame_equal(given, bare)
    assert (runs / "smoke" / finetune.true_path("four_layer", (1, 1, 1))).exists()


def test_sampler_is_the_loops():
    """The loop draws from ``group_size_sampler``: ``recipe.seed + SAMPLER_SEED_OFFSET`` (replayed by sampled_configs)."""
    rec = loop.RECIPES["four_layer_gross"].replace(seed=5)
    job = loop._Job("gross", torch.nn.Linear(1, 1), [torch.nn.Parameter(torch.zeros(1))], bn_eval=True, name="x",
                    sampler_layers=[], track={})
    opt = loop._Optim(job, rec, torch.device("cpu"))
    ours = torch.Generator().manual_seed(rec.seed + loop.SAMPLER_SEED_OFFSET)
    assert torch.equal(opt.sampler.get_state(), ours.get_state())


# ----------------------------------------------------------------------------- K networks at once
# Individual fine-tunes of three configurations at two repeats (different seeds: data order,
# augmentation, dropout), 3 epochs with the learning rate decayed after epoch 2, batches of 96 of the
# 256 training images (two full batches and one of 64), all in float64. ``networks_at_once = 3``
# forces the K-at-once path on this CPU (where "auto" picks one at a time).
CONFIGS = [(32, 32, 64), (4, 8, 16), (1, 2, 4)]
AT_ONCE = [((32, 32, 64), 0), ((4, 8, 16), 0), ((1, 2, 4), 1)]  # one K-run: three configurations, two seeds


@pytest.fixture
def float64_finetunes(monkeypatch):
    """The pipeline's fine-tunes in float64 with batches of 96; returns where the trained networks go."""
    import gross.training.batched as batched

    original_decompose, original_recipe = finetune.gross_decompose, finetune.recipe
    monkeypatch.setattr(finetune, "gross_decompose", lambda *a, **k: original_decompose(*a, **k).double())
    monkeypatch.setattr(finetune, "recipe", lambda *a, **k: original_recipe(*a, **k).replace(batch_size=96))
    nets = {"one": {}, "many": []}
    one, many = loop.finetune_config, batched.finetune_many

    def one_at_a_time(model, config, data, rec, **kwargs):
        net, history = one(model, config, data, rec, **kwargs)
        nets["one"][(tuple(config), rec.seed)] = net
        return net, history

    def at_once(models, configs, data, recipes, **kwargs):
        out = many(models, configs, data, recipes, **kwargs)
        nets["many"].append(dict(zip([(tuple(c), r.seed) for c, r in zip(configs, recipes)], out[0])))
        return out

    monkeypatch.setattr(loop, "finetune_config", one_at_a_time)
    monkeypatch.setattr(batched, "finetune_many", at_once)
    torch.set_default_dtype(torch.float64)
    yield nets
    torch.set_default_dtype(torch.float32)


def _same_payload(a, b):
    for key in ("model", "config", "repeat", "kind", "epochs", "val_acc", "test_acc", "no_finetune_val_acc",
                "history_val_acc"):
        assert a[key] == b[key], key


def _drop(runs, items):
    for c, r in items:
        (runs / "smoke" / finetune.true_path("four_layer", c, r)).unlink()


def _max_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def test_k_at_once_equals_one_at_a_time_through_the_pipeline(runs, float64_finetunes):
    pairs = [(c, r) for c in CONFIGS for r in (0, 1)]
    one = finetune.true_accuracies(_smoke(four_layer__config_epochs=3, networks_at_once=1), "four_layer", CONFIGS,
                                   [0, 1])
    one_env = {k: store.Store(_smoke()).read(finetune.true_path("four_layer", *k)) for k in pairs}
    assert len(float64_finetunes["one"]) == 6 and float64_finetunes["many"] == []
    _drop(runs, pairs)
    many = finetune.true_accuracies(_smoke(four_layer__config_epochs=3, networks_at_once=3), "four_layer", CONFIGS,
                                    [0, 1])
    assert [len(run) for run in float64_finetunes["many"]] == [3, 3]  # two runs of 3 networks at once
    together = {k: v for run in float64_finetunes["many"] for k, v in run.items()}
    for c, r in pairs:
        _same_payload(one[(c, r)], many[(c, r)])
        assert len(many[(c, r)]["history_val_acc"]) == 3
        env = store.Store(_smoke()).read(finetune.true_path("four_layer", c, r))
        assert env["settings"] == one_env[(c, r)]["settings"]  # the artefact a single run writes
        assert env["fingerprint"] == one_env[(c, r)]["fingerprint"]
        a, b = float64_finetunes["one"][(c, r)], together[(c, r)]
        assert next(a.parameters()).dtype == next(b.parameters()).dtype == torch.float64
        assert a.conv2.R.groups == b.conv2.R.groups == 32 // c[0]  # grouped again after packing
        assert _max_diff(a, b) <= 1e-10
    alone = float64_finetunes["one"]
    assert _max_diff(alone[((4, 8, 16), 0)], alone[((4, 8, 16), 1)]) > 1e-6  # seeds differ


def test_killed_k_run_resumes_and_memory_splits(runs, monkeypatch, float64_finetunes, batched_rows):
    import gross.training.batched as batched

    cfg = _smoke(four_layer__config_epochs=3, networks_at_once=3)
    configs, repeats = [c for c, _ in AT_ONCE], [r for _, r in AT_ONCE]
    reference = finetune.make_individuals(cfg, "four_layer", configs, repeats)
    _drop(runs, AT_ONCE)
    shutil.rmtree(runs / "smoke" / "checkpoints" / "true")  # else the run below resumes the finished one
    batched_rows(kill_after=6)  # 3 networks x 2 epochs done and checkpointed, killed in epoch 3
    with pytest.raises(KeyboardInterrupt):
        finetune.make_individuals(cfg, "four_layer", configs, repeats)
    ckpt = list((runs / "smoke" / "checkpoints" / "true").glob("four_layer_config_x3_*.pt"))
    assert len(ckpt) == 1 and batched.read_checkpoint(ckpt[0])["epoch"] == 2
    after = batched_rows()
    resumed = finetune.make_individuals(cfg, "four_layer", configs, repeats)
    assert len(after) == 3  # the resumed run trained epoch 3 only, of the 3 networks
    for ref, res in zip(reference, resumed):
        _same_payload(ref, res)

    # more networks than fit: a chunk that runs out of memory is halved; finished chunks are stored
    _drop(runs, AT_ONCE)
    sizes, many = [], batched.finetune_many

    def small_gpu(models, *args, **kwargs):
        sizes.append(len(models))
        if len(models) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return many(models, *args, **kwargs)

    monkeypatch.setattr(batched, "finetune_many", small_gpu)
    for ref, res in zip(reference, finetune.make_individuals(cfg, "four_layer", configs, repeats)):
        _same_payload(ref, res)
    assert sizes == [3, 2, 1, 1, 1]

    def no_gpu(models, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(batched, "finetune_many", no_gpu)
    _drop(runs, AT_ONCE[2:])
    with pytest.raises(RuntimeError, match=r"four_layer config 1-2-4 repeat 1: one network alone does not fit"):
        finetune.make_individuals(cfg, "four_layer", configs, repeats)


def test_a_diverging_network_is_named_and_spoils_none_of_the_others(runs, monkeypatch, float64_finetunes):
    cfg = _smoke(four_layer__config_epochs=2, networks_at_once=3)
    alone = [finetune.true_accuracy(_smoke(four_layer__config_epochs=2), "four_layer", *k) for k in AT_ONCE[:2]]
    _drop(runs, AT_ONCE[:2])
    inputs = finetune._individual_inputs

    def poisoned(cfg_, name, config, repeat, kind):  # the 1-2-4 network starts with a NaN weight
        rec, init, data, no_ft = inputs(cfg_, name, config, repeat, kind)
        if tuple(config) == (1, 2, 4):
            init = copy.deepcopy(init)
            with torch.no_grad():
                init.conv3.P1[0, 0, 0, 0] = float("nan")
        return rec, init, data, no_ft

    monkeypatch.setattr(finetune, "_individual_inputs", poisoned)
    with pytest.raises(loop.TrainingDivergedError, match=r"four_layer config 1-2-4 repeat 1 \(epoch 1\)"):
        finetune.make_individuals(cfg, "four_layer", [c for c, _ in AT_ONCE], [r for _, r in AT_ONCE])
    for k, ref in zip(AT_ONCE[:2], alone):  # the others finished and were stored, equal to their runs alone
        _same_payload(ref, finetune.true_accuracy(cfg, "four_layer", *k))
    assert not (runs / "smoke" / finetune.true_path("four_layer", *AT_ONCE[2])).exists()


def test_networks_at_once_setting():
    from gross.training.batched import AUTO_NETWORKS, networks_at_once

    assert finetune.networks_at_once(_smoke()) == 1  # "auto" on CPU: one at a time
    assert finetune.networks_at_once(_smoke(networks_at_once=5)) == 5
    assert networks_at_once("auto", "cuda") == AUTO_NETWORKS
    for bad in (0, "many"):
        with pytest.raises(ValueError, match="networks_at_once"):
            _smoke(networks_at_once=bad)
    with pytest.raises(ValueError, match="'auto' or a positive integer"):
        networks_at_once(2.5, "cpu")


def test_precision_settings_are_cuda_only_and_restore_the_flags():
    from gross.pipeline.common import precision as profile_precision
    from gross.training.batched import precision

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    cfg = _smoke(tf32=True, bf16=True)
    with profile_precision(cfg):  # CPU: nothing changes, the keys are not read (no part of CPU fingerprints)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
        assert not torch.is_autocast_enabled("cuda")
    assert "training.tf32" not in cfg.keys_read and "training.bf16" not in cfg.keys_read
    assert config.load("paper")["training"]["tf32"] is False and config.load("paper")["training"]["bf16"] is False
    with pytest.raises(ValueError, match="tf32 must be True or False"):
        with precision("cpu", tf32="yes"):
            pass
    import gross.pipeline.common as common
    import gross.training.batched as batched

    seen = []
    with pytest.MonkeyPatch.context() as mp:  # on CUDA the keys are read and passed on
        mp.setattr(common, "resolve_device", lambda cfg: torch.device("cuda"))
        mp.setattr(batched, "precision", lambda device, **kw: seen.append((device.type, kw)))
        profile_precision(cfg)
    assert seen == [("cuda", {"tf32": True, "bf16": True})]
    assert {"training.tf32", "training.bf16"} <= set(cfg.keys_read)
    if torch.cuda.is_available():
        with precision("cuda", tf32=True, bf16=True):
            assert torch.backends.cudnn.allow_tf32 and torch.is_autocast_enabled("cuda")
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
