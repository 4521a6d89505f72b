"""Timing of forwards for :mod:`gross.search.latency`: device fingerprints, repeated and round-robin timings.

:func:`measure_forward` times one module on one input (warm-up, loops of at least
``min_time`` seconds, median or min over ``repeats`` loops, CUDA synchronised).
:func:`measure_rounds` times many modules *round-robin*: ``rounds`` passes over all of
them, each pass one :func:`measure_forward` per module, and per module the min (or
median) over the passes. Slow drifts of the machine (frequency, other processes, cache
and allocator state) then hit every module alike instead of entering the differences
between modules timed minutes apart.
"""

from __future__ import annotations

import contextlib
import math
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gross import utils

__all__ = ["STATISTICS", "CLOCKS", "Timer", "device_fingerprint", "measure_forward", "measure_rounds"]

#: Statistics of the repeated timings (:func:`measure_forward`, :func:`measure_rounds`).
STATISTICS = ("median", "min")
#: Clocks of :func:`measure_forward`: wall time, the process's CPU time, the calling thread's CPU time.
CLOCKS = ("wall", "process", "thread")
_CLOCK_FUNCTIONS = {"wall": time.perf_counter, "process": time.process_time, "thread": time.thread_time}

Timer = Callable[[nn.Module, torch.Tensor], float]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def _device(device) -> torch.device:
    """:func:`gross.utils.resolve_device` (None: CPU), limited to the devices tables support."""
    device = utils.resolve_device("cpu" if device is None else device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"latency tables support 'cpu' and 'cuda' devices, got {str(device)!r}")
    return device


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def device_fingerprint(device="cpu", batch_size: int = 1, num_threads: int | None = None) -> dict:
    """What a latency table depends on besides the architecture.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"`` or ``"cuda[:N]"``.
    batch_size : int
        Batch size of the timed forwards.
    num_threads : int, optional
        CPU threads (default: :func:`torch.get_num_threads` now).

    Returns
    -------
    dict
        ``device_type``, ``device_name`` (CPU model or GPU name), ``threads`` (CPU) or
        ``cuda`` (version), ``torch`` version and ``batch_size``.
    """
    device = _device(device)
    out = {"device_type": device.type, "torch": torch.__version__,
           "batch_size": _positive_int("batch_size", batch_size)}
    if device.type == "cuda":
        out.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    else:
        threads = torch.get_num_threads() if num_threads is None else _positive_int("num_threads", num_threads)
        out.update(device_name=_cpu_model(), threads=threads)
    return out


def measure_forward(module: nn.Module, x: torch.Tensor, warmup: int = 2, repeats: int = 7,
                    min_time: float = 0.01, statistic: str = "median", clock: str = "wall") -> float:
    """Seconds per forward of ``module(x)`` (on ``x``'s device, CUDA synchronised).

    ``warmup`` untimed calls, then ``inner`` (chosen so that one timed loop lasts at least
    ``min_time`` seconds) forwards per timed loop, ``repeats`` loops; returns the median
    (``statistic="median"``) or the minimum (``"min"``: robust to other processes
    stealing the CPU) loop time divided by ``inner``. ``clock="wall"`` reads
    :func:`time.perf_counter`; ``clock="process"`` (CPU only) reads the process's CPU time
    (:func:`time.process_time`): with one torch thread this is the latency the forward
    would have on an otherwise idle core, unaffected by time the scheduler gives to
    other processes on a shared machine, but it also counts every other thread of the
    process (a Jupyter kernel's, a progress bar's); ``clock="thread"`` (CPU, one torch
    thread) reads only the calling thread's CPU time (:func:`time.thread_time`).
    """
    if repeats < 1 or warmup < 0 or not min_time >= 0:
        raise ValueError(f"need repeats >= 1, warmup >= 0, min_time >= 0; got {repeats}, {warmup}, {min_time}")
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}: expected one of {STATISTICS}")
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}: expected one of {CLOCKS}")
    device = x.device
    if clock != "wall" and device.type != "cpu":
        raise ValueError(f"clock={clock!r} measures CPU time and needs a CPU input, got device {device}; use 'wall'")
    if clock == "thread" and torch.get_num_threads() != 1:
        raise ValueError(f"clock='thread' counts the calling thread only and needs 1 torch thread, got "
                         f"{torch.get_num_threads()}; set num_threads=1 or use clock='process'")
    now = _CLOCK_FUNCTIONS[clock]
    with torch.inference_mode():
        for _ in range(max(warmup, 1)):
            module(x)
        utils.synchronize(device)
        start = now()
        module(x)
        utils.synchronize(device)
        inner = max(1, math.ceil(min_time / max(now() - start, 1e-9)))
        times = []
        for _ in range(repeats):
            utils.synchronize(device)
            start = now()
            for _ in range(inner):
                module(x)
            utils.synchronize(device)
            times.append((now() - start) / inner)
    return _combine(times, statistic)


@contextlib.contextmanager
def _threads(num_threads: int | None):
    old = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _progress(total: int, desc: str, progress):
    from tqdm.auto import tqdm

    # disable=None: tqdm stays quiet when stderr is not a terminal (tests, logs)
    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False)


def _combine(values: Sequence[float], statistic: str) -> float:
    return float(statistics.median(values) if statistic == "median" else min(values))


def measure_rounds(jobs: Sequence, timer: Timer, rounds: int = 1, statistic: str = "min", bar=None) -> list[float]:
    """Seconds per forward of every ``(module, x)`` in ``jobs``, timed round-robin.

    Parameters
    ----------
    jobs : sequence of (nn.Module, torch.Tensor)
    timer : callable
        ``timer(module, x) -> seconds`` (e.g. :func:`measure_forward` with its settings).
    rounds : int
        Passes over all jobs; each pass times every job once, in order.
    statistic : {"min", "median"}
        Per job, over the passes.
    bar : tqdm, optional
        Advanced once per job and pass.

    Returns
    -------
    list of float
        One time per job, in the order of ``jobs``.
    """
    rounds = _positive_int("rounds", rounds)
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}: expected one of {STATISTICS}")
    times = [[] for _ in jobs]
    for _ in range(rounds):
        for i, (module, x) in enumerate(jobs):
            times[i].append(float(timer(module, x)))
            if bar is not None:
                bar.update()
    return [_combine(t, statistic) for t in times]
