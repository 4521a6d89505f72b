"""Benchmark rows for job fan-out and batched training (same row format as :mod:`gross.bench`).

``executor``
    A batch of the pipeline's individual fine-tune jobs (:func:`gross.pipeline.finetune.true_accuracy`
    of the ``smoke`` profile's 4-layer network, made by :func:`gross.pipeline.common.fan_out`)
    run serially on the same cores (``workers x threads`` torch threads, as the ``serial``
    executor runs them with ``num_threads``) vs through the ``local`` pool (``workers``
    processes x ``threads`` threads), each in its own copy of a ``runs/`` folder that already holds the
    base network and its decomposition (made first, not timed). The pool time includes
    starting the worker processes (spawn + importing torch), as a step would pay it. The
    note records the machine load (``os.getloadavg``) before and after, since other
    processes share the cores.
``batched``
    Aggregate 4-layer base-training throughput: K networks trained at once
    (:func:`gross.training.batched.train_stacked`, ``vmap``) vs the same K trained one at a time
    with :func:`gross.training.loop.train_base` (the time of one network's epoch x K). Timed on
    the last epoch (the first is warm-up). On CPU a small K backs the choice
    ``method="auto"`` = sequential there; on CUDA the larger ``gpu_networks`` are
    measured (target >= 20x, i.e. ratio <= 0.05).
``packed`` (CUDA only)
    ``gpu_configs`` individual fine-tunes of different random configurations of one
    GroSS 4-layer network, packed (:func:`gross.training.batched.finetune_configs`, ``vmap``) vs one
    at a time (:func:`gross.training.loop.finetune_config`, time of the first configuration x K).

Every row's ``ratio = measured_s / versus_s`` (below 1: the ``measured`` way is faster).
Run them with ``python -m gross.bench --only executor,batched,packed [--quick] [--device cuda]``
(:func:`gross.bench.run` with ``only=...``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from gross.bench.core import register, row

__all__ = ["JobBenchSettings", "JOB_PRESETS", "bench_executor", "bench_batched", "bench_packed"]


@dataclasses.dataclass(frozen=True)
class JobBenchSettings:
    """Sizes of the job benchmarks (see :data:`JOB_PRESETS`)."""

    seed: int = 0
    n_jobs: int = 6                 # smoke individual fine-tune jobs in the executor batch
    workers: int = 2
    threads: int = 1
    n_train: int = 20000            # synthetic training images (the cpu profile's data.n_train)
    epochs: int = 1                 # epochs of each fine-tune (four_layer.config_epochs)
    cpu_networks: int = 4           # K of the CPU batched row
    cpu_images: int = 512
    gpu_networks: tuple = (8, 32, 64)
    gpu_images: int = 40_000
    gpu_configs: int = 45           # packed fine-tunes of different configurations (CUDA row)
    batch_epochs: int = 2           # the last one is timed


#: ``quick`` (seconds, for tests) and ``default`` (about 2 minutes on 2 CPU cores).
JOB_PRESETS = {
    "default": JobBenchSettings(),
    "quick": JobBenchSettings(n_jobs=2, n_train=128, epochs=1, cpu_networks=2, cpu_images=128,
                              gpu_networks=(2,), gpu_images=512, gpu_configs=2),
}


def _load() -> str:
    try:
        return "load avg " + "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load avg unknown"


def _gross_net(seed: int):
    """A GroSS 4-layer network from a short BTD (timing does not depend on how good the BTD is)."""
    from gross.method.decomposition import decompose
    from gross.models import four_layer_net

    torch.manual_seed(seed)
    return decompose(four_layer_net(), max_iter=3, seed=seed)


_CONFIGS = [(1, 2, 4), (4, 8, 16), (32, 32, 64), (2, 4, 8), (8, 16, 32), (16, 32, 64)]


def _timed_fan_out(runs: Path, overrides: dict, calls) -> float:
    """Seconds :func:`gross.pipeline.common.fan_out` takes for ``calls`` in ``runs`` (a prepared copy)."""
    from gross.runs.config import load
    from gross.pipeline.common import fan_out

    with mock.patch.dict(os.environ, {"GROSS_RUNS": str(runs)}):
        os.environ.pop("GROSS_EXECUTOR", None)
        cfg = load("smoke", **overrides)
        t0 = time.perf_counter()
        fan_out(cfg, "bench", calls)
        return time.perf_counter() - t0


@register("executor", presets=JOB_PRESETS)
def bench_executor(settings: JobBenchSettings, device=None) -> list[dict]:
    """CPU: serial vs ``local`` pool on ``n_jobs`` smoke individual fine-tune jobs of the pipeline (one row)."""
    from gross.runs.config import load
    from gross.pipeline.base import base_state
    from gross.pipeline.decomposition import gross_decompose
    from gross.pipeline.finetune import true_accuracy, true_path

    keys = {"device": "cpu", "seed": settings.seed, "data__n_train": settings.n_train,
            "four_layer__config_epochs": settings.epochs}
    calls = [(true_accuracy, ("four_layer", list(c), 0, "config"), true_path("four_layer", c, 0, "config"))
             for c in (_CONFIGS[i % len(_CONFIGS)] for i in range(settings.n_jobs))]
    if len({a for _, _, a in calls}) < settings.n_jobs:
        raise ValueError(f"n_jobs = {settings.n_jobs} exceeds the {len(_CONFIGS)} distinct benchmark configurations")
    with tempfile.TemporaryDirectory(prefix="gross-bench-jobs-") as tmp:
        prepared = Path(tmp) / "prepared"
        with mock.patch.dict(os.environ, {"GROSS_RUNS": str(prepared)}):
            cfg = load("smoke", **keys)
            base_state(cfg, "four_layer")  # untimed: what the fine-tune jobs read
            gross_decompose(cfg, "four_layer", 0)
        for where in ("serial", "pool"):
            shutil.copytree(prepared, Path(tmp) / where)
        before = _load()
        threads, cores = torch.get_num_threads(), settings.workers * settings.threads
        torch.set_num_threads(cores)  # the serial executor runs jobs with this process's threads: all the cores
        try:
            serial_s = _timed_fan_out(Path(tmp) / "serial", keys, calls)
        finally:
            torch.set_num_threads(threads)
        pool_s = _timed_fan_out(Path(tmp) / "pool", {**keys, "executor__name": "local", "executor__gpus": 0,
                                                     "executor__workers": settings.workers,
                                                     "executor__threads": settings.threads}, calls)
    note = (f"{settings.n_jobs} smoke-profile fine-tune jobs x {settings.epochs} epochs on {settings.n_train} "
            f"synthetic images; pool time includes spawning workers; {before} before, {_load()} after; "
            f"os.cpu_count()={os.cpu_count()}")
    del device  # CPU workers (gpus=0): the row compares processes on the CPU cores
    return [row("executor", f"{settings.n_jobs} smoke fine-tune jobs",
                 f"local pool {settings.workers} workers x {settings.threads} thread", pool_s,
                 f"serial ({cores} threads)", serial_s, target="report", device="cpu", note=note)]


def _seconds_per_image(history) -> float:
    """Training seconds per image of the last epoch (validation excluded)."""
    return 1.0 / float(history["images_per_s"].iloc[-1])


@register("batched", presets=JOB_PRESETS)
def bench_batched(settings: JobBenchSettings, device=None) -> list[dict]:
    """K 4-layer networks trained at once (``vmap``) vs one at a time, aggregate throughput."""
    from gross.training.batched import train_stacked
    from gross.data import synthetic
    from gross.models import four_layer_net
    from gross.training.loop import RECIPES, train_base

    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = device.type == "cuda"
    sizes = settings.gpu_networks if cuda else (settings.cpu_networks,)
    n = settings.gpu_images if cuda else settings.cpu_images
    data = synthetic(n_train=n, n_val=1000 if cuda else 128, n_test=16, seed=settings.seed).to(device)
    recipe = RECIPES["four_layer_base"].scaled(settings.batch_epochs).replace(checkpoint_every=0)
    torch.manual_seed(settings.seed)
    lone = four_layer_net()
    hist = train_base(lone, data, recipe, device=device, progress=False)
    lone_s = n * _seconds_per_image(hist)
    rows = []
    for k in sizes:
        nets = []
        for i in range(k):
            torch.manual_seed(settings.seed + i)
            nets.append(four_layer_net())
        hists = train_stacked(nets, data, [recipe.replace(seed=i) for i in range(k)], device=device)
        together_s = n * _seconds_per_image(hists[0])
        rows.append(row(
            "batched", f"four_layer base training, {k} networks, {n} images",
            f"{k} at once (vmap)", together_s, "one at a time (x K)", k * lone_s,
            target="ratio <= 0.05 (>= 20x)" if cuda else "CPU: informs method='auto'",
            met=(together_s / (k * lone_s) <= 0.05) if cuda else None, device=str(device),
            note=f"last of {settings.batch_epochs} epochs timed (training only, no validation); "
                 f"aggregate {k * n / together_s:,.0f} vs {n / lone_s:,.0f} images/s; {_load()}",
        ))
    return rows


@register("packed", presets=JOB_PRESETS)
def bench_packed(settings: JobBenchSettings, device) -> list[dict]:
    """Different configurations fine-tuned at once (packed) vs one at a time (one row; CUDA only, else none)."""
    import random

    from gross.training.batched import finetune_configs
    from gross.data import synthetic
    from gross.method.decomposition import enumerate_configs, search_space
    from gross.training.loop import RECIPES, finetune_config

    device = torch.device(device)
    if device.type != "cuda":  # packing is a GPU technique; on CPU method="auto" trains one at a time
        return [row("packed", "four_layer fine-tunes of different configurations", "packed (vmap)", math.nan,
                    target="report (CUDA only)", device=str(device), note="not measured: CUDA only")]
    n, k = settings.gpu_images, settings.gpu_configs
    data = synthetic(n_train=n, n_val=1000, n_test=16, seed=settings.seed).to(device)
    recipe = RECIPES["four_layer_config"].scaled(settings.batch_epochs).replace(checkpoint_every=0)
    gross = _gross_net(settings.seed)
    configs = random.Random(settings.seed).sample(enumerate_configs(search_space(gross)), k)
    _, lone = finetune_config(gross, configs[0], data, recipe, device=device, progress=False)
    lone_s = n * _seconds_per_image(lone)
    _, hists = finetune_configs(gross, configs, data, [recipe.replace(seed=i) for i in range(k)], method="vmap",
                                device=device)
    packed_s = n * _seconds_per_image(hists[0])
    return [row("packed", f"four_layer fine-tunes of {k} different configurations, {n} images",
                 f"{k} at once (packed, vmap)", packed_s, "one at a time (x K)", k * lone_s,
                 target="report (45 x 100 epochs on 40k images <= 3 min on one H200)", device=str(device),
                 note=f"last of {settings.batch_epochs} epochs timed; one-at-a-time time is configuration "
                      f"{configs[0]} x {k}; {_load()}")]
