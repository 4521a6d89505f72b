"""scripts/device_gpu.sh (the two-call GPU check) and `make device-prep`: what can be checked on CPU.

The script runs on the lent GPU machine; here: its syntax, that what it carries is git-ignored and
pinned, its clear failure where there is no CUDA, and both calls end to end with ``DRY_RUN=1``
(tiny sizes on the CPU): rows land in device_rows.csv stage by stage and call 2 writes the
extrapolation table.
"""

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from gross.bench.device import ROW_COLUMNS
from gross.utils import paths

SCRIPT = paths.ROOT / "scripts" / "device_gpu.sh"


def _env(tmp_path, **extra):
    (tmp_path / "work").mkdir(exist_ok=True)
    return {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "WORK": str(tmp_path / "work"),
            "SITE": str(tmp_path / "site"), "PYTHONPATH": str(paths.ROOT), "OMP_NUM_THREADS": "1", **extra}


def test_script_parses_and_wants_a_call_number(tmp_path):
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    done = subprocess.run(["bash", str(SCRIPT)], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: bash scripts/device_gpu.sh 1|2" in done.stderr


def test_the_carried_folders_are_ignored_and_the_wheels_pinned():
    if shutil.which("git") is None or not (paths.ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in (".whl/tensorly-0.10.0-py3-none-any.whl", "data/cifar10-jpeg.tar.gz", "runs/device_out/x"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=paths.ROOT).returncode == 0, path
    makefile = (paths.ROOT / "Makefile").read_text()
    pkgs = re.search(r"^DEVICE_PKGS\s*\?=\s*(.*)$", makefile, re.M).group(1).split()
    pins = (paths.ROOT / "requirements.txt").read_text()
    for pkg in pkgs:
        assert re.search(rf"^{pkg}==\S+$", pins, re.M | re.I), f"{pkg} is not pinned in requirements.txt"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no CUDA")
def test_without_cuda_it_stops_with_a_clear_error(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "1"], env=_env(tmp_path, DRY_RUN="0"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "torch.cuda.is_available() is False" in done.stdout and "DRY_RUN=1" in done.stdout
    summary = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert summary[0] == "stage,status,rc,wall_s,budget_s,note"
    assert summary[-1].startswith("cuda,failed,3,")


def test_dry_run_both_calls(tmp_path):
    """Call 1 (CUDA tests skipped: they skip on CPU anyway) and call 2 on the CPU with tiny sizes."""
    # the stage caps are the GPU's (45-230 s); a loaded shared CPU needs longer just to import torch
    caps = {f"BUDGET_{s}": "420" for s in ("PREFLIGHT", "KSWEEP", "INDIVIDUAL", "PAPER", "ESTIMATE")}
    env = _env(tmp_path, DRY_RUN="1", SKIP_STAGES="tests", TOTAL_S="1800", **caps)
    one = subprocess.run(["bash", str(SCRIPT), "1", "--networks", "1,2"], env=env, capture_output=True, text=True,
                         timeout=1800)
    out = tmp_path / "out"
    assert "[row] ksweep | four_layer base training, 2 at once" in one.stdout, one.stdout + one.stderr
    summary = pd.read_csv(out / "summary.csv")
    status = dict(zip(summary["stage"], summary["status"]))
    assert status["ksweep"] == status["individual"] == "ok", summary
    assert status["tests"] == "skipped"
    assert status["preflight"] in ("ok", "failed")  # no carried CIFAR-10 archive here: its checksum row fails
    rows = pd.read_csv(out / "device_rows.csv")
    assert list(rows.columns) == ROW_COLUMNS
    sweep = rows[rows["stage"] == "ksweep"]
    assert list(sweep["networks"]) == [1, 2] and (sweep["images_per_s"] > 0).all()
    assert sweep["ratio"].iloc[0] == 1.0
    individual = rows[rows["stage"] == "individual"]
    assert len(individual) == 1 and individual["seconds"].iloc[0] > 0
    assert set(rows[rows["stage"] == "preflight"]["case"]) == {"cuda", "compute mode", "/dev/shm free",
                                                             "tensorly import", "data checksum"}
    assert (out / "env.txt").exists()

    two = subprocess.run(["bash", str(SCRIPT), "2", "--epochs", "2"], env=env, capture_output=True, text=True,
                         timeout=1800)
    assert two.returncode == 0, two.stdout + two.stderr
    rows = pd.read_csv(out / "device_rows.csv")  # a fresh file per call
    assert list(rows["stage"]) == ["paper"] * 3
    assert list(rows["case"]) == ["four_layer base", "four_layer gross", "four_layer config"]
    assert (rows["seconds"] > 0).all() and (rows["epochs"] == 2).all()
    estimate = pd.read_csv(out / "paper_gpu_estimate.csv")
    four = estimate[estimate["model"] == "four_layer"].set_index("stage")
    assert four.loc["config", "networks_at_once"] == 2
    s = rows.set_index("case")["seconds"]
    assert four.loc["base", "estimate_s"] == pytest.approx(100 * s["four_layer base"])
    assert four.loc["gross", "estimate_s"] == pytest.approx(5 * 150 * s["four_layer gross"])
    n = four.loc["config", "runs"]
    assert four.loc["config", "estimate_s"] == pytest.approx(-(-n // 2) * 100 * s["four_layer config"])
    assert estimate["estimate_s"].iloc[-1] == pytest.approx(four["estimate_s"].sum())  # VGG-16 not measured
    assert (out / "paper_gpu_estimate.md").exists() and (out / "paper_gpu_estimate.meta.json").exists()
