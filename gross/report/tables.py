"""Assemble the paper's result tables (Tables 2-5) from tidy results.

Tables 2-4 (search results) are built from a *tidy* DataFrame with one row per
network configuration and repeat:

========== =================================================================
column     meaning
========== =================================================================
group      which search the row belongs to (e.g. the baseline's label)
role       ``"full"`` (undecomposed network), ``"baseline"``, ``"found"``
           (search result), ``"vbmf"`` (VBMF rank selection) or
           ``"depthwise"``
config     configuration tuple (``None`` for the full network)
macs       total MACs
gconv_macs MACs of the grouped convolutions
gross_acc  accuracy in the GroSS search space (NaN when not applicable)
true_acc   accuracy of the configuration fine-tuned on its own (NaN if unknown)
repeat     repeat index (optional; rows of the same group/role/config are
           aggregated as mean and standard deviation)
label      optional text replacing the default configuration label
========== =================================================================

:func:`search_table_numeric` aggregates repeats and computes, for ``found``
and ``vbmf`` rows, the differences to the ``baseline`` of the same group:
ΔAcc (true accuracy, percentage points), ΔMACs Total and ΔMACs G.Conv (percent
of the baseline's). :func:`format_search_table` prints them like the paper
(``"83.70 (0.05)"``, ``"↑ 0.35"``, ``"↓ 4.25%"``, ``"0.00%"``, MACs as
``"5.09M"``); :func:`search_table` does both. Rows keep the order in which
they first appear in the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gross.method.macs import format_macs

__all__ = [
    "ROLES",
    "search_table_numeric",
    "format_search_table",
    "search_table",
    "format_ap_table",
]

#: Row roles of the search tables, and their default label prefix.
ROLES = {"full": "Full", "baseline": "Baseline", "found": "", "vbmf": "VBMF", "depthwise": "Depthwise"}
_DELTA_ROLES = ("found", "vbmf")
_REQUIRED = ("group", "role", "config", "macs", "gconv_macs", "gross_acc", "true_acc")
DISPLAY_COLUMNS = ["Configuration", "MACs", "GroSS", "True", "ΔAcc", "ΔMACs Total", "ΔMACs G.Conv"]


def _config_text(config) -> str:
    if config is None or (isinstance(config, float) and math.isnan(config)):
        return ""
    if isinstance(config, str):
        return config
    return " ".join(str(int(s)) for s in config)


def _config_key(config):
    """Hashable key of a configuration cell (tuple, list, string or None)."""
    if config is None or (isinstance(config, float) and math.isnan(config)):
        return None
    if isinstance(config, str):
        return tuple(int(s) for s in config.split())
    return tuple(int(s) for s in config)


def _default_label(role: str, config) -> str:
    text = _config_text(config)
    prefix = ROLES[role]
    if not prefix:
        return text
    return f"{prefix}: {text}" if text else prefix


def search_table_numeric(results: pd.DataFrame, ddof: int = 1, delta_acc: str = "true") -> pd.DataFrame:
    """Aggregate repeats and compute the differences to each group's baseline.

    Parameters
    ----------
    results : pandas.DataFrame
        Tidy results, see the module docstring.
    ddof : int, default 1
        Delta degrees of freedom of the standard deviation over repeats
        (1: sample standard deviation).
    delta_acc : {"true", "gross"}, default "true"
        Which accuracy ΔAcc compares (the paper: true accuracy).

    Returns
    -------
    pandas.DataFrame
        One row per (group, role, config), in order of first appearance, with
        columns ``group, role, config, label, macs, gconv_macs, n, gross_mean,
        gross_std, true_mean, true_std, d_acc, d_macs_total_pct,
        d_macs_gconv_pct``. Deltas are NaN except for ``found`` and ``vbmf``
        rows; ``d_acc`` is in percentage points, the others in percent
        (negative = fewer MACs than the baseline).

    Raises
    ------
    ValueError
        Missing columns, unknown roles, MACs that differ between repeats, or a
        ``found``/``vbmf`` row whose group has no (or more than one) baseline.
    """
    missing = [c for c in _REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(f"results is missing columns {missing}; required columns are {list(_REQUIRED)}")
    if delta_acc not in ("true", "gross"):
        raise ValueError(f"delta_acc must be 'true' or 'gross', got {delta_acc!r}")
    unknown = sorted(set(results["role"]) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; allowed roles are {list(ROLES)}")
    df = results.reset_index(drop=True).copy()
    df["_key"] = [(g, r, _config_key(c)) for g, r, c in zip(df["group"], df["role"], df["config"])]
    rows = []
    for key in dict.fromkeys(df["_key"]):
        part = df[[k == key for k in df["_key"]]]
        for col in ("macs", "gconv_macs"):
            if part[col].nunique(dropna=False) > 1:
                raise ValueError(f"{col} differs between repeats of {key}: {sorted(part[col].unique())}")
        group, role, config = key
        label = None
        if "label" in part.columns and part["label"].notna().any():
            label = str(part["label"].dropna().iloc[0])
        gross = part["gross_acc"].astype(float).dropna()
        true = part["true_acc"].astype(float).dropna()
        rows.append({
            "group": group,
            "role": role,
            "config": config,
            "label": label if label is not None else _default_label(role, config),
            "macs": int(part["macs"].iloc[0]),
            "gconv_macs": int(part["gconv_macs"].iloc[0]),
            "n": len(part),
            "gross_mean": gross.mean() if len(gross) else np.nan,
            "gross_std": gross.std(ddof=ddof) if len(gross) > ddof else np.nan,
            "true_mean": true.mean() if len(true) else np.nan,
            "true_std": true.std(ddof=ddof) if len(true) > ddof else np.nan,
        })
    table = pd.DataFrame(rows)
    table["d_acc"] = np.nan
    table["d_macs_total_pct"] = np.nan
    table["d_macs_gconv_pct"] = np.nan
    acc_col = f"{delta_acc}_mean"
    for i, row in table.iterrows():
        if row["role"] not in _DELTA_ROLES:
            continue
        base = table[(table["group"] == row["group"]) & (table["role"] == "baseline")]
        if len(base) != 1:
            raise ValueError(
                f"group {row['group']!r} needs exactly one 'baseline' row to compare its {row['role']!r} row "
                f"with, found {len(base)}"
            )
        base = base.iloc[0]
        table.loc[i, "d_acc"] = row[acc_col] - base[acc_col]
        table.loc[i, "d_macs_total_pct"] = 100.0 * (row["macs"] - base["macs"]) / base["macs"]
        if base["gconv_macs"] > 0:
            table.loc[i, "d_macs_gconv_pct"] = 100.0 * (row["gconv_macs"] - base["gconv_macs"]) / base["gconv_macs"]
    return table


def _format_acc(mean: float, std: float, decimals: int) -> str:
    if not np.isfinite(mean):
        return "-"
    if not np.isfinite(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ({std:.{decimals}f})"


def _format_delta_acc(value: float, decimals: int) -> str:
    if not np.isfinite(value):
        return "-"
    rounded = round(value, decimals)
    if rounded == 0:
        return f"{0:.{decimals}f}"
    return f"{'↑' if rounded > 0 else '↓'} {abs(rounded):.{decimals}f}"


def _three_figures(x: float) -> str:
    """Three significant figures, trailing zeros kept: 4.2459 -> '4.25', 14.62 -> '14.6', 0.5 -> '0.500'."""
    if x >= 1000:
        return f"{x:.0f}"
    return f"{x:#.3g}".rstrip(".")


def _format_delta_pct(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    text = _three_figures(abs(value))
    if float(text) == 0:
        return "0.00%"
    return f"{'↑' if value > 0 else '↓'} {text}%"


def format_search_table(numeric: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """Display version of :func:`search_table_numeric` in the paper's layout.

    Parameters
    ----------
    numeric : pandas.DataFrame
        Output of :func:`search_table_numeric`.
    decimals : int, default 2
        Decimals of accuracies and ΔAcc.

    Returns
    -------
    pandas.DataFrame
        String columns ``Configuration, MACs, GroSS, True, ΔAcc, ΔMACs Total,
        ΔMACs G.Conv``; "-" where a value does not apply (as in the paper).
    """
    out = pd.DataFrame({
        "Configuration": numeric["label"],
        "MACs": [format_macs(int(m)) for m in numeric["macs"]],
        "GroSS": [_format_acc(m, s, decimals) for m, s in zip(numeric["gross_mean"], numeric["gross_std"])],
        "True": [_format_acc(m, s, decimals) for m, s in zip(numeric["true_mean"], numeric["true_std"])],
        "ΔAcc": [_format_delta_acc(v, decimals) for v in numeric["d_acc"]],
        "ΔMACs Total": [_format_delta_pct(v) for v in numeric["d_macs_total_pct"]],
        "ΔMACs G.Conv": [_format_delta_pct(v) for v in numeric["d_macs_gconv_pct"]],
    })
    return out[DISPLAY_COLUMNS].reset_index(drop=True)


def search_table(results: pd.DataFrame, ddof: int = 1, delta_acc: str = "true", decimals: int = 2) -> pd.DataFrame:
    """Table 2 / 3 / 4 in the paper's layout from tidy results.

    Equivalent to ``format_search_table(search_table_numeric(results, ddof, delta_acc), decimals)``.
    """
    return format_search_table(search_table_numeric(results, ddof=ddof, delta_acc=delta_acc), decimals=decimals)


def format_ap_table(table: pd.DataFrame, decimals: int = 1, bold_best: bool = False,
                    columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Display version of :func:`gross.search.ap.ap_table` (Table 5).

    Parameters
    ----------
    table : pandas.DataFrame
        Average precisions in percent (rows = search spaces).
    decimals : int, default 1
        Decimals shown (the paper: ``43.0``).
    bold_best : bool, default False
        Wrap the best value of each column in ``**`` (Markdown bold), as the
        paper marks them in bold; ties are all marked.
    columns : sequence of str, optional
        Columns to show (default: all).

    Returns
    -------
    pandas.DataFrame
        Same index, string cells.
    """
    table = table if columns is None else table[list(columns)]
    out = table.map(lambda v: f"{v:.{decimals}f}")
    if bold_best:
        for col in table.columns:
            best = table[col].round(decimals).max()
            hit = table[col].round(decimals) == best
            out.loc[hit, col] = "**" + out.loc[hit, col] + "**"
    return out
