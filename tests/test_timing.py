"""gross.utils.timing: the one stopwatch (synchronised wall time)."""

import time

import pytest
import torch

from gross.utils import timing


def test_timed_returns_the_result_and_the_elapsed_time():
    out, seconds = timing.timed(lambda: (time.sleep(0.02), 7)[1])
    assert out == 7 and 0.02 <= seconds < 1.0


def test_time_call_runs_warmup_then_repeats():
    calls = []
    times = timing.time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="need repeats >= 1"):
        timing.time_call(lambda: None, repeats=0)


def test_timed_synchronises_the_device(monkeypatch):
    seen = []
    monkeypatch.setattr(timing, "synchronize", lambda device: seen.append(device))
    timing.timed(lambda: None, "cpu")
    assert seen == [torch.device("cpu")] * 2
