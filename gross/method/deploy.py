"""Deployable export of a GroSS configuration to ONNX, checked against PyTorch.

:func:`gross.method.decomposition.export` already gives a plain PyTorch network with real
grouped convolutions; :func:`export_onnx` writes it as an ONNX file
(:func:`torch.onnx.export`) whose ``Conv`` nodes keep the grouped convolutions as
``group`` attributes (read back from the graph and compared with the network's
``groups``, so a runtime executes them as grouped, not as dense, convolutions).
:func:`check_onnx` runs the file with onnxruntime on random inputs and compares
the outputs with PyTorch's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from gross.method.decomposition import export, gross_layers

__all__ = ["export_onnx", "onnx_conv_groups", "torch_conv_groups", "check_onnx"]


def _plain(model: nn.Module, config) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    if gross_layers(model):
        return export(model, config).eval()
    if config is not None:
        raise ValueError("config was given but the model has no GroSS layers; pass a GroSS model or config=None")
    return model.eval()


def _check_input_size(input_size) -> tuple[int, ...]:
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence) or len(input_size) < 1 \
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in input_size):
        raise ValueError(f"input_size must be the input shape without batch, e.g. (3, 32, 32); got {input_size!r}")
    return tuple(int(d) for d in input_size)


def torch_conv_groups(net: nn.Module) -> list[int]:
    """``groups`` of every ``nn.Conv2d`` of ``net``, in module order."""
    return [m.groups for m in net.modules() if isinstance(m, nn.Conv2d)]


def onnx_conv_groups(path) -> list[int]:
    """``group`` attribute of every ``Conv`` node of an ONNX file, in graph order (1 when absent)."""
    import onnx

    graph = onnx.load(str(path)).graph
    out = []
    for node in graph.node:
        if node.op_type == "Conv":
            group = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"]
            out.append(int(group[0]) if group else 1)
    return out


def export_onnx(model: nn.Module, config, path, input_size=(3, 32, 32), opset: int | None = None,
                dynamic_batch: bool = True) -> Path:
    """Write the network of ``model`` at ``config`` as ONNX and verify its grouped convolutions.

    Parameters
    ----------
    model : nn.Module
        GroSS model (exported at ``config`` with :func:`gross.method.decomposition.export`) or a
        plain network (``config=None``).
    config : sequence of int or None
        Group size per decomposed layer.
    path : path-like
        Output ``.onnx`` file (written to a temporary name, then moved into place).
    input_size : tuple of int
        One input without the batch dimension.
    opset : int, optional
        ONNX opset (default: the exporter's).
    dynamic_batch : bool
        Make the batch dimension dynamic.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    RuntimeError
        The graph's ``Conv`` ``group`` attributes differ from the network's ``groups``.
    """
    net = _plain(model, config)
    input_size = _check_input_size(input_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = next(net.parameters())
    x = torch.zeros(2, *input_size, device=p.device, dtype=p.dtype)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.onnx")
    kwargs = {"input_names": ["input"], "output_names": ["output"], "external_data": False}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    if opset is not None:
        kwargs["opset_version"] = int(opset)
    try:
        torch.onnx.export(net, (x,), str(tmp), dynamo=True, verbose=False, **kwargs)
        expected, found = torch_conv_groups(net), onnx_conv_groups(tmp)
        if sorted(expected) != sorted(found) or len(expected) != len(found):
            raise RuntimeError(f"ONNX graph lost grouped convolutions: Conv groups {found}, network {expected}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_onnx(model: nn.Module, config, path, input_size=(3, 32, 32), batch_sizes=(1, 4), n_inputs: int = 2,
               seed: int = 0) -> pd.DataFrame:
    """Compare an exported ONNX file with PyTorch on random inputs (onnxruntime, CPU).

    Returns
    -------
    pandas.DataFrame
        One row per input: ``batch_size, max_abs_diff, max_abs_output`` and
        ``groups_match`` (graph ``group`` attributes equal the network's ``groups``).
    """
    import onnxruntime as ort

    net = _plain(model, config).cpu().float()
    input_size = _check_input_size(input_size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    groups_match = torch_conv_groups(net) == onnx_conv_groups(path)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in batch_sizes:
        for _ in range(n_inputs):
            x = torch.randn(b, *input_size, generator=g)
            with torch.no_grad():
                ref = net(x).numpy()
            out = session.run(None, {name: x.numpy()})[0]
            rows.append({"batch_size": b, "max_abs_diff": float(np.max(np.abs(out - ref))),
                         "max_abs_output": float(np.max(np.abs(ref))), "groups_match": groups_match})
    return pd.DataFrame(rows)
