"""Model surgery: replace convolutions by GroSS series layers and switch configurations.

A *configuration* is one group size per decomposed layer, in the order of
:func:`search_space` (the order of ``model.named_modules()``).
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from torch import nn

from .layers import GroSSConv2d
from .space import SearchSpace

__all__ = [
    "decomposable_layers",
    "default_group_sizes",
    "decompose",
    "gross_layers",
    "search_space",
    "get_config",
    "set_config",
    "export",
    "per_layer",
    "enumerate_configs",
    "num_configs",
]


def _is_spatial_conv(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and tuple(module.kernel_size) != (1, 1)
    )


def decomposable_layers(model: nn.Module, layers: Sequence[str] | None = None) -> list[str]:
    """Qualified names of the convolutions GroSS decomposes.

    By default (paper, Sec. 4.3) every ungrouped k×k convolution with k > 1 except the
    first one met in ``model.named_modules()`` order; 1×1 convolutions (e.g. ResNet
    downsamples) are never decomposed.

    Parameters
    ----------
    model : nn.Module
        A plain (not yet decomposed) model.
    layers : sequence of str, optional
        Explicit layer names; each must name an ungrouped ``nn.Conv2d`` with a k×k kernel.

    Returns
    -------
    list of str
    """
    modules = dict(model.named_modules())
    if layers is not None:
        out = []
        candidates = [n for n, m in modules.items() if _is_spatial_conv(m)]
        for name in layers:
            if name not in modules:
                raise ValueError(
                    f"unknown layer {name!r}: decomposable convolutions of this model are {candidates}"
                )
            if not _is_spatial_conv(modules[name]):
                raise ValueError(
                    f"layer {name!r} is a {type(modules[name]).__name__}, not an ungrouped k×k nn.Conv2d "
                    f"(k > 1); decomposable convolutions of this model are {candidates}"
                )
            out.append(name)
        order = {n: i for i, n in enumerate(modules)}
        return sorted(dict.fromkeys(out), key=order.__getitem__)
    names = [n for n, m in modules.items() if _is_spatial_conv(m)]
    return names[1:]


def default_group_sizes(width: int) -> tuple[int, ...]:
    """All powers of two that do not exceed ``width`` (paper, 4-layer network)."""
    if width < 1:
        raise ValueError(f"bottleneck width must be a positive integer, got {width}")
    return tuple(2**i for i in range(width.bit_length()) if 2**i <= width)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _resolve_sizes(name: str, width: int, group_sizes) -> tuple[int, ...]:
    if group_sizes is None:
        return default_group_sizes(width)
    if isinstance(group_sizes, Mapping):
        if name not in group_sizes:
            raise ValueError(f"no group sizes given for layer {name!r}; keys given: {sorted(group_sizes)}")
        sizes = tuple(int(s) for s in group_sizes[name])
        bad = [s for s in sizes if s < 1 or width % s]
        if bad:
            raise ValueError(
                f"group sizes {bad} do not divide the bottleneck width {width} of layer {name!r}; "
                f"valid sizes are divisors of {width}, e.g. {default_group_sizes(width)}"
            )
        return tuple(sorted(set(sizes)))
    sizes = tuple(sorted({int(s) for s in group_sizes if 0 < int(s) <= width and width % int(s) == 0}))
    if not sizes:
        raise ValueError(
            f"none of the group sizes {tuple(group_sizes)} divides the bottleneck width {width} "
            f"of layer {name!r}; valid sizes are divisors of {width}"
        )
    return sizes


def decompose(
    model: nn.Module,
    group_sizes=None,
    layers: Sequence[str] | None = None,
    width: int | Mapping[str, int] | None = None,
    **btd_options,
) -> nn.Module:
    """Replace convolutions of ``model`` by :class:`~gross.layers.GroSSConv2d` (in place).

    Parameters
    ----------
    model : nn.Module
        Trained model; modified in place and returned.
    group_sizes : None, sequence of int or mapping of str to sequence of int
        ``None``: the powers of two up to each layer's width (paper's 4-layer net).
        A sequence: the same candidate sizes for every layer, keeping those that divide
        the layer's width (paper's VGG-16 / ResNet-18: ``(1, 4, 16, 32)``).
        A mapping: explicit sizes per layer name.
    layers : sequence of str, optional
        Which convolutions to decompose (default: every k×k conv except the first).
    width : int or mapping, optional
        Bottleneck width (default: each layer's input channels).
    **btd_options
        Passed to :func:`gross.btd.btd` (``tol``, ``max_iter``, ``seed``, ``method``, ``ridge``).

    Returns
    -------
    nn.Module
        ``model``, now holding GroSS layers.
    """
    names = decomposable_layers(model, layers)
    if not names:
        raise ValueError("the model has no decomposable convolution (ungrouped k×k nn.Conv2d after the first)")
    for name in names:
        conv = model.get_submodule(name)
        w = width.get(name) if isinstance(width, Mapping) else width
        w = conv.in_channels if w is None else int(w)
        sizes = _resolve_sizes(name, w, group_sizes)
        layer = GroSSConv2d.from_conv(conv, sizes, width=w, **btd_options)
        layer.name = name
        _set_submodule(model, name, layer)
    return model


def gross_layers(model: nn.Module) -> "OrderedDict[str, GroSSConv2d]":
    """The GroSS layers of ``model`` by qualified name, in module order."""
    return OrderedDict((n, m) for n, m in model.named_modules() if isinstance(m, GroSSConv2d))


def search_space(model: nn.Module) -> "OrderedDict[str, tuple[int, ...]]":
    """Candidate group sizes per decomposed layer, in configuration order."""
    return OrderedDict((n, tuple(m.group_sizes)) for n, m in gross_layers(model).items())


def get_config(model: nn.Module) -> tuple[int, ...]:
    """The active group size of every decomposed layer."""
    return tuple(m.group_size for m in gross_layers(model).values())


def per_layer(values, names: Sequence[str], what: str, kind: str = "decomposed layers",
              unit: str = "entries") -> "OrderedDict[str, object]":
    """Per-layer values given as a sequence (one per layer, in order) or a mapping (a subset).

    Parameters
    ----------
    values : sequence or mapping of str to value
    names : sequence of str
        The layers, in order.
    what, kind, unit : str
        Used in error messages: ``"{what} has 2 {unit} but the model has 3 {kind} [...]"``.

    Returns
    -------
    OrderedDict
        ``name -> value`` in ``names`` order (only the named layers for a mapping).

    Raises
    ------
    ValueError
        A mapping naming an unknown layer, or a sequence of the wrong length.
    """
    names = list(names)
    if isinstance(values, Mapping):
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} in {what}; {kind} are {names}")
        return OrderedDict((n, values[n]) for n in names if n in values)
    values = tuple(values)
    if len(values) != len(names):
        raise ValueError(f"{what} has {len(values)} {unit} but the model has {len(names)} {kind} {names}")
    return OrderedDict(zip(names, values))


def _normalise_config(model: nn.Module, config) -> "OrderedDict[str, int]":
    space = search_space(model)
    if not space:
        raise ValueError("the model has no GroSS layers; call gross.decompose(model) first")
    chosen = SearchSpace(space).validate(config, default=get_config(model))
    return OrderedDict(zip(space, chosen))


def set_config(model: nn.Module, config) -> nn.Module:
    """Switch every GroSS layer to the group size given by ``config``.

    Parameters
    ----------
    config : sequence of int or mapping of str to int
        One size per decomposed layer in :func:`search_space` order, or a mapping from
        layer name to size (layers not named keep their size).

    Raises
    ------
    ValueError
        Wrong length, unknown layer, or a size not among a layer's choices.
    """
    chosen = _normalise_config(model, config)
    layers = gross_layers(model)
    for name, s in chosen.items():
        layers[name].group_size = s
    return model


def export(model: nn.Module, config=None) -> nn.Module:
    """A plain PyTorch copy of ``model`` at ``config`` with real grouped convolutions.

    Every GroSS layer becomes ``nn.Sequential(P=Conv2d 1×1, R=Conv2d k×k with
    groups=width/s, Q=Conv2d 1×1 with the original bias)``. ``model`` is not modified.
    """
    chosen = _normalise_config(model, get_config(model) if config is None else config)
    out = copy.deepcopy(model)
    for name, layer in gross_layers(out).items():
        _set_submodule(out, name, layer.to_bottleneck(chosen[name]))
    return out


def enumerate_configs(space: Mapping[str, Sequence[int]]) -> list[tuple[int, ...]]:
    """Every configuration of ``space`` (``itertools.product`` order)."""
    return [tuple(c) for c in itertools.product(*space.values())]


def num_configs(space: Mapping[str, Sequence[int]]) -> int:
    """Size of the search space (product of the number of choices per layer)."""
    n = 1
    for sizes in space.values():
        n *= len(sizes)
    return n

