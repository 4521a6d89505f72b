"""Shared style and helpers of the figure builders (palette, rc style, axes handling, configurations).

Importing this module (which :mod:`gross.report.plots` does first) switches a GUI backend
(Qt, Tk, GTK, wx) or an unset backend to Agg on a Linux machine without a display;
Jupyter's inline backend and an explicitly chosen non-GUI backend are left alone.
It also lets IPython display a :class:`~matplotlib.figure.Figure` as PNG under any
backend.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Sequence

import matplotlib

_GUI_BACKEND_PREFIXES = ("gtk", "qt", "tk", "wx")


def _use_agg_if_headless() -> None:
    """Switch to Agg when no display is available and the backend would need one."""
    if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    try:
        current = matplotlib.rcParams._get_backend_or_none()  # None: not chosen yet ("auto")
    except AttributeError:  # pragma: no cover - older matplotlib
        current = matplotlib.rcParams.get("backend")
    if current is None or current.lower().startswith(_GUI_BACKEND_PREFIXES):
        matplotlib.use("Agg")


_use_agg_if_headless()

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

__all__ = ["PALETTE", "SPACE_TITLES", "STYLE", "panel_axes"]




def _register_ipython_display() -> None:
    """Let IPython show a Figure as PNG under any backend.

    Jupyter's inline backend registers this formatter itself, but a kernel started
    with ``MPLBACKEND=Agg`` (as ``make reproduce`` and the tests do) has none, and a
    cell ending with a figure would only print ``<Figure size ...>``.  An existing
    formatter is never replaced.
    """
    if "IPython" not in sys.modules:
        return
    ip = sys.modules["IPython"].get_ipython()
    if ip is None:
        return
    formatter = ip.display_formatter.formatters.get("image/png")
    if formatter is None:
        return
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        from IPython.core.pylabtools import print_figure

        formatter.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


_register_ipython_display()

#: Colour-blind safe palette (seaborn "colorblind"), used in this order for searches / series.
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
           "#56b4e9", "#ece133")
_GREY = "#b0b0b0"

#: Panel titles of Fig. 5 per search-space name.
SPACE_TITLES = {
    "none": "No fine-tuning",
    "partial": "Partial fine-tuning",
    "gross": "GroSS",
}

#: The rc style of every figure (fonts, grid, spines); ``matplotlib.rc_context(STYLE)`` styles own axes.
STYLE = _RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 5,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,
    "mathtext.fontset": "dejavusans",
}


# ----------------------------------------------------------------------------- helpers


def _new_figure(nrows=1, ncols=1, figsize=(4.5, 3.2), **kwargs) -> tuple[Figure, np.ndarray]:
    """Create a styled figure with a grid of axes, detached from pyplot."""
    with matplotlib.rc_context(_RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False,
                                 layout="constrained", **kwargs)
    plt.close(fig)
    return fig, axes


def _root(ax) -> Figure:
    """The top-level Figure holding ``ax`` (also when ``ax`` lives in a SubFigure)."""
    return ax.get_figure(root=True)


def _axes(ax, nrows: int, ncols: int, what: str, figsize=(4.5, 3.2), **kwargs) -> tuple[Figure, np.ndarray]:
    """The axes a builder draws on: a new styled figure, or the caller's axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, sequence of Axes or None
        ``None``: create a figure with an ``nrows`` x ``ncols`` grid (``figsize``,
        ``kwargs`` go to :func:`matplotlib.pyplot.subplots`).  Otherwise exactly
        ``nrows * ncols`` axes (one Axes when one panel is drawn), filled row-major.
    what : str
        Name of the builder, for the error message.

    Returns
    -------
    (Figure, numpy.ndarray)
        The top-level figure and a ``(nrows, ncols)`` array of axes.
    """
    if ax is None:
        return _new_figure(nrows, ncols, figsize=figsize, **kwargs)
    n = nrows * ncols
    flat = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object))) \
        if isinstance(ax, (Sequence, np.ndarray)) else None
    if flat is None or len(flat) != n or not all(isinstance(a, Axes) for a in flat):
        need = "one matplotlib Axes" if n == 1 else f"a sequence of {n} matplotlib Axes"
        got = f"{len(flat)} item(s)" if flat is not None else type(ax).__name__
        raise ValueError(f"{what} draws {n} panel(s): ax must be {need} (or None for a new figure), got {got}")
    return _root(flat[0]), np.array(flat, dtype=object).reshape(nrows, ncols)


def panel_axes(nrows: int = 1, ncols: int = 1, figsize=None, **kwargs) -> tuple[Figure, np.ndarray]:
    """A new figure in the package style with a grid of axes, to assemble composite figures.

    Parameters
    ----------
    nrows, ncols : int, default 1
        Grid shape.
    figsize : (float, float), optional
        Figure size in inches; default ``(4.5 * ncols, 3.4 * nrows)``.
    **kwargs
        Passed to :func:`matplotlib.pyplot.subplots` (``sharey``, ``gridspec_kw``...).

    Returns
    -------
    (Figure, numpy.ndarray)
        The figure (constrained layout, detached from pyplot) and a ``(nrows, ncols)``
        array of axes; pass them to builders with ``ax=``.
    """
    if not (isinstance(nrows, int) and isinstance(ncols, int) and nrows > 0 and ncols > 0):
        raise ValueError(f"nrows and ncols must be positive integers, got {nrows!r} and {ncols!r}")
    return _new_figure(nrows, ncols, figsize=figsize or (4.5 * ncols, 3.4 * nrows), **kwargs)


def _styled(func):
    """Run a builder under the package's rc style (fonts, grid, spines)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper


