"""Benchmark group ``latency``: inference latency of exported configurations vs their uniform baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gross.utils import paths
from gross.method.decomposition import enumerate_configs, export, search_space
from gross.search.latency import measure_forward
from gross.bench.common import _config_str, _gross_model, _uniform
from gross.bench.core import Settings, _row, register

__all__ = ['bench_latency', 'search_results']


def search_results() -> Path:
    """The exhaustive search's table of the ``cpu`` profile (notebook 03), read by the latency rows."""
    return paths.results_dir("cpu") / "exhaustive_search_all.csv"


def _found_configs(model, baselines, seed) -> tuple[list[tuple], str]:
    """Configurations found by the committed exhaustive search, else seeded stand-ins."""
    from gross.search.algorithms import exhaustive_search, model_mac_lookup, parse_config

    space = search_space(model)
    lookup = model_mac_lookup(model)
    source = search_results()
    if source.is_file():
        table = pd.read_csv(source)
        table["config"] = [parse_config(c) for c in table["config"]]
        found = [tuple(exhaustive_search(space, None, lookup, b, table=table)[0]["config"]) for b in baselines]
        return found, f"found by the exhaustive search in {source}"
    rng = np.random.default_rng(seed)
    configs = enumerate_configs(space)
    found = []
    for b in baselines:
        budget = lookup(b).total
        cheaper = [c for c in configs if c != b and lookup(c).total <= budget]
        found.append(cheaper[rng.integers(len(cheaper))])
    return found, ("stand-ins: seeded random configurations with MACs <= the baseline's "
                   "(no results/exhaustive_search_all.csv yet)")


@register("latency")
def bench_latency(settings: Settings, device) -> list[dict]:
    """Latency of exported (found) configurations vs their uniform baselines, batch 1 and 256."""
    from gross.method.macs import count_macs

    device = torch.device(device)
    model = _gross_model("four_layer", 1.0, settings.seed, "cpu")
    space = search_space(model)
    baselines = [_uniform(space, s) for s in settings.latency_baselines]
    found, source = _found_configs(model, baselines, settings.seed)
    rows = []
    for base, cand in zip(baselines, found):
        nets = {c: export(model, c).to(device).eval() for c in (base, cand)}
        macs = {c: count_macs(nets[c], (3, 32, 32)) for c in (base, cand)}
        fewer = macs[cand].total < macs[base].total
        for batch in settings.latency_batches:
            x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(settings.seed)).to(device)
            t_cand, t_base = (measure_forward(nets[c], x, settings.warmup, settings.repeats,
                                              settings.latency_min_s) for c in (cand, base))
            rows.append(_row(
                "latency", f"four_layer batch {batch}: {_config_str(cand)} vs baseline {_config_str(base)}",
                "exported config", t_cand, "exported uniform baseline", t_base, settings.repeats,
                "ratio < 1 when the config has fewer MACs", (t_cand < t_base) if fewer else None, device,
                f"MACs {macs[cand].total:,} vs {macs[base].total:,} (G.Conv {macs[cand].gconv:,} vs "
                f"{macs[base].gconv:,}); config {source}; {torch.get_num_threads()} threads, "
                f"seconds per forward (median of {settings.repeats} loops of >= {settings.latency_min_s} s)",
            ))
    return rows
