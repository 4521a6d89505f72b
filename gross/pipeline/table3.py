"""Notebook 04: Table 3 and Fig. 4, the incremental breadth-first search of the CIFAR VGG-16 GroSS network.

The step :func:`bfs_vgg16` is the composition of the verbs below, one per notebook cell:
:func:`space_table` (the search space), :func:`baseline_table` (the budgets),
:func:`first_step` (one step of Algorithm 1 made visible), :func:`bfs_searches` (the
incremental searches), :func:`table_entries` (the rows of Table 3), :func:`true_finetunes`
(the individual fine-tunes, cached jobs), :func:`table_rows` / :func:`paper_table`
(Table 3) and :func:`fig4` (Fig. 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from torch import nn

from gross.method.decomposition import search_space
from gross.method.space import config_str
from gross.pipeline.base import base_model
from gross.pipeline.common import eval_kwargs, prepare_data, true_repeats, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.finetune import true_accuracies
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.rows import search_entries, search_rows, search_table, tidy_for_csv

__all__ = ["space_table", "baseline_table", "first_step", "bfs_searches", "table_entries", "true_finetunes",
           "table_rows", "paper_table", "fig4", "bfs_vgg16"]

NAME = "vgg16"
TITLE = "VGG-16 (CIFAR) Configuration"


def _configs(baselines) -> list[tuple]:
    """Baseline configurations from a :func:`baseline_table` or a sequence of configurations."""
    if isinstance(baselines, pd.DataFrame):
        baselines = baselines["config"]
    return [tuple(b) for b in baselines]


def space_table(model: nn.Module) -> pd.DataFrame:
    """The search space of a GroSS model, one row per decomposed layer (Sec. 4.3).

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed network (e.g. :func:`gross.pipeline.decomposition.load_gross`).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer, in_channels, width, out_channels, group_sizes`` (the
        candidate sizes as text, ``"1 4 16 32"``) and ``n_sizes``, in configuration
        order; the number of configurations is the product of ``n_sizes``.
    """
    from gross.method.layers import gross_layers

    return pd.DataFrame([{"layer": n, "in_channels": m.in_channels, "width": m.width, "out_channels": m.out_channels,
                          "group_sizes": config_str(m.group_sizes), "n_sizes": len(m.group_sizes)}
                         for n, m in gross_layers(model).items()])


def baseline_table(cfg: Mapping, model: nn.Module) -> pd.DataFrame:
    """The uniform baselines of the search (``vgg16.baselines``) in ascending MAC order: the budgets.

    Returns
    -------
    pandas.DataFrame
        Columns ``size`` (the group size asked for), ``config`` (uniform, capped
        per layer at the sizes it has; duplicates dropped), ``macs``, ``gconv_macs``.
    """
    from gross.search.costs import model_mac_lookup

    space, lookup = search_space(model), model_mac_lookup(model)
    configs = dict.fromkeys(uniform(space, s) for s in cfg[NAME]["baselines"])
    sizes = {}
    for s in cfg[NAME]["baselines"]:
        sizes.setdefault(uniform(space, s), s)
    ordered = sorted(configs, key=lambda b: lookup(b).total)
    return pd.DataFrame({"size": [sizes[b] for b in ordered], "config": ordered,
                         "macs": [lookup(b).total for b in ordered], "gconv_macs": [lookup(b).gconv for b in ordered]})


def first_step(cfg: Mapping, model: nn.Module, data, baselines) -> pd.DataFrame:
    """The first step of the search :func:`bfs_searches` runs, made visible (Algorithm 1).

    From the first run's random start under the smallest budget: every one-layer
    neighbour with its GroSS validation accuracy and MACs, whether it is within the
    budget, and the move taken (:func:`gross.search.algorithms.bfs_first_step`, the
    rule the search itself applies). Neighbours above the budget are evaluated too,
    for display (the search never evaluates them).

    Parameters
    ----------
    cfg : Profile
    model : nn.Module
        The GroSS VGG-16.
    data : gross.data.Dataset
    baselines : DataFrame or sequence of configurations
        :func:`baseline_table`.

    Returns
    -------
    pandas.DataFrame
        :func:`gross.search.algorithms.bfs_step`'s table: the start, then every neighbour.
    """
    from gross.search.algorithms import bfs_first_step

    return bfs_first_step(model, data, _configs(baselines), seed=int(cfg["seed"]), split="val",
                          **eval_kwargs(cfg, data))


def bfs_searches(cfg: Mapping, model: nn.Module, data, baselines,
                 known: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Incremental breadth-first searches on the validation split, one per baseline (Sec. 3.4).

    ``vgg16.bfs_runs`` runs of at most ``vgg16.bfs_max_steps`` steps per baseline, in
    ascending MAC order, the first ``vgg16.bfs_seeded_runs`` runs of each search
    started from the best configurations of the previous one
    (:func:`gross.search.algorithms.bfs_incremental`).

    Parameters
    ----------
    cfg : Profile
    model : nn.Module
    data : gross.data.Dataset
    baselines : DataFrame or sequence of configurations
    known : pandas.DataFrame, optional
        Validation accuracies already evaluated (columns ``config, accuracy``, e.g.
        :func:`first_step`'s table; NaN = not evaluated): re-used instead of evaluated
        again. They change no result (an accuracy does not depend on what it is
        evaluated with), only the work.

    Returns
    -------
    best : pandas.DataFrame
        One row per baseline, ascending budget: the found configuration, its MACs
        and accuracy, the baseline's accuracy, the run and step that found it.
    trace : pandas.DataFrame
        Every evaluated configuration of every run and step (the data of Fig. 4).
    """
    from gross.search.algorithms import bfs_incremental

    sec = cfg[NAME]
    cache = {} if known is None else {tuple(c): float(a) for c, a in zip(known["config"], known["accuracy"])
                                      if pd.notna(a)}
    return bfs_incremental(model, data, _configs(baselines), runs=sec["bfs_runs"], max_steps=sec["bfs_max_steps"],
                           seeded_runs=sec["bfs_seeded_runs"], seed=int(cfg["seed"]), cache=cache, split="val",
                           **eval_kwargs(cfg, data))


