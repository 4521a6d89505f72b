"""Benchmark group ``latency``: inference latency of exported configurations vs their uniform baselines."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import paths
from ..decomposition import enumerate_configs, export, search_space
from .common import _config_str, _gross_model, _uniform
from .core import Settings, _median, _row, register, time_call

__all__ = ['bench_latency']


def _found_configs(model, baselines, seed) -> tuple[list[tuple], str]:
    """Configurations found by the committed exhaustive search, else seeded stand-ins."""
    from ..search import exhaustive_search, model_mac_lookup, parse_config

    space = search_space(model)
    lookup = model_mac_lookup(model)
    source = paths.RESULTS / "exhaustive_search_all.csv"
    if source.is_file():
        table = pd.read_csv(source)
        table["config"] = [parse_config(c) for c in table["config"]]
        found = [tuple(exhaustive_search(space, None, lookup, b, table=table)[0]["config"]) for b in baselines]
        return found, f"found by the exhaustive search in {source.relative_to(paths.ROOT)}"
    rng = np.random.default_rng(seed)
    configs = enumerate_configs(space)
    found = []
    for b in baselines:
        budget = lookup(b).total
        cheaper = [c for c in configs if c != b and lookup(c).total <= budget]
        found.append(cheaper[rng.integers(len(cheaper))])
    return found, ("stand-ins: seeded random configurations with MACs <= the baseline's "
                   "(no results/exhaustive_search_all.csv yet)")


def _latency(net: nn.Module, x: torch.Tensor, settings: Settings, device) -> tuple[float, int]:
    """Median seconds per forward (loops of ``inner`` forwards last >= latency_min_s)."""
    with torch.inference_mode():
        single = _median(time_call(lambda: net(x), 3, settings.warmup, device))
        inner = max(1, math.ceil(settings.latency_min_s / max(single, 1e-9)))

        def loop():
            for _ in range(inner):
                net(x)

        return _median(time_call(loop, settings.repeats, 1, device)) / inner, inner


@register("latency")
def bench_latency(settings: Settings, device) -> list[dict]:
    """Latency of exported (found) configurations vs their uniform baselines, batch 1 and 256."""
    from ..macs import count_macs

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
            t_cand, inner = _latency(nets[cand], x, settings, device)
            t_base, _ = _latency(nets[base], x, settings, device)
            rows.append(_row(
                "latency", f"four_layer batch {batch}: {_config_str(cand)} vs baseline {_config_str(base)}",
                "exported config", t_cand, "exported uniform baseline", t_base, settings.repeats,
                "ratio < 1 when the config has fewer MACs", (t_cand < t_base) if fewer else None, device,
                f"MACs {macs[cand].total:,} vs {macs[base].total:,} (G.Conv {macs[cand].gconv:,} vs "
                f"{macs[base].gconv:,}); config {source}; {torch.get_num_threads()} threads, "
                f"seconds per forward (median of loops of {inner})",
            ))
    return rows
