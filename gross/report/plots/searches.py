"""Search figures: exhaustive search (paper Fig. 3), breadth-first searches (Fig. 4), search vs true (Fig. 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from gross.report.plots.style import (_GREY, PALETTE, SPACE_TITLES, _axes, _config_key, _config_list, _first_col,
                                      _format_count, _join, _label, _legend, _lookup, _require_columns, _size, _styled,
                                      _with_keys, current_style)

__all__ = ["fig3_exhaustive_search", "fig4_bfs", "fig5_search_vs_true"]

def _norm_label(value) -> str:
    """Label of a baseline given as a configuration, a label string or an int MAC budget."""
    try:
        return _label(value)
    except ValueError:
        return str(value)


def _try_key(value) -> tuple[int, ...] | None:
    try:
        return _config_key(value)
    except ValueError:
        return None


def _num(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value


def _search_entries(baselines, found, lookup: pd.DataFrame, budgets: Mapping | None = None) -> list[dict]:
    """Normalise the ``baselines`` / ``found`` arguments of the search figures.

    Returns one dict per baseline with ``label``, ``key`` (configuration or None),
    ``budget`` (MACs), ``accuracy`` (NaN if unknown) and ``found`` (configuration or
    None), ``found_macs``, ``found_accuracy``.  Missing numbers are looked up by
    configuration in ``lookup`` (a frame with ``_key``, ``macs``, ``accuracy``), budgets
    in ``budgets`` (label -> MACs).
    """
    if isinstance(baselines, Mapping):  # one ``best`` dict, or a dict of columns
        is_columns = all(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in baselines.values()) \
            and "baseline" in baselines and not isinstance(baselines["baseline"], tuple)
        baselines = pd.DataFrame(dict(baselines)) if is_columns else [baselines]
    if isinstance(baselines, list) and baselines and all(isinstance(b, Mapping) for b in baselines):
        baselines = pd.DataFrame(baselines)
    entries: list[dict] = []

    def entry(label_source, budget=np.nan, accuracy=np.nan, found_key=None, found_macs=np.nan,
              found_acc=np.nan) -> dict:
        return {"label": _norm_label(label_source), "key": _try_key(label_source), "budget": _num(budget),
                "accuracy": _num(accuracy), "found": found_key, "found_macs": _num(found_macs),
                "found_accuracy": _num(found_acc)}

    if isinstance(baselines, pd.DataFrame):
        df = baselines
        if "role" in df.columns:
            _require_columns(df, ["config", "role"], "baselines")
            roles = df["role"].astype(str).str.lower()
            for _, row in df[roles == "baseline"].iterrows():
                entries.append(entry(row["config"], row.get("macs"), row.get("accuracy")))
            found_df = df[roles == "found"]
            if found is None and not found_df.empty:
                if "baseline" in found_df.columns:
                    found = {_norm_label(b): c for b, c in zip(found_df["baseline"], found_df["config"])}
                else:
                    found = list(found_df["config"])
        elif "baseline" in df.columns:  # search results: one ``best`` dict per baseline
            for _, row in df.iterrows():
                has_found = "config" in df.columns and row["config"] is not None
                entries.append(entry(
                    row["baseline"], row.get("budget"), row.get("baseline_accuracy"),
                    _config_key(row["config"]) if has_found else None,
                    row.get("macs") if has_found else np.nan,
                    row.get("accuracy") if has_found else np.nan,
                ))
        else:
            _require_columns(df, ["config"], "baselines")
            for _, row in df.iterrows():
                entries.append(entry(row["config"], row.get("macs"), row.get("accuracy")))
    elif baselines is not None:
        entries = [entry(k) for k in _config_list(baselines, "baselines") if k is not None]
    if not entries:
        raise ValueError("baselines must name at least one configuration, e.g. [(32, 32, 32)], "
                         "or be the search results (dicts with 'baseline' and 'config')")

    if isinstance(found, Mapping):
        by_label = {_norm_label(k): v for k, v in found.items()}
        for e in entries:
            if e["label"] in by_label and by_label[e["label"]] is not None:
                e["found"] = _config_key(by_label[e["label"]])
    elif found is not None:
        found_list = _config_list(found, "found")
        if len(found_list) != len(entries):
            raise ValueError(f"found must give one configuration per baseline ({len(entries)}), "
                             f"got {len(found_list)}")
        for e, f in zip(entries, found_list):
            e["found"] = f

    for e in entries:
        rows = lookup[lookup["_key"] == e["key"]] if e["key"] is not None else lookup.iloc[:0]
        if np.isnan(e["budget"]) and budgets and e["label"] in budgets:
            e["budget"] = _num(budgets[e["label"]])
        if np.isnan(e["budget"]) and not rows.empty:
            e["budget"] = float(rows["macs"].mean())
        if np.isnan(e["accuracy"]) and not rows.empty:
            e["accuracy"] = float(rows["accuracy"].mean())
        if np.isnan(e["budget"]):
            raise ValueError(
                f"the MACs of baseline {e['label']!r} are unknown: it is not in the table; pass "
                f"baselines with 'macs' (or the search results, which carry 'budget')"
            )
        if e["found"] is not None and (np.isnan(e["found_macs"]) or np.isnan(e["found_accuracy"])):
            r = _lookup(lookup, e["found"], "found")
            e["found_macs"], e["found_accuracy"] = float(r["macs"]), float(r["accuracy"])
    return entries


def _search_legend(ax, colors_labels, with_found: bool, loc="lower right") -> None:
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=l) for c, l in colors_labels]
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                          markeredgecolor="black", markersize=8, label="baseline"))
    if with_found:
        handles.append(Line2D([], [], marker="*", linestyle="", markerfacecolor="white",
                              markeredgecolor="black", markersize=11, label="found"))
    ax.legend(handles=handles, loc=loc)


def _mark(ax, xs, ys, colors, labels, gid: str, marker: str, s: float, linewidths: float, zorder: int,
          xytext, **text) -> None:
    """Labelled black-edged markers (baselines, found configurations); nothing when ``xs`` is empty."""
    if not xs:
        return
    ax.scatter(xs, ys, s=s, marker=marker, color=colors, edgecolors="black", linewidths=linewidths,
               zorder=zorder, gid=gid)
    for label, px, py in zip(labels, xs, ys):
        ax.annotate(label, (px, py), xytext=xytext, textcoords="offset points", fontsize=_size("annotation"), **text)


@_styled
def fig3_exhaustive_search(table: pd.DataFrame, baselines, found=None, x: str = "macs", ax=None) -> Figure:
    """Exhaustive search (paper Fig. 3): accuracy versus MACs of every configuration.

    Each baseline defines a search region, the configurations whose total MACs do
    not exceed the baseline's.  Regions are nested; each configuration is coloured
    by the cheapest baseline whose region contains it (configurations more
    expensive than every baseline are grey).  Baselines are drawn as circles and
    the found configurations as stars, in their search's colour.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``config``, ``macs``, ``accuracy`` (and ``gconv_macs`` for
        ``x="gconv_macs"``), e.g. the table of :func:`gross.search.algorithms.exhaustive`;
        rows repeated per configuration (repeats) are averaged.
    baselines : sequence of configurations, list of dicts or pandas.DataFrame
        Baseline configurations; or the search results (the ``best`` dicts of
        :func:`gross.search.algorithms.exhaustive`, columns ``baseline``, ``budget``,
        ``config``, ...: the found configuration is ``config``); or a DataFrame
        with columns ``config`` and ``role`` (``"baseline"`` / ``"found"``, an
        optional ``baseline`` column pairing each found configuration with its
        baseline).
    found : sequence of configurations or mapping, optional
        Found configurations, paired with ``baselines`` by position (or a mapping
        baseline -> found).  Overrides those carried by ``baselines``.
    x : str, default "macs"
        Column for the x axis (``"gconv_macs"`` for G.Conv MACs).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        One panel (the figure of ``ax`` when given).  Artist ``gid``\\ s: ``"configs"`` (grey, if any),
        ``"region:<label>"`` (one per baseline), ``"baselines"``, ``"found"``.
    """
    df = _require_columns(table, ["config", "macs", x, "accuracy"], "table")
    agg = {"macs": "mean", "accuracy": "mean"}
    agg[x] = "mean"
    df = _with_keys(df).groupby("_key", sort=False).agg(agg).reset_index()
    entries = sorted(_search_entries(baselines, found, df), key=lambda e: e["budget"])
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(entries))]

    def x_of(key, macs):
        if x == "macs" or key is None:
            return macs
        rows = df[df["_key"] == key]
        return float(rows[x].mean()) if not rows.empty else np.nan

    fig, axes = _axes(ax, 1, 1, "fig3_exhaustive_search", figsize=(5.2, 3.8), panel_aspect=0.8)
    ax = axes[0, 0]
    macs = df["macs"].to_numpy(dtype=float)
    assigned = np.zeros(len(df), dtype=bool)
    for e, color in zip(entries, colors):
        inside = (macs <= e["budget"]) & ~assigned
        assigned |= inside
        ax.scatter(df.loc[inside, x], df.loc[inside, "accuracy"], s=14, alpha=0.75, color=color,
                   edgecolors="none", gid=f"region:{e['label']}", zorder=2)
    if (~assigned).any():
        ax.scatter(df.loc[~assigned, x], df.loc[~assigned, "accuracy"], s=14, alpha=0.6,
                   color=_GREY, edgecolors="none", gid="configs", zorder=1)

    known = [(e, c) for e, c in zip(entries, colors) if not np.isnan(e["accuracy"])]
    _mark(ax, [x_of(e["key"], e["budget"]) for e, _ in known], [e["accuracy"] for e, _ in known],
          [c for _, c in known], [e["label"] for e, _ in known], gid="baselines", marker="o",
          s=90 * _size("marker"),
          linewidths=1.0, zorder=4, xytext=(4, -10))
    stars = [(e, c) for e, c in zip(entries, colors) if e["found"] is not None]
    _mark(ax, [x_of(e["found"], e["found_macs"]) for e, _ in stars], [e["found_accuracy"] for e, _ in stars],
          [c for _, c in stars], [_label(e["found"]) for e, _ in stars], gid="found", marker="*",
          s=190 * _size("marker"),
          linewidths=0.8, zorder=5, xytext=(4, 5), fontweight="bold")

    ax.xaxis.set_major_formatter(FuncFormatter(_format_count))
    ax.set_xlabel("G.Conv MACs" if x == "gconv_macs" else "MACs")
    ax.set_ylabel("GroSS validation accuracy (%)")
    ax.set_title("Exhaustive search")
    _search_legend(ax, [(c, f"search ≤ {e['label']}") for e, c in zip(entries, colors)], bool(stars))
    return fig


@_styled
def fig4_bfs(trace: pd.DataFrame, baselines=None, found=None, ax=None) -> Figure:
    """Breadth-first searches (paper Fig. 4), one panel per baseline.

    Each panel shows every configuration evaluated by the searches below one
    baseline (in that search's colour), the path of selected configurations of
    every run (black lines), the MAC budget (dotted line), the baseline (circle)
    and the found configuration (star).

    Parameters
    ----------
    trace : pandas.DataFrame
        Columns ``baseline`` (the configuration or label the search was run for),
        ``run``, ``step``, ``config``, ``macs``, ``accuracy``, ``selected`` (bool:
        the configuration moved to at that step) and optionally ``budget``, one row
        per evaluated configuration (the trace of :func:`gross.search.algorithms.bfs`;
        several searches concatenated).
    baselines : sequence, list of dicts or pandas.DataFrame, optional
        As in :func:`fig3_exhaustive_search`; with the search results (``best``
        dicts) the baseline accuracy comes from ``baseline_accuracy`` and the
        found configuration from ``config``.  By default every baseline of the
        trace is drawn, its accuracy looked up in the trace (no circle when the
        baseline itself was never evaluated).
    found : sequence or mapping, optional
        Found configuration per baseline.  Defaults to those in ``baselines``, else
        the most accurate evaluated configuration within the budget.
    ax : sequence of matplotlib.axes.Axes, optional
        One Axes per baseline; by default a new figure (panels sharing y).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per baseline, ordered by budget (the figure of ``ax`` when given).  Artist ``gid``\\ s per panel:
        ``"evaluated"``, ``"path"`` (one line per run), ``"baseline"``, ``"found"``.
    """
    cols = ["baseline", "run", "step", "config", "macs", "accuracy", "selected"]
    df = _with_keys(_require_columns(trace, cols, "trace"))
    df["_base"] = [_norm_label(b) for b in df["baseline"]]
    budgets = (df.groupby("_base", sort=False)["budget"].max().to_dict() if "budget" in df.columns else {})
    if baselines is None:
        baselines = pd.DataFrame({"baseline": list(dict.fromkeys(df["_base"]))})
    entries = sorted(_search_entries(baselines, found, df, budgets), key=lambda e: e["budget"])

    n = len(entries)
    fig, axes = _axes(ax, 1, n, "fig4_bfs", figsize=(4.2 * n, 3.6), sharey=True, panel_aspect=1.0)
    for i, (ax, e) in enumerate(zip(axes[0], entries)):  # noqa: B020 (ax is replaced by its panels)
        color = PALETTE[i % len(PALETTE)]
        part = df[df["_base"] == e["label"]]
        if part.empty:
            raise ValueError(f"trace has no rows for baseline {e['label']!r}; its baselines are "
                             f"{list(dict.fromkeys(df['_base']))}")
        ax.scatter(part["macs"], part["accuracy"], s=10, alpha=0.35, color=color,
                   edgecolors="none", gid="evaluated", label="evaluated")
        selected = part[part["selected"].astype(bool)]
        for j, (_, run) in enumerate(selected.groupby("run", sort=True)):
            run = run.sort_values("step")
            ax.plot(run["macs"], run["accuracy"], color="black", alpha=0.55, linewidth=0.8,
                    marker=".", markersize=4, gid="path", label="search path" if j == 0 else None)
        ax.axvline(e["budget"], color=color, linestyle=":", linewidth=1.0, label="budget")
        if not np.isnan(e["accuracy"]):
            ax.scatter([e["budget"]], [e["accuracy"]], s=90 * _size("marker"), marker="o", color=color,
                       edgecolors="black", linewidths=1.0, zorder=4, gid="baseline", label="baseline")
        if e["found"] is None:
            pool = part[part["macs"] <= e["budget"]]
            if not pool.empty:
                best = pool.loc[pool["accuracy"].idxmax()]
                e.update(found=best["_key"], found_macs=float(best["macs"]),
                         found_accuracy=float(best["accuracy"]))
        if e["found"] is not None:
            ax.scatter([e["found_macs"]], [e["found_accuracy"]], s=190 * _size("marker"), marker="*", color=color,
                       edgecolors="black", linewidths=0.8, zorder=5, gid="found", label="found")
        if e["found"] is not None and (current_style() is None or len(_label(e["found"])) <= 20):
            ax.annotate(_label(e["found"]), (e["found_macs"], e["found_accuracy"]), xytext=(-6, 7),
                        textcoords="offset points", fontsize=_size("annotation"), fontweight="bold", ha="right")
        ax.xaxis.set_major_formatter(FuncFormatter(_format_count))
        ax.set_xlabel("MACs")
        ax.set_title(_join("baseline", e["label"]), fontsize=9)
        if i == 0 or _first_col(ax):
            ax.set_ylabel("GroSS validation accuracy (%)")
        if i == 0:
            _legend(ax, loc="best", figure_wide=True)
    return fig


@_styled
def fig5_search_vs_true(df: pd.DataFrame, spaces: Sequence[str] | None = None, ax=None) -> Figure:
    """Search-space accuracy versus true accuracy (paper Fig. 5), one panel per space.

    Parameters
    ----------
    df : pandas.DataFrame
        Long format with columns ``config``, ``space``, ``search_acc`` and
        ``true_acc`` (rows repeated per ``(config, space)`` are averaged).  A wide
        table with ``config``, ``true_acc`` and one accuracy column per space
        (``none``, ``partial``, ``gross``, ...) is also accepted.
    spaces : sequence of str, optional
        Panels to draw, in order.  Defaults to ``none, partial, gross`` (those
        present) followed by any other space in order of appearance.
    ax : sequence of matplotlib.axes.Axes, optional
        One Axes per space; by default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        One square panel per space with the ideal ``y = x`` line; shared axes
        limits (the figure of ``ax`` when given).
    """
    if isinstance(df, pd.DataFrame) and "space" not in df.columns and "true_acc" in df.columns:
        value_cols = [c for c in df.columns if c not in ("config", "true_acc")
                      and pd.api.types.is_numeric_dtype(df[c])]
        df = df.melt(id_vars=["config", "true_acc"], value_vars=value_cols,
                     var_name="space", value_name="search_acc")
    data = _require_columns(df, ["config", "space", "search_acc", "true_acc"], "df")
    data = _with_keys(data).groupby(["space", "_key"], sort=False)[["search_acc", "true_acc"]] \
        .mean().reset_index()
    present = list(dict.fromkeys(data["space"]))
    if spaces is None:
        spaces = [s for s in SPACE_TITLES if s in present] + [s for s in present if s not in SPACE_TITLES]
    else:
        unknown = [s for s in spaces if s not in present]
        if unknown:
            raise ValueError(f"spaces {unknown} are not in df: its spaces are {present}")
    values = data[["search_acc", "true_acc"]].to_numpy(dtype=float)
    lo, hi = np.nanmin(values), np.nanmax(values)
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    lim = (lo - pad, hi + pad)

    n = len(spaces)
    fig, axes = _axes(ax, 1, n, "fig5_search_vs_true", figsize=(3.0 * n + 0.4, 3.2), sharex=True, sharey=True,
                      min_panel_width=1.45, panel_aspect=1.2)
    for i, (ax, space) in enumerate(zip(axes[0], spaces)):  # noqa: B020
        part = data[data["space"] == space]
        ax.plot(lim, lim, linestyle="--", color="black", linewidth=0.8, gid="identity")
        ax.scatter(part["true_acc"], part["search_acc"], s=16, alpha=0.8,
                   color=PALETTE[i % len(PALETTE)], edgecolors="none", gid="configs")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(SPACE_TITLES.get(str(space), str(space)))
        ax.set_xlabel("true accuracy (%)")
        if i == 0 or _first_col(ax):
            ax.set_ylabel("search-space accuracy (%)")
    return fig
