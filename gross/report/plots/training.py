"""Figures of the decomposition and fine-tuning steps: BTD error per group size, fine-tuning curves."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gross.report.plots.composite import facet
from gross.report.plots.style import (ORDINAL_CMAP, PALETTE, _axes, _join, _label, _log2_axis, _require_columns,
                                      _legend, _root, _size, _styled)

__all__ = ["btd_error_figure", "finetuning_curves"]

@_styled
def btd_error_figure(errors_df: pd.DataFrame, ax=None, by: str | None = None) -> Figure:
    """BTD approximation error versus group size, one line per layer.

    Parameters
    ----------
    errors_df : pandas.DataFrame
        Columns ``layer``, ``group_size``, ``error`` (relative Frobenius error) and
        optionally ``repeat``; the mean ± standard deviation over rows sharing a
        ``(layer, group_size)`` is drawn.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure.
    by : str, optional
        A column of ``errors_df`` (e.g. ``"model"``): one panel per value, side by
        side in one figure (see :func:`gross.report.plots.facet`); ``ax`` must then be None.

    Returns
    -------
    matplotlib.figure.Figure
        One panel (one per value of ``by``); x is the group size on a base-2 log
        axis.  The figure of ``ax`` when given.  Up to ``len(PALETTE)`` layers get
        category colours and a legend; more layers (a deep network) are coloured by
        depth with :data:`ORDINAL_CMAP` (colour-mapped artists) and a colour bar
        naming the layers, since no palette keeps a dozen colours apart for colour-blind readers.
    """
    if by is not None:
        return facet(errors_df, by, btd_error_figure, ax=ax, panel_size=(5.2, 3.8), panel_aspect=1.0)
    df = _require_columns(errors_df, ["layer", "group_size", "error"], "errors_df")
    fig, axes = _axes(ax, 1, 1, "btd_error_figure", figsize=(4.5, 3.2), panel_aspect=0.8)
    ax = axes[0, 0]
    layers = list(dict.fromkeys(df["layer"]))
    stats = [(df[df["layer"] == layer].groupby("group_size")["error"].agg(["mean", "std"]).sort_index())
             for layer in layers]
    if len(layers) <= len(PALETTE):
        for i, (layer, st) in enumerate(zip(layers, stats)):
            ax.errorbar(st.index.to_numpy(dtype=float), st["mean"].to_numpy(), yerr=st["std"].fillna(0.0).to_numpy(),
                        marker="o", capsize=3, color=PALETTE[i], label=str(layer))
        _legend(ax, title="layer")
    else:
        _ordinal_errors(ax, layers, stats)
    _log2_axis(ax, df["group_size"].unique())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("group size s")
    ax.set_ylabel(r"relative error $\|W-\hat W\|_F\,/\,\|W\|_F$")
    n_rep = int(df.groupby(["layer", "group_size"]).size().max())
    ax.set_title(_join("BTD approximation error", f"(mean ± std, {n_rep} repeats)") if n_rep > 1
                 else "BTD approximation error")
    return fig


def _ordinal_errors(ax, layers: list, stats: list) -> None:
    """Mean ± std per layer coloured by depth (colour-mapped collections) with a colour bar naming the layers."""
    n = len(layers)
    cmap = matplotlib.colormaps[ORDINAL_CMAP].resampled(n)
    norm = BoundaryNorm(np.arange(n + 1) - 0.5, n)
    lines, errs, eidx, px, py, pidx = [], [], [], [], [], []
    for i, st in enumerate(stats):
        x, y, s = st.index.to_numpy(dtype=float), st["mean"].to_numpy(), st["std"].fillna(0.0).to_numpy()
        lines.append(np.column_stack([x, y]))
        errs += [[(xi, yi - si), (xi, yi + si)] for xi, yi, si in zip(x, y, s) if si > 0]
        eidx += [i] * int((s > 0).sum())
        px += list(x)
        py += list(y)
        pidx += [i] * len(x)
    for segments, index, gid in ((lines, range(n), "layers"), (errs, eidx, "std")):
        if segments:
            coll = LineCollection(segments, cmap=cmap, norm=norm, gid=gid)
            coll.set_array(np.asarray(index, dtype=float))
            ax.add_collection(coll)
    points = ax.scatter(px, py, c=pidx, cmap=cmap, norm=norm, s=14, zorder=3, gid="means")
    ax.autoscale_view()
    bar = _root(ax).colorbar(points, ax=ax, pad=0.02, aspect=30)
    step = max(1, -(-n // 8))
    bar.set_ticks(range(0, n, step), labels=[str(layers[i]) for i in range(0, n, step)])
    bar.ax.tick_params(labelsize=_size("annotation"), length=2)
    bar.set_label("layer (by depth)", fontsize=_size("small"))


_LABEL_COLUMNS = ("config_label", "label", "configuration", "config", "series")


@_styled
def finetuning_curves(history: pd.DataFrame, ax=None, by: str | None = None) -> Figure:
    """Validation accuracy (and training loss) per epoch during fine-tuning.

    Accepts either a *wide* history with one column per series, every column whose
    name starts with ``val_acc`` (e.g. ``val_acc_largest``, ``val_acc_smallest``)
    and optionally ``train_loss*`` columns; or a *long* history with a label column
    (``config_label``, ``label``, ``configuration``, ``config`` or ``series``) and
    ``val_acc`` (``train_loss``) columns.  ``epoch`` is used for x when present.

    Parameters
    ----------
    history : pandas.DataFrame
        The history, wide or long (see above).
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        One Axes (accuracy), or two when ``history`` has ``train_loss*`` columns;
        by default a new figure.
    by : str, optional
        A column of ``history`` (e.g. ``"model"``): one row of panels per value in
        one figure (see :func:`gross.report.plots.facet`); ``ax`` must then be None.

    Returns
    -------
    matplotlib.figure.Figure
        One panel of accuracies, plus one of training losses when present (the
        figure of ``ax`` when given).

    Raises
    ------
    ValueError
        If no ``val_acc*`` column exists.
    """
    if not isinstance(history, pd.DataFrame) or history.empty:
        raise ValueError("history must be a non-empty DataFrame with 'epoch' and 'val_acc*' columns")
    if by is not None:
        panels = 1 + any(str(c).startswith("train_loss") for c in history.columns)
        return facet(history, by, finetuning_curves, ax=ax, panels=panels, panel_size=(4.2, 3.0), panel_aspect=1.0)
    df = history.copy()
    if "epoch" not in df.columns:
        df["epoch"] = np.arange(1, len(df) + 1)
    label_col = next((c for c in _LABEL_COLUMNS if c in df.columns), None)
    acc_cols = [c for c in df.columns if str(c).startswith("val_acc")]
    loss_cols = [c for c in df.columns if str(c).startswith("train_loss")]
    if not acc_cols:
        raise ValueError(f"history has no 'val_acc*' column to plot: columns are {list(df.columns)}")

    def series(columns, prefix):
        """[(label, epochs, values)] for every (label group, column) pair with data."""
        out = []
        groups = df.groupby(label_col, sort=False) if label_col else [(None, df)]
        for name, part in groups:
            part = part.sort_values("epoch")
            for col in columns:
                y = pd.to_numeric(part[col], errors="coerce")
                ok = y.notna().to_numpy()
                if not ok.any():
                    continue
                parts = [] if name is None else [_label(name) if isinstance(name, tuple) else str(name)]
                suffix = str(col)[len(prefix):].strip("_ ")
                if suffix:
                    parts.append(suffix)
                elif len(columns) > 1:
                    parts.append("mean")  # gross.training.loop logs val_acc as the mean of val_acc_<label>
                out.append((" ".join(parts), part["epoch"].to_numpy()[ok], y.to_numpy()[ok]))
        return out

    panels = [("validation accuracy (%)", series(acc_cols, "val_acc"))]
    if loss_cols:
        panels.append(("training loss", series(loss_cols, "train_loss")))
    fig, axes = _axes(ax, 1, len(panels), "finetuning_curves", figsize=(4.2 * len(panels), 3.0), panel_aspect=1.0)
    for panel, (ylabel, lines) in zip(axes[0], panels):
        for i, (label, x, y) in enumerate(lines):
            panel.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3,
                       color=PALETTE[i % len(PALETTE)], label=label)
        panel.set_xlabel("epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.set_ylabel(ylabel)
        if any(label for label, _, _ in lines):
            _legend(panel)
    axes[0, 0].set_title("GroSS fine-tuning")
    return fig
