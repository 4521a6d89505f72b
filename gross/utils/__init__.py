"""Small shared helpers: devices, seeding, atomic writes and provenance."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import platform
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gross.utils import paths

__all__ = [
    "default_device",
    "resolve_device",
    "seed_everything",
    "atomic_save",
    "atomic_write_text",
    "synchronize",
    "provenance",
    "save_table",
    "save_figure",
]


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the queued kernels of ``device`` (CUDA); a no-op elsewhere. Timers call it around timed work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(device=None) -> torch.device:
    """The torch device a ``device`` argument names; the one meaning of ``None`` in gross.

    Parameters
    ----------
    device : torch.device, str or None
        ``None`` or ``"auto"``: CUDA when available, else CPU (:func:`default_device`).
        Anything else is passed to :class:`torch.device` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        An invalid device name, or a CUDA device when CUDA is not available.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not valid: use None, 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use None/'auto' or 'cpu'")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_replace(write, path: Path, mode: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError("... unexpected pos ...")
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OSError(f"writing {path} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                      f"{_free_space(path.parent)} free in {path.parent}. Nothing was half-written: {path} is "
                      "unchanged") from exc
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _free_space(folder: Path) -> str:
    """Free space of ``folder``'s file system, e.g. ``"1.2 GiB"`` (``"unknown"`` if it cannot be read)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.1f} {unit}" if unit != "B" else f"{free} B"
        free /= 1024
    return "unknown"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A crash mid-write never leaves a truncated file at ``path``.
    """
    return _atomic_replace(lambda fh: torch.save(obj, fh), Path(path), "wb")


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    return _atomic_replace(lambda fh: fh.write(text), Path(path), "w")


def _git_hash() -> str:
    """``HEAD`` (``+dirty`` with uncommitted changes to tracked files).

    Where the code runs without its ``.git`` (a copy of the tree on a lent GPU machine),
    ``$GROSS_GIT_COMMIT`` names it (``scripts/device_gpu.sh`` sets it from the commit that
    ``make device-prep`` recorded); else ``"unknown"``.
    """
    fallback = os.environ.get("GROSS_GIT_COMMIT") or "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True, timeout=10
        )
        head = out.stdout.strip() if out.returncode == 0 else ""
        if not head:
            return fallback
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=paths.ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "tensorly", "numpy", "pandas", "matplotlib", "papermill"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _device_name(device: torch.device | str | None) -> str:
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} (torch threads {torch.get_num_threads()})"


def _cpu_model() -> str:
    """The CPU's model name and the instruction set torch's kernels use (e.g. ``"AMD EPYC (AVX512)"``).

    Floating-point results of the same code differ between kernels (AVX2 vs AVX512), and over a
    training run such differences grow into different weights: the results record it.
    """
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch
        capability = "unknown"
    return f"{name} ({capability})"


def provenance(profile: str | None = None, config: dict | None = None, device=None, **extra) -> dict:
    """Everything needed to tell where a result came from.

    Returns
    -------
    dict
        git hash, profile, resolved config, package versions, device, CPU model and the
        instruction set of torch's CPU kernels, host, UTC timestamp, plus any ``extra`` keys
        (e.g. ``wall_time_s``).
    """
    meta = {
        "git": _git_hash(),
        "profile": profile,
        "config": config,
        "versions": _versions(),
        "device": _device_name(device),
        "cpu": _cpu_model(),
        "host": platform.node(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(extra)
    return meta


def _write_meta(meta: dict | None, path: Path) -> None:
    atomic_write_text(json.dumps(meta or provenance(), indent=2, default=str) + "\n", path)


def save_table(df, name: str, meta: dict | None = None, directory: Path | None = None) -> Path:
    """Write ``df`` as ``<name>.csv`` (tidy) and ``<name>.md`` plus ``<name>.meta.json``.

    Returns the CSV path.
    """
    directory = Path(directory or paths.RESULTS)
    csv = atomic_write_text(df.to_csv(index=False), directory / f"{name}.csv")
    try:
        md_text = df.to_markdown(index=False)
    except ImportError:  # tabulate missing
        md_text = df.to_string(index=False)
    atomic_write_text(md_text + "\n", directory / f"{name}.md")
    _write_meta(meta, directory / f"{name}.meta.json")
    return csv


def save_figure(fig, name: str, meta: dict | None = None, directory: Path | None = None, pdf_figure=None) -> Path:
    """Write ``fig`` as ``<name>.png`` and ``<name>.pdf`` plus ``<name>.meta.json``.

    The PNG is ``fig`` cropped to its drawn content (``bbox_inches="tight"``, 150 dpi: the notebook
    look). The PDF is ``pdf_figure`` (default ``fig``) at its own size, uncropped, so its page is
    the figure's size (a figure drawn for a venue's width keeps it), with fonts embedded as
    TrueType (``pdf.fonttype = 42``, no Type 3 fonts). Each file is written under the rc
    parameters its figure was built with (attribute ``gross_rc``, set by :mod:`gross.report.plots`)
    inside ``matplotlib.rc_context``: nothing global changes.

    Returns the PNG path.
    """
    import matplotlib

    directory = Path(directory or paths.FIGURES)
    directory.mkdir(parents=True, exist_ok=True)
    for ext, figure in (("png", fig), ("pdf", fig if pdf_figure is None else pdf_figure)):
        target = directory / f"{name}.{ext}"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=f".{ext}")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        rc = {**getattr(figure, "gross_rc", {}), "pdf.fonttype": 42, "ps.fonttype": 42}
        try:
            with matplotlib.rc_context(rc):
                if ext == "png":
                    figure.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
                else:
                    figure.savefig(tmp, format=ext, dpi=150)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _write_meta(meta, directory / f"{name}.meta.json")
    return directory / f"{name}.png"
