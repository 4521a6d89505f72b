"""Benchmark rows for job fan-out and batched training (same row format as :mod:`gross.bench`).

``executor``
    A batch of smoke individual fine-tune jobs (:func:`gross.job_functions.individual_finetune`)
    run serially (1 torch thread) vs through the ``local`` pool (``workers`` processes x
    ``threads`` threads). The pool time includes starting the worker processes (spawn +
    importing torch), as a step would pay it. The note records the machine load
    (``os.getloadavg``) before and after, since other processes share the cores.
``batched``
    Aggregate 4-layer base-training throughput: K networks trained at once
    (:func:`gross.batched.train_stacked`, ``vmap``) vs the same K trained one at a time
    with :func:`gross.train.train_base` (the time of one network's epoch x K). Timed on
    the last epoch (the first is warm-up). On CPU a small K backs the choice
    ``method="auto"`` = sequential there; on CUDA the larger ``gpu_networks`` are
    measured (target >= 20x, i.e. ratio <= 0.05).
``packed`` (CUDA only)
    ``gpu_configs`` individual fine-tunes of different random configurations of one
    GroSS 4-layer network, packed (:func:`gross.batched.finetune_configs`, ``vmap``) vs one
    at a time (:func:`gross.train.finetune_config`, time of the first configuration x K).

Every row's ``ratio = measured_s / versus_s`` (below 1: the ``measured`` way is faster).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from .bench.core import register, row

__all__ = ["JobBenchSettings", "JOB_PRESETS", "bench_executor", "bench_batched", "bench_packed", "bench_jobs"]


@dataclasses.dataclass(frozen=True)
class JobBenchSettings:
    """Sizes of the job benchmarks (see :data:`JOB_PRESETS`)."""

    seed: int = 0
    n_jobs: int = 4                 # smoke fine-tune jobs in the executor batch
    workers: int = 2
    threads: int = 1
    n_train: int = 1024             # synthetic training images per job
    epochs: int = 2
    batch_size: int = 128
    cpu_networks: int = 4           # K of the CPU batched row
    cpu_images: int = 512
    gpu_networks: tuple = (8, 32, 64)
    gpu_images: int = 40_000
    gpu_configs: int = 45           # packed fine-tunes of different configurations (CUDA row)
    batch_epochs: int = 2           # the last one is timed


#: ``quick`` (seconds, for tests) and ``default`` (about a minute on 2 CPU cores).
JOB_PRESETS = {
    "default": JobBenchSettings(),
    "quick": JobBenchSettings(n_jobs=2, n_train=128, epochs=1, batch_size=64, cpu_networks=2, cpu_images=128,
                              gpu_networks=(2,), gpu_images=512, gpu_configs=2),
}


def _load() -> str:
    try:
        return "load avg " + "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load avg unknown"


def _init_file(directory: Path, seed: int) -> Path:
    from .decomposition import decompose
    from .job_functions import save_gross_init
    from .models import four_layer_net

    torch.manual_seed(seed)
    net = four_layer_net()
    decompose(net, max_iter=3, seed=seed)  # timing does not depend on how good the BTD is
    return save_gross_init(net, {"model": "four_layer"}, directory / "init.pt")


@register("executor", presets=JOB_PRESETS)
def bench_executor(settings: JobBenchSettings, device=None) -> list[dict]:
    """CPU: serial vs ``local`` pool on ``n_jobs`` smoke individual fine-tunes (one row)."""
    from .job_functions import individual_finetune
    from .jobs import ExecutorSettings, Job, run_jobs

    configs = [(1, 2, 4), (4, 8, 16), (32, 32, 64), (2, 4, 8), (8, 16, 32), (16, 32, 64)]
    data = {"kind": "synthetic", "n_train": settings.n_train, "n_val": 256, "n_test": 256, "seed": settings.seed}
    recipe = {"epochs": settings.epochs, "batch_size": settings.batch_size, "lr": 1e-3, "name": "bench"}
    with tempfile.TemporaryDirectory(prefix="gross-bench-jobs-") as tmp:
        tmp = Path(tmp)
        init = _init_file(tmp, settings.seed)

        def jobs(where):
            return [Job(individual_finetune, {"config": list(configs[i % len(configs)]), "data": data,
                                              "recipe": recipe, "seed": settings.seed + i},
                        name=f"job{i}", directory=tmp / where, inputs={"init": init})
                    for i in range(settings.n_jobs)]

        before = _load()
        t0 = time.perf_counter()
        run_jobs(jobs("serial"), ExecutorSettings(name="serial", threads=settings.threads), progress=False)
        serial_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_jobs(jobs("pool"), ExecutorSettings(name="local", workers=settings.workers, threads=settings.threads,
                                                gpus=0), progress=False)
        pool_s = time.perf_counter() - t0
    note = (f"{settings.n_jobs} jobs x {settings.epochs} epochs on {settings.n_train} synthetic images; "
            f"pool time includes spawning workers; {before} before, {_load()} after; os.cpu_count()={os.cpu_count()}")
    del device  # CPU workers (gpus=0): the row compares processes on the CPU cores
    return [row("executor", f"{settings.n_jobs} smoke fine-tune jobs",
                 f"local pool {settings.workers} workers x {settings.threads} thread", pool_s,
                 f"serial ({settings.threads} thread)", serial_s, target="report", device="cpu", note=note)]


def _seconds_per_image(history) -> float:
    """Training seconds per image of the last epoch (validation excluded)."""
    return 1.0 / float(history["images_per_s"].iloc[-1])


@register("batched", presets=JOB_PRESETS)
def bench_batched(settings: JobBenchSettings, device=None) -> list[dict]:
    """K 4-layer networks trained at once (``vmap``) vs one at a time, aggregate throughput."""
    from .batched import train_stacked
    from .data import synthetic
    from .models import four_layer_net
    from .train import RECIPES, train_base

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

    from .batched import finetune_configs
    from .data import synthetic
    from .decomposition import enumerate_configs, search_space
    from .job_functions import load_gross_model
    from .train import RECIPES, finetune_config

    device = torch.device(device)
    if device.type != "cuda":  # packing is a GPU technique; on CPU method="auto" trains one at a time
        return [row("packed", "four_layer fine-tunes of different configurations", "packed (vmap)", math.nan,
                    target="report (CUDA only)", device=str(device), note="not measured: CUDA only")]
    n, k = settings.gpu_images, settings.gpu_configs
    data = synthetic(n_train=n, n_val=1000, n_test=16, seed=settings.seed).to(device)
    recipe = RECIPES["four_layer_config"].scaled(settings.batch_epochs).replace(checkpoint_every=0)
    with tempfile.TemporaryDirectory(prefix="gross-bench-packed-") as tmp:
        gross = load_gross_model(_init_file(Path(tmp), settings.seed))
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


def bench_jobs(settings: JobBenchSettings | str = "default", device=None) -> list[dict]:
    """Every job benchmark row: the CPU executor row, and the batched rows on ``device``.

    On CPU the batched row uses ``cpu_networks``; with CUDA available (or ``device="cuda"``)
    the GPU rows use ``gpu_networks`` and ``gpu_images``.
    """
    if isinstance(settings, str):
        if settings not in JOB_PRESETS:
            raise ValueError(f"unknown preset {settings!r}; valid presets are {sorted(JOB_PRESETS)}")
        settings = JOB_PRESETS[settings]
    rows = bench_executor(settings, "cpu")
    rows += bench_batched(settings, "cpu")
    if (device is None and torch.cuda.is_available()) or (device is not None and torch.device(device).type == "cuda"):
        rows += bench_batched(settings, "cuda")
        rows += bench_packed(settings, "cuda")
    return rows


if __name__ == "__main__":  # python -m gross.bench_jobs [quick|default]; or python -m gross.bench --only executor
    import sys

    import pandas as pd

    print(pd.DataFrame(bench_jobs(sys.argv[1] if len(sys.argv) > 1 else "default")).to_string())
