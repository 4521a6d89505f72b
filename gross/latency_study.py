"""Steps of notebook 06 (latency-aware search): each takes the resolved config and returns tables/figures.

Settings come from the ``[latency]`` section of the config (see ``configs/paper.toml``);
timings run on the config's ``device`` with ``latency.threads`` CPU threads. Outputs are
written with the pipeline's writers (:func:`gross.experiments.save_table` /
:func:`~gross.experiments.save_figure`), with notes giving the device fingerprint, the
timing settings and the machine load (1-minute load average) while measuring.

* :func:`predictor_validation` -- predicted vs measured end-to-end latency of random
  configurations of the 4-layer net and the CIFAR VGG-16 (random GroSS factors: timing
  does not depend on weights), per batch size: ``latency_predictor_validation`` (summary:
  median absolute relative error, Spearman) and ``latency_predictor_configs``.
* :func:`latency_vs_macs` -- every (or ``scatter_configs``) configuration of the 4-layer
  net (random GroSS factors): MACs, predicted and measured latency
  (``latency_all_configs``, ``fig_latency_vs_macs``).
* :func:`latency_search` -- per uniform baseline and batch size, the exhaustive search's
  winner under the MAC budget and under the latency budget (budget = the baseline's cost
  under the same model), with GroSS validation accuracy (fine-tuned GroSS 4-layer models of
  notebook 02), MACs, predicted and measured latency and speed-up vs the baseline
  (``table_latency_search``).

Committed numbers come from the notebook under the ``cpu`` profile (``make reproduce``
runs it after notebooks 01-05, or alone once 02 has run:
``papermill notebooks/06_latency_aware_search.ipynb out.ipynb -p profile cpu``). The
``cpu`` profile times with the process's CPU clock and the minimum of the repeats, so
that a shared machine's load inflates the numbers as little as possible; the load
average while measuring is written beside every output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from . import costs as C
from . import latency as L
from .decomposition import enumerate_configs, search_space

__all__ = [
    "OUTPUTS",
    "settings",
    "tables",
    "predictor_validation",
    "latency_vs_macs",
    "plot_latency_vs_macs",
    "latency_search",
]

#: Tables and figures notebook 06 writes (for the pipeline's expected-outputs list).
OUTPUTS = {"tables": ["latency_predictor_validation", "latency_predictor_configs", "latency_all_configs",
                      "table_latency_search"],
           "figures": ["fig_latency_vs_macs"]}

_TIMING_KEYS = ("warmup", "repeats", "min_time", "statistic", "clock")


def settings(cfg: Mapping) -> dict:
    """The ``[latency]`` settings, checked, with the resolved ``device``."""
    from .experiments import resolve_device

    lat = dict(cfg["latency"])
    if lat["mode"] not in L.MODES:
        raise ValueError(f"config key 'latency.mode' must be one of {L.MODES}, got {lat['mode']!r}")
    if lat["statistic"] not in L.STATISTICS:
        raise ValueError(f"config key 'latency.statistic' must be one of {L.STATISTICS}, got {lat['statistic']!r}")
    if lat["clock"] not in L.CLOCKS:
        raise ValueError(f"config key 'latency.clock' must be one of {L.CLOCKS}, got {lat['clock']!r}")
    bad = [m for m in lat["validation_models"] if m not in ("four_layer", "vgg16")]
    if bad:
        raise ValueError(f"config key 'latency.validation_models' has unknown models {bad}; use four_layer, vgg16")
    lat["device"] = resolve_device(cfg)
    if lat["device"].type != "cpu":
        lat["clock"] = "wall"  # CPU time means nothing for a GPU; CUDA timings synchronise the device
    return lat


def _timing(lat: Mapping) -> dict:
    return {k: lat[k] for k in _TIMING_KEYS}


def _notes(lat: Mapping, table: L.LatencyTable | None = None) -> list[str]:
    fp = table.fingerprint if table is not None else L.device_fingerprint(lat["device"], 1, lat["threads"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [f"latency on {fp['device_name']} ({fp['device_type']}, {fp.get('threads', '-')} threads, torch "
            f"{fp['torch']}), {lat['clock']} clock, {lat['statistic']} of {lat['repeats']} timed loops of >= {lat['min_time']} s after "
            f"{lat['warmup']} warm-up, table mode {lat['mode']}",
            f"machine load while measuring: 1-min load average {load:.2f} on {os.cpu_count()} CPUs"]


def _validation_model(cfg, name: str):
    from .bench import VGG_GROUP_SIZES, random_gross
    from .models import four_layer_net, vgg16_cifar

    torch.manual_seed(int(cfg["seed"]))
    if name == "four_layer":
        return random_gross(four_layer_net(), seed=int(cfg["seed"])).eval()
    sizes = cfg["vgg16"].get("group_sizes", VGG_GROUP_SIZES)
    net = vgg16_cifar(width_mult=cfg["latency"]["vgg16_width_mult"])
    return random_gross(net, sizes, seed=int(cfg["seed"])).eval()


def tables(cfg: Mapping, model, batch_sizes=None) -> dict[int, L.LatencyTable]:
    """Latency tables of ``model`` per batch size (cached under ``runs/<profile>/latency``)."""
    from . import paths

    lat = settings(cfg)
    out = {}
    for b in batch_sizes or lat["batch_sizes"]:
        out[int(b)] = L.latency_table(
            model, batch_size=int(b), device=lat["device"], mode=lat["mode"], num_threads=lat["threads"],
            directory=paths.run_dir(cfg["profile"]) / "latency", seed=int(cfg["seed"]), **_timing(lat))
    return out


def predictor_validation(cfg: Mapping):
    """Predicted vs measured latency of ``latency.n_validation`` random configurations per model and batch.

    Returns a :class:`gross.experiments.StepResult` with tables ``latency_predictor_validation``
    (one row per model and batch: ``n, median_abs_rel_error, spearman, spearman_macs``,
    targets) and ``latency_predictor_configs`` (every configuration).
    """
    from .experiments import StepResult, save_table

    lat = settings(cfg)
    t0 = time.perf_counter()
    rows, per_config, notes = [], [], []
    for name in lat["validation_models"]:
        model = _validation_model(cfg, name)
        for b, table in tables(cfg, model).items():
            df = L.validate_predictor(model, table, n_configs=int(lat["n_validation"]), seed=int(cfg["seed"]),
                                      device=lat["device"], num_threads=lat["threads"], **_timing(lat))
            notes = _notes(lat, table)
            label = name if name == "four_layer" else f"vgg16 x{lat['vgg16_width_mult']:g}"
            rows.append({"model": label, "batch_size": b, **L.predictor_summary(df),
                         "fixed_s": table.fixed, "target_error": 0.10, "target_spearman": 0.9})
            per_config.append(df.assign(model=label, batch_size=b,
                                        config=[" ".join(map(str, c)) for c in df["config"]]))
    summary = pd.DataFrame(rows)
    summary["met"] = (summary["median_abs_rel_error"] <= 0.10) & (summary["spearman"] >= 0.9)
    configs = pd.concat(per_config, ignore_index=True)
    wall = time.perf_counter() - t0
    notes = notes + ["random GroSS factors (timing does not depend on weights); spearman_macs: rank correlation "
                     "of MACs with measured latency, for comparison"]
    save_table(cfg, summary, "latency_predictor_validation", "both", wall, notes)
    save_table(cfg, configs, "latency_predictor_configs", "both", wall, notes)
    return StepResult(tables={"latency_predictor_validation": summary, "latency_predictor_configs": configs},
                      notes=notes)


def _scatter_configs(cfg, space) -> list[tuple]:
    configs = enumerate_configs(space)
    n = int(cfg["latency"]["scatter_configs"])
    if n >= len(configs):
        return configs
    rng = np.random.default_rng(int(cfg["seed"]))
    return [configs[i] for i in sorted(rng.choice(len(configs), n, replace=False))]


def latency_vs_macs(cfg: Mapping):
    """MACs, predicted and measured latency of the 4-layer net's configurations, per batch size.

    The network has random GroSS factors (latency does not depend on weights; no
    predecessor notebook needed). Writes ``latency_all_configs`` and
    ``fig_latency_vs_macs`` (:func:`plot_latency_vs_macs`).
    """
    from .experiments import StepResult, save_figure, save_table
    from .search import model_mac_lookup

    lat = settings(cfg)
    t0 = time.perf_counter()
    model = _validation_model(cfg, "four_layer")
    configs = _scatter_configs(cfg, search_space(model))
    lookup = model_mac_lookup(model)
    frames = []
    for b, table in tables(cfg, model).items():
        measured = L.measure_configs(model, configs, batch_size=b, device=lat["device"], num_threads=lat["threads"],
                                     seed=int(cfg["seed"]), **_timing(lat))
        frames.append(pd.DataFrame({
            "batch_size": b, "config": [" ".join(map(str, c)) for c in configs],
            "macs": [lookup(c).total for c in configs], "predicted_s": [table.predict(c) for c in configs],
            "measured_s": measured}))
    df = pd.concat(frames, ignore_index=True)
    wall = time.perf_counter() - t0
    notes = _notes(lat, table) + [f"{len(configs)} configurations of the 4-layer network (exported, plain PyTorch)"]
    fig = plot_latency_vs_macs(df)
    save_table(cfg, df, "latency_all_configs", "four_layer", wall, notes)
    save_figure(cfg, fig, "fig_latency_vs_macs", "four_layer", wall, notes)
    return StepResult(tables={"latency_all_configs": df}, figures={"fig_latency_vs_macs": fig}, notes=notes)


def plot_latency_vs_macs(df: pd.DataFrame, ax=None):
    """Measured latency (ms) against MACs, one panel per batch size, Spearman in each title.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``batch_size, macs, measured_s`` (e.g. ``latency_all_configs``).
    ax : matplotlib Axes or sequence of Axes, optional
        One per batch size; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    missing = {"batch_size", "macs", "measured_s"} - set(df.columns)
    if missing:
        raise ValueError(f"df is missing columns {sorted(missing)}; pass the latency_all_configs table")
    batches = sorted(df["batch_size"].unique())
    if ax is None:
        fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.6), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) != len(batches):
            raise ValueError(f"need one Axes per batch size {batches}, got {len(axes)}")
        fig = axes[0].figure
    for a, b in zip(axes, batches):
        part = df[df["batch_size"] == b]
        a.scatter(part["macs"] / 1e6, part["measured_s"] * 1e3, s=10, alpha=0.7)
        rho = L.spearman(part["macs"], part["measured_s"]) if len(part) > 1 else float("nan")
        a.set_title(f"batch {b}: Spearman(MACs, latency) = {rho:.2f}")
        a.set_xlabel("MACs (millions, per image)")
        a.set_ylabel("measured latency (ms per batch)")
    fig.tight_layout()
    return fig


