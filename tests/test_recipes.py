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
