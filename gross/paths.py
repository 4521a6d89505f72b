"""Project paths, built from this file's location (never from the working directory)."""

from pathlib import Path

__all__ = ["ROOT", "NOTEBOOKS", "RESULTS", "FIGURES", "RUNS", "DATA", "CONFIGS", "EXECUTED", "run_dir"]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results"
FIGURES = ROOT / "figures"
RUNS = ROOT / "runs"
DATA = ROOT / "data"
CONFIGS = ROOT / "configs"
EXECUTED = RESULTS / "executed"


def run_dir(profile: str) -> Path:
    """Return (and create) the directory where notebooks of ``profile`` exchange files.

    Parameters
    ----------
    profile : str
        Profile name (``smoke``, ``cpu``, ``paper``).

    Returns
    -------
    pathlib.Path
        ``runs/<profile>``.
    """
    path = RUNS / profile
    path.mkdir(parents=True, exist_ok=True)
    return path
