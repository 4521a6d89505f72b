"""Timing helpers of the latency tables (:mod:`gross.search.measure`); no wall times are asserted."""

import numpy as np
import pytest
import torch
from torch import nn

from gross.search import measure as M


def test_measure_forward_runs_and_checks_its_arguments():
    net = nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    assert M.measure_forward(net, x, warmup=0, repeats=2, min_time=0.0) > 0
    assert M.measure_forward(net, x, warmup=0, repeats=2, min_time=0.0, statistic="min") > 0
    with pytest.raises(ValueError, match="repeats"):
        M.measure_forward(net, x, repeats=0)
    assert M.measure_forward(net, x, warmup=0, repeats=2, min_time=0.0, clock="process") >= 0
    with pytest.raises(ValueError, match="statistic"):
        M.measure_forward(net, x, statistic="mean")
    with pytest.raises(ValueError, match="clock"):
        M.measure_forward(net, x, clock="cycles")


def test_thread_clock_needs_one_torch_thread():
    net, x = nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert M.measure_forward(net, x, warmup=0, repeats=2, min_time=0.0, clock="thread") >= 0
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="1 torch thread.*clock='process'"):
            M.measure_forward(net, x, clock="thread")
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("statistic", M.STATISTICS)
def test_measure_rounds_is_round_robin_with_the_statistic_over_rounds(statistic):
    rng = np.random.default_rng(0)
    jobs = [(nn.Identity(), torch.zeros(1)) for _ in range(4)]
    calls, draws = [], {i: [] for i in range(4)}
    index = {id(m): i for i, (m, _) in enumerate(jobs)}

    def timer(module, x):
        i = index[id(module)]
        calls.append(i)
        draws[i].append(float(rng.uniform(1, 2)))
        return draws[i][-1]

    out = M.measure_rounds(jobs, timer, rounds=5, statistic=statistic)
    assert calls == [0, 1, 2, 3] * 5
    expect = [float(np.median(draws[i]) if statistic == "median" else np.min(draws[i])) for i in range(4)]
    assert out == expect
    with pytest.raises(ValueError, match="rounds"):
        M.measure_rounds(jobs, timer, rounds=0)
    with pytest.raises(ValueError, match="unknown statistic"):
        M.measure_rounds(jobs, timer, statistic="mean")


def test_fingerprint_contents():
    fp = M.device_fingerprint("cpu", 64, num_threads=3)
    assert fp["batch_size"] == 64 and fp["threads"] == 3 and fp["torch"] == torch.__version__
    assert fp["device_type"] == "cpu" and fp["device_name"]
    with pytest.raises(ValueError, match="device"):
        M.device_fingerprint("tpu")
