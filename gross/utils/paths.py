"""Project paths, built from this file's location (never from the working directory).

Where outputs go depends on the profile: the ``cpu`` and ``paper`` profiles write the
paper's tables to ``results/`` and figures to ``figures/`` (committed; each file has a
``.meta.json`` naming the profile that made it); the ``smoke`` profile (used by the
tests) writes them under ``runs/smoke/`` so a test never overwrites committed results.
The environment variable ``GROSS_RUNS`` moves the ``runs/`` folder (checkpoints and
intermediate files exchanged between notebooks); ``GROSS_OUTPUTS`` sends the tables
and figures of every profile to ``$GROSS_OUTPUTS/results`` and ``$GROSS_OUTPUTS/figures``
instead (e.g. a partial ``paper`` run on another machine that must not mix with the
committed ``cpu`` results). Executed copies of the notebooks (``make reproduce``) follow
the same variables (:func:`executed_dir`).
"""

import os
import re
from pathlib import Path

__all__ = [
    "ROOT", "NOTEBOOKS", "RESULTS", "FIGURES", "DATA", "CONFIGS", "EXECUTED",
    "check_profile_name", "runs_root", "run_dir", "results_dir", "figures_dir", "executed_dir",
]

ROOT = Path(__file__).resolve().parents[2]  # gross/utils/paths.py -> the repository
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results"
FIGURES = ROOT / "figures"
DATA = ROOT / "data"
CONFIGS = ROOT / "configs"
EXECUTED = RESULTS / "executed"

#: Profiles whose tables and figures are written to the committed ``results/`` and ``figures/``.
PUBLISHED_PROFILES = ("cpu", "paper")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_profile_name(profile) -> str:
    """Return ``profile`` if it is a plain name (letters, digits, ``_``, ``-``), else raise ``ValueError``.

    Every folder below is ``<root>/<profile>``: a name with ``/``, ``..`` or a leading dot would
    put files outside the configured folders, so it is refused before anything is written.
    """
    if not isinstance(profile, str) or not _NAME.fullmatch(profile):
        raise ValueError(f"profile {profile!r} is not a profile name: use the name of a file in {CONFIGS} "
                         "without '.toml' (letters, digits, '_' and '-'; never a path)")
    return profile


def runs_root() -> Path:
    """``runs/`` (or ``$GROSS_RUNS``): checkpoints and files exchanged between notebooks."""
    return Path(os.environ.get("GROSS_RUNS", ROOT / "runs"))


def run_dir(profile: str) -> Path:
    """Return (and create) ``runs/<profile>``, where notebooks of ``profile`` exchange files."""
    path = runs_root() / check_profile_name(profile)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _outputs(profile: str, kind: str, published: Path) -> Path:
    check_profile_name(profile)
    if os.environ.get("GROSS_OUTPUTS"):
        return Path(os.environ["GROSS_OUTPUTS"]) / kind
    return published if profile in PUBLISHED_PROFILES else run_dir(profile) / kind


def results_dir(profile: str) -> Path:
    """Where tables of ``profile`` go: ``results/`` for cpu/paper, else ``runs/<profile>/results``.

    ``$GROSS_OUTPUTS/results`` when that environment variable is set.
    """
    path = _outputs(profile, "results", RESULTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(profile: str) -> Path:
    """Where figures of ``profile`` go: ``figures/`` for cpu/paper, else ``runs/<profile>/figures``.

    ``$GROSS_OUTPUTS/figures`` when that environment variable is set.
    """
    path = _outputs(profile, "figures", FIGURES)
    path.mkdir(parents=True, exist_ok=True)
    return path


def executed_dir(profile: str) -> Path:
    """Where executed copies of the notebooks of ``profile`` go (created).

    ``results/executed/<profile>`` for cpu/paper (committed beside the tables they made), else
    ``runs/<profile>/executed``; ``$GROSS_OUTPUTS/executed/<profile>`` when that environment
    variable is set.
    """
    if os.environ.get("GROSS_OUTPUTS"):
        path = Path(os.environ["GROSS_OUTPUTS"]) / "executed" / check_profile_name(profile)
    else:
        path = _outputs(profile, "executed", EXECUTED / profile)
    path.mkdir(parents=True, exist_ok=True)
    return path
