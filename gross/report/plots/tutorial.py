"""Tutorial figures: the weight expansion Ψ (paper Fig. 2) and the cost of grouped convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from gross.report.plots.style import (_GREY, PALETTE, _axes, _format_count, _log2_axis,
                                      _require_columns, _size, _styled)

__all__ = ["fig2_expansion", "grouped_conv_cost_figure"]


def _draw_matrix(ax, matrix, title, row_block, col_block, cmap, vmax) -> None:
    """One weight matrix as a heatmap with its values, group separators and a black frame."""
    values = matrix.numpy()
    masked = np.ma.masked_where(values == 0, values)
    ax.imshow(masked, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="equal")
    ax.grid(False)
    for (i, j), v in np.ndenumerate(values):
        if v != 0:
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=_size("annotation"),
                    color="white" if abs(v) > 0.6 * vmax else "black")
    rows, cols = values.shape
    for r in range(row_block, rows, row_block):
        ax.axhline(r - 0.5, color="black", linewidth=1.0)
    for c in range(col_block, cols, col_block) if col_block else ():
        ax.axvline(c - 0.5, color="black", linewidth=1.0)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("black")
    ax.set_title(title)


@_styled
def fig2_expansion(group_size: int = 1, new_sizes: Sequence[int] = (2, 4), channels: int = 4,
                   seed: int = 0, dense: bool = True, ax=None) -> Figure:
    """Visualise the weight expansion Ψ (paper Fig. 2).

    A random weight ``W`` of a 1×1 grouped convolution with ``channels`` input and
    output channels and groups of ``group_size`` channels (``group_size=1``:
    depthwise, ``W_1``) is expanded with :func:`gross.method.expansion.expand_grouped_weight`
    to every size in ``new_sizes``.  The top row shows the stored weights
    ``(C_out, h)``: each output channel keeps its ``g`` weights at its group's slot
    and gets zeros (light grey) elsewhere; horizontal lines separate groups.  With
    ``dense=True`` a second row shows the equivalent ungrouped ``(C_out, C_in)``
    weights (block diagonal, block outlines drawn): they are identical, which is
    why the convolutions give identical outputs (Eq. 4).

    Parameters
    ----------
    group_size : int, default 1
        ``g`` of the original weight.
    new_sizes : sequence of int, default (2, 4)
        Group sizes ``h`` to expand to (multiples of ``g`` dividing ``channels``).
    channels : int, default 4
        ``C_in = C_out``.
    seed : int, default 0
        Seed of the random weight (values rounded to one decimal for legibility).
    dense : bool, default True
        Also draw the dense block-diagonal equivalents.
    ax : sequence of matplotlib.axes.Axes, optional
        ``(1 + dense) * (1 + len(new_sizes))`` axes to draw on (row-major); by
        default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        ``1 + len(new_sizes)`` panels per row, one or two rows (the figure of
        ``ax`` when given).  The matrices are images (``imshow``).

    Raises
    ------
    ValueError
        If the sizes do not describe valid expansions.
    """
    import torch

    from gross.method.expansion import expand_grouped_weight
    from gross.method.grouped import block_diagonal_weight

    if isinstance(new_sizes, int):
        new_sizes = (new_sizes,)
    new_sizes = tuple(new_sizes)
    if not new_sizes:
        raise ValueError("new_sizes must name at least one group size to expand to, e.g. (2, 4)")
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(group_size, int) or group_size <= 0 or channels % group_size:
        raise ValueError(
            f"group_size must be a positive divisor of channels={channels}, got {group_size!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(channels, group_size, 1, 1, generator=gen, dtype=torch.float64)
    weight = torch.round(weight * 10) / 10
    weight[weight == 0] = 0.1  # keep every stored weight visibly non-zero
    sizes = (group_size,) + new_sizes
    weights = [weight] + [expand_grouped_weight(weight, group_size, h) for h in new_sizes]

    vmax = float(weight.abs().max())
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#f0f0f0")
    nrows = 2 if dense else 1
    # panel widths follow the widest matrix of each column (dense: C_in, else h)
    ratios = [channels if dense else s for s in sizes]
    cell = 0.42  # inches per matrix cell
    fig, axes = _axes(
        ax, nrows, len(sizes), "fig2_expansion",
        figsize=(cell * sum(ratios) + 0.9 * len(sizes) + 0.4, (cell * channels + 1.0) * nrows),
        gridspec_kw={"width_ratios": ratios}, min_panel_width=1.0, panel_aspect=1.45,
    )

    w_name = rf"\mathbf{{W}}_{{{group_size}}}"
    for j, (h, w) in enumerate(zip(sizes, weights)):
        name = f"${w_name}$" if j == 0 else rf"$\Psi_{{{group_size}\rightarrow{h}}}({w_name})$"
        top = axes[0, j]
        _draw_matrix(top, w[:, :, 0, 0], f"{name}\ngroup size {h}", h, 0, cmap, vmax)
        top.set_xlabel("input in group")
        if j == 0:
            top.set_ylabel("output channel")
        if dense:
            ax2 = axes[1, j]
            groups = channels // h
            _draw_matrix(ax2, block_diagonal_weight(w, groups)[:, :, 0, 0],
                         f"dense, {groups} group" + ("s" if groups > 1 else ""), h, h, cmap, vmax)
            ax2.set_xlabel("input channel")
            if j == 0:
                ax2.set_ylabel("output channel")
    return fig


@_styled
def grouped_conv_cost_figure(costs_df: pd.DataFrame, ax=None) -> Figure:
    """Parameters and MACs of a convolution versus its number of groups.

    Parameters
    ----------
    costs_df : pandas.DataFrame
        Output of :func:`gross.method.grouped.grouped_conv_costs` (columns ``groups``,
        ``params``, ``macs``; optional ``group_size``).
    ax : sequence of two matplotlib.axes.Axes, optional
        Axes for the parameter and MAC panels; by default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels (parameters, MACs), log-log (base 2 in the number of groups),
        with the ideal ``cost(G=1) / G`` as a dashed line.
    """
    df = _require_columns(costs_df, ["groups", "params", "macs"], "costs_df").sort_values("groups")
    fig, axes = _axes(ax, 1, 2, "grouped_conv_cost_figure", figsize=(7.0, 2.8), panel_aspect=0.85)
    groups = df["groups"].to_numpy(dtype=float)
    for panel, column, title, color in zip(axes[0], ("params", "macs"), ("Parameters", "MACs"), PALETTE):
        values = df[column].to_numpy(dtype=float)
        dense = values[0] * groups[0]  # cost at G = 1 (extrapolated if 1 is not tabulated)
        if groups[0] == 1:
            dense = values[0]
        panel.plot(groups, dense / groups, linestyle="--", color=_GREY, label="ideal: dense / G")
        panel.plot(groups, values, marker="o", color=color, label=title.lower())
        _log2_axis(panel, groups)
        panel.set_yscale("log")
        panel.yaxis.set_major_locator(LogLocator(base=10))
        panel.yaxis.set_major_formatter(FuncFormatter(_format_count))
        panel.set_xlabel("number of groups G")
        panel.set_ylabel(title)
        panel.set_title(title)
        panel.legend(loc="upper right")
        if "group_size" in df.columns:
            top = panel.secondary_xaxis("top")
            top.set_xticks(list(groups))
            top.set_xticklabels([str(int(s)) for s in df["group_size"]])
            top.xaxis.set_minor_locator(NullLocator())
            top.set_xlabel("channels per group", fontsize=_size("small"))
    return fig