def table_entries(cfg: Mapping, model: nn.Module, baselines, best: pd.DataFrame) -> pd.DataFrame:
    """The rows of Table 3: Full; baseline and found per baseline (descending MACs); VBMF; all 1s.

    The VBMF configuration (:func:`gross.method.vbmf.select_config` on the base VGG-16)
    is placed in the group of the cheapest baseline not below its MACs.

    Parameters
    ----------
    cfg : Profile
    model : nn.Module
        The GroSS VGG-16 (its search space and MACs).
    baselines : DataFrame or sequence of configurations
        In ascending MAC order, as :func:`baseline_table`.
    best : pandas.DataFrame
        :func:`bfs_searches`' ``best`` (one row per baseline, same order).

    Returns
    -------
    pandas.DataFrame
        Columns ``group, role, config`` (``None`` for the full network) and ``macs``
        (missing for the full network: it is not a configuration of the GroSS model).
    """
    from gross.method.vbmf import select_config
    from gross.search.costs import model_mac_lookup

    space, lookup = search_space(model), model_mac_lookup(model)
    found = [tuple(c) for c in best["config"]]
    vbmf = tuple(select_config(base_model(cfg, NAME, train=False), sizes=dict(space)))
    pairs = sorted(zip(_configs(baselines), found), key=lambda t: -lookup(t[0]).total)
    entries = pd.DataFrame(search_entries(pairs, vbmf, uniform(space, 1), lookup))
    macs = pd.array([None if c is None else lookup(c).total for c in entries["config"]], dtype="Int64")
    return entries.assign(macs=macs)


def true_finetunes(cfg: Mapping, entries: pd.DataFrame) -> pd.DataFrame:
    """Individual fine-tunes ("True" accuracy) of every configuration of Table 3, as cached jobs.

    Each configuration is exported from the decomposition and fine-tuned on its own
    (``vgg16.config_epochs`` epochs, ``vgg16.true_repeats`` repeats) by
    :func:`gross.pipeline.finetune.true_accuracies`: independent jobs on the profile's
    executor, stored under ``runs/<profile>/true/vgg16/`` (shared with notebook 02),
    so only missing ones run.

    Returns
    -------
    pandas.DataFrame
        One row per configuration and repeat: ``group, role, config, repeat, epochs,
        no_finetune_val_acc, val_acc, test_acc, train_time_s``.
    """
    todo = entries[[c is not None for c in entries["config"]]]
    repeats = range(true_repeats(cfg, NAME))
    results = true_accuracies(cfg, NAME, list(todo["config"]), repeats)
    rows = []
    for group, role, c in zip(todo["group"], todo["role"], todo["config"]):
        for r in repeats:
            res = results[(tuple(c), r)]
            rows.append({"group": group, "role": role, "config": tuple(c), "repeat": r, "epochs": res["epochs"],
                         "no_finetune_val_acc": res["no_finetune_val_acc"], "val_acc": res["val_acc"],
                         "test_acc": res["test_acc"], "train_time_s": res["wall_time_s"]})
    return pd.DataFrame(rows)


