"""Figure builders for the GroSS reproduction (paper Figs. 2-5 and tutorial figures).

Every builder takes plain values or tidy :class:`pandas.DataFrame` objects and
returns a :class:`matplotlib.figure.Figure`; nothing is shown or saved here (use
:func:`gross.utils.save_figure`).  The figures are created through pyplot and
then released from pyplot's figure manager (``plt.close``): a notebook cell that
ends with the figure displays it exactly once, and building many figures in a
script leaks nothing.

On a Linux machine without a display, importing this module switches a GUI
backend (Qt, Tk, GTK, wx) or an unset backend to Agg; Jupyter's inline backend
and an explicitly chosen non-GUI backend are left alone.

Configurations (tuples of group sizes, one per decomposed layer) may be given as
tuples, lists or strings such as ``"(32, 16, 64)"`` or ``"32 16 64"`` (e.g. read
back from CSV); they are labelled like the paper, ``"32 16 64"``.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Mapping, Sequence

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
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator  # noqa: E402

__all__ = [
    "PALETTE",
    "SPACE_TITLES",
    "fig2_expansion",
    "grouped_conv_cost_figure",
    "btd_error_figure",
    "finetuning_curves",
    "fig3_exhaustive_search",
    "fig4_bfs",
    "fig5_search_vs_true",
]


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

_RC = {
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


# ----------------------------------------------------------------------------- tutorial figures


@_styled
def fig2_expansion(group_size: int = 1, new_sizes: Sequence[int] = (2, 4), channels: int = 4,
                   seed: int = 0, dense: bool = True) -> Figure:
    """Visualise the weight expansion Ψ (paper Fig. 2).

    A random weight ``W`` of a 1×1 grouped convolution with ``channels`` input and
    output channels and groups of ``group_size`` channels (``group_size=1``:
    depthwise, ``W_1``) is expanded with :func:`gross.expansion.expand_grouped_weight`
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

    Returns
    -------
    matplotlib.figure.Figure
        ``1 + len(new_sizes)`` panels per row, one or two rows.

    Raises
    ------
    ValueError
        If the sizes do not describe valid expansions.
    """
    import torch

    from gross.expansion import expand_grouped_weight
    from gross.grouped import block_diagonal_weight

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
    fig, axes = _new_figure(
        nrows, len(sizes),
        figsize=(cell * sum(ratios) + 0.9 * len(sizes) + 0.4, (cell * channels + 1.0) * nrows),
        gridspec_kw={"width_ratios": ratios},
    )

    def draw(ax, matrix, title, row_block, col_block):
        values = matrix.numpy()
        masked = np.ma.masked_where(values == 0, values)
        ax.imshow(masked, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="equal")
        ax.grid(False)
        for (i, j), v in np.ndenumerate(values):
            if v != 0:
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
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

    w_name = rf"\mathbf{{W}}_{{{group_size}}}"
    for j, (h, w) in enumerate(zip(sizes, weights)):
        name = f"${w_name}$" if j == 0 else rf"$\Psi_{{{group_size}\rightarrow{h}}}({w_name})$"
        ax = axes[0, j]
        draw(ax, w[:, :, 0, 0], f"{name}\ngroup size {h}", row_block=h, col_block=0)
        ax.set_xlabel("input in group")
        if j == 0:
            ax.set_ylabel("output channel")
        if dense:
            ax2 = axes[1, j]
            groups = channels // h
            draw(ax2, block_diagonal_weight(w, groups)[:, :, 0, 0], f"dense, {groups} group" + ("s" if groups > 1 else ""),
                 row_block=h, col_block=h)
            ax2.set_xlabel("input channel")
            if j == 0:
                ax2.set_ylabel("output channel")
    return fig


@_styled
def grouped_conv_cost_figure(costs_df: pd.DataFrame) -> Figure:
    """Parameters and MACs of a convolution versus its number of groups.

    Parameters
    ----------
    costs_df : pandas.DataFrame
        Output of :func:`gross.grouped.grouped_conv_costs` (columns ``groups``,
        ``params``, ``macs``; optional ``group_size``).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels (parameters, MACs), log-log (base 2 in the number of groups),
        with the ideal ``cost(G=1) / G`` as a dashed line.
    """
    df = _require_columns(costs_df, ["groups", "params", "macs"], "costs_df").sort_values("groups")
    fig, axes = _new_figure(1, 2, figsize=(7.0, 2.8))
    groups = df["groups"].to_numpy(dtype=float)
    for ax, column, title, color in zip(axes[0], ("params", "macs"), ("Parameters", "MACs"), PALETTE):
        values = df[column].to_numpy(dtype=float)
        dense = values[0] * groups[0]  # cost at G = 1 (extrapolated if 1 is not tabulated)
        if groups[0] == 1:
            dense = values[0]
        ax.plot(groups, dense / groups, linestyle="--", color=_GREY, label="ideal: dense / G")
        ax.plot(groups, values, marker="o", color=color, label=title.lower())
        _log2_axis(ax, groups)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.yaxis.set_major_formatter(FuncFormatter(_format_count))
        ax.set_xlabel("number of groups G")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.legend(loc="upper right")
        if "group_size" in df.columns:
            top = ax.secondary_xaxis("top")
            top.set_xticks(list(groups))
            top.set_xticklabels([str(int(s)) for s in df["group_size"]])
            top.xaxis.set_minor_locator(NullLocator())
            top.set_xlabel("channels per group", fontsize=8)
    return fig


@_styled
def btd_error_figure(errors_df: pd.DataFrame) -> Figure:
    """BTD approximation error versus group size, one line per layer.

    Parameters
    ----------
    errors_df : pandas.DataFrame
        Columns ``layer``, ``group_size``, ``error`` (relative Frobenius error) and
        optionally ``repeat``; the mean ± standard deviation over rows sharing a
        ``(layer, group_size)`` is drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One panel; x is the group size on a base-2 log axis.
    """
    df = _require_columns(errors_df, ["layer", "group_size", "error"], "errors_df")
    fig, axes = _new_figure(figsize=(4.5, 3.2))
    ax = axes[0, 0]
    layers = list(dict.fromkeys(df["layer"]))
    for i, layer in enumerate(layers):
        stats = (df[df["layer"] == layer].groupby("group_size")["error"]
                 .agg(["mean", "std", "count"]).sort_index())
        std = stats["std"].fillna(0.0).to_numpy()
        ax.errorbar(stats.index.to_numpy(dtype=float), stats["mean"].to_numpy(), yerr=std,
                    marker="o", capsize=3, color=PALETTE[i % len(PALETTE)], label=str(layer))
    _log2_axis(ax, df["group_size"].unique())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("group size s")
    ax.set_ylabel(r"relative error $\|W-\hat W\|_F\,/\,\|W\|_F$")
    n_rep = int(df.groupby(["layer", "group_size"]).size().max())
    ax.set_title("BTD approximation error" + (f" (mean ± std, {n_rep} repeats)" if n_rep > 1 else ""))
    ax.legend(title="layer")
    return fig


_LABEL_COLUMNS = ("config_label", "label", "configuration", "config", "series")


@_styled
def finetuning_curves(history: pd.DataFrame) -> Figure:
    """Validation accuracy (and training loss) per epoch during fine-tuning.

    Accepts either a *wide* history with one column per series, every column whose
    name starts with ``val_acc`` (e.g. ``val_acc_largest``, ``val_acc_smallest``)
    and optionally ``train_loss*`` columns; or a *long* history with a label column
    (``config_label``, ``label``, ``configuration``, ``config`` or ``series``) and
    ``val_acc`` (``train_loss``) columns.  ``epoch`` is used for x when present.

    Returns
    -------
    matplotlib.figure.Figure
        One panel of accuracies, plus one of training losses when present.

    Raises
    ------
    ValueError
        If no ``val_acc*`` column exists.
    """
    if not isinstance(history, pd.DataFrame) or history.empty:
        raise ValueError("history must be a non-empty DataFrame with 'epoch' and 'val_acc*' columns")
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
                    parts.append("mean")  # gross.train logs val_acc as the mean of val_acc_<label>
                out.append((" ".join(parts), part["epoch"].to_numpy()[ok], y.to_numpy()[ok]))
        return out

    panels = [("validation accuracy (%)", series(acc_cols, "val_acc"))]
    if loss_cols:
        panels.append(("training loss", series(loss_cols, "train_loss")))
    fig, axes = _new_figure(1, len(panels), figsize=(4.2 * len(panels), 3.0))
    for ax, (ylabel, lines) in zip(axes[0], panels):
        for i, (label, x, y) in enumerate(lines):
            ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3,
                    color=PALETTE[i % len(PALETTE)], label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        if any(label for label, _, _ in lines):
            ax.legend()
    axes[0, 0].set_title("GroSS fine-tuning")
    return fig


# ----------------------------------------------------------------------------- search figures


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


@_styled
def fig3_exhaustive_search(table: pd.DataFrame, baselines, found=None, x: str = "macs") -> Figure:
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
        ``x="gconv_macs"``), e.g. the table of :func:`gross.search.exhaustive`;
        rows repeated per configuration (repeats) are averaged.
    baselines : sequence of configurations, list of dicts or pandas.DataFrame
        Baseline configurations; or the search results (the ``best`` dicts of
        :func:`gross.search.exhaustive`, columns ``baseline``, ``budget``,
        ``config``, ...: the found configuration is ``config``); or a DataFrame
        with columns ``config`` and ``role`` (``"baseline"`` / ``"found"``, an
        optional ``baseline`` column pairing each found configuration with its
        baseline).
    found : sequence of configurations or mapping, optional
        Found configurations, paired with ``baselines`` by position (or a mapping
        baseline -> found).  Overrides those carried by ``baselines``.
    x : str, default "macs"
        Column for the x axis (``"gconv_macs"`` for G.Conv MACs).

    Returns
    -------
    matplotlib.figure.Figure
        One panel.  Artist ``gid``\\ s: ``"configs"`` (grey, if any),
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

    fig, axes = _new_figure(figsize=(5.2, 3.8))
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
    if known:
        bx = [x_of(e["key"], e["budget"]) for e, _ in known]
        by = [e["accuracy"] for e, _ in known]
        ax.scatter(bx, by, s=90, marker="o", color=[c for _, c in known], edgecolors="black",
                   linewidths=1.0, zorder=4, gid="baselines")
        for (e, _), px, py in zip(known, bx, by):
            ax.annotate(e["label"], (px, py), xytext=(4, -10), textcoords="offset points", fontsize=7)
    stars = [(e, c) for e, c in zip(entries, colors) if e["found"] is not None]
    if stars:
        fx = [x_of(e["found"], e["found_macs"]) for e, _ in stars]
        fy = [e["found_accuracy"] for e, _ in stars]
        ax.scatter(fx, fy, s=190, marker="*", color=[c for _, c in stars], edgecolors="black",
                   linewidths=0.8, zorder=5, gid="found")
        for (e, _), px, py in zip(stars, fx, fy):
            ax.annotate(_label(e["found"]), (px, py), xytext=(4, 5), textcoords="offset points",
                        fontsize=7, fontweight="bold")

    ax.xaxis.set_major_formatter(FuncFormatter(_format_count))
    ax.set_xlabel("G.Conv MACs" if x == "gconv_macs" else "MACs")
    ax.set_ylabel("GroSS validation accuracy (%)")
    ax.set_title("Exhaustive search")
    _search_legend(ax, [(c, f"search ≤ {e['label']}") for e, c in zip(entries, colors)], bool(stars))
    return fig


@_styled
def fig4_bfs(trace: pd.DataFrame, baselines=None, found=None) -> Figure:
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
        per evaluated configuration (the trace of :func:`gross.search.bfs`;
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

    Returns
    -------
    matplotlib.figure.Figure
        One panel per baseline, ordered by budget.  Artist ``gid``\\ s per panel:
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
    fig, axes = _new_figure(1, n, figsize=(4.2 * n, 3.6), sharey=True)
    for i, (ax, e) in enumerate(zip(axes[0], entries)):
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
            ax.scatter([e["budget"]], [e["accuracy"]], s=90, marker="o", color=color,
                       edgecolors="black", linewidths=1.0, zorder=4, gid="baseline", label="baseline")
        if e["found"] is None:
            pool = part[part["macs"] <= e["budget"]]
            if not pool.empty:
                best = pool.loc[pool["accuracy"].idxmax()]
                e.update(found=best["_key"], found_macs=float(best["macs"]),
                         found_accuracy=float(best["accuracy"]))
        if e["found"] is not None:
            ax.scatter([e["found_macs"]], [e["found_accuracy"]], s=190, marker="*", color=color,
                       edgecolors="black", linewidths=0.8, zorder=5, gid="found", label="found")
            ax.annotate(_label(e["found"]), (e["found_macs"], e["found_accuracy"]), xytext=(-6, 7),
                        textcoords="offset points", fontsize=7, fontweight="bold", ha="right")
        ax.xaxis.set_major_formatter(FuncFormatter(_format_count))
        ax.set_xlabel("MACs")
        ax.set_title(f"baseline {e['label']}", fontsize=9)
        if i == 0:
            ax.set_ylabel("GroSS validation accuracy (%)")
            ax.legend(loc="best")
    return fig


@_styled
def fig5_search_vs_true(df: pd.DataFrame, spaces: Sequence[str] | None = None) -> Figure:
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

    Returns
    -------
    matplotlib.figure.Figure
        One square panel per space with the ideal ``y = x`` line; shared axes limits.
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
    fig, axes = _new_figure(1, n, figsize=(3.0 * n + 0.4, 3.2), sharex=True, sharey=True)
    for i, (ax, space) in enumerate(zip(axes[0], spaces)):
        part = data[data["space"] == space]
        ax.plot(lim, lim, linestyle="--", color="black", linewidth=0.8, gid="identity")
        ax.scatter(part["true_acc"], part["search_acc"], s=16, alpha=0.8,
                   color=PALETTE[i % len(PALETTE)], edgecolors="none", gid="configs")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(SPACE_TITLES.get(str(space), str(space)))
        ax.set_xlabel("true accuracy (%)")
        if i == 0:
            ax.set_ylabel("search-space accuracy (%)")
    return fig
