"""Notebook 04: Table 3 and Fig. 4, the incremental breadth-first search of the CIFAR VGG-16 GroSS network."""

from __future__ import annotations

from collections.abc import Mapping

from gross.method.decomposition import search_space
from gross.method.space import config_str
from gross.pipeline.base import base_model
from gross.pipeline.common import eval_kwargs, prepare_data, true_repeats, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.finetune import true_accuracies
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.rows import search_entries, search_rows, search_table, tidy_for_csv

__all__ = ["bfs_vgg16"]


@step("04_breadth_first_search", tables=("table3_bfs_vgg16", "bfs_vgg16_trace"), figures=("fig4_bfs_vgg16",))
def bfs_vgg16(cfg: Mapping) -> StepResult:
    """Table 3 and Fig. 4: incremental breadth-first search of the CIFAR VGG-16 GroSS network.

    Searches against the uniform baselines (``vgg16.baselines``) in ascending MAC
    order (Sec. 3.4: ``bfs_runs`` runs of at most ``bfs_max_steps`` steps, the first
    ``bfs_seeded_runs`` runs of each search seeded by the best results of the
    previous one) on the validation split. Rows: Full, baseline and found per
    baseline, VBMF, 1s.
    """
    from gross.report import plots
    from gross.search.costs import model_mac_lookup
    from gross.search.algorithms import bfs_incremental
    from gross.method.vbmf import select_config

    name, sec = "vgg16", cfg["vgg16"]
    data = prepare_data(cfg, name)
    model = load_gross(cfg, name, 0)
    space = search_space(model)
    lookup = model_mac_lookup(model)
    baselines = list(dict.fromkeys(uniform(space, s) for s in sec["baselines"]))
    baselines.sort(key=lambda b: lookup(b).total)
    best, trace = bfs_incremental(model, data, baselines, runs=sec["bfs_runs"], max_steps=sec["bfs_max_steps"],
                                  seeded_runs=sec["bfs_seeded_runs"], seed=int(cfg["seed"]), split="val",
                                  **eval_kwargs(cfg, data))
    found = [tuple(c) for c in best["config"]]
    base = base_model(cfg, name, train=False)
    vbmf = tuple(select_config(base, sizes=dict(space)))
    pairs = sorted(zip(baselines, found), key=lambda t: -lookup(t[0]).total)
    entries = search_entries(pairs, vbmf, uniform(space, 1), lookup)
    true_accuracies(cfg, name, [e["config"] for e in entries if e["config"] is not None],
                    range(true_repeats(cfg, name)))  # individual fine-tunes as independent jobs
    tidy = search_rows(cfg, name, [model], base, data, entries)
    notes = [f"breadth-first search on {len(data.val)} validation images; GroSS/True columns are test accuracy",
             f"{trace['config'].nunique()} distinct configurations evaluated"]
    trace_out = trace.assign(config=[config_str(c) for c in trace["config"]],
                             baseline=[config_str(b) if not isinstance(b, str) else b for b in trace["baseline"]])
    return StepResult(
        tables={"table3_bfs_vgg16": search_table(tidy, "VGG-16 (CIFAR) Configuration"), "bfs_vgg16_trace": trace_out,
                "table3_tidy": tidy_for_csv(tidy)},
        figures={"fig4_bfs_vgg16": plots.fig4_bfs(trace, baselines, found)},
        notes=notes, output_notes={"bfs_vgg16_trace": notes[1:], "fig4_bfs_vgg16": []})
