"""Shared style and helpers of the figure builders (palette, rc style, axes handling, configurations).

Importing this module (which :mod:`gross.report.plots` does first) switches a GUI backend
(Qt, Tk, GTK, wx) or an unset backend to Agg on a Linux machine without a display;
Jupyter's inline backend and an explicitly chosen non-GUI backend are left alone.
It also lets IPython display a :class:`~matplotlib.figure.Figure` as PNG under any
backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
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
from matplotlib.transforms import ScaledTranslation  # noqa: E402

__all__ = ["PALETTE", "OTHER", "ORDINAL_CMAP", "SPACE_TITLES", "STYLE", "STYLES", "FigureStyle", "get_style",
           "current_style", "figure_style", "figure_builder", "can_redraw", "redraw", "panel_axes"]

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

#: Category colours, in order of use: Paul Tol's "muted" qualitative scheme (reordered, its pale grey kept apart
#: as :data:`OTHER`). Checked by a number, not by name: every pair stays at least
#: :data:`gross.report.plots.palette.MIN_DELTA_E` apart in CAM02-UCS under normal vision and after simulating
#: deuteranopia and protanopia (:func:`gross.report.plots.palette.check_colors`, tests/test_palette.py).
PALETTE = ("#332288", "#CC6677", "#117733", "#88CCEE", "#DDCC77", "#882255", "#44AA99", "#999933", "#AA4499")
#: Grey of "everything else" (configurations outside every search region, evaluated points); passes the same check.
OTHER = _GREY = "#c8c8c8"
#: Colour map of ordered categories too many for :data:`PALETTE` (e.g. the layers of a deep network, by depth):
#: its lightness increases monotonically, also after simulating colour-vision deficiencies.
ORDINAL_CMAP = "cividis"

#: Panel titles of Fig. 5 per search-space name.
SPACE_TITLES = {
    "none": "No fine-tuning",
    "partial": "Partial fine-tuning",
    "gross": "GroSS",
}

#: The rc style of notebook figures (fonts, grid, spines); ``matplotlib.rc_context(STYLE)`` styles own axes.
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
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 5,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "mathtext.fontset": "dejavusans",
}

_CM_PER_INCH = 2.54


@dataclasses.dataclass(frozen=True)
class FigureStyle:
    """A target for figures: page widths, fonts and type sizes, drawn at the true size.

    Attributes
    ----------
    name : str
    column_width, full_width : float
        Width in inches of a one-column figure (a single panel) and of a full-width one
        (several panels); equal for one-column venues.
    font_family : str
        ``"serif"`` or ``"sans-serif"``; ``fonts`` are tried in order (all ship with matplotlib).
    mathtext : str
        ``mathtext.fontset`` (``"stix"`` matches STIX text, ``"dejavusans"`` DejaVu Sans).
    font_size, title_size, label_size, tick_size, legend_size, annotation_size : float
        Type sizes in points at the true size. Subscripts in mathtext are 0.7 of their text,
        so text holding them (titles, labels) is at least 9 pt: 6.3 pt subscripts.
    min_panel_width : float
        Narrowest panel in inches: a figure with more panels than fit in a row wraps them into rows
        (the type keeps its size).
    panel_aspect : float
        Height of a panel (with its labels) over its width.
    max_panel_height : float
        Tallest panel in inches.
    """

    name: str
    column_width: float
    full_width: float
    font_family: str = "sans-serif"
    fonts: tuple = ("DejaVu Sans",)
    mathtext: str = "dejavusans"
    font_size: float = 9.0
    title_size: float = 9.0
    label_size: float = 9.0
    tick_size: float = 8.0
    legend_size: float = 8.0
    annotation_size: float = 7.0
    min_panel_width: float = 2.2
    panel_aspect: float = 0.75
    max_panel_height: float = 2.8

    def width(self, kind: str = "full") -> float:
        """Width in inches of a ``"column"`` or ``"full"`` width figure."""
        if kind not in ("column", "full"):
            raise ValueError(f"width must be 'column' or 'full', got {kind!r}")
        return self.column_width if kind == "column" else self.full_width

    def rc(self) -> dict:
        """matplotlib rc parameters of this style (:data:`STYLE` with its fonts and sizes)."""
        family_key = "font.serif" if self.font_family == "serif" else "font.sans-serif"
        return {**_RC, "font.family": self.font_family, family_key: list(self.fonts), "mathtext.fontset": self.mathtext,
                "font.size": self.font_size, "axes.titlesize": self.title_size, "axes.labelsize": self.label_size,
                "xtick.labelsize": self.tick_size, "ytick.labelsize": self.tick_size,
                "legend.fontsize": self.legend_size, "legend.title_fontsize": self.legend_size,
                "lines.linewidth": 1.0, "lines.markersize": 4, "axes.linewidth": 0.6,
                "xtick.major.width": 0.6, "ytick.major.width": 0.6, "pdf.fonttype": 42, "ps.fonttype": 42}


_STIX = dict(font_family="serif", fonts=("STIXGeneral", "DejaVu Serif"), mathtext="stix")

#: The figure targets: ``screen`` (slides, reports: today's notebook look at 8 in), ``lncs`` (Springer LNCS,
#: the paper's venue: 12.2 cm text width), ``ieee`` (two columns: 3.5 in column, 7.16 in text), ``neurips``
#: (5.5 in text). Serif venues use STIX (a Times-like serif that ships with matplotlib).
STYLES = {
    "screen": FigureStyle("screen", column_width=4.5, full_width=8.0, title_size=10.0, min_panel_width=2.6,
                          max_panel_height=3.6),
    "lncs": FigureStyle("lncs", column_width=12.2 / _CM_PER_INCH, full_width=12.2 / _CM_PER_INCH, **_STIX),
    "ieee": FigureStyle("ieee", column_width=3.5, full_width=7.16, **_STIX),
    "neurips": FigureStyle("neurips", column_width=5.5, full_width=5.5, **_STIX),
}

#: Type sizes of notebook figures (no style active): today's look.
_NOTEBOOK_SIZES = {"annotation": 7.0, "small": 8.0, "legend": 8.0, "marker": 1.0}

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("gross_figure_style", default=None)


def get_style(style) -> FigureStyle:
    """The :class:`FigureStyle` named ``style`` (or ``style`` itself); ValueError naming the valid ones."""
    if isinstance(style, FigureStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"unknown figure style {style!r}: valid styles are {sorted(STYLES)}")
    return STYLES[style]


def current_style() -> FigureStyle | None:
    """The style figures are drawn in now (inside :func:`figure_style`), or None: notebook figures."""
    return _ACTIVE.get()


@contextlib.contextmanager
def figure_style(style):
    """Draw the figures built inside this block for ``style`` (a name of :data:`STYLES` or a :class:`FigureStyle`).

    Builders then size figures to the style's widths (one panel: column width; several: full
    width, wrapped into rows when a panel would be narrower than ``min_panel_width``) and use its
    fonts and type sizes; the rc parameters are set only inside the block (``rc_context``).
    """
    style = get_style(style)
    token = _ACTIVE.set(style)
    try:
        with matplotlib.rc_context(style.rc()):
            yield style
    finally:
        _ACTIVE.reset(token)


def _rc() -> dict:
    style = current_style()
    return _RC if style is None else style.rc()


def _join(first: str, second: str) -> str:
    """Two parts of a title: on one line in notebooks, on two under a figure style (narrow panels)."""
    return f"{first}{' ' if current_style() is None else chr(10)}{second}"


def _legend(ax, handles=None, figure_wide: bool = False, **kwargs):
    """A legend: as asked in notebooks; under a figure style below the axes (narrow panels have no room inside).

    Below means under the x tick labels and label (anchored a fixed number of points below the
    axes, so constrained layout makes room for it), in as many columns as fit the panel; when
    panels were wrapped into rows and a cell of the grid is left over, the legend fills it instead.
    ``figure_wide``: the legend applies to every panel; it goes below them all.
    """
    style = current_style()
    if style is None:
        return ax.legend(handles=handles, **kwargs) if handles is not None else ax.legend(**kwargs)
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [h.get_label() for h in handles]
    if not handles:
        return None
    fig = _root(ax)
    spare = getattr(fig, "gross_spare", None)
    if spare:
        return spare.pop(0).legend(handles, labels, loc="center", title=kwargs.get("title"))
    if figure_wide:  # one legend for every panel: below them all, in one row if it fits
        return fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), title=kwargs.get("title"))
    panel_in = ax.get_position().width * fig.get_size_inches()[0]
    entry_in = (max(len(str(lab)) for lab in labels) * 0.5 * style.legend_size + 24) / 72
    ncol = max(1, min(len(handles), int(panel_in // entry_in)))
    below = (style.tick_size + style.label_size + 14) / 72
    offset = ax.transAxes + ScaledTranslation(0, -below, fig.dpi_scale_trans)
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=offset,
                     ncol=ncol, title=kwargs.get("title"), columnspacing=1.0, handletextpad=0.4,
                     borderaxespad=0.0)


def _size(kind: str) -> float:
    """Type size of ``kind`` (``"annotation"``, ``"small"``, ``"legend"``) in the current style.

    ``"marker"``: the factor of the marker areas of highlighted points (baselines, found configurations).
    """
    style = current_style()
    if style is None:
        return _NOTEBOOK_SIZES[kind]
    return {"annotation": style.annotation_size, "small": style.tick_size, "legend": style.legend_size,
            "marker": 0.55}[kind]


# ----------------------------------------------------------------------------- helpers


def _new_figure(nrows=1, ncols=1, figsize=(4.5, 3.2), *, width=None, panel_aspect=None, min_panel_width=None,
                **kwargs) -> tuple[Figure, np.ndarray]:
    """Create a styled figure with a grid of axes, detached from pyplot.

    Without an active style: ``figsize`` (the notebook size). Inside :func:`figure_style`: the style's
    width (``width``: ``"column"``/``"full"``, default column for one panel, full otherwise), panels
    wrapped into rows so that none is narrower than ``min_panel_width`` (default the style's); the
    returned array still has the logical ``(nrows, ncols)`` shape, row-major.
    """
    style = current_style()
    if style is None:
        with matplotlib.rc_context(_RC):
            fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained", **kwargs)
        plt.close(fig)
        fig.gross_rc = dict(_RC)
        return fig, axes
    return _wrapped_grid(style, nrows, ncols, width, panel_aspect, min_panel_width, **kwargs)


def _wrapped_grid(style: FigureStyle, nrows: int, ncols: int, width, panel_aspect, min_panel_width,
                  **kwargs) -> tuple[Figure, np.ndarray]:
    total = style.width(width or ("column" if nrows * ncols == 1 else "full"))
    fit = max(1, int((total + 1e-9) // (min_panel_width or style.min_panel_width)))
    per_row = -(-ncols // fit)  # physical rows per logical row
    pcols = -(-ncols // per_row)
    prows = nrows * per_row
    panel_w = total / pcols
    height = prows * min(panel_w * (panel_aspect or style.panel_aspect), style.max_panel_height)
    if per_row > 1:
        kwargs.get("gridspec_kw", {}).pop("width_ratios", None)
    with matplotlib.rc_context(style.rc()):
        fig, grid = plt.subplots(prows, pcols, figsize=(total, height), squeeze=False, layout="constrained",
                                 **kwargs)
    plt.close(fig)
    fig.gross_rc = style.rc()
    logical = np.empty((nrows, ncols), dtype=object)
    used = set()
    for r in range(nrows):
        for j in range(ncols):
            pos = (r * per_row + j // pcols, j % pcols)
            logical[r, j] = grid[pos]
            used.add(pos)
    fig.gross_spare = []  # cells left over by the wrap: a legend goes there (see _legend), the rest stays blank
    for pos in np.ndindex(prows, pcols):
        if pos not in used:
            grid[pos].set_axis_off()
            fig.gross_spare.append(grid[pos])
    for r, c in used:  # sharex hides x tick labels above another panel: keep them where none is below
        if (r + 1, c) not in used:
            grid[r, c].xaxis.set_tick_params(labelbottom=True)
    return fig, logical


def _root(ax) -> Figure:
    """The top-level Figure holding ``ax`` (also when ``ax`` lives in a SubFigure)."""
    return ax.get_figure(root=True)


def _first_col(ax) -> bool:
    """Whether ``ax`` is in the first column of its grid (gets the y label when panels wrap into rows)."""
    spec = ax.get_subplotspec()
    return spec is None or spec.is_first_col()


def _axes(ax, nrows: int, ncols: int, what: str, figsize=(4.5, 3.2), **kwargs) -> tuple[Figure, np.ndarray]:
    """The axes a builder draws on: a new styled figure, or the caller's axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, sequence of Axes or None
        ``None``: create a figure with an ``nrows`` x ``ncols`` grid (``figsize`` in notebooks,
        the active style's width otherwise; ``kwargs`` go to :func:`_new_figure`).  Otherwise exactly
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
    for key in ("width", "panel_aspect", "min_panel_width"):
        kwargs.pop(key, None)
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
        Figure size in inches of a notebook figure; default ``(4.5 * ncols, 3.4 * nrows)``.
        Inside :func:`figure_style` the style decides the size (its width, panels wrapped
        into rows when too narrow; ``width``, ``panel_aspect``, ``min_panel_width`` may be given).
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


def figure_builder(func):
    """Decorate a function returning a Figure: run it under the current style's rc and make its figure redrawable.

    When the function creates the figure (its ``ax`` argument is None), the figure remembers the
    call, so :func:`redraw` can draw it again for another :class:`FigureStyle` (the outermost
    decorated call wins: a pipeline verb wrapping a builder is redrawn as a whole). The arguments are
    kept by reference (tables are not copied).
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_rc()):
            fig = func(*args, **kwargs)
        try:
            ax = signature.bind_partial(*args, **kwargs).arguments.get("ax")
        except TypeError:
            ax = None
        if ax is None and isinstance(fig, Figure):
            fig.gross_redraw = functools.partial(wrapper, *args, **kwargs)
        return fig

    return wrapper


_styled = figure_builder


def can_redraw(fig) -> bool:
    """Whether ``fig`` was made by a :func:`figure_builder` and can be drawn again for another style."""
    return callable(getattr(fig, "gross_redraw", None))


def redraw(fig: Figure, style) -> Figure:
    """``fig`` drawn again at the true size of ``style`` (a name of :data:`STYLES` or a :class:`FigureStyle`).

    Raises
    ------
    ValueError
        If the style is unknown, or ``fig`` was not made by a :func:`figure_builder` (a figure
        assembled by hand cannot be re-laid out; build it in a decorated function).
    """
    style = get_style(style)
    if not can_redraw(fig):
        raise ValueError("this figure cannot be redrawn for a figure style: it was not made by a function "
                         "decorated with gross.report.plots.figure_builder")
    with figure_style(style):
        return fig.gross_redraw()


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


