"""A network as plain data: :func:`describe_model` and :func:`build_described`.

Tensors, numbers, strings, lists and dicts only -- the architecture keywords of
:func:`gross.data.imagenet.build`, the GroSS search space, the configuration a network was
exported at, non-default bottleneck widths, the dtype and the state dict -- so a description
saved with ``torch.save`` is read back with ``torch.load(weights_only=True)``: a crafted file
cannot run code. DDP job files (:func:`gross.training.distributed.write_job`) and Table 4's
cached models (:mod:`gross.pipeline.table4`) hold networks this way.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gross.data import imagenet as inet
from gross.method.decomposition import export, search_space, skeleton
from gross.method.layers import GroSSConv2d
from gross.method.macs import is_bottleneck

__all__ = ["describe_model", "build_described"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def describe_model(model: nn.Module, arch: dict, space=None, config=None) -> dict:
    """``model`` as plain data (tensors, numbers, strings, lists, dicts) that :func:`build_described` rebuilds.

    Parameters
    ----------
    model : nn.Module
        A network of :func:`gross.data.imagenet.build`: as built, GroSS-decomposed, or
        exported at ``config`` (:func:`gross.method.decomposition.export`).
    arch : dict
        Keyword arguments of :func:`gross.data.imagenet.build` (``name``, ``num_classes``,
        ``width_mult``, ``hidden``).
    space : mapping of layer -> group sizes, optional
        The GroSS search space (default: ``model``'s own; give it for an exported model).
    config : sequence of int, optional
        The configuration ``model`` was exported at (``None``: not exported).
    """
    space = search_space(model) if space is None else space
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    widths = _bottleneck_widths(model)
    extra = {"widths": widths} if widths else {}  # only non-default widths: other descriptions stay as they were
    return {"arch": dict(arch), **extra, "space": {str(n): [int(s) for s in sizes] for n, sizes in space.items()},
            "config": None if config is None else [int(c) for c in config], "dtype": str(dtype).removeprefix("torch."),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def _bottleneck_widths(model: nn.Module) -> dict:
    """``{layer: [w_in, w_out]}`` of the decomposed (or exported) layers whose widths differ from ``(t, t)``."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, GroSSConv2d):
            t, w = m.in_channels, m.widths
        elif is_bottleneck(m):
            t, w = m.P.in_channels, (m.P.out_channels, m.R.out_channels)
        else:
            continue
        if w != (t, t):
            out[str(name)] = [int(w[0]), int(w[1])]
    return out


def build_described(description: dict) -> nn.Module:
    """The network of :func:`describe_model`: built, decomposed / exported as described, weights loaded.

    Raises
    ------
    ValueError
        A description that lacks a key or does not fit the architecture it names.
    """
    try:
        widths = {n: tuple(w) for n, w in description.get("widths", {}).items()}
        model = skeleton(inet.build(**description["arch"]), description["space"], width=widths or None)
        if description["config"] is not None:
            model = export(model, tuple(description["config"]))
        dtype = description.get("dtype", "float32")
        if dtype not in _DTYPES:
            raise TypeError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        model.to(_DTYPES[dtype]).load_state_dict(description["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"model description does not rebuild: {type(exc).__name__}: {exc}; expected the keys "
                         "arch, space, config and state_dict of gross.training.described.describe_model") from exc
    return model
