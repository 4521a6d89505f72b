"""Rows of the search tables (Tables 2 and 3): which configurations, and their GroSS and true accuracies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from gross.method.space import config_str
from gross.pipeline.base import base_state
from gross.pipeline.common import eval_kwargs, true_repeats
from gross.pipeline.finetune import true_accuracy

__all__ = ["vbmf_group", "search_entries", "search_rows", "search_table", "tidy_for_csv"]


def vbmf_group(vbmf_macs: int, baselines: Mapping[str, int]) -> str:
    """The cheapest baseline whose MACs are not below ``vbmf_macs`` (else the most expensive)."""
    ok = [(m, g) for g, m in baselines.items() if m >= vbmf_macs]
    return min(ok)[1] if ok else max((m, g) for g, m in baselines.items())[1]


def search_entries(pairs: Sequence[tuple], vbmf: tuple, depthwise: tuple, lookup) -> list[dict]:
    """Table rows in the paper's order: Full; baseline and found per pair; VBMF in its group; depthwise.

    ``pairs`` are ``(baseline, found)`` configurations in display order; ``lookup``
    maps a configuration to its MACs (:func:`gross.search.algorithms.model_mac_lookup`).
    """
    entries = [{"group": "full", "role": "full", "config": None}]
    labels = {}
    for b, f in pairs:
        g = config_str(b)
        labels[g] = lookup(b).total
        entries += [{"group": g, "role": "baseline", "config": b}, {"group": g, "role": "found", "config": f}]
    vg = vbmf_group(lookup(vbmf).total, labels)
    idx = max(i for i, e in enumerate(entries) if e["group"] == vg)
    entries.insert(idx, {"group": vg, "role": "vbmf", "config": vbmf})
    entries.append({"group": "depthwise", "role": "depthwise", "config": depthwise})
    return entries


def search_rows(cfg: Mapping, name: str, models: list, plain, data, entries: list[dict]) -> pd.DataFrame:
    """Tidy rows of a search table (:mod:`gross.report.tables` format).

    GroSS test accuracy per GroSS model in ``models``; true test accuracy per true
    repeat (:func:`gross.pipeline.finetune.true_accuracy`); the full network's is the
    base network's.
    """
    from gross.method.macs import count_macs
    from gross.search.evaluation import evaluate_configs

    configs = [e["config"] for e in entries if e["config"] is not None]
    gross_acc = []
    for model in models:
        df = evaluate_configs(model, list(dict.fromkeys(configs)), data, split="test", **eval_kwargs(cfg, data))
        gross_acc.append(dict(zip(df["config"], df["accuracy"])))
    base = base_state(cfg, name, train=False)
    rows = []
    for e in entries:
        c = e["config"]
        m = count_macs(plain, config=c)
        if c is None:
            n, gross, true = 1, [float("nan")], [base["test_acc"]]
        else:
            n = max(len(models), true_repeats(cfg, name))
            gross = [g[c] for g in gross_acc]
            true = [true_accuracy(cfg, name, c, r)["test_acc"] for r in range(true_repeats(cfg, name))]
        for r in range(n):
            rows.append({"group": e["group"], "role": e["role"], "config": c, "macs": m.total, "gconv_macs": m.gconv,
                         "gross_acc": gross[r] if r < len(gross) else float("nan"),
                         "true_acc": true[r] if r < len(true) else float("nan"), "repeat": r})
    return pd.DataFrame(rows)


def search_table(tidy: pd.DataFrame, title: str) -> pd.DataFrame:
    """Paper-style Table 2/3 (:func:`gross.report.tables.search_table`) with the first column titled ``title``."""
    from gross.report.tables import search_table as _table

    return _table(tidy).rename(columns={"Configuration": title})


def tidy_for_csv(tidy: pd.DataFrame) -> pd.DataFrame:
    """``tidy`` with configurations as text (``"full"`` for the undecomposed network)."""
    return tidy.assign(config=["full" if c is None else config_str(c) for c in tidy["config"]])
