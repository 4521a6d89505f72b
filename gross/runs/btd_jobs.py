"""Decomposition as jobs: one BTD of one layer at one group size per :class:`gross.runs.jobs.Job`.

:func:`decompose_jobs` is :func:`gross.method.decomposition.decompose` with every
(layer, group size) BTD an independent job on an executor (serial, a local pool, Slurm);
the GroSS model is then built from the factors with
:func:`gross.method.decomposition.assemble`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from gross.method.btd import btd
from gross.method.decomposition import assemble, btd_factors, decomposition_plan
from gross.runs.jobs import Job, run_jobs
from gross.utils import atomic_save

__all__ = ["btd_layer_job", "btd_jobs", "decompose_jobs"]

def btd_layer_job(*, weight: str, group_size: int, width, seed: int = 0, options: Mapping | None = None) -> dict:
    """Job function (:class:`gross.runs.jobs.Job`): the BTD of one convolution at one group size.

    Parameters
    ----------
    weight : str
        File holding the convolution's weight tensor (an input of the job, so its
        SHA-256 is part of the job's fingerprint).
    group_size : int
    width : int or [int, int]
        Bottleneck width, or ``[w_in, w_out]`` for an asymmetric bottleneck.
    seed : int, default 0
        BTD seed (the same for every layer and size, as :func:`~gross.method.decomposition.decompose` uses).
    options : mapping, optional
        The rest of :func:`gross.method.btd.btd`'s options (``tol``, ``max_iter``, ``method``...).

    Returns
    -------
    dict
        ``P``, ``R``, ``Q`` (the bottleneck factors, as :meth:`GroSSConv2d.from_conv`
        uses them), ``error`` (the final relative BTD error) and ``seconds`` (the BTD's
        wall time in the job).
    """
    t0 = time.perf_counter()
    result = btd(torch.load(weight, map_location="cpu", weights_only=True), int(group_size), width=_width_arg(width),
                 seed=int(seed), **dict(options or {}))
    errors = list(result.errors)
    return {"P": result.P, "R": result.R, "Q": result.Q, "error": float(errors[-1]) if errors else float("nan"),
            "seconds": time.perf_counter() - t0}


def _width_arg(width):
    """``width`` of :func:`gross.method.btd.btd` from a job's plain data (an int, or a ``[w_in, w_out]`` list)."""
    return int(width) if isinstance(width, (int, float, str)) else tuple(int(w) for w in width)


def btd_jobs(model: nn.Module, directory, group_sizes=None, layers: Sequence[str] | None = None,
             width=None, drop_unused: bool = False,
             **btd_options) -> list[tuple[str, int, object]]:
    """One :class:`gross.runs.jobs.Job` per (layer, group size) BTD that :func:`~gross.method.decomposition.decompose` would run.

    Each convolution's weight is written once to ``<directory>/weights/<layer>.pt``
    (atomically, only when its bytes change); a job's output
    ``<directory>/<layer>-s<size>-<fingerprint>.pt`` is named from that file's hash, the
    size, the width and ``btd_options``, so changed weights or settings never reuse an
    old factorisation. Arguments are those of :func:`~gross.method.decomposition.decompose`.

    Returns
    -------
    list of (layer name, group size, Job)
    """
    directory = Path(directory)
    options = {k: v for k, v in btd_options.items() if k != "seed"}
    out = []
    for name, conv, w, sizes in decomposition_plan(model, group_sizes, layers, width, drop_unused):
        path = directory / "weights" / f"{name}.pt"
        weight = conv.weight.detach().cpu().clone()
        if not path.exists() or not torch.equal(torch.load(path, weights_only=True), weight):
            atomic_save(weight, path)
        for s in sizes:
            out.append((name, s, Job(btd_layer_job, {"group_size": s, "width": w if isinstance(w, int) else list(w), "seed": int(btd_options.get("seed", 0)),
                                                      "options": options},
                                     name=f"{name}-s{s}", directory=directory, inputs={"weight": path})))
    return out


def decompose_jobs(model: nn.Module, directory, executor="serial", group_sizes=None,
                   layers: Sequence[str] | None = None, width: int | Mapping[str, int] | None = None,
                   progress: bool | None = None, **btd_options) -> nn.Module:
    """:func:`~gross.method.decomposition.decompose` with every (layer, group size) BTD an independent job on ``executor``.

    The jobs (:func:`btd_jobs`) run through :func:`gross.runs.jobs.run_jobs`: finished ones
    (a valid output in ``directory``) are not run again, a damaged output raises
    :class:`gross.runs.jobs.CorruptOutputError` naming the file. The model is then assembled
    from the factors (:func:`~gross.method.decomposition.assemble`); it equals :func:`~gross.method.decomposition.decompose`'s bit for bit
    when the jobs run with the same torch thread count (BTD arithmetic is float64).

    Parameters
    ----------
    model, group_sizes, layers, width, progress, **btd_options
        As in :func:`~gross.method.decomposition.decompose` (``progress``: a bar over jobs).
    directory : path-like
        Job outputs and the convolution weights they read.
    executor : gross.runs.jobs.ExecutorSettings, mapping or str, default "serial"
        Where the jobs run (``"local"`` with ``workers``, ``"slurm"``...).

    Returns
    -------
    nn.Module
        ``model``, now holding GroSS layers.
    """
    jobs = btd_jobs(model, directory, group_sizes, layers, width, **btd_options)
    results = run_jobs([job for _, _, job in jobs], executor, progress=progress, desc="BTD")
    return assemble(model, btd_factors(jobs, results), width)
