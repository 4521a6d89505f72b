"""Benchmark rows of the latency-aware search (rows in :mod:`gross.bench`'s format).

``latency_predictor``
    Median ``|predicted − measured| / measured`` of the additive latency predictor
    (:mod:`gross.search.latency`) over random configurations of the 4-layer net, per batch size
    (target <= 0.10). The row's ``measured_s``/``versus_s`` are the absolute error and
    the measured latency of the configuration with the median relative error (an odd
    number of configurations), so ``ratio`` is exactly the median.
``latency_search``
    Measured latency of the latency-budget search's winner over the MAC-budget search's
    winner at the same baseline (each budget the baseline's cost under its own model),
    4-layer net, per batch size and uniform baseline (target ratio <= 1). Accuracies come
    from ``results/exhaustive_search_all.csv`` (notebook 03) when present, else from a
    seeded stand-in (said in the note).

Both are registered benchmark groups of :mod:`gross.bench` (``python -m gross.bench
--only latency_predictor,latency_search``); they take ``(settings, device)`` (the shared
:class:`gross.bench.Settings`; fields used: ``seed``, ``warmup``, ``repeats``,
``latency_min_s``, ``latency_batches``, ``latency_baselines``) and return rows made with
:func:`gross.bench.row`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gross.search import costs as C
from gross.search import latency as L
from gross.utils import paths
from gross.method.decomposition import random_gross
from gross.bench.latency import search_results
from gross.bench.core import register, row
from gross.method.decomposition import enumerate_configs, search_space
from gross.method.space import config_str

__all__ = ["bench_latency_predictor", "bench_latency_search"]


def _model(seed: int):
    from gross.models import four_layer_net

    torch.manual_seed(seed)
    return random_gross(four_layer_net(), seed=seed).eval()


def _timing(settings) -> dict:
    """Timing keywords: ``settings.repeats`` round-robin passes of 2 timed loops (see :mod:`gross.search.latency`)."""
    return {"warmup": settings.warmup, "repeats": 2, "rounds": settings.repeats, "min_time": settings.latency_min_s}


def _n_configs(settings) -> int:
    return 31 if settings.repeats >= 3 else 5  # odd: the median is one configuration's error


@register("latency_predictor")
def bench_latency_predictor(settings, device) -> list[dict]:
    """Median relative error of the latency predictor, 4-layer net, per batch size."""
    device = torch.device(device)
    model = _model(settings.seed)
    rows = []
    for b in settings.latency_batches:
        table = L.measure_table(model, batch_size=b, device=device, seed=settings.seed, **_timing(settings))
        df = L.validate_predictor(model, table, n_configs=_n_configs(settings), seed=settings.seed, device=device,
                                  **_timing(settings))
        rel = (df["predicted_s"] - df["measured_s"]).abs() / df["measured_s"]
        mid = df.iloc[int(np.argsort(rel.to_numpy())[len(df) // 2])]
        summary = L.predictor_summary(df)
        rows.append(row(
            "latency_predictor", f"four_layer batch {b}: {len(df)} random configs", "|predicted - measured|",
            abs(mid["predicted_s"] - mid["measured_s"]), "measured latency", mid["measured_s"], settings.repeats,
            "ratio (median relative error) <= 0.10", summary["median_abs_rel_error"] <= 0.10, device,
            f"Spearman(predicted, measured) {summary['spearman']:.3f} (MACs: {summary['spearman_macs']:.3f}); "
            f"table mode {table.settings['mode']}, {torch.get_num_threads()} threads; ratio = median over configs",
        ))
    return rows


def _accuracies(space, seed: int) -> tuple[dict, str]:
    from gross.search.algorithms import parse_config

    configs = enumerate_configs(space)
    source = search_results()
    if source.is_file():
        table = pd.read_csv(source)
        acc = {parse_config(c): float(a) for c, a in zip(table["config"], table["accuracy"])}
        if all(c in acc for c in configs):
            return acc, f"accuracies from {source}"
    rng = np.random.default_rng(seed)
    # stand-in: accuracy grows with the group sizes (log2) plus seeded noise
    acc = {c: float(sum(np.log2(c)) + rng.normal(0, 1.0)) for c in configs}
    return acc, "stand-in accuracies (sum of log2 group sizes + seeded noise; no results/exhaustive_search_all.csv)"


@register("latency_search")
def bench_latency_search(settings, device) -> list[dict]:
    """Measured latency: latency-budget winner vs MAC-budget winner, per batch and uniform baseline."""
    from gross.pipeline.common import uniform
    from gross.search.algorithms import exhaustive_search

    device = torch.device(device)
    model = _model(settings.seed)
    space = search_space(model)
    acc, source = _accuracies(space, settings.seed)
    configs = enumerate_configs(space)
    macs = C.cost_model("macs", model)
    rows = []
    for b in settings.latency_batches:
        table = L.measure_table(model, batch_size=b, device=device, seed=settings.seed, **_timing(settings))
        lat = C.cost_model("latency", table=table)
        for s in settings.latency_baselines:
            base = uniform(space, s)
            found = [tuple(exhaustive_search(space, lambda cs: [acc[c] for c in cs], cost, base,
                                             configs=configs)[0]["config"]) for cost in (macs, lat)]
            distinct = list(dict.fromkeys(found))  # the same winner is measured once (ratio exactly 1)
            times = dict(zip(distinct, L.measure_configs(model, distinct, batch_size=b, device=device,
                                                         seed=settings.seed, **_timing(settings))))
            t_mac, t_lat = times[found[0]], times[found[1]]
            rows.append(row(
                "latency_search", f"four_layer batch {b}, baseline {config_str(base)}: "
                f"{config_str(found[1])} (latency budget) vs {config_str(found[0])} (MAC budget)",
                "latency-budget winner", t_lat, "MAC-budget winner", t_mac, settings.repeats, "ratio <= 1",
                t_lat <= t_mac, device,
                f"{source}; MACs {macs(found[1]).total:,} vs {macs(found[0]).total:,}; predicted "
                f"{table.predict(found[1]) * 1e3:.3f} vs {table.predict(found[0]) * 1e3:.3f} ms; "
                f"{torch.get_num_threads()} threads",
            ))
    return rows

