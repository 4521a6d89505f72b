"""Grouped-convolution weight expansion Ψ (Eq. 4 and Fig. 2 of the GroSS paper).

A grouped convolution whose groups hold ``g`` input channels can be rewritten
as a grouped convolution whose groups hold ``h`` input channels (``h`` a
multiple of ``g``) by padding its weight with zero blocks: every output channel
keeps its ``g`` non-zero input weights, placed at the position its ``g``-group
occupies inside the enclosing ``h``-group, and receives zeros for the other
``h - g`` inputs of that ``h``-group.  Both convolutions give identical outputs::

    conv2d(x, W, groups=C_in // g) == conv2d(x, expand_grouped_weight(W, g, h), groups=C_in // h)

Layout (PyTorch): output channel ``o`` of the ``g``-grouped convolution belongs
to group ``a = o // (C_out // (C_in // g))`` and sees inputs ``[a*g, a*g + g)``.
Under ``h`` it belongs to group ``b = a // (h // g)`` which sees inputs
``[b*h, b*h + h)``; its ``g`` weights therefore sit at offset
``a*g - b*h = (a mod (h // g)) * g`` of its expanded row.

The implementation is a single ``torch.diag_embed`` on a reshaped view (no
Python loop over channels), so it is cheap enough to run in every forward pass
and differentiable.
"""

from __future__ import annotations

import operator

import torch
from torch import Tensor

__all__ = ["expand_grouped_weight"]


def _as_positive_int(value, what: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be a positive integer, got {value!r}") from None
    if value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value}")
    return value


def _check_expansion(
    weight_shape, group_size: int, new_group_size: int, in_channels: int | None = None
) -> tuple[int, int, int]:
    """Validate the arguments of :func:`expand_grouped_weight`.

    Parameters
    ----------
    weight_shape : sequence of int
        Shape ``(C_out, g, kh, kw)`` of the grouped weight.
    group_size, new_group_size : int
        Input channels per group before (``g``) and after (``h``) expansion.
    in_channels : int, optional
        Input channels ``C_in`` of the convolution; defaults to ``C_out``.

    Returns
    -------
    (in_channels, group_size, new_group_size) : tuple of int

    Raises
    ------
    ValueError
        If the shapes and sizes do not describe a valid expansion.
    """
    if len(weight_shape) != 4:
        raise ValueError(
            f"weight must be a 4-D conv weight (C_out, group_size, kh, kw), got shape {tuple(weight_shape)}"
        )
    g = _as_positive_int(group_size, "group_size")
    h = _as_positive_int(new_group_size, "new_group_size")
    c_out = int(weight_shape[0])
    c_in = c_out if in_channels is None else _as_positive_int(in_channels, "in_channels")
    if weight_shape[1] != g:
        raise ValueError(
            f"weight.shape[1] must equal group_size={g} (input channels per group), got {weight_shape[1]}"
        )
    if h < g:
        raise ValueError(
            f"new_group_size must be >= group_size: cannot expand group size {g} to the smaller {h}"
        )
    if h % g:
        raise ValueError(
            f"new_group_size must be a multiple of group_size: {h} is not a multiple of {g}"
        )
    if c_in % h:
        raise ValueError(
            f"new_group_size {h} must divide in_channels {c_in} (and so must group_size {g})"
        )
    groups = c_in // g
    if c_out % groups:
        raise ValueError(
            f"out_channels {c_out} must be divisible by the number of groups in_channels/group_size "
            f"= {c_in}/{g} = {groups}"
        )
    return c_in, g, h


def expand_grouped_weight(
    weight: Tensor, group_size: int, new_group_size: int, in_channels: int | None = None
) -> Tensor:
    """Expand a grouped-convolution weight to a larger group size (Ψ_{g→h}).

    Parameters
    ----------
    weight : Tensor
        Weight ``(C_out, g, kh, kw)`` of a convolution with ``in_channels // g``
        groups.
    group_size : int
        ``g``, input channels per group of ``weight``.
    new_group_size : int
        ``h``, input channels per group of the expanded weight; a multiple of
        ``g`` that divides ``in_channels``.
    in_channels : int, optional
        ``C_in`` of the convolution.  Defaults to ``C_out`` (the square ``R``
        layer of a bottleneck).

    Returns
    -------
    Tensor
        Weight ``(C_out, h, kh, kw)`` (same dtype and device) such that
        ``conv2d(x, weight, groups=C_in // g)`` equals
        ``conv2d(x, result, groups=C_in // h)`` for any stride, padding and
        dilation.  When ``h == g`` the input tensor itself is returned.

    Raises
    ------
    ValueError
        If ``weight.shape[1] != g``, ``h < g``, ``h`` is not a multiple of
        ``g``, ``h`` does not divide ``C_in`` or ``C_out`` is not divisible by
        the number of groups ``C_in // g``.

    Examples
    --------
    >>> w = torch.randn(4, 1, 3, 3)             # depthwise, 4 channels
    >>> expand_grouped_weight(w, 1, 2).shape    # groups of 2 channels
    torch.Size([4, 2, 3, 3])
    """
    c_in, g, h = _check_expansion(tuple(weight.shape), group_size, new_group_size, in_channels)
    if h == g:
        return weight
    c_out, _, kh, kw = weight.shape
    ratio = h // g  # g-groups per h-group
    new_groups = c_in // h
    per_group = c_out // (c_in // g)  # output channels per g-group
    # o = ((b * ratio) + j) * per_group + l   with b the h-group, j the g-group inside it
    w = weight.reshape(new_groups, ratio, per_group, g, kh, kw).movedim(1, -1)
    # diag_embed puts w[..., j] at (j, j) of the new dims 1 (j: output g-group) and
    # 3 (slot: position of the g-block inside the h-row), zeros elsewhere.
    out = torch.diag_embed(w, offset=0, dim1=1, dim2=3)  # (b, j, l, slot, g, kh, kw)
    return out.reshape(c_out, h, kh, kw)
