"""Notebook 02's verbs (gross.pipeline.finetune): what each cell computes, and the steps built from them.

One smoke runs/ folder (4-layer network only: base network, decomposition, GroSS fine-tune) backs
these tests; each test works on a copy of it. The replayed sampler draws must be the draws the
fine-tune itself makes, and a step called with the verbs' results must write what the bare step
writes, without training anything again.
"""

import shutil

import pandas as pd
import pytest
import torch

from gross.pipeline import decomposition, finetune
from gross.report import plots
from gross.runs import config, store
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
    assert list(accuracies.columns) == ["model", "repeat", "config", "before", "after", "improved"]
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
