"""Grouped convolution from first principles (tutorial companion to notebook 00).

A grouped convolution with ``G`` groups splits the ``C_in`` input channels and
the ``C_out`` output channels into ``G`` consecutive blocks; output block ``a``
only sees input block ``a``.  Three equivalent views are provided here:

* :func:`grouped_conv_loop` -- the explicit loop nest of the slides
  (``for g: for co in block g: for ci in block g: for oh: for ow: for kh: for kw``),
  a slow but obviously correct reference for tiny tensors;
* ``torch.nn.functional.conv2d(x, weight, groups=G)`` -- the library kernel;
* a *dense* (ungrouped) convolution with :func:`block_diagonal_weight`, the
  ``(C_out, C_in, kh, kw)`` weight that is block diagonal in its two channel
  dimensions (zero wherever output and input channel belong to different groups).

:func:`grouped_conv_costs` tabulates what grouping saves: parameters and
multiply-accumulates (MACs) both shrink by (almost exactly) the number of groups.
MAC convention (the package's): ``out_elements * (C_in / G) * kh * kw``, plus
one per output element for the bias.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gross.method.expansion import _as_positive_int as _positive_int

__all__ = [
    "grouped_conv_loop",
    "block_diagonal_weight",
    "grouped_conv_costs",
    "conv_output_size",
]


# ----------------------------------------------------------------------------- helpers



def _pair(value, what: str, minimum: int = 1) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 1) -> (3, 1)``; validates integers >= ``minimum``."""
    items = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    out = []
    for item in items:
        try:
            item = operator.index(item)
        except TypeError:
            raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}") from None
        if item < minimum:
            raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
        out.append(item)
    return out[0], out[1]


def _check_groups(in_channels: int, out_channels: int, groups) -> int:
    groups = _positive_int(groups, "groups")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide both in_channels={in_channels} and "
            f"out_channels={out_channels}; valid numbers of groups are "
            f"{_common_divisors(in_channels, out_channels)}"
        )
    return groups


