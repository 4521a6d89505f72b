"""Shared pytest setup: headless plotting, a sane thread count, and a private ``runs/`` folder.

- ``MPLBACKEND=Agg`` so figures never need a display.
- torch uses ``GROSS_TEST_THREADS`` threads (default: at most 2); the unit tests use tiny
  tensors, where more threads only add contention on shared CI machines.
- ``GROSS_RUNS`` points at a session temporary folder (and ``GROSS_OUTPUTS`` is unset),
  so no test writes into the repository's ``runs/`` or a caller's output folder; the ``gross_runs`` fixture gives a test its own fresh folder.
- ``smoke_four_layer_runs``: a smoke ``runs/`` with the 4-layer base network, its GroSS decomposition
  and GroSS fine-tune, built once per session; ``prepared`` gives each test module its own copy.
"""

import os
import shutil
from pathlib import Path

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


@pytest.fixture(scope="session")
def smoke_four_layer_runs(tmp_path_factory):
    """A smoke ``runs/`` folder with the 4-layer base network, its decomposition and GroSS fine-tune.

    Built once per test session, serially (``$GROSS_EXECUTOR`` unset). Tests never write into
    it: they copy it (``prepared``, or ``shutil.copytree``).
    """
    from gross.pipeline import base, decomposition, finetune
    from gross.runs import config

    tmp = tmp_path_factory.mktemp("smoke_four_layer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp / "runs"))
        mp.setenv("GROSS_OUTPUTS", str(tmp / "out"))
        mp.delenv("GROSS_EXECUTOR", raising=False)
        cfg = config.load("smoke", device="cpu")
        base.base_models(cfg, models=["four_layer"])
        decomposition.btd_error_table(cfg, models=["four_layer"])
        finetune.finetune_gross_models(cfg, models=["four_layer"])
    return tmp / "runs"


@pytest.fixture(scope="module")
def prepared(smoke_four_layer_runs, tmp_path_factory):
    """This test module's own copy of ``smoke_four_layer_runs``: a folder holding ``runs/`` and ``out/``.

    ``$GROSS_RUNS`` and ``$GROSS_OUTPUTS`` point there (and ``$GROSS_EXECUTOR`` is unset) for the
    module's tests, so what one module adds to its runs/ never reaches another module.
    """
    tmp = tmp_path_factory.mktemp("prepared")
    shutil.copytree(smoke_four_layer_runs, tmp / "runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp / "runs"))
        mp.setenv("GROSS_OUTPUTS", str(tmp / "out"))
        mp.delenv("GROSS_EXECUTOR", raising=False)
        yield tmp


class _RunsCode:
    """What a crafted pickle carries: unpickling it calls ``Path.write_text`` (writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


@pytest.fixture
def code_in_a_pickle(tmp_path):
    """``(obj, marker)``: pickling ``obj`` and loading it unsafely would write the file ``marker``."""
    marker = tmp_path / "marker"
    return _RunsCode(marker), marker


@pytest.fixture
def load_script():
    """``load_script("name")``: the module ``scripts/<name>.py`` (scripts are not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def batched_rows(monkeypatch):
    """Count (and optionally kill at) the epoch rows :mod:`gross.training.batched` writes.

    ``batched_rows(kill_after=n)`` patches ``batched._history_row`` so that once ``n``
    rows (networks x epochs) are written the next raises ``KeyboardInterrupt("killed")``
    (a run killed mid-epoch, after its last checkpoint); ``batched_rows()`` only counts.
    Returns the list that gets one entry per row written.
    """
    import gross.training.batched as batched

    original = batched._history_row

    def arm(kill_after: int | None = None) -> list:
        calls = []

        def row(*args):
            calls.append(1)
            if kill_after is not None and len(calls) > kill_after:
                raise KeyboardInterrupt("killed")
            return original(*args)

        monkeypatch.setattr(batched, "_history_row", row)
        return calls

    return arm
