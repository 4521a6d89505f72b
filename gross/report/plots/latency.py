"""Latency figures (notebook 06): measured latency against MACs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gross.report.plots.style import PALETTE, _axes, _first_col, _join, _styled

__all__ = ["latency_vs_macs_figure"]


@_styled
def latency_vs_macs_figure(df: pd.DataFrame, ax=None):
    """Measured latency (ms) against MACs, one panel per batch size, Spearman in each title.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``batch_size, macs, measured_s`` (e.g. the ``latency_all_configs`` table).
    ax : matplotlib Axes or sequence of Axes, optional
        One per batch size; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from gross.search.latency import spearman

    missing = {"batch_size", "macs", "measured_s"} - set(df.columns)
    if missing:
        raise ValueError(f"df is missing columns {sorted(missing)}; pass the latency_all_configs table")
    batches = sorted(df["batch_size"].unique())
    fig, axes = _axes(ax, 1, len(batches), "latency_vs_macs_figure", figsize=(4.2 * len(batches), 3.6))
    for i, (a, b) in enumerate(zip(np.ravel(axes), batches)):
        part = df[df["batch_size"] == b]
        a.scatter(part["macs"] / 1e6, part["measured_s"] * 1e3, s=10, alpha=0.7, color=PALETTE[0])
        rho = spearman(part["macs"], part["measured_s"]) if len(part) > 1 else float("nan")
        a.set_title(_join(f"batch {b}:", f"Spearman(MACs, latency) = {rho:.2f}"))
        a.set_xlabel("MACs (millions, per image)")
        if i == 0 or _first_col(a):
            a.set_ylabel("measured latency (ms per batch)")
    return fig
