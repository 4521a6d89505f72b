"""gross.bench.jobs: the executor / batched / packed benchmark groups run through gross.bench.run."""

import dataclasses
import math

import pytest

from gross import bench
from gross.bench.jobs import JOB_PRESETS, bench_executor


def test_job_groups_run_through_bench_run_quick(tmp_path):
    table = bench.run("quick", device="cpu", out=tmp_path, only=["executor", "batched", "packed"])
    assert list(table.columns) == bench.COLUMNS
    assert table["benchmark"].tolist() == ["executor", "batched", "packed"]
    timed = table[table["benchmark"] != "packed"]
    assert (timed["measured_s"] > 0).all() and (timed["versus_s"] > 0).all()
    assert (timed["ratio"] == timed["measured_s"] / timed["versus_s"]).all()
    packed = table[table["benchmark"] == "packed"].iloc[0]
    assert math.isnan(packed["measured_s"]) and "CUDA only" in packed["note"]  # not measured on CPU
    assert (tmp_path / "benchmarks.csv").exists()


def test_executor_rejects_more_jobs_than_configurations():
    with pytest.raises(ValueError, match="distinct benchmark configurations"):
        bench_executor(dataclasses.replace(JOB_PRESETS["quick"], n_jobs=7))