def table_rows(cfg: Mapping, model: nn.Module, data, entries: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows of Table 3: MACs, GroSS and true test accuracy per entry (:func:`gross.pipeline.rows.search_rows`)."""
    base = base_model(cfg, NAME, train=False)
    return search_rows(cfg, NAME, [model], base, data, entries[["group", "role", "config"]].to_dict("records"))


def paper_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Table 3 as the paper prints it (MACs, GroSS, True, ΔAcc, ΔMACs) from :func:`table_rows`."""
    return search_table(tidy, TITLE)


def fig4(trace: pd.DataFrame, baselines, best: pd.DataFrame, ax: Sequence | None = None):
    """Fig. 4: the searches, one panel per baseline (:func:`gross.report.plots.fig4_bfs`).

    Parameters
    ----------
    trace, best : pandas.DataFrame
        :func:`bfs_searches`' results.
    baselines : DataFrame or sequence of configurations
        In ascending MAC order (the order of ``best``).
    ax : sequence of matplotlib Axes, optional
        One per baseline.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from gross.report import plots

    return plots.fig4_bfs(trace, _configs(baselines), [tuple(c) for c in best["config"]], ax=ax)


@step("04_breadth_first_search", tables=("table3_bfs_vgg16", "bfs_vgg16_trace"), figures=("fig4_bfs_vgg16",))
def bfs_vgg16(cfg: Mapping, data=None, model: nn.Module | None = None, baselines: pd.DataFrame | None = None,
              searches: tuple | None = None, entries: pd.DataFrame | None = None,
              finetunes: pd.DataFrame | None = None, tidy: pd.DataFrame | None = None, figure=None) -> StepResult:
    """Table 3 and Fig. 4: incremental breadth-first search of the CIFAR VGG-16 GroSS network.

    Searches against the uniform baselines (``vgg16.baselines``) in ascending MAC
    order (Sec. 3.4: ``bfs_runs`` runs of at most ``bfs_max_steps`` steps, the first
    ``bfs_seeded_runs`` runs of each search seeded by the best results of the
    previous one) on the validation split. Rows: Full, baseline and found per
    baseline, VBMF, 1s.

    Every keyword argument is the result of one verb, computed when ``None``: ``data``
    (:func:`gross.pipeline.common.prepare_data`), ``model``
    (:func:`gross.pipeline.decomposition.load_gross`), ``baselines``
    (:func:`baseline_table`), ``searches`` (``(best, trace)`` of :func:`bfs_searches`),
    ``entries`` (:func:`table_entries`), ``finetunes`` (:func:`true_finetunes`), ``tidy``
    (:func:`table_rows`) and ``figure`` (:func:`fig4`).
    """
    data = prepare_data(cfg, NAME) if data is None else data
    model = load_gross(cfg, NAME, 0) if model is None else model
    baselines = baseline_table(cfg, model) if baselines is None else baselines
    best, trace = bfs_searches(cfg, model, data, baselines) if searches is None else searches
    entries = table_entries(cfg, model, baselines, best) if entries is None else entries
    if finetunes is None:
        true_finetunes(cfg, entries)  # individual fine-tunes as independent jobs
    tidy = table_rows(cfg, model, data, entries) if tidy is None else tidy
    notes = [f"breadth-first search on {len(data.val)} validation images; GroSS/True columns are test accuracy",
             f"{trace['config'].nunique()} distinct configurations evaluated"]
    trace_out = trace.assign(config=[config_str(c) for c in trace["config"]],
                             baseline=[config_str(b) if not isinstance(b, str) else b for b in trace["baseline"]])
    figure = fig4(trace, baselines, best) if figure is None else figure
    return StepResult(
        tables={"table3_bfs_vgg16": paper_table(tidy), "bfs_vgg16_trace": trace_out,
                "table3_tidy": tidy_for_csv(tidy)},
        figures={"fig4_bfs_vgg16": figure},
        notes=notes, output_notes={"bfs_vgg16_trace": notes[1:], "fig4_bfs_vgg16": []})
