"""Notebook 06 (beyond the paper): latency tables, the additive predictor and latency-budget search.

Settings come from the ``[latency]`` section (``configs/paper.toml``); every step reads
only the keys it uses, so each output's reductions line lists exactly those. Timings
run on the config's ``device`` with ``latency.threads`` CPU threads; latency tables are
artefacts of the store under ``runs/<profile>/latency/``, one per device fingerprint (a
table of another device, thread count or torch version is never reused). Notes beside
every output give the device fingerprint, the timing settings and the 1-minute load
average while measuring.

Each step is the composition of public verbs, one per notebook cell, and takes their
results as optional keyword arguments (``None``: compute them), so the notebook runs the
verbs cell by cell and hands their results to the step, which writes the outputs:

* latency tables: :func:`validation_model`, :func:`tables` (cached),
  :func:`layer_latencies` (the per-layer entries), :func:`predict_config` (one
  configuration's additive prediction, term by term, vs its measured latency);
* :func:`predictor_validation` = :func:`validation_models` -> :func:`validation_configs`
  (every predictor of ``latency.predictors``) -> :func:`validation_summary`
  (:func:`predictors_side_by_side` shows the predictors next to each other);
* :func:`latency_vs_macs` = :func:`scatter_configs` / :func:`configs_latency` -> figure;
* :func:`latency_search` = :func:`search_accuracy` -> :func:`budget_search` ->
  :func:`measure_winners` (:func:`side_by_side` shows the two budgets next to each other).

Outputs:

* :func:`predictor_validation` -- predicted vs measured end-to-end latency of random
  configurations of the 4-layer net and the CIFAR VGG-16 (random GroSS factors: timing
  does not depend on weights), per batch size: ``latency_predictor_validation``
  (median absolute relative error, Spearman) and ``latency_predictor_configs``.
* :func:`latency_vs_macs` -- ``latency.scatter_configs`` configurations of the 4-layer
  net: MACs, predicted and measured latency (``latency_all_configs``,
  ``fig_latency_vs_macs``).
* :func:`latency_search` -- per uniform baseline and batch size, the exhaustive search's
  winner under the MAC budget and under the latency budget (each the baseline's cost
  under its own model), with GroSS validation accuracy (the fine-tuned 4-layer GroSS
  models of notebook 02), MACs, predicted and measured latency and speed-up
  (``table_latency_search``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from gross.method.decomposition import random_gross, search_space
from gross.method.space import SearchSpace, config_str, parse_config
from gross.models import four_layer_net, vgg16_cifar
from gross.report import plots
from gross.search import latency as L
from gross.search import predictors as P
from gross.search.algorithms import exhaustive_search
from gross.search.costs import cost_model, model_mac_lookup
from gross.search.evaluation import evaluate_configs
from gross.pipeline.common import MODELS, NOTEBOOKS, eval_kwargs, n_repeats, prepare_data, resolve_device, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store

__all__ = [
    "NOTEBOOK",
    "settings",
    "validation_model",
    "tables",
    "layer_latencies",
    "predict_config",
    "validation_models",
    "validation_configs",
    "validation_summary",
    "predictors_side_by_side",
    "predictor_validation",
    "scatter_configs",
    "configs_latency",
    "latency_vs_macs",
    "search_accuracy",
    "budget_search",
    "measure_winners",
    "side_by_side",
    "latency_search",
]

#: Stem of the notebook these steps belong to.
NOTEBOOK = "06_latency_aware_search"

_TIMING_KEYS = ("warmup", "repeats", "min_time", "statistic", "clock", "rounds")


def _choice(lat: Mapping, key: str, allowed) -> str:
    value = lat[key]
    if value not in allowed:
        raise ValueError(f"config key 'latency.{key}' must be one of {tuple(allowed)}, got {value!r}")
    return value


def settings(cfg: Mapping) -> dict:
    """The timing settings of ``[latency]`` every step uses, checked, with the resolved ``device``.

    Reads ``device`` and ``latency.{batch_sizes, threads, mode, warmup, repeats,
    min_time, statistic, clock, rounds}`` (the step-specific keys are read by the steps).

    Raises
    ------
    ValueError
        ``latency.mode``, ``latency.statistic`` or ``latency.clock`` not one of the
        values :mod:`gross.search.latency` knows (the message names the key and the choices),
        or ``latency.rounds`` not a positive integer.
    """
    lat = cfg["latency"]
    rounds = lat["rounds"]
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"config key 'latency.rounds' must be a positive integer (round-robin passes), got {rounds!r}")
    out = {"mode": _choice(lat, "mode", L.MODES), "statistic": _choice(lat, "statistic", L.STATISTICS),
           "clock": _choice(lat, "clock", L.CLOCKS), "batch_sizes": [int(b) for b in lat["batch_sizes"]],
           "threads": lat["threads"], "warmup": lat["warmup"], "repeats": lat["repeats"],
           "min_time": lat["min_time"], "rounds": rounds, "device": resolve_device(cfg)}
    if out["device"].type != "cpu":
        out["clock"] = "wall"  # CPU time means nothing for a GPU; CUDA timings synchronise the device
    return out


def _timing(lat: Mapping) -> dict:
    return {k: lat[k] for k in _TIMING_KEYS}


def _measure_kwargs(cfg: Mapping, lat: Mapping) -> dict:
    return dict(device=lat["device"], num_threads=lat["threads"], seed=int(cfg["seed"]), **_timing(lat))


def _notes(lat: Mapping, table: L.LatencyTable | None = None) -> list[str]:
    fp = table.fingerprint if table is not None else L.device_fingerprint(lat["device"], 1, lat["threads"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [f"latency on {fp['device_name']} ({fp['device_type']}, {fp.get('threads', '-')} threads, torch "
            f"{fp['torch']}), {lat['clock']} clock, {lat['statistic']} of {lat['repeats']} timed loops of "
            f">= {lat['min_time']} s after {lat['warmup']} warm-up, in each of {lat['rounds']} round-robin "
            f"passes over the networks ({lat['statistic']} over the passes), table mode {lat['mode']}",
            f"machine load while measuring: 1-min load average {load:.2f} on {os.cpu_count()} CPUs"]


# ----------------------------------------------------------------------------- latency tables


def validation_model(cfg: Mapping, name: str) -> nn.Module:
    """A GroSS network with random factors (timing does not depend on weights), in eval mode.

    Parameters
    ----------
    cfg : Profile
        Reads ``seed`` and, for ``"vgg16"``, ``latency.vgg16_width_mult`` and ``vgg16.group_sizes``.
    name : {"four_layer", "vgg16"}

    Returns
    -------
    torch.nn.Module
        The 4-layer net or the CIFAR VGG-16 (width ``latency.vgg16_width_mult``) with
        GroSS layers whose factors are random.

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`gross.pipeline.common.MODELS`.
    """
    if name not in MODELS:
        raise ValueError(f"config key 'latency.validation_models' has unknown model {name!r}; use {MODELS}")
    torch.manual_seed(int(cfg["seed"]))
    if name == "four_layer":
        return random_gross(four_layer_net(), seed=int(cfg["seed"])).eval()
    net = vgg16_cifar(width_mult=cfg["latency"]["vgg16_width_mult"])
    return random_gross(net, cfg["vgg16"]["group_sizes"], seed=int(cfg["seed"])).eval()


def _table(cfg: Mapping, model, batch_size: int, lat: Mapping) -> L.LatencyTable:
    """One latency table, a :class:`.store.Store` artefact named by architecture, mode, batch and device."""
    store = Store(cfg)
    name = L.table_path(model, batch_size=batch_size, device=lat["device"], mode=lat["mode"],
                        num_threads=lat["threads"], directory="latency")

    def compute() -> dict:
        again = settings(cfg)  # read inside the artefact: its recorded settings are the timing keys
        table = L.measure_table(model, batch_size=batch_size, device=again["device"], mode=again["mode"],
                                num_threads=again["threads"], seed=int(cfg["seed"]), **_timing(again))
        return {"table": json.loads(table.to_json())}

    table = L.LatencyTable.from_json(json.dumps(store.make(str(name), compute, NOTEBOOK)["table"]))
    table.check(L.device_fingerprint(lat["device"], batch_size, lat["threads"]), source=str(store.path(str(name))))
    return table


def tables(cfg: Mapping, model: nn.Module, lat: Mapping | None = None) -> dict[int, L.LatencyTable]:
    """Latency tables of ``model`` per batch size of ``latency.batch_sizes`` (``runs/<profile>/latency/``).

    Each is an artefact of the pipeline's store: re-measured when a timing setting
    changes; the file name holds the device fingerprint, so another device (or torch
    version, or thread count) gets its own table and a table is never reused elsewhere.

    Parameters
    ----------
    cfg : Profile
    model : torch.nn.Module
        A GroSS model (e.g. :func:`validation_model`); only its architecture matters.
    lat : mapping, optional
        :func:`settings` of ``cfg`` (default: read them).

    Returns
    -------
    dict of int to LatencyTable
        By batch size.
    """
    lat = settings(cfg) if lat is None else lat
    return {b: _table(cfg, model, b, lat) for b in lat["batch_sizes"]}


_tables = tables  # for the verbs whose ``tables`` argument hides it


def layer_latencies(tables: Mapping[int, L.LatencyTable]) -> pd.DataFrame:
    """The per-layer entries of latency tables side by side, one column per batch size.

    Parameters
    ----------
    tables : mapping of int to LatencyTable
        By batch size, as :func:`tables` returns them.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer, group_size`` and ``b<batch>_ms`` (measured milliseconds of the
        layer's exported bottleneck at that group size); the last row is the fixed part
        of the network (layer ``"(fixed)"``, group size 0).
    """
    frames = [t.to_frame().rename(columns={"seconds": f"b{b}_ms"}).set_index(["layer", "group_size"]) * 1e3
              for b, t in tables.items()]
    return pd.concat(frames, axis=1).reset_index()


def predict_config(cfg: Mapping, model: nn.Module, config: Sequence[int],
                   tables: Mapping[int, L.LatencyTable] | None = None) -> pd.DataFrame:
    """The additive prediction of one configuration, term by term, against its measured latency.

    Parameters
    ----------
    cfg : Profile
        Reads the timing settings (:func:`settings`) and ``seed``.
    model : torch.nn.Module
        The GroSS model the tables were measured for.
    config : sequence of int
        One group size per decomposed layer.
    tables : mapping of int to LatencyTable, optional
        By batch size (default: :func:`tables` of ``model``).

    Returns
    -------
    pandas.DataFrame
        One row per batch size: ``batch_size, config, fixed_ms``, one ``<layer>_ms``
        column per decomposed layer (its table entry at the configuration's group size),
        ``predicted_ms`` (their sum), ``measured_ms`` (the exported network, timed like
        the validation) and ``rel_error`` ((predicted - measured) / measured).
    """
    lat = settings(cfg)
    tables = _tables(cfg, model, lat) if tables is None else tables
    rows = []
    config = tuple(int(s) for s in config)
    for b, table in tables.items():
        predicted = table.predict(config)  # checks the configuration against the table's layers
        measured = L.measure_configs(model, [config], batch_size=b, **_measure_kwargs(cfg, lat))[0]
        terms = {f"{n}_ms": e[s] * 1e3 for n, e, s in zip(table.layers, table.entries, config)}
        rows.append({"batch_size": b, "config": config_str(config), "fixed_ms": table.fixed * 1e3, **terms,
                     "predicted_ms": predicted * 1e3, "measured_ms": measured * 1e3,
                     "rel_error": (predicted - measured) / measured})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- predictor validation


def _label(cfg: Mapping, name: str) -> str:
    return name if name == "four_layer" else f"vgg16 x{cfg['latency']['vgg16_width_mult']:g}"


def validation_models(cfg: Mapping) -> dict[str, nn.Module]:
    """The networks of the predictor validation (``latency.validation_models``), random GroSS factors.

    Returns
    -------
    dict of str to torch.nn.Module
        By label: ``"four_layer"`` or ``"vgg16 x<latency.vgg16_width_mult>"``
        (:func:`validation_model`).
    """
    return {_label(cfg, name): validation_model(cfg, name) for name in cfg["latency"]["validation_models"]}


def _predictors(cfg: Mapping) -> list[str]:
    value = cfg["latency"]["predictors"]
    if isinstance(value, str) or not isinstance(value, Sequence) or not value \
            or any(p not in P.PREDICTORS for p in value) or len(set(value)) != len(value):
        raise ValueError(f"config key 'latency.predictors' must be a non-empty list of distinct names from "
                         f"{P.PREDICTORS}, got {value!r}")
    return list(value)


def _n_fit(cfg: Mapping) -> int | None:
    value = cfg["latency"]["n_fit"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"config key 'latency.n_fit' must be a non-negative integer (0: 1.5 x the coefficients "
                         f"of the largest fitted predictor), got {value!r}")
    return value or None


def validation_configs(cfg: Mapping, models: Mapping[str, nn.Module] | None = None) -> pd.DataFrame:
    """Predicted and (twice) measured latency of ``latency.n_validation`` random configurations, per predictor.

    Per network of :func:`validation_models` and batch size of ``latency.batch_sizes``:
    :func:`gross.search.predictors.validate_predictors` for the predictors of
    ``latency.predictors`` (``"additive"``: the table; ``"regression"``, ``"context"``:
    fitted on ``latency.n_fit`` other random configurations, timed in the same
    round-robin), every validation configuration measured twice, independently (the
    noise ceiling).

    Parameters
    ----------
    cfg : Profile
    models : mapping of str to torch.nn.Module, optional
        By label (default: :func:`validation_models`).

    Returns
    -------
    pandas.DataFrame
        The table ``latency_predictor_configs``: ``predictor, n_fit, config, macs,
        predicted_s, measured_s, rel_error, measured_repeat_s, model, batch_size``.

    Raises
    ------
    ValueError
        ``latency.predictors`` not a list of distinct names of
        :data:`gross.search.predictors.PREDICTORS`, or ``latency.n_fit`` not a
        non-negative integer.
    """
    lat = settings(cfg)
    predictors, n_fit = _predictors(cfg), _n_fit(cfg)
    models = validation_models(cfg) if models is None else models
    frames = []
    for label, model in models.items():
        for b, table in tables(cfg, model, lat).items():
            df = P.validate_predictors(model, table, predictors, n_validation=int(cfg["latency"]["n_validation"]),
                                       n_fit=n_fit, **_measure_kwargs(cfg, lat))
            frames.append(df.assign(model=label, batch_size=b, config=[config_str(c) for c in df["config"]]))
    return pd.concat(frames, ignore_index=True)


def validation_summary(cfg: Mapping, configs: pd.DataFrame,
                       models: Mapping[str, nn.Module] | None = None) -> pd.DataFrame:
    """Error, rank correlations and noise ceiling of each predictor, per network and batch size.

    Parameters
    ----------
    cfg : Profile
    configs : pandas.DataFrame
        :func:`validation_configs`.
    models : mapping of str to torch.nn.Module, optional
        By label (default: :func:`validation_models`); their (cached) tables give ``fixed_s``.

    Returns
    -------
    pandas.DataFrame
        The table ``latency_predictor_validation``: ``model, batch_size, predictor,
        n_fit`` and :func:`gross.search.latency.predictor_summary` (``n,
        median_abs_rel_error, spearman, spearman_macs, spearman_repeat,
        repeat_rel_diff``), ``fixed_s`` (the table's fixed part; NaN for the fitted
        predictors), the targets (error <= 10 %, Spearman >= 0.9), ``verdict``
        (:func:`gross.search.latency.predictor_verdict`: met, missed or within noise)
        and ``holds`` (:func:`gross.search.predictors.holds`: issue #28's target, error
        <= 10 % and Spearman within 0.05 of the repeat ceiling, judged only where the
        repeats agree within 10 %).
    """
    lat = settings(cfg)
    models = validation_models(cfg) if models is None else models
    fixed = {(label, b): t.fixed for label, model in models.items() for b, t in tables(cfg, model, lat).items()}
    by = ["model", "batch_size", "predictor"] if "predictor" in configs else ["model", "batch_size"]
    rows = []
    for key, group in configs.groupby(by, sort=False):
        label, b, name = key if len(by) == 3 else (*key, "additive")
        rows.append({"model": label, "batch_size": b, "predictor": name,
                     "n_fit": int(group["n_fit"].iloc[0]) if "n_fit" in group else 0, **L.predictor_summary(group),
                     "fixed_s": fixed[(label, b)] if name == "additive" else float("nan"),
                     "target_error": 0.10, "target_spearman": 0.9})
    summary = pd.DataFrame(rows)
    records = summary.to_dict(orient="records")
    summary["verdict"] = [L.predictor_verdict(r) for r in records]
    summary["holds"] = [P.holds(r) for r in records]
    return summary


def predictors_side_by_side(summary: pd.DataFrame) -> pd.DataFrame:
    """The validation summary with the predictors next to each other, per network and batch size.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`validation_summary` (or the step's ``latency_predictor_validation``).

    Returns
    -------
    pandas.DataFrame
        One row per network and batch size (in the summary's order): the repeat
        ceiling (``spearman_repeat``, ``repeat_rel_diff``) and, per predictor (column
        level 0), ``median_abs_rel_error, spearman, holds``.
    """
    keys = ["model", "batch_size"]
    fields = ["median_abs_rel_error", "spearman", "holds"]
    order = list(dict.fromkeys(zip(summary["model"], summary["batch_size"])))
    names = list(dict.fromkeys(summary["predictor"]))
    ceiling = summary.groupby(keys, sort=False)[["spearman_repeat", "repeat_rel_diff"]].first()
    ceiling.columns = pd.MultiIndex.from_product([["repeat ceiling"], ceiling.columns])
    wide = summary.pivot(index=keys, columns="predictor", values=fields).swaplevel(axis=1)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([names, fields]))
    return pd.concat([ceiling, wide], axis=1).loc[order]


@step(NOTEBOOK, tables=("latency_predictor_validation", "latency_predictor_configs"))
def predictor_validation(cfg: Mapping, configs: pd.DataFrame | None = None,
                         summary: pd.DataFrame | None = None) -> StepResult:
    """Predicted vs measured latency of ``latency.n_validation`` random configurations per model and batch.

    Tables ``latency_predictor_validation`` (:func:`validation_summary`: one row per
    model, batch and predictor of ``latency.predictors``, ``n, median_abs_rel_error,
    spearman, spearman_macs``, the noise ceiling ``spearman_repeat, repeat_rel_diff`` of
    two independent measurements of the same configurations, the targets, the verdict:
    met, missed or within noise, and ``holds``: issue #28's per-machine target) and
    ``latency_predictor_configs`` (:func:`validation_configs`: every configuration, both
    measurements).

    Parameters
    ----------
    cfg : Profile
    configs, summary : pandas.DataFrame, optional
        :func:`validation_configs` and :func:`validation_summary` when already computed
        (``None``: compute them).
    """
    lat = settings(cfg)
    models = validation_models(cfg) if configs is None or summary is None else None
    configs = validation_configs(cfg, models) if configs is None else configs
    summary = validation_summary(cfg, configs, models) if summary is None else summary
    notes = _notes(lat) + [
        "random GroSS factors (timing does not depend on weights); spearman_macs: rank correlation of MACs with "
        "measured latency, for comparison",
        "noise ceiling: every configuration is measured twice, independently (measured_s, measured_repeat_s); "
        "spearman_repeat is the rank correlation of the two measurements and repeat_rel_diff their median "
        "relative difference: a predictor is scored against one noisy measurement, so a spearman much above "
        "spearman_repeat (or an error much below repeat_rel_diff) cannot be expected on this machine",
        "predictors: additive = the per-layer table (entries timed alone); regression / context = least squares on "
        "n_fit other random configurations (never a validation one) timed in the same round-robin, one term per "
        "layer and size / plus one per pair of neighbouring sizes (gross.search.predictors); holds: median error "
        "<= 10 % and spearman >= spearman_repeat - 0.05, judged only where repeat_rel_diff <= 10 %"]
    return StepResult(tables={"latency_predictor_validation": summary, "latency_predictor_configs": configs},
                      notes=notes)


# ----------------------------------------------------------------------------- latency vs MACs


def scatter_configs(cfg: Mapping, model: nn.Module) -> list[tuple]:
    """``latency.scatter_configs`` configurations of ``model``'s search space (all when that many or more).

    A seeded (``seed``) draw without replacement, in search-space order.
    """
    configs = SearchSpace(search_space(model)).configs()
    n = int(cfg["latency"]["scatter_configs"])
    if n >= len(configs):
        return configs
    rng = np.random.default_rng(int(cfg["seed"]))
    return [configs[i] for i in sorted(rng.choice(len(configs), n, replace=False))]


def configs_latency(cfg: Mapping, model: nn.Module | None = None,
                    tables: Mapping[int, L.LatencyTable] | None = None) -> pd.DataFrame:
    """MACs, predicted and measured latency of the :func:`scatter_configs` of the 4-layer net.

    Parameters
    ----------
    cfg : Profile
    model : torch.nn.Module, optional
        Default :func:`validation_model` ``(cfg, "four_layer")`` (random factors).
    tables : mapping of int to LatencyTable, optional
        By batch size (default: :func:`tables` of ``model``).

    Returns
    -------
    pandas.DataFrame
        The table ``latency_all_configs``: ``batch_size, config, macs, predicted_s,
        measured_s``.
    """
    lat = settings(cfg)
    model = validation_model(cfg, "four_layer") if model is None else model
    configs = scatter_configs(cfg, model)
    tables = _tables(cfg, model, lat) if tables is None else tables
    lookup = model_mac_lookup(model)
    frames = []
    for b, table in tables.items():
        measured = L.measure_configs(model, configs, batch_size=b, **_measure_kwargs(cfg, lat))
        frames.append(pd.DataFrame({
            "batch_size": b, "config": [config_str(c) for c in configs], "macs": [lookup(c).total for c in configs],
            "predicted_s": [table.predict(c) for c in configs], "measured_s": measured}))
    return pd.concat(frames, ignore_index=True)


@step(NOTEBOOK, tables=("latency_all_configs",), figures=("fig_latency_vs_macs",))
def latency_vs_macs(cfg: Mapping, measured: pd.DataFrame | None = None) -> StepResult:
    """MACs, predicted and measured latency of the 4-layer net's configurations, per batch size.

    The network has random GroSS factors (no predecessor notebook needed). Table
    ``latency_all_configs`` (:func:`configs_latency`, or ``measured`` when given);
    figure ``fig_latency_vs_macs`` (:func:`gross.report.plots.latency_vs_macs_figure`).
    """
    lat = settings(cfg)
    df = configs_latency(cfg) if measured is None else measured
    notes = _notes(lat) + [f"{df['config'].nunique()} configurations of the 4-layer network (exported, plain PyTorch)"]
    return StepResult(tables={"latency_all_configs": df},
                      figures={"fig_latency_vs_macs": plots.latency_vs_macs_figure(df)}, notes=notes)


# ----------------------------------------------------------------------------- MAC vs latency budget


def search_accuracy(cfg: Mapping) -> dict[tuple, float]:
    """GroSS validation accuracy of every 4-layer configuration, mean over the fine-tuned repeats (as notebook 03).

    Needs notebook 02 (the fine-tuned GroSS models of ``four_layer.repeats`` repeats).

    Returns
    -------
    dict of tuple to float
        Accuracy (%) by configuration, in search-space order.
    """
    data = prepare_data(cfg, "four_layer")
    models = [load_gross(cfg, "four_layer", r) for r in range(n_repeats(cfg, "four_layer"))]
    configs = SearchSpace(search_space(models[0])).configs()
    acc = np.mean([evaluate_configs(m, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"]
                   for m in models], axis=0)
    return dict(zip(configs, acc.tolist()))


def budget_search(cfg: Mapping, accuracy: Mapping[tuple, float] | None = None,
                  model: nn.Module | None = None) -> pd.DataFrame:
    """The exhaustive search's winner under a MAC budget and under a latency budget, per baseline and batch.

    For each uniform baseline of ``latency.baselines`` and batch size: the most accurate
    configuration with MACs <= the baseline's MACs, and the most accurate one with
    predicted latency (:func:`tables`) <= the baseline's predicted latency.

    Parameters
    ----------
    cfg : Profile
    accuracy : mapping of tuple to float, optional
        :func:`search_accuracy` (default: compute it).
    model : torch.nn.Module, optional
        The fine-tuned 4-layer GroSS model (default: repeat 0 of notebook 02).

    Returns
    -------
    pandas.DataFrame
        ``batch_size, baseline, budget`` (``"MACs"`` or ``"latency"``), ``config,
        gross_val_acc, baseline_val_acc, macs, predicted_ms``; two rows per baseline
        and batch size.
    """
    lat = settings(cfg)
    model = load_gross(cfg, "four_layer", 0) if model is None else model
    accuracy = search_accuracy(cfg) if accuracy is None else accuracy
    space = search_space(model)
    configs = SearchSpace(space).configs()
    baselines = list(dict.fromkeys(uniform(space, int(s)) for s in cfg["latency"]["baselines"]))
    macs = cost_model("macs", model)
    rows = []
    for b, table in tables(cfg, model, lat).items():
        costs = {"MACs": macs, "latency": cost_model("latency", table=table)}
        for baseline in baselines:
            for kind, cost in costs.items():
                best, _ = exhaustive_search(space, lambda cs: [accuracy[tuple(c)] for c in cs], cost, baseline,
                                            configs=configs)
                c = tuple(best["config"])
                rows.append({"batch_size": b, "baseline": config_str(baseline), "budget": kind,
                             "config": config_str(c), "gross_val_acc": best["accuracy"],
                             "baseline_val_acc": best["baseline_accuracy"], "macs": macs(c).total,
                             "predicted_ms": table.predict(c) * 1e3})
    return pd.DataFrame(rows)


def measure_winners(cfg: Mapping, found: pd.DataFrame, model: nn.Module | None = None) -> pd.DataFrame:
    """Measure the exported networks of :func:`budget_search`'s winners and of their baseline.

    Per batch size and baseline, the baseline and the distinct winners are timed
    together, round-robin (:func:`gross.search.latency.measure_configs`).

    Parameters
    ----------
    cfg : Profile
    found : pandas.DataFrame
        :func:`budget_search`.
    model : torch.nn.Module, optional
        The 4-layer GroSS model (default: repeat 0 of notebook 02).

    Returns
    -------
    pandas.DataFrame
        The table ``table_latency_search``: ``found`` with ``measured_ms,
        baseline_measured_ms`` and ``speedup_vs_baseline`` (baseline measured / found
        measured).
    """
    lat = settings(cfg)
    model = load_gross(cfg, "four_layer", 0) if model is None else model
    parts = []
    for (b, baseline), group in found.groupby(["batch_size", "baseline"], sort=False):
        todo = list(dict.fromkeys([parse_config(baseline)] + [parse_config(c) for c in group["config"]]))
        times = dict(zip(todo, L.measure_configs(model, todo, batch_size=int(b), **_measure_kwargs(cfg, lat))))
        base_s = times[parse_config(baseline)]
        found_s = np.array([times[parse_config(c)] for c in group["config"]])
        parts.append(group.assign(measured_ms=found_s * 1e3, baseline_measured_ms=base_s * 1e3,
                                  speedup_vs_baseline=base_s / found_s))
    return pd.concat(parts)


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """``table_latency_search`` with the MAC-budget and latency-budget winners next to each other.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`measure_winners` (or the step's ``table_latency_search``).

    Returns
    -------
    pandas.DataFrame
        One row per batch size and baseline (in the table's order); columns
        ``(budget, field)`` for ``config, gross_val_acc, macs, measured_ms,
        speedup_vs_baseline`` under each budget.
    """
    fields = ["config", "gross_val_acc", "macs", "measured_ms", "speedup_vs_baseline"]
    wide = table.pivot(index=["batch_size", "baseline"], columns="budget", values=fields)
    order = list(dict.fromkeys(zip(table["batch_size"], table["baseline"])))
    budgets = list(dict.fromkeys(table["budget"]))
    return wide.swaplevel(axis=1).reindex(columns=pd.MultiIndex.from_product([budgets, fields])).loc[order]


@step(NOTEBOOK, tables=("table_latency_search",))
def latency_search(cfg: Mapping, accuracy: Mapping[tuple, float] | None = None, found: pd.DataFrame | None = None,
                   measured: pd.DataFrame | None = None) -> StepResult:
    """Table ``table_latency_search``: MAC-budget vs latency-budget exhaustive search per baseline and batch.

    For each uniform baseline of ``latency.baselines`` and batch size: the most
    accurate configuration (GroSS validation accuracy, mean over repeats) with MACs <=
    the baseline's MACs and the most accurate one with predicted latency <= the
    baseline's predicted latency (:func:`budget_search`); the exported networks of both
    and of the baseline are then measured (:func:`measure_winners`). Needs notebook 02
    (the fine-tuned GroSS models).

    Parameters
    ----------
    cfg : Profile
    accuracy, found, measured : optional
        :func:`search_accuracy`, :func:`budget_search` and :func:`measure_winners` when
        already computed (``None``: compute them).
    """
    lat = settings(cfg)
    if measured is None:
        model = load_gross(cfg, "four_layer", 0)
        found = budget_search(cfg, accuracy, model) if found is None else found
        measured = measure_winners(cfg, found, model)
    notes = _notes(lat) + [
        f"GroSS validation accuracy, mean over {n_repeats(cfg, 'four_layer')} repeat(s) "
        f"(notebook {NOTEBOOKS['finetuning']}); "
        "budget = the baseline's MACs (MACs rows) or its predicted latency (latency rows); "
        "speed-up = baseline measured / found measured"]
    return StepResult(tables={"table_latency_search": measured.reset_index(drop=True)}, notes=notes)