def _uniform_baselines(cfg, space) -> list[tuple]:
    from .experiments import _uniform

    return list(dict.fromkeys(_uniform(space, int(s)) for s in cfg["latency"]["baselines"]))


def _search_row(kind, b, baseline, best, table, lookup, measured, base_measured) -> dict:
    c = tuple(best["config"])
    return {"batch_size": b, "baseline": " ".join(map(str, baseline)), "budget": kind,
            "config": " ".join(map(str, c)), "gross_val_acc": best["accuracy"],
            "baseline_val_acc": best["baseline_accuracy"], "macs": lookup(c).total,
            "predicted_ms": table.predict(c) * 1e3, "measured_ms": measured * 1e3,
            "baseline_measured_ms": base_measured * 1e3, "speedup_vs_baseline": base_measured / measured}


def latency_search(cfg: Mapping):
    """Table ``table_latency_search``: MAC-budget vs latency-budget exhaustive search per baseline and batch.

    Accuracy: GroSS validation accuracy averaged over the fine-tuned 4-layer repeats (as in
    notebook 03). For each uniform baseline of ``latency.baselines`` and batch size, the
    most accurate configuration with MACs <= the baseline's MACs and the most accurate one
    with predicted latency <= the baseline's predicted latency; their exported networks
    and the baseline's are then measured.
    """
    from .experiments import (StepResult, _eval_kwargs, _n_repeats, load_gross, prepare_data,
                              save_table)
    from .search import evaluate_configs, exhaustive_search

    lat = settings(cfg)
    t0 = time.perf_counter()
    data = prepare_data(cfg, "four_layer")
    models = [load_gross(cfg, "four_layer", r) for r in range(_n_repeats(cfg, "four_layer"))]
    space = search_space(models[0])
    configs = enumerate_configs(space)
    acc = np.mean([evaluate_configs(m, configs, data, split="val", **_eval_kwargs(cfg, data))["accuracy"]
                   for m in models], axis=0)
    accuracy = dict(zip(configs, acc.tolist()))

    def evaluate(cs):
        return [accuracy[tuple(c)] for c in cs]

    lookup = C.cost_model("macs", models[0])
    rows = []
    for b, table in tables(cfg, models[0]).items():
        cost = C.cost_model("latency", table=table)
        for baseline in _uniform_baselines(cfg, space):
            found = {}
            for kind, fn in (("MACs", lookup), ("latency", cost)):
                C.budget_of(fn, baseline)
                found[kind], _ = exhaustive_search(space, evaluate, fn, baseline, configs=configs)
            todo = [baseline] + [tuple(f["config"]) for f in found.values()]
            times = dict(zip(todo, L.measure_configs(models[0], todo, batch_size=b, device=lat["device"],
                                                     num_threads=lat["threads"], seed=int(cfg["seed"]),
                                                     **_timing(lat))))
            for kind, best in found.items():
                rows.append(_search_row(kind, b, baseline, best, table, lookup,
                                        times[tuple(best["config"])], times[baseline]))
    df = pd.DataFrame(rows)
    wall = time.perf_counter() - t0
    notes = _notes(lat, table) + [
        f"GroSS validation accuracy, mean over {len(models)} repeat(s); budget = the baseline's MACs (MACs rows) "
        "or its predicted latency (latency rows); speed-up = baseline measured / found measured"]
    save_table(cfg, df, "table_latency_search", "four_layer", wall, notes)
    return StepResult(tables={"table_latency_search": df}, notes=notes)
