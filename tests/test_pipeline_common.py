"""Tests of gross.pipeline.common: config -> device, data, recipes, networks, uniform configurations."""

import pytest

from gross.runs import config
from gross.pipeline import common


@pytest.fixture
def cfg(gross_runs):
    return config.load("smoke", device="cpu")


def test_recipe_scales_epochs_and_seeds(cfg):
    r = common.recipe(cfg, "four_layer", "gross", seed=5)
    assert r.epochs == cfg["four_layer"]["gross_epochs"] and r.seed == 5
    paper = config.load("paper")
    full = common.recipe(paper, "four_layer", "gross")
    assert (full.epochs, full.milestones, full.lr) == (150, (80, 120), 1e-4)
    assert common.recipe(paper, "vgg16", "config").milestones == (80,)
    half = common.recipe(config.load("paper", four_layer__gross_epochs=75), "four_layer", "gross")
    assert half.milestones == (40, 60)
    with pytest.raises(ValueError, match="unknown recipe kind"):
        common.recipe(cfg, "four_layer", "fast")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        common.recipe(cfg, "resnet", "base")


def test_partial_recipe_reads_ap_partial_epochs():
    paper = config.load("paper")
    with config.recording() as reads:
        r = common.recipe(paper, "four_layer", "partial")
    assert r.epochs == 5 and "ap.partial_epochs" in reads
    assert common.recipe(config.load("paper", ap__partial_epochs=3), "four_layer", "partial").epochs == 3
    assert r.lr == common.recipe(paper, "four_layer", "config").lr  # the configuration schedule, shortened
    with pytest.raises(ValueError, match="partial fine-tune .* 4-layer network, not 'vgg16'"):
        common.recipe(paper, "vgg16", "partial")


def test_uniform_configs_cap_at_each_layers_sizes():
    space = {"a": (1, 4), "b": (1, 4, 16), "c": (1, 4, 16, 32)}
    assert common.uniform(space, 4) == (4, 4, 4)
    assert common.uniform(space, 32) == (4, 16, 32)
    assert common.uniform(space, 1) == (1, 1, 1)
    assert common.uniform({"a": (2, 4)}, 1) == (2,)  # below every size: the smallest
    assert common.uniform_configs(space) == [(1, 1, 1), (4, 4, 4), (4, 16, 16), (4, 16, 32)]


def test_models_argument_is_validated():
    assert common.check_models("vgg16") == ("vgg16",)
    with pytest.raises(ValueError, match=r"unknown model 'resnet'"):
        common.check_models(("resnet",))
    with pytest.raises(ValueError, match=r"at least one of \('four_layer', 'vgg16'\)"):
        common.check_models(())


def test_resolve_device():
    assert common.resolve_device(config.load("smoke", device="cpu")).type == "cpu"
    with pytest.raises(ValueError, match=r"device 'tpu' is not valid"):
        common.resolve_device(config.load("smoke", device="tpu"))


def test_prepare_data_smoke_sizes_and_normalisation(cfg):
    four = common.prepare_data(cfg, "four_layer")
    vgg = common.prepare_data(cfg, "vgg16")
    assert (len(four.train), len(four.val), len(four.test)) == (256, 128, 128)
    assert len(vgg.val) == cfg["vgg16"]["n_val"] and len(vgg.train) == 256
    assert four.std == (0.5, 0.5, 0.5) and vgg.std == (0.225, 0.225, 0.225)
    # VGG's validation subset is drawn from the same validation split
    assert set(map(tuple, vgg.val.images.flatten(1)[:, :8].tolist())) <= \
        set(map(tuple, four.val.images.flatten(1)[:, :8].tolist()))
    with config.recording() as reads:
        common.prepare_data(cfg, "vgg16")
    assert {"data.n_train", "data.split_seed", "vgg16.n_val"} <= reads


def test_recipe_reads_padding_and_weight_decay_settings():
    paper, code = config.load("paper"), config.load("paper_code")
    for name in ("four_layer", "vgg16"):
        for kind in ("base", "gross", "config"):
            with config.recording() as reads:
                r = common.recipe(paper, name, kind)
            key = "base_weight_decay" if kind == "base" else "finetune_weight_decay"
            assert {f"{name}.augment_padding", f"{name}.{key}"} <= reads
            ours = {"four_layer": 1e-3, "vgg16": 5e-4}[name] if kind == "base" else 0.0  # today's recipes
            assert r.padding == 2 and r.weight_decay == ours
            c = common.recipe(code, name, kind)
            assert (c.padding, c.weight_decay) == (4, 1e-3)  # authors' code: Pad(4), WEIGHT_DECAY 0.001 everywhere
            assert c.replace(padding=2, weight_decay=r.weight_decay) == r  # nothing else differs
    assert common.recipe(code, "four_layer", "partial").weight_decay == 1e-3
    odd = config.load("cpu", four_layer__augment_padding=3, four_layer__finetune_weight_decay=5e-4)
    r = common.recipe(odd, "four_layer", "config")
    assert (r.padding, r.weight_decay, r.epochs) == (3, 5e-4, odd["four_layer"]["config_epochs"])
