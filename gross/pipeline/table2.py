"""Notebook 03: Table 2 and Fig. 3, the exhaustive search of the 4-layer GroSS network.

The step :func:`exhaustive_search` is the composition of the verbs below, one per
notebook cell, in the paper's order (Sec. 3.4 and 5.1):

1. :func:`gross_models` and :func:`space_table`: the fine-tuned GroSS networks and their
   search space (252 configurations at the paper's widths);
2. :func:`evaluate_space`: every configuration of every GroSS repeat on the validation
   split, through the prefix tree (:func:`gross.search.evaluation.evaluate_configs`);
3. :func:`uniform_baselines` and :func:`select_configs`: per uniform baseline, the most
   accurate configuration with MACs not above the baseline's;
4. :func:`exhaustive_figure`: Fig. 3;
5. :func:`vbmf_layers` and :func:`vbmf_config`: the one-shot VBMF configuration;
6. :func:`table_entries` and :func:`true_finetunes`: the rows of Table 2 and the
   individual fine-tunes of their configurations (cached jobs).

The step takes each verb's result as an optional keyword argument (``None``: compute
it), so a notebook that ran the verbs cell by cell passes them on and nothing is
computed twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from gross.method.decomposition import enumerate_configs, search_space
from gross.method.space import config_str
from gross.pipeline.base import base_model
from gross.pipeline.common import eval_kwargs, n_repeats, prepare_data, resolve_device, true_repeats, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.finetune import true_accuracies
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.rows import search_entries, search_rows, search_table, tidy_for_csv

__all__ = ["MODEL", "gross_models", "space_table", "evaluate_all", "evaluate_space", "uniform_baselines",
           "select_configs", "exhaustive_figure", "vbmf_layers", "vbmf_config", "table_entries", "true_finetunes",
           "exhaustive_search"]

#: The network Table 2 searches (pipeline name, :data:`gross.pipeline.common.MODELS`).
MODEL = "four_layer"


def gross_models(cfg: Mapping) -> list[nn.Module]:
    """The fine-tuned GroSS 4-layer networks of notebook 02, one per repeat (``four_layer.repeats``).

    Raises
    ------
    FileNotFoundError
        A GroSS fine-tune is missing (run notebook 02 first).
    """
    return [load_gross(cfg, MODEL, r) for r in range(n_repeats(cfg, MODEL))]


def space_table(space: Mapping) -> pd.DataFrame:
    """The search space as a table: one row per decomposed layer, then the number of configurations.

    Parameters
    ----------
    space : mapping of str to sequence of int
        Group sizes per layer (:func:`gross.method.decomposition.search_space`).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer``, ``group_sizes`` (text) and ``count`` (sizes of the layer); the
        last row, ``layer = "configurations"``, counts every configuration (their product:
        252 for the paper's 4-layer network).
    """
    rows = [{"layer": name, "group_sizes": " ".join(map(str, sizes)), "count": len(sizes)}
            for name, sizes in space.items()]
    rows.append({"layer": "configurations", "group_sizes": "", "count": math.prod(len(s) for s in space.values())})
    return pd.DataFrame(rows)


def evaluate_all(cfg: Mapping, models: list, configs: list, data, lookup) -> tuple[pd.DataFrame, list]:
    """Validation accuracy of every configuration for each GroSS model, their mean, and MACs.

    Returns the table (``config, macs, gconv_macs, accuracy, val_acc_r<r>..., val_acc_std``)
    and the evaluation seconds per model.
    """
    from gross.search.evaluation import evaluate_configs

    per_repeat, eval_s = [], []
    for model in models:
        t1 = time.perf_counter()
        per_repeat.append(evaluate_configs(model, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"])
        eval_s.append(time.perf_counter() - t1)
    acc = np.vstack([np.asarray(a, dtype=float) for a in per_repeat])
    cost = [lookup(c) for c in configs]
    table = pd.DataFrame({"config": configs, "macs": [m.total for m in cost], "gconv_macs": [m.gconv for m in cost],
                          "accuracy": acc.mean(0)})
    for r in range(len(models)):
        table[f"val_acc_r{r}"] = acc[r]
    table["val_acc_std"] = acc.std(0, ddof=1) if len(models) > 1 else 0.0
    return table, eval_s


def evaluate_space(cfg: Mapping, models: Sequence[nn.Module], data, configs: Sequence | None = None) -> pd.DataFrame:
    """Validation accuracy of every configuration of every GroSS repeat (the exhaustive search's evaluations).

    Each model walks all configurations as a prefix tree over one pass of the
    validation split (:func:`gross.search.evaluation.evaluate_configs`); the search
    ranks configurations by the mean over repeats (:func:`evaluate_all`).

    Parameters
    ----------
    cfg : Profile
    models : sequence of nn.Module
        The GroSS models (:func:`gross_models`).
    data : gross.data.Dataset
        :func:`gross.pipeline.common.prepare_data` of the 4-layer network.
    configs : sequence of configurations, optional
        Default: every configuration of the models' search space.

    Returns
    -------
    pandas.DataFrame
        Columns ``config`` (tuple), ``macs``, ``gconv_macs``, ``accuracy`` (mean over
        repeats), ``val_acc_r<r>`` per repeat and ``val_acc_std``, in enumeration order;
        ``attrs["eval_s"]`` holds the evaluation seconds per repeat.
    """
    from gross.search.costs import model_mac_lookup

    configs = enumerate_configs(search_space(models[0])) if configs is None else [tuple(c) for c in configs]
    table, eval_s = evaluate_all(cfg, list(models), configs, data, model_mac_lookup(models[0]))
    table.attrs["eval_s"] = list(eval_s)
    return table


def uniform_baselines(cfg: Mapping, space: Mapping) -> list[tuple]:
    """The uniform baseline configurations of Table 2 (``four_layer.baselines``), in that order."""
    return [uniform(space, s) for s in cfg[MODEL]["baselines"]]


def select_configs(evaluated: pd.DataFrame, space: Mapping, baselines: Sequence, lookup) -> pd.DataFrame:
    """The exhaustive search's choice per baseline: the most accurate configuration with MACs not above its own.

    Applies :func:`gross.search.algorithms.exhaustive_search` to the evaluated table (ties:
    fewer MACs first), once per baseline.

    Parameters
    ----------
    evaluated : pandas.DataFrame
        :func:`evaluate_space` (columns ``config``, ``macs``, ``gconv_macs``, ``accuracy``).
    space : mapping of str to sequence of int
    baselines : sequence of configurations
        :func:`uniform_baselines`.
    lookup : callable
        Configuration -> MACs (:func:`gross.search.costs.model_mac_lookup`).

    Returns
    -------
    pandas.DataFrame
        One row per baseline: ``baseline`` (tuple), ``baseline_macs`` (the budget),
        ``baseline_accuracy``, ``config`` (the found configuration), ``macs``,
        ``gconv_macs``, ``accuracy`` (GroSS validation accuracy, mean over repeats).
    """
    from gross.search.algorithms import exhaustive_search as _exhaustive

    rows = []
    for b in baselines:
        best = _exhaustive(space, None, lookup, b, table=evaluated)[0]
        rows.append({"baseline": tuple(b), "baseline_macs": best["budget"],
                     "baseline_accuracy": best["baseline_accuracy"], "config": tuple(best["config"]),
                     "macs": best["macs"], "gconv_macs": best["gconv_macs"], "accuracy": best["accuracy"]})
    return pd.DataFrame(rows, columns=["baseline", "baseline_macs", "baseline_accuracy", "config", "macs",
                                       "gconv_macs", "accuracy"])


def exhaustive_figure(evaluated: pd.DataFrame, found: pd.DataFrame, ax=None) -> Figure:
    """Fig. 3: GroSS validation accuracy vs MACs of every configuration, the baselines and the found ones.

    ``found`` is :func:`select_configs`; see :func:`gross.report.plots.fig3_exhaustive_search`.
    """
    from gross.report import plots

    return plots.fig3_exhaustive_search(evaluated, list(found["baseline"]), list(found["config"]), ax=ax)


def vbmf_layers(base: nn.Module, space: Mapping) -> pd.DataFrame:
    """EVBMF rank of each decomposed layer of the base network and the group size it maps to (the VBMF row).

    See :func:`gross.method.vbmf.vbmf_table` (columns ``layer``, ``t``, ``rank``,
    ``sigma2``, ``sizes``, ``group_size``); candidates are the layers' sizes in ``space``.
    """
    from gross.method.vbmf import vbmf_table

    return vbmf_table(base, sizes=dict(space))


def vbmf_config(layers: pd.DataFrame) -> tuple[int, ...]:
    """The VBMF configuration: the ``group_size`` column of :func:`vbmf_layers` as a tuple."""
    return tuple(int(s) for s in layers["group_size"])


def table_entries(cfg: Mapping, space: Mapping, found: pd.DataFrame, vbmf: tuple, lookup) -> pd.DataFrame:
    """The rows of Table 2 in the paper's order (:func:`gross.pipeline.rows.search_entries`).

    Full network; per baseline (``found`` of :func:`select_configs`) the baseline and
    the found configuration; VBMF in the group of the cheapest baseline not below it;
    depthwise (uniform ``four_layer.depthwise``).

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``role`` (full, baseline, found, vbmf, depthwise), ``config``
        (tuple; None for the full network) and ``macs`` (missing for the full network).
    """
    pairs = list(zip(found["baseline"], found["config"]))
    entries = search_entries(pairs, tuple(vbmf), uniform(space, cfg[MODEL]["depthwise"]), lookup)
    macs = pd.array([None if e["config"] is None else lookup(e["config"]).total for e in entries], dtype="Int64")
    return pd.DataFrame(entries, columns=["group", "role", "config"]).assign(macs=macs)


def _records(entries: pd.DataFrame) -> list[dict]:
    return [{"group": g, "role": r, "config": None if c is None else tuple(c)}
            for g, r, c in zip(entries["group"], entries["role"], entries["config"])]


def true_finetunes(cfg: Mapping, entries: pd.DataFrame) -> pd.DataFrame:
    """Individual fine-tunes ("true" accuracy) of every configuration of Table 2 (cached jobs).

    :func:`gross.pipeline.finetune.true_accuracies`: ``four_layer.true_repeats``
    repeats of ``four_layer.config_epochs`` epochs each, the missing ones run as jobs
    on the profile's executor, the others read from ``runs/<profile>/true/``.

    Returns
    -------
    pandas.DataFrame
        One row per entry (the full network excepted) and repeat: ``group``, ``role``,
        ``config``, ``repeat``, ``epochs``, ``no_finetune_val_acc``, ``val_acc``,
        ``test_acc``.
    """
    entries = [e for e in _records(entries) if e["config"] is not None]
    repeats = range(true_repeats(cfg, MODEL))
    results = true_accuracies(cfg, MODEL, [e["config"] for e in entries], repeats)
    rows = [{"group": e["group"], "role": e["role"], "config": e["config"], "repeat": r,
             "epochs": results[(e["config"], r)]["epochs"],
             "no_finetune_val_acc": results[(e["config"], r)]["no_finetune_val_acc"],
             "val_acc": results[(e["config"], r)]["val_acc"], "test_acc": results[(e["config"], r)]["test_acc"]}
            for e in entries for r in repeats]
    return pd.DataFrame(rows, columns=["group", "role", "config", "repeat", "epochs", "no_finetune_val_acc",
                                       "val_acc", "test_acc"])


@step("03_exhaustive_search", tables=("table2_exhaustive_search", "exhaustive_search_all"),
      figures=("fig3_exhaustive_search",))
def exhaustive_search(cfg: Mapping, models: Sequence[nn.Module] | None = None, data=None,
                      evaluated: pd.DataFrame | None = None, found: pd.DataFrame | None = None,
                      figure: Figure | None = None, base: nn.Module | None = None, vbmf: tuple | None = None,
                      entries: pd.DataFrame | None = None, finetunes: pd.DataFrame | None = None) -> StepResult:
    """Table 2 and Fig. 3: exhaustive search of the 4-layer GroSS network.

    Every configuration (252 in the paper) is evaluated on the validation split for
    each GroSS repeat; configurations are ranked by the mean over repeats. For each
    uniform baseline (``four_layer.baselines``) the most accurate configuration with
    MACs not above the baseline's is found. Rows: Full, baseline and found per
    baseline, VBMF and depthwise (``four_layer.depthwise``); GroSS and true
    (individually fine-tuned) test accuracy, mean (std) over repeats.

    Parameters
    ----------
    cfg : Profile
    models, data, evaluated, found, figure, base, vbmf, entries, finetunes : optional
        The results of the verbs, as a notebook computed them cell by cell:
        :func:`gross_models`, :func:`gross.pipeline.common.prepare_data`,
        :func:`evaluate_space`, :func:`select_configs`, :func:`exhaustive_figure`,
        :func:`gross.pipeline.base.base_model` (``train=False``), :func:`vbmf_config`,
        :func:`table_entries`, :func:`true_finetunes`. ``None``: computed here.

    Returns
    -------
    StepResult
        Tables ``table2_exhaustive_search`` (paper style), ``exhaustive_search_all``
        (:func:`evaluate_space`, configurations as text) and ``table2_tidy``; figure
        ``fig3_exhaustive_search``.
    """
    from gross.search.costs import model_mac_lookup

    data = prepare_data(cfg, MODEL) if data is None else data
    models = gross_models(cfg) if models is None else list(models)
    space = search_space(models[0])
    lookup = model_mac_lookup(models[0])
    evaluated = evaluate_space(cfg, models, data) if evaluated is None else evaluated
    found = select_configs(evaluated, space, uniform_baselines(cfg, space), lookup) if found is None else found
    base = base_model(cfg, MODEL, train=False) if base is None else base
    vbmf = vbmf_config(vbmf_layers(base, space)) if vbmf is None else tuple(vbmf)
    entries = table_entries(cfg, space, found, vbmf, lookup) if entries is None else entries
    if finetunes is None:
        true_finetunes(cfg, entries)  # individual fine-tunes as independent jobs
    tidy = search_rows(cfg, MODEL, models, base, data, _records(entries))
    figure = exhaustive_figure(evaluated, found) if figure is None else figure
    eval_s = evaluated.attrs.get("eval_s")
    timing = (f"took {np.mean(eval_s):.1f} s per repeat" if eval_s else "(evaluation time not recorded)")
    notes = [
        f"search on the mean GroSS validation accuracy over {len(models)} repeat(s); GroSS/True columns are test "
        f"accuracy, mean (std) over {len(models)} GroSS and {true_repeats(cfg, MODEL)} individual repeat(s)",
        f"evaluating all {len(evaluated)} configurations {timing} on "
        f"{len(data.val)} validation images ({resolve_device(cfg)})",
    ]
    out_all = evaluated.assign(config=[config_str(c) for c in evaluated["config"]])
    return StepResult(
        tables={"table2_exhaustive_search": search_table(tidy, "4-Layer Network Configuration"),
                "exhaustive_search_all": out_all, "table2_tidy": tidy_for_csv(tidy)},
        figures={"fig3_exhaustive_search": figure},
        notes=notes, output_notes={"exhaustive_search_all": notes[1:], "fig3_exhaustive_search": notes[:1]})
