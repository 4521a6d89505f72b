"""Notebook 06 (beyond the paper): latency tables, the additive predictor and latency-budget search.

Settings come from the ``[latency]`` section (``configs/paper.toml``); every step reads
only the keys it uses, so each output's reductions line lists exactly those. Timings
run on the config's ``device`` with ``latency.threads`` CPU threads; latency tables are
artefacts of the store under ``runs/<profile>/latency/``, one per device fingerprint (a
table of another device, thread count or torch version is never reused). Notes beside
every output give the device fingerprint, the timing settings and the 1-minute load
average while measuring.

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
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from gross.search import latency as L
from gross.method.space import config_str
from gross.pipeline.common import MODELS, NOTEBOOKS, eval_kwargs, n_repeats, prepare_data, resolve_device, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store

__all__ = ["NOTEBOOK", "settings", "tables", "predictor_validation", "latency_vs_macs", "latency_search"]

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


def _validation_model(cfg: Mapping, name: str):
    """A GroSS network with random factors (timing does not depend on weights)."""
    from gross.method.decomposition import random_gross
    from gross.models import four_layer_net, vgg16_cifar

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


def tables(cfg: Mapping, model, lat: Mapping | None = None) -> dict[int, L.LatencyTable]:
    """Latency tables of ``model`` per batch size of ``latency.batch_sizes`` (``runs/<profile>/latency/``).

    Each is an artefact of the pipeline's store: re-measured when a timing setting
    changes; the file name holds the device fingerprint, so another device (or torch
    version, or thread count) gets its own table and a table is never reused elsewhere.
    """
    lat = settings(cfg) if lat is None else lat
    return {b: _table(cfg, model, b, lat) for b in lat["batch_sizes"]}


@step(NOTEBOOK, tables=("latency_predictor_validation", "latency_predictor_configs"))
def predictor_validation(cfg: Mapping) -> StepResult:
    """Predicted vs measured latency of ``latency.n_validation`` random configurations per model and batch.

    Tables ``latency_predictor_validation`` (one row per model and batch: ``n,
    median_abs_rel_error, spearman, spearman_macs``, the noise ceiling ``spearman_repeat,
    repeat_rel_diff`` of two independent measurements of the same configurations, the
    targets and whether they were met) and ``latency_predictor_configs`` (every
    configuration, both measurements).
    """
    lat = settings(cfg)
    rows, per_config, table = [], [], None
    for name in cfg["latency"]["validation_models"]:
        model = _validation_model(cfg, name)
        label = name if name == "four_layer" else f"vgg16 x{cfg['latency']['vgg16_width_mult']:g}"
        for b, table in tables(cfg, model, lat).items():
            df = L.validate_predictor(model, table, n_configs=int(cfg["latency"]["n_validation"]), repeat=True,
                                      **_measure_kwargs(cfg, lat))
            rows.append({"model": label, "batch_size": b, **L.predictor_summary(df), "fixed_s": table.fixed,
                         "target_error": 0.10, "target_spearman": 0.9})
            per_config.append(df.assign(model=label, batch_size=b, config=[config_str(c) for c in df["config"]]))
    summary = pd.DataFrame(rows)
    summary["met"] = (summary["median_abs_rel_error"] <= 0.10) & (summary["spearman"] >= 0.9)
    notes = _notes(lat, table) + [
        "random GroSS factors (timing does not depend on weights); spearman_macs: rank correlation of MACs with "
        "measured latency, for comparison",
        "noise ceiling: every configuration is measured twice, independently (measured_s, measured_repeat_s); "
        "spearman_repeat is the rank correlation of the two measurements and repeat_rel_diff their median "
        "relative difference: a predictor is scored against one noisy measurement, so a spearman much above "
        "spearman_repeat (or an error much below repeat_rel_diff) cannot be expected on this machine"]
    return StepResult(tables={"latency_predictor_validation": summary,
                              "latency_predictor_configs": pd.concat(per_config, ignore_index=True)}, notes=notes)


def _scatter_configs(cfg: Mapping, space) -> list[tuple]:
    from gross.method.space import SearchSpace

    configs = SearchSpace(space).configs()
    n = int(cfg["latency"]["scatter_configs"])
    if n >= len(configs):
        return configs
    rng = np.random.default_rng(int(cfg["seed"]))
    return [configs[i] for i in sorted(rng.choice(len(configs), n, replace=False))]


@step(NOTEBOOK, tables=("latency_all_configs",), figures=("fig_latency_vs_macs",))
def latency_vs_macs(cfg: Mapping) -> StepResult:
    """MACs, predicted and measured latency of the 4-layer net's configurations, per batch size.

    The network has random GroSS factors (no predecessor notebook needed). Table
    ``latency_all_configs``; figure ``fig_latency_vs_macs``
    (:func:`gross.report.plots.latency_vs_macs_figure`).
    """
    from gross.report import plots
    from gross.search.costs import model_mac_lookup
    from gross.method.decomposition import search_space

    lat = settings(cfg)
    model = _validation_model(cfg, "four_layer")
    configs = _scatter_configs(cfg, search_space(model))
    lookup = model_mac_lookup(model)
    frames, table = [], None
    for b, table in tables(cfg, model, lat).items():
        measured = L.measure_configs(model, configs, batch_size=b, **_measure_kwargs(cfg, lat))
        frames.append(pd.DataFrame({
            "batch_size": b, "config": [config_str(c) for c in configs], "macs": [lookup(c).total for c in configs],
            "predicted_s": [table.predict(c) for c in configs], "measured_s": measured}))
    df = pd.concat(frames, ignore_index=True)
    notes = _notes(lat, table) + [f"{len(configs)} configurations of the 4-layer network (exported, plain PyTorch)"]
    return StepResult(tables={"latency_all_configs": df},
                      figures={"fig_latency_vs_macs": plots.latency_vs_macs_figure(df)}, notes=notes)


def _search_row(kind, b, baseline, best, table, lookup, times) -> dict:
    c = tuple(best["config"])
    return {"batch_size": b, "baseline": config_str(baseline), "budget": kind, "config": config_str(c),
            "gross_val_acc": best["accuracy"], "baseline_val_acc": best["baseline_accuracy"],
            "macs": lookup(c).total, "predicted_ms": table.predict(c) * 1e3, "measured_ms": times[c] * 1e3,
            "baseline_measured_ms": times[baseline] * 1e3, "speedup_vs_baseline": times[baseline] / times[c]}


def _gross_accuracy(cfg: Mapping, configs) -> tuple[dict, list]:
    """GroSS validation accuracy of ``configs``, mean over the fine-tuned 4-layer repeats (as notebook 03)."""
    from gross.search.evaluation import evaluate_configs

    data = prepare_data(cfg, "four_layer")
    models = [load_gross(cfg, "four_layer", r) for r in range(n_repeats(cfg, "four_layer"))]
    acc = np.mean([evaluate_configs(m, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"]
                   for m in models], axis=0)
    return dict(zip(configs, acc.tolist())), models


@step(NOTEBOOK, tables=("table_latency_search",))
def latency_search(cfg: Mapping) -> StepResult:
    """Table ``table_latency_search``: MAC-budget vs latency-budget exhaustive search per baseline and batch.

    For each uniform baseline of ``latency.baselines`` and batch size: the most
    accurate configuration (GroSS validation accuracy, mean over repeats) with MACs <=
    the baseline's MACs and the most accurate one with predicted latency <= the
    baseline's predicted latency; the exported networks of both and of the baseline
    are then measured. Needs notebook 02 (the fine-tuned GroSS models).
    """
    from gross.search.costs import cost_model
    from gross.method.decomposition import search_space
    from gross.search.algorithms import exhaustive_search
    from gross.method.space import SearchSpace

    lat = settings(cfg)
    model = load_gross(cfg, "four_layer", 0)
    space = search_space(model)
    configs = SearchSpace(space).configs()
    accuracy, models = _gross_accuracy(cfg, configs)
    baselines = list(dict.fromkeys(uniform(space, int(s)) for s in cfg["latency"]["baselines"]))
    macs = cost_model("macs", model)
    rows, table = [], None
    for b, table in tables(cfg, model, lat).items():
        costs = {"MACs": macs, "latency": cost_model("latency", table=table)}
        for baseline in baselines:
            found = {}
            for kind, cost in costs.items():
                found[kind], _ = exhaustive_search(space, lambda cs: [accuracy[tuple(c)] for c in cs], cost,
                                                   baseline, configs=configs)
            todo = list(dict.fromkeys([baseline] + [tuple(f["config"]) for f in found.values()]))
            times = dict(zip(todo, L.measure_configs(model, todo, batch_size=b, **_measure_kwargs(cfg, lat))))
            rows += [_search_row(kind, b, baseline, best, table, macs, times) for kind, best in found.items()]
    notes = _notes(lat, table) + [
        f"GroSS validation accuracy, mean over {len(models)} repeat(s) (notebook {NOTEBOOKS['finetuning']}); "
        "budget = the baseline's MACs (MACs rows) or its predicted latency (latency rows); "
        "speed-up = baseline measured / found measured"]
    return StepResult(tables={"table_latency_search": pd.DataFrame(rows)}, notes=notes)
