"""scripts/device_gpu.sh (issue 13's checks on a lent GPU) and `make device-prep`: what can be checked on CPU.

The script itself runs on the GPU machine only; here: its syntax, that every name it passes to
gross exists (bench groups, pipeline steps, executor settings), that what it carries is
git-ignored and pinned, and its clear failure where there is no CUDA.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from gross.utils import paths
from gross.bench import BENCHMARKS
from gross.runs.jobs import executor_settings

SCRIPT = paths.ROOT / "scripts" / "device_gpu.sh"


def _default(name: str) -> str:
    match = re.search(rf"^export {name}=\$\{{{name}:-([^}}]*)\}}$", SCRIPT.read_text(), re.M)
    assert match, f"no default for {name} in {SCRIPT}"
    return match.group(1)


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_names_the_script_passes_exist():
    spec = importlib.util.spec_from_file_location("paper_four_layer", paths.ROOT / "scripts" / "paper_four_layer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert _default("PAPER_STEPS").split(",") == list(script.STEPS)
    assert {"batched", "packed"} <= set(BENCHMARKS)
    ex = executor_settings({}, environ={"GROSS_EXECUTOR": _default("PAPER_EXECUTOR")})
    assert (ex.name, ex.gpus, ex.threads) == ("local", 1, 1) and ex.workers <= ex.workers_per_gpu
    assert set(_default("STAGES").split(",")) == {"env", "tests", "batched", "packed", "data", "paper"}
    for stage in _default("STAGES").split(","):
        assert f"stage_{stage}() {{" in SCRIPT.read_text()


def test_the_carried_folders_are_ignored_and_the_wheels_pinned():
    if shutil.which("git") is None or not (paths.ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in (".whl/tensorly-0.10.0-py3-none-any.whl", "data/cifar10-jpeg.tar.gz", "runs/device/x"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=paths.ROOT).returncode == 0, path
    makefile = (paths.ROOT / "Makefile").read_text()
    pkgs = re.search(r"^DEVICE_PKGS\s*\?=\s*(.*)$", makefile, re.M).group(1).split()
    pins = (paths.ROOT / "requirements.txt").read_text()
    for pkg in pkgs:
        assert re.search(rf"^{pkg}==\S+$", pins, re.M | re.I), f"{pkg} is not pinned in requirements.txt"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no CUDA")
def test_without_cuda_it_stops_with_a_clear_error(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "STAGES": "none", "PYTHON": sys.executable,
           "WORK": str(tmp_path / "work"), "SITE": str(tmp_path / "site"), "DRY_RUN": "0"}
    (tmp_path / "work").mkdir()
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "torch.cuda.is_available() is False" in done.stdout and "DRY_RUN=1" in done.stdout
    summary = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert summary[0] == "stage,status,rc,wall_s,budget_s,note"
    assert summary[-1].startswith("cuda,failed,3,")
    assert (tmp_path / "out" / "device_gpu.log").exists()