def _common_divisors(a: int, b: int) -> tuple[int, ...]:
    n = math.gcd(a, b)
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one spatial dimension.

    ``floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1``,
    as in :class:`torch.nn.Conv2d`.

    Raises
    ------
    ValueError
        If the (padded) input is smaller than the dilated kernel.
    """
    out = (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(
            f"input size {size} with padding {padding} is smaller than the kernel extent "
            f"{dilation * (kernel_size - 1) + 1}; use a larger input or more padding"
        )
    return out


# ----------------------------------------------------------------------------- loop nest


def grouped_conv_loop(x, weight, groups: int, stride=1, padding=0, bias=None):
    """Grouped 2-D convolution (cross-correlation) as an explicit loop nest.

    The reference implementation of the slides::

        for g in range(G):
            for co in range(C_out // G * g, C_out // G * (g + 1)):
                for ci in range(C_in // G * g, C_in // G * (g + 1)):
                    for oh, ow, kh, kw:
                        O[co, oh, ow] += I[ci, oh*S + kh, ow*S + kw] * W[co, ci - C_in // G * g, kh, kw]

    Every multiply-accumulate is a Python statement (vectorised only over the
    batch), so use it on tiny tensors only.  Computation is in float64.

    Parameters
    ----------
    x : array_like or Tensor
        Input ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
    weight : array_like or Tensor
        Grouped weight ``(C_out, C_in // groups, kh, kw)`` (PyTorch layout).
    groups : int
        Number of groups ``G``; must divide ``C_in`` and ``C_out``.
    stride, padding : int or (int, int)
        As in :func:`torch.nn.functional.conv2d` (zero padding).
    bias : array_like or Tensor, optional
        ``(C_out,)``, added to every output element of its channel.

    Returns
    -------
    Tensor or numpy.ndarray
        ``(N, C_out, H_out, W_out)`` (or without ``N`` if ``x`` had none), float64;
        a CPU tensor if ``x`` is a tensor, else a NumPy array.

    Raises
    ------
    ValueError
        If shapes, ``groups``, ``stride`` or ``padding`` are inconsistent.
    """
    is_tensor = isinstance(x, Tensor)
    inp = np.asarray(x.detach().cpu().double().numpy() if is_tensor else x, dtype=np.float64)
    w = np.asarray(weight.detach().cpu().double().numpy() if isinstance(weight, Tensor) else weight,
                   dtype=np.float64)
    squeeze = inp.ndim == 3
    if squeeze:
        inp = inp[None]
    if inp.ndim != 4:
        raise ValueError(f"x must be (N, C_in, H, W) or (C_in, H, W), got shape {inp.shape}")
    if w.ndim != 4:
        raise ValueError(f"weight must be (C_out, C_in // groups, kh, kw), got shape {w.shape}")
    n, c_in, h, wd = inp.shape
    c_out, c_in_g, kh_size, kw_size = w.shape
    groups = _check_groups(c_in, c_out, groups)
    if c_in_g * groups != c_in:
        raise ValueError(
            f"weight.shape[1] must be in_channels / groups = {c_in} / {groups} = {c_in // groups}, "
            f"got {c_in_g}"
        )
    sh, sw = _pair(stride, "stride", minimum=1)
    ph, pw = _pair(padding, "padding", minimum=0)
    oh_size = conv_output_size(h, kh_size, sh, ph)
    ow_size = conv_output_size(wd, kw_size, sw, pw)
    b = None
    if bias is not None:
        b = np.asarray(bias.detach().cpu().double().numpy() if isinstance(bias, Tensor) else bias,
                       dtype=np.float64)
        if b.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},), got {b.shape}")

    padded = np.zeros((n, c_in, h + 2 * ph, wd + 2 * pw))
    padded[:, :, ph:ph + h, pw:pw + wd] = inp
    out = np.zeros((n, c_out, oh_size, ow_size))
    in_per_group, out_per_group = c_in // groups, c_out // groups
    for g in range(groups):
        for co in range(out_per_group * g, out_per_group * (g + 1)):
            for ci in range(in_per_group * g, in_per_group * (g + 1)):
                for oh in range(oh_size):
                    for ow in range(ow_size):
                        for kh in range(kh_size):
                            for kw in range(kw_size):
                                out[:, co, oh, ow] += (
                                    padded[:, ci, oh * sh + kh, ow * sw + kw]
                                    * w[co, ci - in_per_group * g, kh, kw]
                                )
    if b is not None:
        out += b[None, :, None, None]
    if squeeze:
        out = out[0]
    return torch.from_numpy(out) if is_tensor else out


# ----------------------------------------------------------------------------- dense equivalent


def block_diagonal_weight(weight: Tensor, groups: int) -> Tensor:
    """Dense (ungrouped) weight equivalent to a grouped convolution weight.

    Parameters
    ----------
    weight : Tensor
        Grouped weight ``(C_out, C_in // groups, kh, kw)``.
    groups : int
        Number of groups ``G``; must divide ``C_out``.

    Returns
    -------
    Tensor
        ``(C_out, C_in, kh, kw)`` with ``C_in = groups * weight.shape[1]``: block
        ``(a, a)`` of the ``(C_out, C_in)`` channel matrix is group ``a``'s weight and
        all off-diagonal blocks are zero, so that
        ``conv2d(x, weight, groups=G) == conv2d(x, block_diagonal_weight(weight, G))``
        for any stride, padding and dilation.  Same dtype and device; differentiable.

    Raises
    ------
    ValueError
        If ``weight`` is not 4-D or ``groups`` does not divide ``C_out``.
    """
    if not isinstance(weight, Tensor):
        weight = torch.as_tensor(weight)
    if weight.ndim != 4:
        raise ValueError(f"weight must be (C_out, C_in // groups, kh, kw), got shape {tuple(weight.shape)}")
    c_out, c_in_g, kh, kw = weight.shape
    groups = _positive_int(groups, "groups")
    if c_out % groups:
        raise ValueError(
            f"groups={groups} must divide out_channels={c_out}; valid numbers of groups are "
            f"{tuple(d for d in range(1, c_out + 1) if c_out % d == 0)}"
        )
    out_per_group = c_out // groups
    # (G, out/G, in/G, kh, kw) -> block_diag over G via an identity mask
    blocks = weight.reshape(groups, out_per_group, c_in_g, kh, kw)
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    # dense[a, o, b, i] = eye[a, b] * blocks[a, o, i]
    dense = eye[:, None, :, None, None, None] * blocks[:, :, None, :, :, :]
    return dense.reshape(c_out, groups * c_in_g, kh, kw)


# ----------------------------------------------------------------------------- costs


def grouped_conv_costs(in_channels: int, out_channels: int, kernel_size, height: int, width: int,
                       groups_list=None, *, stride=1, padding=None, bias: bool = True) -> pd.DataFrame:
    """Parameters and MACs of a convolution for several numbers of groups.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out``.
    kernel_size : int or (int, int)
        ``kh, kw``.
    height, width : int
        Spatial size of the *input* feature map.
    groups_list : sequence of int, optional
        Numbers of groups to tabulate; each must divide both channel counts.
        Defaults to every common divisor of ``C_in`` and ``C_out`` (1 ... depthwise).
    stride : int or (int, int), default 1
    padding : int or (int, int), optional
        Defaults to ``kernel_size // 2`` ("same" size for odd kernels at stride 1).
    bias : bool, default True
        Whether the convolution has a bias (one parameter and one MAC per output
        channel / output element).

    Returns
    -------
    pandas.DataFrame
        One row per number of groups, ascending, with columns

        ``groups``, ``group_size`` (``C_in / G``, input channels per group),
        ``params`` (weights + bias), ``macs``,
        ``params_ratio`` / ``macs_ratio`` (relative to ``groups=1``) and
        ``params_saving_pct`` / ``macs_saving_pct`` (``100 * (1 - ratio)``).

        Closed forms (``H', W'`` output size, ``b`` = 1 with bias else 0):
        ``params = C_out * (C_in / G) * kh * kw + b * C_out`` and
        ``macs = H' * W' * C_out * ((C_in / G) * kh * kw + b)``.

    Raises
    ------
    ValueError
        If a number of groups does not divide both channel counts, or sizes are invalid.
    """
    c_in = _positive_int(in_channels, "in_channels")
    c_out = _positive_int(out_channels, "out_channels")
    kh, kw = _pair(kernel_size, "kernel_size", minimum=1)
    height = _positive_int(height, "height")
    width = _positive_int(width, "width")
    sh, sw = _pair(stride, "stride", minimum=1)
    ph, pw = _pair((kh // 2, kw // 2) if padding is None else padding, "padding", minimum=0)
    oh, ow = conv_output_size(height, kh, sh, ph), conv_output_size(width, kw, sw, pw)

    if groups_list is None:
        groups_list = _common_divisors(c_in, c_out)
    elif isinstance(groups_list, (str, bytes)) or not isinstance(groups_list, Sequence):
        raise ValueError(f"groups_list must be a sequence of ints, got {groups_list!r}")
    groups_list = sorted({_check_groups(c_in, c_out, g) for g in groups_list})
    if not groups_list:
        raise ValueError("groups_list must not be empty; e.g. (1, 2, 4)")

    b = int(bool(bias))

    def params(g: int) -> int:
        return c_out * (c_in // g) * kh * kw + b * c_out

    def macs(g: int) -> int:
        return oh * ow * c_out * ((c_in // g) * kh * kw + b)

    dense_params, dense_macs = params(1), macs(1)
    rows = []
    for g in groups_list:
        p, m = params(g), macs(g)
        rows.append({
            "groups": g,
            "group_size": c_in // g,
            "params": p,
            "macs": m,
            "params_ratio": p / dense_params,
            "macs_ratio": m / dense_macs,
            "params_saving_pct": 100.0 * (1.0 - p / dense_params),
            "macs_saving_pct": 100.0 * (1.0 - m / dense_macs),
        })
    return pd.DataFrame(rows)
