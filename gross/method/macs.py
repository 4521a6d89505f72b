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

Asymmetric bottlenecks (``width = (w_in, w_out)``, the structure of Wang et al.
[26]): ``P`` is ``t -> w_in``, ``R`` is ``w_in -> w_out`` with ``w_in / s`` groups
(``s`` input channels per group) and ``Q`` is ``w_out -> u``. Only for comparison,
``groups_from="input_channels"`` counts ``R`` as the GroSS authors' counter does
(``utils/thop.py`` of ActiveVisionLab/GroSS: ``groups = t // s`` with ``t`` the
*layer's* input channels and ``(w_in * w_out * k * k) // groups`` MACs per output
pixel). The two rules agree whenever ``w_in = t`` (every symmetric row of Tables
2-4); for the [26] rows of Table 4 the authors' rule gives the printed 1.16B, the
correct count 1.42B / 1.43B (``docs/wang_et_al.md``).

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
from gross.method.layers import GroSSConv2d, as_widths, valid_group_sizes

__all__ = [
    "GROUPS_FROM",
    "MACs",
    "count_macs",
    "mac_table",
    "bottleneck_model",
    "format_macs",
    "is_bottleneck",
]

_COLUMNS = ["layer", "kind", "output_shape", "macs", "gconv"]

#: Rules for the number of groups of ``R`` (see the module docstring): ``"width"`` (correct,
#: ``w_in // s``, the default) and ``"input_channels"`` (the GroSS authors' counter,
#: ``t // s``; for comparison with the paper's [26] figures only).
GROUPS_FROM = ("width", "input_channels")


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


