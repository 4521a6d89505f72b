"""Shared pytest setup: headless plotting, a sane thread count, and a private ``runs/`` folder.

- ``MPLBACKEND=Agg`` so figures never need a display.
- torch uses ``GROSS_TEST_THREADS`` threads (default: at most 2); the unit tests use tiny
  tensors, where more threads only add contention on shared CI machines.
- ``GROSS_RUNS`` points at a session temporary folder (and ``GROSS_OUTPUTS`` is unset),
  so no test writes into the repository's ``runs/`` or a caller's output folder; the ``gross_runs`` fixture gives a test its own fresh folder.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("GROSS_TEST_THREADS", min(2, os.cpu_count() or 1))))


@pytest.fixture(scope="session", autouse=True)
def _session_runs(tmp_path_factory):
    """Point ``$GROSS_RUNS`` at a session temporary folder for the whole test run.

    ``$GROSS_OUTPUTS`` is unset, so smoke-profile tables never land in a caller's output folder.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp_path_factory.mktemp("runs")))
        mp.delenv("GROSS_OUTPUTS", raising=False)
        yield


@pytest.fixture
def gross_runs(tmp_path, monkeypatch):
    """A fresh, empty ``$GROSS_RUNS`` folder for one test; returns its path."""
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("GROSS_RUNS", str(path))
    return path
