"""The one stopwatch of gross: wall-clock timing that waits for the device's queued work.

CUDA kernels run asynchronously, so a timer that reads the clock without synchronising
measures the launch, not the work: every timing in gross (benchmarks, the switching vs
rebuilding comparison) goes through :func:`timed` or :func:`time_call`. Latency tables
use :func:`gross.search.measure.measure_forward`, which adds warm-up, repeats, a choice
of clock and thread pinning on top of the same synchronisation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from gross.utils import synchronize

__all__ = ["timed", "time_call"]


def _device(device) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def timed(fn: Callable[[], object], device=None) -> tuple[object, float]:
    """Call ``fn`` once; its result and the wall time (s), ``device`` synchronised before and after."""
    device = _device(device)
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device=None) -> list[float]:
    """Wall times (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (each via :func:`timed`).

    Raises
    ------
    ValueError
        ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    return [timed(fn, device)[1] for _ in range(repeats)]