def _require_columns(df, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame with columns {list(columns)}, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} is missing columns {missing}: expected columns {list(columns)}, got {list(df.columns)}"
        )
    if df.empty:
        raise ValueError(f"{what} is empty: expected at least one row with columns {list(columns)}")
    return df


def _config_key(config) -> tuple[int, ...]:
    """Normalise a configuration (tuple, list, array, int or string) to a tuple of ints."""
    if isinstance(config, str):
        parts = [p for p in re.split(r"[\s,;_\-()\[\]]+", config) if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"cannot read configuration {config!r}: expected group sizes such as '(32, 16, 64)' "
                f"or '32 16 64'"
            ) from None
    if isinstance(config, (int, np.integer)):
        return (int(config),)
    try:
        return tuple(int(c) for c in config)
    except (TypeError, ValueError):
        raise ValueError(
            f"cannot read configuration {config!r}: expected a sequence of group sizes such as (32, 16, 64)"
        ) from None


def _label(config) -> str:
    """Paper-style label of a configuration: ``"32 16 64"``."""
    return " ".join(str(c) for c in _config_key(config))


def _format_count(value, _pos=None) -> str:
    """``5_090_000 -> '5.09M'``, ``74_900 -> '74.9k'``, ``4.75e9 -> '4.75B'``."""
    value = float(value)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}"


def _log2_axis(ax, values) -> None:
    """Base-2 log x axis with a tick at every given value."""
    ticks = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _with_keys(df: pd.DataFrame, column: str = "config") -> pd.DataFrame:
    out = df.copy()
    out["_key"] = [_config_key(c) for c in out[column]]
    return out


def _lookup(table: pd.DataFrame, config, what: str) -> pd.Series:
    """Row of ``table`` (with ``_key``) for ``config``; the mean over duplicates."""
    key = _config_key(config)
    rows = table[table["_key"] == key]
    if rows.empty:
        raise ValueError(
            f"{what} configuration {_label(key)!r} is not in the table; "
            f"pass configurations that appear in its 'config' column"
        )
    return rows.mean(numeric_only=True)


def _config_list(value, what: str) -> list[tuple[int, ...] | None]:
    """A list of configurations from one configuration or a sequence of them (``None`` kept)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, np.integer)):
        return [_config_key(value)]
    if isinstance(value, pd.Series):
        value = value.tolist()
    if not isinstance(value, Sequence) and not isinstance(value, np.ndarray):
        raise ValueError(f"{what} must be a configuration or a sequence of configurations, got {value!r}")
    items = list(value)
    if items and all(isinstance(v, (int, np.integer)) for v in items):
        return [_config_key(items)]  # a single configuration such as (32, 32, 32)
    return [None if v is None else _config_key(v) for v in items]


