"""Composite figures assembled from axes: one panel (or row of panels) per group of a table.

Every builder of :mod:`gross.report.plots` draws into given axes (``ax=``), so a figure
with several results side by side is made by handing each builder its own axes
of one figure; nothing is rasterised, and line and scatter plots stay vector
graphics in a PDF.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
from matplotlib.figure import Figure

from gross.report.plots.style import _axes, _require_columns

__all__ = ["facet"]


def facet(data: pd.DataFrame, by: str, plot: Callable[..., Figure], *, panels: int = 1,
          order: Sequence | None = None, panel_size: tuple[float, float] = (4.5, 3.4), ax=None,
          panel_aspect: float | None = None, **kwargs) -> Figure:
    """One figure with ``plot`` drawn once per value of column ``by``.

    Parameters
    ----------
    data : pandas.DataFrame
        The table, with a column ``by``.
    by : str
        Column whose values define the groups (e.g. ``"model"``).
    plot : callable
        A builder of :mod:`gross.report.plots` (any callable ``plot(part, ax=..., **kwargs)``).
    panels : int, default 1
        Number of axes ``plot`` draws per group.  With one, the groups are laid out
        side by side; with more, one row per group.
    order : sequence, optional
        Group values to draw, in order; default: every value of ``by`` in order of
        appearance.
    panel_size : (float, float), default (4.5, 3.4)
        Size of one panel in inches in a notebook figure.
    panel_aspect : float, optional
        Height over width of a panel under a figure style (:func:`gross.report.plots.figure_style`,
        which sets the width); default the style's.
    ax : sequence of matplotlib.axes.Axes, optional
        ``panels * len(groups)`` axes to draw on; by default a new figure.
    **kwargs
        Passed to ``plot``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; the first panel of each group is titled with the group value
        (before the title ``plot`` gave it).

    Raises
    ------
    ValueError
        If ``by`` is not a column, ``order`` names a value not in it, or ``ax`` has
        the wrong number of axes.
    """
    _require_columns(data, [by], "data")
    present = list(dict.fromkeys(data[by]))
    groups = present if order is None else list(order)
    missing = [g for g in groups if g not in present]
    if missing or not groups:
        raise ValueError(f"order must name values of column {by!r}: got {missing or groups}, "
                         f"its values are {present}")
    if not isinstance(panels, int) or panels < 1:
        raise ValueError(f"panels must be a positive integer (axes per group), got {panels!r}")
    shape = (1, len(groups)) if panels == 1 else (len(groups), panels)
    fig, axes = _axes(ax, *shape, "facet", figsize=(panel_size[0] * shape[1], panel_size[1] * shape[0]),
                      panel_aspect=panel_aspect)
    rows = axes.reshape(len(groups), panels)
    for group, row in zip(groups, rows):
        plot(data[data[by] == group], ax=row[0] if panels == 1 else list(row), **kwargs)
        title = row[0].get_title()
        row[0].set_title(f"{group}\n{title}" if title else str(group))
    return fig
