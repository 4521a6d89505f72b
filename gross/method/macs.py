"""Multiply-accumulate (MAC) counting under the paper's convention.

Convention (reproduces the printed MAC figures of Tables 2-4 of the paper; the
few printed figures it cannot reproduce are documented, with proofs that no
single convention does, in ``tests/test_macs.py``):

* convolution: ``out_elements * (in_channels / groups) * kh * kw`` MACs,
  plus one per output element if the convolution has a bias;
* linear layer: ``out_elements * in_features`` MACs; **its bias is not
  counted** by default (``linear_bias=False``). Only then does the 4-layer
  baseline ``32 32 32`` come out at the printed 5.09M (5,094,912; with the
  linear biases it is 5,095,178 = 5.10M). This is also how the ``thop``
  profiler counts (conv bias counted, linear bias not, batch norm 2 per
  element), which is consistent with every reproduced figure;
* batch norm: two per output element;
* everything else (ReLU, pooling, dropout, residual additions): zero.

A decomposed layer (GroSS layer, bottleneck of an exported model, or a plain
convolution counted *as if* decomposed) costs ``P + R + Q``: ``P`` is a 1x1
``t -> width`` convolution at the input resolution (no bias), ``R`` the grouped
``k x k`` convolution ``width -> width`` with ``width / s`` groups at the output
resolution (no bias) and ``Q`` a 1x1 ``width -> u`` convolution with the
original bias. "G.Conv" MACs are those of the ``R`` layers alone.

Counting needs no data: one forward pass of a zero tensor of batch size 1
propagates the shapes (on the model's device; a model built on the ``meta``
device is counted without any arithmetic).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from gross.method.decomposition import decomposable_layers, get_config, gross_layers, per_layer, set_config
from gross.method.layers import GroSSConv2d

__all__ = [
    "MACs",
    "count_macs",
    "mac_table",
    "bottleneck_model",
    "format_macs",
    "is_bottleneck",
]

_COLUMNS = ["layer", "kind", "output_shape", "macs", "gconv"]


class MACs(NamedTuple):
    """Total MACs of a network and the part spent in grouped (``R``) convolutions."""

    total: int
    gconv: int


# ----------------------------------------------------------------------------- helpers


def is_bottleneck(module: nn.Module) -> bool:
    """Whether ``module`` is an exported bottleneck ``Sequential(P=Conv2d, R=Conv2d, Q=Conv2d)``."""
    if not isinstance(module, nn.Sequential):
        return False
    children = list(module.named_children())
    return [n for n, _ in children] == ["P", "R", "Q"] and all(
        isinstance(m, nn.Conv2d) for _, m in children
    )


def _check_input_size(input_size) -> tuple[int, ...]:
    try:
        size = tuple(int(s) for s in input_size)
        ok = len(size) >= 1 and all(s > 0 for s in size) and all(
            int(s) == s for s in input_size
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"input_size must be a tuple of positive ints without the batch dimension, "
            f"e.g. (3, 32, 32); got {input_size!r}"
        )
    return size


def _conv_macs(out_numel: int, in_per_group: int, kernel: Sequence[int], bias: bool) -> int:
    k = 1
    for v in kernel:
        k *= int(v)
    return out_numel * in_per_group * k + (out_numel if bias else 0)


def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def _bottleneck_rows(name, in_shape, out_shape, t, u, width, s, kernel, bias):
    """Rows for P, R, Q of one decomposed layer (shapes without batch dim)."""
    in_hw = 1
    for v in in_shape[1:]:
        in_hw *= int(v)
    out_hw = 1
    for v in out_shape[1:]:
        out_hw *= int(v)
    p_shape = (width, *in_shape[1:])
    r_shape = (width, *out_shape[1:])
    return [
        (f"{name}.P", "P", p_shape, _conv_macs(width * in_hw, t, (1,), False), False),
        (f"{name}.R", "R", r_shape, _conv_macs(width * out_hw, s, kernel, False), True),
        (f"{name}.Q", "Q", tuple(out_shape), _conv_macs(u * out_hw, width, (1,), bias), False),
    ]


def _resolve_widths(names: list[str], modules: Mapping[str, nn.Module], width) -> dict[str, int]:
    if width is None:
        return {n: modules[n].in_channels for n in names}
    if isinstance(width, Mapping) or (isinstance(width, Sequence) and not isinstance(width, str)):
        given = per_layer(width, names, "width", kind="decomposable layers")
        out = {n: int(given.get(n, modules[n].in_channels)) for n in names}
    else:
        out = {n: int(width) for n in names}
    bad = {n: w for n, w in out.items() if w < 1}
    if bad:
        raise ValueError(f"bottleneck widths must be positive integers, got {bad}")
    return out


def _resolve_plain_config(model: nn.Module, config, width) -> "OrderedDict[str, tuple[int, int]]":
    """``name -> (group size, width)`` for the decomposable convs of a plain model."""
    names = decomposable_layers(model)
    modules = dict(model.named_modules())
    chosen = per_layer(config, names, "config", kind="decomposable layers", unit="group sizes")
    widths = _resolve_widths(names, modules, width)
    out: "OrderedDict[str, tuple[int, int]]" = OrderedDict()
    for name, s in chosen.items():
        s, w = int(s), widths[name]
        if s < 1 or w % s:
            raise ValueError(
                f"group size {s} is not valid for layer {name!r} with bottleneck width {w}: "
                f"allowed sizes are {_divisors(w)}"
            )
        out[name] = (s, w)
    return out


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


# ----------------------------------------------------------------------------- counting


def _collect_rows(model: nn.Module, input_size, as_if: Mapping[str, tuple[int, int]],
                  linear_bias: bool) -> list[tuple]:
    rows: list[tuple] = []
    handles = []
    bottleneck_children: dict[int, str] = {}
    for name, module in model.named_modules():
        if is_bottleneck(module):
            for child, conv in module.named_children():
                bottleneck_children[id(conv)] = child

    def make_hook(name: str, module: nn.Module):
        def hook(mod, inputs, output):
            x = inputs[0]
            in_shape = tuple(x.shape[1:])
            out_shape = tuple(output.shape[1:])
            out_numel = output.numel() // output.shape[0]
            if isinstance(mod, GroSSConv2d):
                rows.extend(_bottleneck_rows(
                    name, in_shape, out_shape, mod.in_channels, mod.out_channels, mod.width,
                    mod.group_size, mod.kernel_size, mod.bias is not None))
            elif name in as_if:
                s, w = as_if[name]
                rows.extend(_bottleneck_rows(
                    name, in_shape, out_shape, mod.in_channels, mod.out_channels, w, s,
                    mod.kernel_size, mod.bias is not None))
            elif isinstance(mod, _ConvNd):
                kind = bottleneck_children.get(id(mod), "conv")
                macs = _conv_macs(out_numel, mod.in_channels // mod.groups, mod.kernel_size,
                                  mod.bias is not None)
                rows.append((name, kind, out_shape, macs, kind == "R"))
            elif isinstance(mod, nn.Linear):
                macs = out_numel * mod.in_features
                if linear_bias and mod.bias is not None:
                    macs += out_numel
                rows.append((name, "linear", out_shape, macs, False))
            elif isinstance(mod, _BatchNorm):
                rows.append((name, "batchnorm", out_shape, 2 * out_numel, False))
        return hook

    skip_prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if isinstance(module, (GroSSConv2d, _ConvNd, nn.Linear, _BatchNorm)):
            handles.append(module.register_forward_hook(make_hook(name, module)))
            if isinstance(module, GroSSConv2d):
                skip_prefixes.append(name + ".")
    try:
        _forward_once(model, input_size)
    finally:
        for h in handles:
            h.remove()
    return rows


def _forward_once(model: nn.Module, input_size: tuple[int, ...]) -> None:
    """Run ``model`` in eval mode on one zero input of ``input_size``; a clear error if it does not fit."""
    device, dtype = _model_device_dtype(model)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=device, dtype=dtype))
    except (RuntimeError, ValueError) as err:
        first = next((m for m in model.modules() if isinstance(m, (_ConvNd, nn.Linear))), None)
        hint = ""
        if isinstance(first, _ConvNd):
            hint = (f"; its first layer is a {type(first).__name__} with {first.in_channels} input channels, "
                    f"so input_size should look like ({first.in_channels}, H, W) with H, W the image size "
                    f"it was built for (e.g. (3, 32, 32) for CIFAR, (3, 224, 224) for ImageNet)")
        elif isinstance(first, nn.Linear):
            hint = f"; its first layer is a Linear with {first.in_features} input features"
        raise ValueError(
            f"the model cannot run on one input of input_size={tuple(input_size)} (batch dimension "
            f"excluded){hint}. The forward pass failed with: {type(err).__name__}: {err}"
        ) from err
    finally:
        for m, mode in modes.items():
            m.training = mode


def mac_table(model: nn.Module, input_size=(3, 32, 32), config=None, width=None,
              linear_bias: bool = False) -> pd.DataFrame:
    """Per-layer MACs of ``model`` for one input of ``input_size``.

    Parameters
    ----------
    model : nn.Module
        One of

        * a plain model: with ``config=None`` the full network is counted
          (no grouped convolutions); with a ``config`` the decomposable
          convolutions (:func:`gross.method.decomposition.decomposable_layers`) are
          counted *as if* decomposed into P/R/Q at those group sizes with
          bottleneck ``width`` -- no decomposition is run;
        * a model with :class:`~gross.method.layers.GroSSConv2d` layers: counted at
          their active group sizes, or at ``config`` (the model's own
          configuration is restored afterwards);
        * an exported model (:func:`gross.method.decomposition.export`): the ``R``
          child of every P/R/Q bottleneck is a grouped convolution.
    input_size : tuple of int, default (3, 32, 32)
        Input shape without the batch dimension.
    config : sequence of int or mapping of str to int, optional
        One group size per decomposable/decomposed layer (in
        ``named_modules`` order), or ``{layer name: size}`` (layers not named
        keep their size; in a plain model, they stay undecomposed).
    width : int, sequence or mapping, optional
        Bottleneck width(s) for a plain model counted at ``config``
        (default: each layer's input channels). Ignored otherwise.
    linear_bias : bool, default False
        Count one MAC per output element for the bias of ``nn.Linear``. The
        paper's figures do not (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        One row per counted layer (convolutions, bottleneck parts ``P``/``R``/
        ``Q``, linear and batch-norm layers) in execution order, with columns
        ``layer`` (qualified name), ``kind`` (``conv``, ``P``, ``R``, ``Q``,
        ``linear``, ``batchnorm``), ``output_shape`` (without batch),
        ``macs`` (int) and ``gconv`` (bool: counted as G.Conv).

    Raises
    ------
    ValueError
        Bad ``input_size``; a config of the wrong length or naming unknown
        layers; a group size that is not allowed for a layer (the message
        names the layer and its allowed sizes); a config for an exported
        model.
    """
    input_size = _check_input_size(input_size)
    as_if: Mapping[str, tuple[int, int]] = {}
    layers = gross_layers(model)
    restore = None
    if layers:
        if config is not None:
            restore = get_config(model)
            set_config(model, config)
    elif config is not None:
        if any(is_bottleneck(m) for m in model.modules()):
            raise ValueError(
                "config cannot be applied to an exported model (its group sizes are fixed); "
                "pass config=None, or count the GroSS model or the plain model at this config"
            )
        as_if = _resolve_plain_config(model, config, width)
    try:
        rows = _collect_rows(model, input_size, as_if, linear_bias)
    finally:
        if restore is not None:
            set_config(model, restore)
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df["macs"] = df["macs"].astype("int64")
    df["gconv"] = df["gconv"].astype(bool)
    return df


def count_macs(model: nn.Module, input_size=(3, 32, 32), config=None, width=None,
               linear_bias: bool = False) -> MACs:
    """Total and grouped-convolution ("G.Conv") MACs of ``model``.

    Parameters are those of :func:`mac_table`.

    Returns
    -------
    MACs
        ``(total, gconv)`` as Python ints.

    Examples
    --------
    >>> from gross.models import four_layer_net
    >>> count_macs(four_layer_net())
    MACs(total=5127680, gconv=0)
    >>> format_macs(count_macs(four_layer_net(), config=(32, 32, 32)).total)
    '5.09M'
    """
    df = mac_table(model, input_size, config=config, width=width, linear_bias=linear_bias)
    return MACs(int(df["macs"].sum()), int(df.loc[df["gconv"], "macs"].sum()))


# ----------------------------------------------------------------------------- helpers


def bottleneck_model(model: nn.Module, config, width=None) -> nn.Module:
    """A copy of a plain model whose decomposable convolutions are P/R/Q bottlenecks.

    Each decomposable conv becomes ``nn.Sequential(OrderedDict(P=Conv2d(t, width, 1,
    bias=False), R=Conv2d(width, width, k, stride, padding, dilation,
    groups=width // s, bias=False), Q=Conv2d(width, u, 1, bias=conv.bias is not
    None)))`` -- the structure of an exported GroSS model -- with fresh random
    weights (only ``Q``'s bias is copied). Useful to check MAC counts and
    shapes without running any decomposition.

    Parameters
    ----------
    model : nn.Module
        Plain model (not modified).
    config : sequence of int or mapping
        Group sizes, as in :func:`mac_table`.
    width : int, sequence or mapping, optional
        Bottleneck widths (default: input channels).

    Returns
    -------
    nn.Module
    """
    if gross_layers(model):
        raise ValueError("bottleneck_model expects a plain model; use gross.method.decomposition.export "
                         "for a model with GroSS layers")
    chosen = _resolve_plain_config(model, config, width)
    out = copy.deepcopy(model)
    for name, (s, w) in chosen.items():
        conv = out.get_submodule(name)
        factory = dict(device=conv.weight.device, dtype=conv.weight.dtype)
        seq = nn.Sequential(OrderedDict([
            ("P", nn.Conv2d(conv.in_channels, w, 1, bias=False, **factory)),
            ("R", nn.Conv2d(w, w, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                            dilation=conv.dilation, groups=w // s, bias=False,
                            padding_mode=conv.padding_mode, **factory)),
            ("Q", nn.Conv2d(w, conv.out_channels, 1, bias=conv.bias is not None, **factory)),
        ]))
        if conv.bias is not None:
            with torch.no_grad():
                seq.Q.bias.copy_(conv.bias)
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, child, seq)
    return out


def format_macs(n: int, digits: int = 3) -> str:
    """Format a MAC count like the paper: ``digits`` significant figures and a K/M/B suffix.

    Rounds half up on the exact integer. Examples: ``5127680 -> "5.13M"``,
    ``94620672 -> "94.6M"``, ``313740288 -> "314M"``, ``4746950656 -> "4.75B"``;
    counts below 1000 are printed as integers.

    Parameters
    ----------
    n : int
        Non-negative count.
    digits : int, default 3
        Significant figures (the paper prints 3, except "15.49B").
    """
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer MAC count, got {n!r}")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits must be a positive int, got {digits!r}")
    d = Decimal(int(n))
    if d == 0:
        return "0"
    q = Decimal(1).scaleb(d.adjusted() - digits + 1)
    r = d.quantize(q, rounding=ROUND_HALF_UP) if q > 1 else d
    if r < 1000:
        return str(int(r))
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if r >= scale:
            value = r / Decimal(scale)
            int_digits = len(str(int(value)))
            decimals = max(0, digits - int_digits)
            return f"{value:.{decimals}f}{suffix}"
    raise AssertionError("unreachable")