def _bottleneck_rows(name, in_shape, out_shape, t, u, widths, s, kernel, bias, groups_from="width"):
    """Rows for P, R, Q of one decomposed layer (shapes without batch dim); ``widths = (w_in, w_out)``."""
    width, width_out = widths
    in_hw = 1
    for v in in_shape[1:]:
        in_hw *= int(v)
    out_hw = 1
    for v in out_shape[1:]:
        out_hw *= int(v)
    p_shape = (width, *in_shape[1:])
    r_shape = (width_out, *out_shape[1:])
    if groups_from == "width":
        r_macs = _conv_macs(width_out * out_hw, s, kernel, False)
    else:  # the authors' utils/thop.py: groups = t // s, (w_in w_out k k) // groups per output pixel
        k = 1
        for v in kernel:
            k *= int(v)
        r_macs = (width * width_out * k // (t // s)) * out_hw
    return [
        (f"{name}.P", "P", p_shape, _conv_macs(width * in_hw, t, (1,), False), False),
        (f"{name}.R", "R", r_shape, r_macs, True),
        (f"{name}.Q", "Q", tuple(out_shape), _conv_macs(u * out_hw, width_out, (1,), bias), False),
    ]


def _resolve_widths(names: list[str], modules: Mapping[str, nn.Module], width) -> dict[str, tuple[int, int]]:
    """``name -> (w_in, w_out)``; a sequence gives one entry per layer, an entry an int or a pair."""
    if width is None:
        given = {}
    elif isinstance(width, Mapping) or (isinstance(width, Sequence) and not isinstance(width, str)):
        given = per_layer(width, names, "width", kind="decomposable layers")
    else:
        given = {n: width for n in names}
    return {n: as_widths(given.get(n), modules[n].in_channels, where=f"width[{n!r}]") for n in names}


def _resolve_plain_config(model: nn.Module, config, width) -> "OrderedDict[str, tuple[int, tuple[int, int]]]":
    """``name -> (group size, (w_in, w_out))`` for the decomposable convs of a plain model."""
    names = decomposable_layers(model)
    modules = dict(model.named_modules())
    chosen = per_layer(config, names, "config", kind="decomposable layers", unit="group sizes")
    widths = _resolve_widths(names, modules, width)
    out: "OrderedDict[str, tuple[int, tuple[int, int]]]" = OrderedDict()
    for name, s in chosen.items():
        s, (w, w_out) = int(s), widths[name]
        if s < 1 or w % s or w_out % (w // s):
            what = f"width {w}" if w == w_out else f"widths ({w}, {w_out})"
            raise ValueError(
                f"group size {s} is not valid for layer {name!r} with bottleneck {what}: "
                f"allowed sizes are {valid_group_sizes(w, w_out)}"
            )
        out[name] = (s, (w, w_out))
    return out


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


# ----------------------------------------------------------------------------- counting


def _collect_rows(model: nn.Module, input_size, as_if: Mapping[str, tuple],
                  linear_bias: bool, groups_from: str = "width") -> list[tuple]:
    rows: list[tuple] = []
    handles = []
    bottleneck_children: dict[int, str] = {}
    bottleneck_inputs: dict[int, int] = {}  # id(R) -> the bottleneck's input channels t (its P's)
    for name, module in model.named_modules():
        if is_bottleneck(module):
            for child, conv in module.named_children():
                bottleneck_children[id(conv)] = child
            bottleneck_inputs[id(module.R)] = module.P.in_channels

    def make_hook(name: str, module: nn.Module):
        def hook(mod, inputs, output):
            x = inputs[0]
            in_shape = tuple(x.shape[1:])
            out_shape = tuple(output.shape[1:])
            out_numel = output.numel() // output.shape[0]
            if isinstance(mod, GroSSConv2d):
                rows.extend(_bottleneck_rows(
                    name, in_shape, out_shape, mod.in_channels, mod.out_channels, mod.widths,
                    mod.group_size, mod.kernel_size, mod.bias is not None, groups_from))
            elif name in as_if:
                s, w = as_if[name]
                rows.extend(_bottleneck_rows(
                    name, in_shape, out_shape, mod.in_channels, mod.out_channels, w, s,
                    mod.kernel_size, mod.bias is not None, groups_from))
            elif isinstance(mod, _ConvNd):
                kind = bottleneck_children.get(id(mod), "conv")
                macs = _conv_macs(out_numel, mod.in_channels // mod.groups, mod.kernel_size,
                                  mod.bias is not None)
                if kind == "R" and groups_from != "width":
                    macs = _authors_r_macs(mod, bottleneck_inputs[id(mod)], output)
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


def _authors_r_macs(conv: nn.Module, t: int, output) -> int:
    """MACs of an exported ``R`` under the authors' rule (``groups = t // s``), ``t`` the layer's input channels."""
    s = conv.in_channels // conv.groups
    k = 1
    for v in conv.kernel_size:
        k *= int(v)
    out_hw = output[0, 0].numel()
    return (conv.in_channels * conv.out_channels * k // (t // s)) * out_hw


def _check_groups_from(groups_from) -> str:
    if groups_from not in GROUPS_FROM:
        raise ValueError(f"groups_from must be one of {GROUPS_FROM} ('width': correct count, 'input_channels': "
                         f"the GroSS authors' counter, for comparison only), got {groups_from!r}")
    return groups_from


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
              linear_bias: bool = False, groups_from: str = "width") -> pd.DataFrame:
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
    width : int, pair, sequence or mapping, optional
        Bottleneck width(s) for a plain model counted at ``config``
        (default: each layer's input channels): one for every layer, or one
        per layer (a sequence in layer order or ``{name: width}``); a width
        is an int or a pair ``(w_in, w_out)`` (asymmetric bottleneck). A pair
        given for every layer must be wrapped in a mapping or sequence (a bare
        2-sequence is read per layer). Ignored otherwise.
    linear_bias : bool, default False
        Count one MAC per output element for the bias of ``nn.Linear``. The
        paper's figures do not (see the module docstring).
    groups_from : {"width", "input_channels"}, default "width"
        Number of groups of ``R``: ``w_in // s`` (correct) or, for comparison
        with the paper's [26] figures only, the GroSS authors' ``t // s`` with
        ``t`` the layer's input channels (module docstring). Identical unless
        ``w_in != t``.

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
    groups_from = _check_groups_from(groups_from)
    as_if: Mapping[str, tuple] = {}
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
        rows = _collect_rows(model, input_size, as_if, linear_bias, groups_from)
    finally:
        if restore is not None:
            set_config(model, restore)
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df["macs"] = df["macs"].astype("int64")
    df["gconv"] = df["gconv"].astype(bool)
    return df


def count_macs(model: nn.Module, input_size=(3, 32, 32), config=None, width=None,
               linear_bias: bool = False, groups_from: str = "width") -> MACs:
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
    df = mac_table(model, input_size, config=config, width=width, linear_bias=linear_bias,
                   groups_from=groups_from)
    return MACs(int(df["macs"].sum()), int(df.loc[df["gconv"], "macs"].sum()))


# ----------------------------------------------------------------------------- helpers


def bottleneck_model(model: nn.Module, config, width=None) -> nn.Module:
    """A copy of a plain model whose decomposable convolutions are P/R/Q bottlenecks.

    Each decomposable conv becomes ``nn.Sequential(OrderedDict(P=Conv2d(t, w_in, 1,
    bias=False), R=Conv2d(w_in, w_out, k, stride, padding, dilation,
    groups=w_in // s, bias=False), Q=Conv2d(w_out, u, 1, bias=conv.bias is not
    None)))`` -- the structure of an exported GroSS model -- with fresh random
    weights (only ``Q``'s bias is copied). Useful to check MAC counts and
    shapes without running any decomposition.

    Parameters
    ----------
    model : nn.Module
        Plain model (not modified).
    config : sequence of int or mapping
        Group sizes, as in :func:`mac_table`.
    width : int, pair, sequence or mapping, optional
        Bottleneck widths (default: input channels), as in :func:`mac_table`.

    Returns
    -------
    nn.Module
    """
    if gross_layers(model):
        raise ValueError("bottleneck_model expects a plain model; use gross.method.decomposition.export "
                         "for a model with GroSS layers")
    chosen = _resolve_plain_config(model, config, width)
    out = copy.deepcopy(model)
    for name, (s, (w, w_out)) in chosen.items():
        conv = out.get_submodule(name)
        factory = dict(device=conv.weight.device, dtype=conv.weight.dtype)
        seq = nn.Sequential(OrderedDict([
            ("P", nn.Conv2d(conv.in_channels, w, 1, bias=False, **factory)),
            ("R", nn.Conv2d(w, w_out, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                            dilation=conv.dilation, groups=w // s, bias=False,
                            padding_mode=conv.padding_mode, **factory)),
            ("Q", nn.Conv2d(w_out, conv.out_channels, 1, bias=conv.bias is not None, **factory)),
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
