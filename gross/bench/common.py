"""Models and helpers shared by the benchmark groups: random GroSS networks, uniform configurations."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..decomposition import decomposable_layers, default_group_sizes
from ..layers import GroSSConv2d
from ..pipeline.common import uniform
from ..space import config_str

__all__ = ["VGG_GROUP_SIZES", "random_gross"]

#: Group sizes of the paper's VGG-16 search space.
VGG_GROUP_SIZES = (1, 4, 16, 32)


def _build(name: str, width: float = 1.0) -> nn.Sequential:
    from ..models import four_layer_net, vgg16_cifar

    if name == "four_layer":
        return four_layer_net()
    if name == "vgg16":
        return vgg16_cifar(width_mult=width)
    raise ValueError(f"unknown model {name!r}: expected 'four_layer' or 'vgg16'")


def _label(name: str, width: float) -> str:
    return name if width == 1.0 else f"{name} x{width:g}"


def random_gross(model: nn.Module, group_sizes=None, seed: int = 0) -> nn.Module:
    """Replace every decomposable conv by a :class:`GroSSConv2d` built from random factors.

    Same structure as :func:`gross.decomposition.decompose` (``group_sizes``: None = powers
    of two up to each width, or a sequence filtered to the sizes that divide the width)
    but without running BTD: for timing, the factor values do not matter.
    """
    g = torch.Generator().manual_seed(seed)
    for name in decomposable_layers(model):
        conv = model.get_submodule(name)
        t, u = conv.in_channels, conv.out_channels
        kh, kw = conv.kernel_size
        sizes = default_group_sizes(t) if group_sizes is None else tuple(
            s for s in sorted(set(group_sizes)) if s <= t and t % s == 0)
        factors = {
            s: (torch.randn(t, t, 1, 1, generator=g) / math.sqrt(t),
                torch.randn(t, s, kh, kw, generator=g) / math.sqrt(s * kh * kw),
                torch.randn(u, t, 1, 1, generator=g) / math.sqrt(t))
            for s in sizes
        }
        layer = GroSSConv2d.from_factors(conv, factors)
        layer.name = name
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    return model


def _gross_model(name: str, width: float, seed: int, device) -> nn.Module:
    torch.manual_seed(seed)
    sizes = None if name == "four_layer" else VGG_GROUP_SIZES
    return random_gross(_build(name, width), sizes, seed).to(device)


_uniform = uniform  # every layer at group size s (gross.pipeline.common.uniform)
_config_str = config_str  # "8 16 64" (gross.space.config_str)
