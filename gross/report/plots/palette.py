"""Colour-blind checks of figure colours, by a number: CAM02-UCS distances after simulating colour-vision deficiency.

A palette is called colour-blind safe here only when every pair of its colours stays at least
:data:`MIN_DELTA_E` apart in CAM02-UCS (the perceptually uniform space of CIECAM02; ΔE is the
Euclidean distance there) under normal vision and after simulating deuteranopia and protanopia
(Machado et al. 2009 at full severity, as implemented by ``colorspacious``). Colour maps of
ordered quantities are checked instead for a lightness that increases monotonically under
every simulation (:func:`ordinal_lightness`).

``colorspacious`` is imported inside the functions (it is a test and reporting dependency, not
needed to draw figures).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex, to_rgb

__all__ = ["MIN_DELTA_E", "VISIONS", "simulate", "delta_e_table", "check_colors", "ordinal_lightness",
           "figure_category_colors"]

#: Smallest CAM02-UCS ΔE allowed between two category colours of one figure.
MIN_DELTA_E = 10.0

#: Vision simulations checked: name -> colorspacious CVD type (None: normal vision).
VISIONS = {"normal": None, "deuteranopia": "deuteranomaly", "protanopia": "protanomaly"}


def _rgb(colors: Sequence) -> np.ndarray:
    try:
        return np.array([to_rgb(c) for c in colors], dtype=float).reshape(-1, 3)
    except ValueError as exc:
        raise ValueError(f"colors must be matplotlib colours (e.g. '#332288', 'black'): {exc}") from None


def simulate(colors: Sequence, vision: str) -> np.ndarray:
    """sRGB (0-1) of ``colors`` as seen with ``vision`` (a key of :data:`VISIONS`; full severity)."""
    from colorspacious import cspace_convert

    if vision not in VISIONS:
        raise ValueError(f"unknown vision {vision!r}: expected one of {list(VISIONS)}")
    rgb = _rgb(colors)
    if VISIONS[vision] is None:
        return rgb
    space = {"name": "sRGB1+CVD", "cvd_type": VISIONS[vision], "severity": 100}
    return np.clip(cspace_convert(rgb, space, "sRGB1"), 0.0, 1.0)


def _ucs(rgb: np.ndarray) -> np.ndarray:
    from colorspacious import cspace_convert

    return np.asarray(cspace_convert(rgb, "sRGB1", "CAM02-UCS"), dtype=float).reshape(-1, 3)


def delta_e_table(colors: Sequence) -> pd.DataFrame:
    """CAM02-UCS ΔE of every pair of ``colors`` under each vision of :data:`VISIONS`.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a, b`` (hex), one ΔE column per vision and ``min`` (the smallest),
        sorted by ``min``.
    """
    hexes = list(dict.fromkeys(to_hex(c) for c in _rgb(colors)))
    per_vision = {v: _ucs(simulate(hexes, v)) for v in VISIONS}
    rows = []
    for i, j in itertools.combinations(range(len(hexes)), 2):
        row = {"a": hexes[i], "b": hexes[j]}
        row.update({v: float(np.linalg.norm(u[i] - u[j])) for v, u in per_vision.items()})
        row["min"] = min(row[v] for v in VISIONS)
        rows.append(row)
    df = pd.DataFrame(rows, columns=["a", "b", *VISIONS, "min"])
    return df.sort_values("min", kind="stable").reset_index(drop=True)


def check_colors(colors: Sequence, threshold: float = MIN_DELTA_E) -> float:
    """The smallest ΔE of :func:`delta_e_table`; ValueError naming the closest pair when below ``threshold``.

    Fewer than two distinct colours pass (``inf``).
    """
    table = delta_e_table(colors)
    if table.empty:
        return float("inf")
    worst = table.iloc[0]
    if worst["min"] < threshold:
        vision = min(VISIONS, key=lambda v: worst[v])
        raise ValueError(f"colours {worst['a']} and {worst['b']} are only ΔE {worst['min']:.1f} apart in CAM02-UCS "
                         f"({vision}); category colours must be at least {threshold} apart")
    return float(worst["min"])


def ordinal_lightness(cmap, n: int) -> pd.DataFrame:
    """CAM02-UCS lightness J' of ``n`` colours sampled evenly from ``cmap`` under each vision.

    An ordered quantity drawn with ``cmap`` stays readable when every column increases strictly.
    """
    import matplotlib

    cmap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (colours sampled), got {n!r}")
    colors = cmap(np.linspace(0.0, 1.0, n))[:, :3]
    return pd.DataFrame({v: _ucs(simulate(colors, v))[:, 0] for v in VISIONS})


def _opaque(rgba) -> list[str]:
    arr = np.asarray(rgba, dtype=float).reshape(-1, 4) if np.size(rgba) else np.empty((0, 4))
    return [to_hex(c[:3]) for c in arr if c[3] > 0]


def figure_category_colors(fig) -> list[str]:
    """Distinct colours (hex, alpha ignored) of the category artists drawn in ``fig``.

    Lines (and their markers), collections not drawn through a colour map (scatter points,
    error bars) and patches of every axes; images, colour-mapped collections, legends, grids and
    text are left out, and so is white (the background).
    """
    found: list[str] = []
    for ax in fig.axes:
        for line in ax.get_lines():
            found += _opaque([to_rgb(line.get_color()) + (1.0,)])
            face = line.get_markerfacecolor()
            if line.get_marker() not in (None, "None", "", " ") and not (isinstance(face, str) and face == "none"):
                found += _opaque([to_rgb(face) + (1.0,)])
        for coll in ax.collections:
            if coll.get_array() is not None:
                continue  # drawn through a colour map: an ordered quantity, not categories
            if not len(coll.get_paths()) or not len(coll.get_offsets()):
                continue  # nothing drawn (e.g. a colour bar's dividers)
            found += _opaque(coll.get_facecolors()) + _opaque(coll.get_edgecolors())
        for patch in ax.patches:
            found += _opaque([patch.get_facecolor()])
    return [c for c in dict.fromkeys(found) if c != "#ffffff"]
