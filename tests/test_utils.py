"""Tests for gross.utils (resolve_device; the rest of utils is covered where it is used)."""

import pytest
import torch

from gross import utils
from gross.utils import resolve_device


def test_resolve_device_none_and_auto_mean_default_device(monkeypatch):
    assert resolve_device() == resolve_device(None) == resolve_device("auto") == utils.default_device()
    monkeypatch.setattr(utils, "default_device", lambda: torch.device("cuda", 3))
    assert resolve_device(None) == resolve_device("auto") == torch.device("cuda", 3)


def test_resolve_device_explicit_values():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", 3.5])
def test_resolve_device_rejects_invalid_names(bad):
    with pytest.raises(ValueError, match="is not valid: use None, 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_resolve_device_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available; use None/'auto' or 'cpu'"):
        resolve_device("cuda")


def test_git_hash_falls_back_to_gross_git_commit_without_git(monkeypatch):
    import subprocess

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    monkeypatch.delenv("GROSS_GIT_COMMIT", raising=False)
    assert utils._git_hash() == "unknown"
    monkeypatch.setenv("GROSS_GIT_COMMIT", "0123abc+dirty")
    assert utils._git_hash() == "0123abc+dirty"
    monkeypatch.setattr(subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 128, stdout="", stderr="not a git repository"))
    assert utils._git_hash() == "0123abc+dirty"
