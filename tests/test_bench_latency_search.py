"""Benchmark rows of the latency-aware search (:mod:`gross.bench.latency_search`), quick preset."""

import dataclasses
import math

import pytest

from gross import bench
from gross.bench import latency_search as bench_latency


@pytest.fixture(scope="module")
def settings():
    return dataclasses.replace(bench.PRESETS["quick"], latency_batches=(1,), repeats=2, latency_min_s=0.0)


def test_predictor_row_ratio_is_the_median_relative_error(settings):
    rows = bench_latency.bench_latency_predictor(settings, "cpu")
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == set(bench.COLUMNS) and row["benchmark"] == "latency_predictor"
    assert row["ratio"] == pytest.approx(row["measured_s"] / row["versus_s"]) and row["ratio"] >= 0
    assert row["met"] == (row["ratio"] <= 0.10) and "Spearman" in row["note"]


def test_search_row_compares_the_two_winners(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "no-results"))
    rows = bench_latency.bench_latency_search(settings, "cpu")
    assert len(rows) == len(settings.latency_baselines) * len(settings.latency_batches)
    for row in rows:
        assert set(row) == set(bench.COLUMNS) and row["benchmark"] == "latency_search"
        assert row["measured_s"] > 0 and row["versus_s"] > 0 and not math.isnan(row["ratio"])
        assert row["met"] == (row["measured_s"] <= row["versus_s"]) and "stand-in" in row["note"]


def test_registered_in_the_bench_package():
    for name, fn in (("latency_predictor", bench_latency.bench_latency_predictor),
                     ("latency_search", bench_latency.bench_latency_search)):
        assert bench.GROUPS[name].fn is fn and bench.BENCHMARKS[name] is fn
    names = list(bench.GROUPS)
    assert names.index("latency") < names.index("latency_predictor") < names.index("latency_search")
