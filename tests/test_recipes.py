"""Tests for gross.training.recipes: the paper's recipes, scaling and validation (re-exported by gross.training.loop)."""

import pytest

from gross.training import loop as train
from gross.training.recipes import RECIPES, Recipe


def _recipe(**kw) -> Recipe:
    return Recipe(**{"epochs": 2, "batch_size": 64, "lr": 0.05, "name": "tiny", **kw})


def test_recipes_follow_the_paper():
    R = RECIPES
    assert set(R) >= {"four_layer_base", "vgg16_base", "four_layer_gross", "vgg16_gross", "four_layer_config",
                      "vgg16_config", "four_layer_partial", "vgg16_imagenet_gross", "resnet18_imagenet_gross",
                      "vgg16_imagenet_config", "resnet18_imagenet_config"}
    g = R["four_layer_gross"]
    assert (g.epochs, g.batch_size, g.lr, g.momentum, g.milestones, g.gamma) == (150, 256, 1e-4, 0.9, (80, 120), 0.1)
    assert (R["vgg16_gross"].epochs, R["vgg16_gross"].milestones) == (200, (100, 150))
    b = R["four_layer_base"]
    assert (b.epochs, b.batch_size, b.lr, b.weight_decay, b.milestones, b.std) == (100, 256, 0.1, 1e-3, (50, 75), (0.5,) * 3)
    assert R["vgg16_base"].std == (0.225,) * 3 and R["vgg16_base"].batch_size == 128
    c = R["four_layer_config"]
    assert (c.epochs, c.lr, c.milestones) == (100, 1e-3, (80,))
    assert R["resnet18_imagenet_config"].milestones == (8, 10) and not R["resnet18_imagenet_config"].freeze
    assert R["vgg16_imagenet_gross"].freeze and R["vgg16_imagenet_gross"].lr == 1e-5


def test_recipe_scaling_and_validation():
    s = RECIPES["four_layer_gross"].scaled(15)
    assert s.epochs == 15 and s.milestones == (8, 12) and s.lr == 1e-4
    assert RECIPES["four_layer_config"].scaled(10).milestones == (8,)
    assert RECIPES["four_layer_gross"].scaled(1).milestones == ()
    with pytest.raises(ValueError, match="milestones"):
        _recipe(milestones=(3, 2))
    with pytest.raises(ValueError, match="lr > 0"):
        _recipe(lr=0)


def test_gross_train_re_exports_the_recipes():
    assert train.Recipe is Recipe and train.RECIPES is RECIPES


def test_recipe_padding_defaults_to_the_papers_text_and_is_validated():
    assert all(r.padding == 2 for r in RECIPES.values())  # Sec. 4.4: zero-padding of size 2
    assert _recipe(padding=4).padding == 4 and _recipe(padding=0).padding == 0
    for bad in (-1, 2.0, True, "4"):
        with pytest.raises(ValueError, match="padding must be an int >= 0"):
            _recipe(padding=bad)
    # where the paper is silent: fine-tunes without weight decay, the base recipes' decay from the authors' code
    assert all(r.weight_decay == 0 for k, r in RECIPES.items() if not k.endswith("_base"))
    assert RECIPES["four_layer_base"].weight_decay == 1e-3 and RECIPES["vgg16_base"].weight_decay == 5e-4
