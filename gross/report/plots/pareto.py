"""Pareto-front figures (notebook 08): accuracy against a cost, fronts as steps."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from gross.report.plots.style import PALETTE, _GREY, _axes, _styled

__all__ = ["pareto_figure"]

_LABELS = {"macs": "MACs (millions)", "predicted_ms": "predicted latency (ms)", "measured_ms": "measured latency (ms)"}


def _front_steps(front: pd.DataFrame, x: str) -> tuple[np.ndarray, np.ndarray]:
    """The front as a staircase: the best accuracy reachable at each cost (fronts sorted by cost)."""
    f = front.sort_values(x)
    return f[x].to_numpy(dtype=float), np.maximum.accumulate(f["accuracy"].to_numpy(dtype=float))


@_styled
def pareto_figure(panels: Mapping[str, Mapping], ax=None):
    """Accuracy against cost, one panel per entry: every configuration in grey, fronts as steps.

    Parameters
    ----------
    panels : mapping of str to mapping
        Panel title -> ``{"x": cost column ("macs", "predicted_ms", ...), "all": DataFrame
        or None (every evaluated configuration, drawn grey), "fronts": {label: front
        DataFrame}}``. Every frame needs the ``x`` column and ``accuracy``; MACs are drawn
        in millions.
    ax : matplotlib Axes or sequence of Axes, optional
        One per panel; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not panels:
        raise ValueError("panels must hold at least one panel")
    fig, axes = _axes(ax, 1, len(panels), "pareto_figure", figsize=(4.4 * len(panels), 3.6))
    for a, (title, spec) in zip(np.ravel(axes), panels.items()):
        x = spec["x"]
        scale = 1e6 if x == "macs" else 1.0
        frames = [f for f in [spec.get("all")] + list(spec["fronts"].values()) if f is not None]
        for f in frames:
            missing = {x, "accuracy"} - set(f.columns)
            if missing:
                raise ValueError(f"panel {title!r}: a table is missing columns {sorted(missing)}")
        every = spec.get("all")
        if every is not None:
            a.scatter(every[x] / scale, every["accuracy"], s=6, color=_GREY, alpha=0.6, label="evaluated",
                      rasterized=False)
        for i, (label, front) in enumerate(spec["fronts"].items()):
            xs, ys = _front_steps(front, x)
            color = PALETTE[i % len(PALETTE)]
            a.step(xs / scale, ys, where="post", color=color, lw=1.4, label=f"{label} ({len(front)})")
            a.scatter(xs / scale, ys, s=14, color=color)
        a.set_title(title)
        a.set_xlabel(_LABELS.get(x, x))
        a.set_ylabel("GroSS validation accuracy (%)")
        a.legend(fontsize=7, loc="lower right")
    return fig
