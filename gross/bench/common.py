"""Models and helpers shared by the benchmark groups: random GroSS networks, uniform configurations."""

from __future__ import annotations

import torch
from torch import nn

from gross.method.decomposition import random_gross
from gross.pipeline.common import uniform
from gross.method.space import config_str

__all__ = ["VGG_GROUP_SIZES"]

#: Group sizes of the paper's VGG-16 search space.
VGG_GROUP_SIZES = (1, 4, 16, 32)


def _build(name: str, width: float = 1.0) -> nn.Sequential:
    from gross.models import four_layer_net, vgg16_cifar

    if name == "four_layer":
        return four_layer_net()
    if name == "vgg16":
        return vgg16_cifar(width_mult=width)
    raise ValueError(f"unknown model {name!r}: expected 'four_layer' or 'vgg16'")


def _label(name: str, width: float) -> str:
    return name if width == 1.0 else f"{name} x{width:g}"


def _gross_model(name: str, width: float, seed: int, device) -> nn.Module:
    torch.manual_seed(seed)
    sizes = None if name == "four_layer" else VGG_GROUP_SIZES
    return random_gross(_build(name, width), sizes, seed).to(device)


_uniform = uniform  # every layer at group size s (gross.pipeline.common.uniform)
_config_str = config_str  # "8 16 64" (gross.method.space.config_str)
