"""Notebook 08 (beyond the paper): Pareto fronts of accuracy against MACs and latency, searched at equal evaluations.

Settings come from ``[pareto]`` (``configs/paper.toml``); the timing settings of the latency
tables and measurements from ``[latency]`` (as notebook 06). Each step is the composition of
public verbs, one per notebook cell, and takes their results as optional keyword arguments.

* :func:`four_layer_fronts` -- the exact fronts of the 4-layer net: every configuration's
  GroSS validation accuracy (mean over the fine-tuned repeats, as notebooks 03 and 06;
  :func:`four_layer_accuracy`), MACs and predicted latency (:func:`four_layer_table`), the
  configurations on the accuracy-MACs or accuracy-latency front with their measured latency
  (:func:`fronts_table`, :func:`measure_front`), and NSGA-II / random search with
  ``pareto.four_layer_evaluations`` evaluations against the exact hypervolume
  (:func:`four_layer_searches`, :func:`four_layer_summary`). Tables
  ``pareto_four_layer_front``, ``pareto_four_layer_search``, and the two the figure is drawn
  from, ``pareto_four_layer_all`` (every configuration) and ``pareto_four_layer_evaluations``
  (every search evaluation); figure ``fig_pareto_four_layer``.
* :func:`vgg16_fronts` -- on the CIFAR VGG-16 GroSS model: the paper's breadth-first search
  over the budget ladder, NSGA-II and random search per seed at equal evaluations
  (:func:`vgg16_searches`), their hypervolumes (:func:`hypervolume_table`,
  :func:`hypervolume_summary`) and the front of everything evaluated with predicted and
  measured latency. Tables ``pareto_vgg16_hypervolume``, ``pareto_vgg16_seeds``,
  ``pareto_vgg16_front``, ``pareto_vgg16_evaluations``, ``pareto_vgg16_distinct`` (every
  distinct configuration evaluated, with predicted latency: the figure's right panel); figure
  ``fig_pareto_vgg16``.

Hypervolumes are on normalised objectives (:func:`gross.search.pareto.hypervolume`): MACs from
the space's cheapest to its dearest configuration, accuracy from 0 to the best accuracy any
compared search found (4-layer: the best configuration), reference point (accuracy 0,
dearest MACs).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from torch import nn

from gross.method.decomposition import search_space
from gross.method.space import SearchSpace, config_str
from gross.pipeline import latency
from gross.pipeline.common import n_repeats, prepare_data, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store
from gross.search import latency as L
from gross.search.costs import model_mac_lookup
from gross.search.pareto import hypervolume, pareto_front

__all__ = [
    "NOTEBOOK",
    "PAIR",
    "LATENCY_PAIR",
    "latency_table",
    "four_layer_accuracy",
    "four_layer_table",
    "fronts_table",
    "measure_front",
    "mac_range",
    "hypervolume_ranges",
    "four_layer_searches",
    "hypervolume_table",
    "four_layer_summary",
    "four_layer_figure",
    "four_layer_fronts",
    "vgg16_data",
    "vgg16_ladder",
    "vgg16_searches",
    "hypervolume_summary",
    "vgg16_evaluated",
    "vgg16_figure",
    "vgg16_fronts",
]

#: Stem of the notebook these steps belong to.
NOTEBOOK = "08_pareto_fronts"
#: The paper's pair of objectives.
PAIR = {"accuracy": "max", "macs": "min"}
#: The second pair: accuracy against predicted latency.
LATENCY_PAIR = {"accuracy": "max", "predicted_ms": "min"}

_TIMING_KEYS = ("warmup", "repeats", "min_time", "statistic", "clock", "rounds")


def _batch(cfg: Mapping) -> int:
    return int(cfg["pareto"]["latency_batch_size"])


def _lat(cfg: Mapping) -> dict:
    return {**latency.settings(cfg), "batch_sizes": [_batch(cfg)]}


def latency_table(cfg: Mapping, model: nn.Module) -> L.LatencyTable:
    """The latency table of ``model``'s architecture at batch ``pareto.latency_batch_size`` (cached, as notebook 06).

    An artefact of ``runs/<profile>/latency/`` named by architecture and device
    fingerprint (:func:`gross.pipeline.latency.tables`): the 4-layer net's is notebook 06's.
    """
    return latency.tables(cfg, model, _lat(cfg))[_batch(cfg)]


def four_layer_accuracy(cfg: Mapping) -> dict[tuple, float]:
    """GroSS validation accuracy of every 4-layer configuration, mean over the repeats (cached artefact).

    :func:`gross.pipeline.latency.search_accuracy` (notebook 02's fine-tuned models, as
    notebooks 03 and 06), stored as ``runs/<profile>/pareto/four_layer_accuracy.json``.
    """
    def compute() -> dict:
        acc = latency.search_accuracy(cfg)
        return {"configs": [list(c) for c in acc], "accuracy": list(acc.values())}

    payload = Store(cfg).make("pareto/four_layer_accuracy.json", compute, NOTEBOOK)
    return {tuple(c): float(a) for c, a in zip(payload["configs"], payload["accuracy"])}


def four_layer_table(cfg: Mapping, accuracy: Mapping[tuple, float] | None = None, model: nn.Module | None = None,
                     table: L.LatencyTable | None = None) -> pd.DataFrame:
    """Every 4-layer configuration: GroSS validation accuracy, MACs and predicted latency.

    Returns
    -------
    pandas.DataFrame
        Columns ``config, accuracy, macs, gconv_macs, predicted_ms`` (search-space order).
    """
    model = load_gross(cfg, "four_layer", 0) if model is None else model
    accuracy = four_layer_accuracy(cfg) if accuracy is None else accuracy
    table = latency_table(cfg, model) if table is None else table
    return _costed(list(accuracy), list(accuracy.values()), model, table)


def _costed(configs, accuracy, model: nn.Module, table: L.LatencyTable) -> pd.DataFrame:
    lookup = model_mac_lookup(model)
    costs = [lookup(c) for c in configs]
    return pd.DataFrame({"config": [tuple(c) for c in configs], "accuracy": [float(a) for a in accuracy],
                         "macs": [m.total for m in costs], "gconv_macs": [m.gconv for m in costs],
                         "predicted_ms": [table.predict(c) * 1e3 for c in configs]})


def fronts_table(table: pd.DataFrame) -> pd.DataFrame:
    """The configurations on the accuracy-MACs front or on the accuracy-latency front, with flags.

    Parameters
    ----------
    table : pandas.DataFrame
        Distinct configurations with ``config, accuracy, macs, predicted_ms``.

    Returns
    -------
    pandas.DataFrame
        The rows on either front (ascending MACs), with ``on_macs_front`` and
        ``on_latency_front``.
    """
    table = table.drop_duplicates("config").reset_index(drop=True)
    macs = set(pareto_front(table, PAIR).index)
    lat = set(pareto_front(table, LATENCY_PAIR).index)
    out = table.loc[sorted(macs | lat)].assign(on_macs_front=lambda d: d.index.isin(macs),
                                               on_latency_front=lambda d: d.index.isin(lat))
    return out.sort_values(["macs", "accuracy"]).reset_index(drop=True)


def measure_front(cfg: Mapping, model: nn.Module, front: pd.DataFrame) -> pd.DataFrame:
    """``front`` with ``measured_ms``: each configuration exported and timed at batch ``pareto.latency_batch_size``.

    All configurations are timed together, round-robin, with notebook 06's timing settings
    (:func:`gross.search.latency.measure_configs`).
    """
    lat = _lat(cfg)
    configs = [tuple(c) for c in front["config"]]
    seconds = L.measure_configs(model, configs, batch_size=_batch(cfg), device=lat["device"],
                                num_threads=lat["threads"], seed=int(cfg["seed"]),
                                **{k: lat[k] for k in _TIMING_KEYS})
    return front.assign(measured_ms=np.asarray(seconds) * 1e3)


def mac_range(model: nn.Module) -> tuple[int, int]:
    """MACs of the cheapest and of the dearest configuration of a GroSS model's space."""
    lookup = model_mac_lookup(model)
    return lookup(lookup.min_config()).total, lookup(lookup.max_config()).total


def hypervolume_ranges(model: nn.Module, accuracy) -> dict[str, tuple]:
    """The normalisation of the hypervolume: MACs cheapest..dearest configuration, accuracy 0..the best of ``accuracy``.

    Parameters
    ----------
    model : nn.Module
        The GroSS model (its space's MAC range, :func:`mac_range`).
    accuracy : sequence of float
        Every accuracy the compared searches found (or every configuration's).
    """
    return {"accuracy": (0.0, float(np.max(np.asarray(accuracy, dtype=np.float64)))), "macs": mac_range(model)}


def _seeds(cfg: Mapping) -> list[int]:
    return [int(cfg["seed"]) + i for i in range(int(cfg["pareto"]["seeds"]))]


def four_layer_searches(cfg: Mapping, table: pd.DataFrame, model: nn.Module | None = None) -> pd.DataFrame:
    """NSGA-II and random search on the 4-layer net with ``pareto.four_layer_evaluations`` evaluations per seed.

    Both read the accuracies of ``table`` (the exhaustive evaluation: the same numbers an
    evaluation would give), ``pareto.seeds`` seeds from ``seed``.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, seed, n_evaluations`` and :data:`gross.search.multiobjective.SEARCH_COLUMNS`.
    """
    from gross.search.multiobjective import SEARCH_COLUMNS, nsga2_search, random_search

    model = load_gross(cfg, "four_layer", 0) if model is None else model
    sec = cfg["pareto"]
    acc = dict(zip(table["config"], table["accuracy"]))
    space, lookup = SearchSpace(search_space(model)), model_mac_lookup(model)
    n = int(sec["four_layer_evaluations"])
    frames = []
    for seed in _seeds(cfg):
        def evaluate(cs):
            return [acc[tuple(c)] for c in cs]
        nsga = nsga2_search(space, evaluate, lookup, n, seed=seed, population_size=int(sec["four_layer_population"]))
        rand = random_search(space, evaluate, lookup, n, seed=seed)
        frames += [nsga.assign(method="nsga2", seed=seed, n_evaluations=n),
                   rand.assign(method="random", seed=seed, n_evaluations=n)]
    return pd.concat(frames, ignore_index=True)[["method", "seed", "n_evaluations"] + SEARCH_COLUMNS]


def hypervolume_table(evaluated: pd.DataFrame, ranges: Mapping) -> pd.DataFrame:
    """Hypervolume (accuracy vs MACs, normalised by ``ranges``) of each method and seed's evaluations.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, seed, n_evaluations, front_size, best_accuracy, hypervolume``.
    """
    rows = []
    for (method, seed), g in evaluated.groupby(["method", "seed"], sort=False):
        rows.append({"method": method, "seed": int(seed), "n_evaluations": int(g["config"].nunique()),
                     "front_size": len(pareto_front(g.drop_duplicates("config"), PAIR)),
                     "best_accuracy": float(g["accuracy"].max()), "hypervolume": hypervolume(g, PAIR, ranges)})
    return pd.DataFrame(rows)


def four_layer_summary(cfg: Mapping, table: pd.DataFrame, searches: pd.DataFrame,
                       model: nn.Module | None = None) -> pd.DataFrame:
    """Hypervolume of each 4-layer search against the exact front's (all configurations).

    Returns
    -------
    pandas.DataFrame
        One row per method and seed (:func:`hypervolume_table`) plus the exact front (method
        ``"exact"``), with ``exact_hypervolume``, ``ratio`` (hypervolume / exact), the target
        ratio 0.9 and ``met``.
    """
    model = load_gross(cfg, "four_layer", 0) if model is None else model
    ranges = hypervolume_ranges(model, table["accuracy"])
    exact = hypervolume(table, PAIR, ranges)
    rows = hypervolume_table(searches, ranges)
    exact_row = pd.DataFrame([{"method": "exact", "seed": -1, "n_evaluations": len(table),
                               "front_size": len(pareto_front(table, PAIR)),
                               "best_accuracy": float(table["accuracy"].max()), "hypervolume": exact}])
    out = pd.concat([exact_row, rows], ignore_index=True)
    return out.assign(exact_hypervolume=exact, ratio=out["hypervolume"] / exact, target_ratio=0.9,
                      met=out["hypervolume"] / exact >= 0.9)


def four_layer_figure(table: pd.DataFrame, searches: pd.DataFrame | None = None, ax=None):
    """The 4-layer net's exact fronts (MACs, predicted latency) and, with ``searches``, NSGA-II's first seed's front."""
    from gross.report import plots

    fronts = {"exact": pareto_front(table, PAIR)}
    if searches is not None:
        first = searches[searches["method"] == "nsga2"]
        first = first[first["seed"] == first["seed"].min()]
        fronts[f"NSGA-II, {len(first)} evaluations"] = pareto_front(first, PAIR)
    panels = {"4-layer net: MACs": {"x": "macs", "all": table, "fronts": fronts},
              "4-layer net: predicted latency": {"x": "predicted_ms", "all": table,
                                                         "fronts": {"exact": pareto_front(table, LATENCY_PAIR)}}}
    return plots.pareto_figure(panels, ax=ax)


def _front_out(front: pd.DataFrame) -> pd.DataFrame:
    return front.assign(config=[config_str(c) for c in front["config"]])


@step(NOTEBOOK, tables=("pareto_four_layer_front", "pareto_four_layer_search", "pareto_four_layer_all",
                        "pareto_four_layer_evaluations"), figures=("fig_pareto_four_layer",))
def four_layer_fronts(cfg: Mapping, table: pd.DataFrame | None = None, front: pd.DataFrame | None = None,
                      searches: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
                      figure=None) -> StepResult:
    """The exact fronts of the 4-layer net and NSGA-II / random search against them.

    Every keyword argument is the result of one verb, computed when ``None``: ``table``
    (:func:`four_layer_table`), ``front`` (:func:`fronts_table` then :func:`measure_front`),
    ``searches`` (:func:`four_layer_searches`), ``summary`` (:func:`four_layer_summary`) and
    ``figure`` (:func:`four_layer_figure`). Needs notebook 02 (the fine-tuned GroSS models).
    """
    needs_model = table is None or front is None or searches is None or summary is None
    model = load_gross(cfg, "four_layer", 0) if needs_model else None
    table = four_layer_table(cfg, model=model) if table is None else table
    front = measure_front(cfg, model, fronts_table(table)) if front is None else front
    searches = four_layer_searches(cfg, table, model) if searches is None else searches
    summary = four_layer_summary(cfg, table, searches, model) if summary is None else summary
    figure = four_layer_figure(table, searches) if figure is None else figure
    lat = _lat(cfg)
    notes = latency._notes(lat) + [
        f"GroSS validation accuracy, mean over {n_repeats(cfg, 'four_layer')} fine-tuned repeat(s) (notebook 02); "
        f"all {len(table)} configurations evaluated (exact fronts); latency at batch {_batch(cfg)}",
        "hypervolume on normalised objectives: MACs cheapest..dearest configuration -> 0..1, accuracy 0..best "
        "configuration -> 0..1, reference point (accuracy 0, dearest MACs); target: ratio >= 0.9 within "
        f"{cfg['pareto']['four_layer_evaluations']} evaluations"]
    tables = {"pareto_four_layer_front": _front_out(front), "pareto_four_layer_search": summary,
              "pareto_four_layer_all": _front_out(table), "pareto_four_layer_evaluations": _front_out(searches)}
    return StepResult(tables=tables, figures={"fig_pareto_four_layer": figure}, notes=notes)


# ----------------------------------------------------------------------------- VGG-16


def vgg16_data(cfg: Mapping):
    """The VGG-16 data (notebook 04's) with its validation split cut to ``pareto.n_val`` images (0: all)."""
    from gross.data import subset

    data = prepare_data(cfg, "vgg16")
    n = int(cfg["pareto"]["n_val"])
    if n == 0 or n >= len(data.val):
        return data
    return subset(data, n_val=n, seed=int(cfg["data"]["split_seed"]))


def vgg16_ladder(cfg: Mapping, model: nn.Module) -> pd.DataFrame:
    """The budget ladder of the breadth-first search: the uniform baselines of ``pareto.baselines``, ascending MACs."""
    space, lookup = search_space(model), model_mac_lookup(model)
    configs = sorted(dict.fromkeys(uniform(space, int(s)) for s in cfg["pareto"]["baselines"]),
                     key=lambda c: lookup(c).total)
    return pd.DataFrame({"config": configs, "macs": [lookup(c).total for c in configs]})


def vgg16_searches(cfg: Mapping, model: nn.Module | None = None, data=None,
                   ladder: pd.DataFrame | None = None) -> pd.DataFrame:
    """BFS over the ladder, NSGA-II and random search on the GroSS VGG-16, per seed, at equal evaluations.

    :func:`gross.search.multiobjective.compare_searches` with a
    :class:`gross.search.evaluation.ConfigEvaluator` on :func:`vgg16_data`'s validation split
    and MACs as the cost; ``pareto.seeds`` seeds from ``seed``.
    """
    from gross.pipeline.common import eval_kwargs
    from gross.search.evaluation import ConfigEvaluator
    from gross.search.multiobjective import compare_searches

    sec = cfg["pareto"]
    model = load_gross(cfg, "vgg16", 0) if model is None else model
    data = vgg16_data(cfg) if data is None else data
    ladder = vgg16_ladder(cfg, model) if ladder is None else ladder
    evaluate = ConfigEvaluator(model, data, split="val", **eval_kwargs(cfg, data))
    return compare_searches(search_space(model), evaluate, model_mac_lookup(model),
                            [tuple(c) for c in ladder["config"]], _seeds(cfg), runs=int(sec["bfs_runs"]),
                            max_steps=int(sec["bfs_max_steps"]), seeded_runs=int(sec["bfs_seeded_runs"]),
                            population_size=int(sec["population_size"]))


def hypervolume_summary(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of the hypervolume per method, and whether NSGA-II's mean reaches the others'.

    Parameters
    ----------
    seeds : pandas.DataFrame
        :func:`hypervolume_table` (one row per method and seed).

    Returns
    -------
    pandas.DataFrame
        One row per method: ``method, seeds, n_evaluations`` (mean over seeds),
        ``hypervolume_mean, hypervolume_std`` (sample std), ``hypervolume_min, hypervolume_max``,
        ``front_size_mean``, ``best_accuracy_mean`` and ``nsga2_ge`` (for the other methods:
        whether NSGA-II's mean hypervolume is >= this method's; the target).
    """
    g = seeds.groupby("method", sort=False)
    out = pd.DataFrame({"seeds": g.size(), "n_evaluations": g["n_evaluations"].mean(),
                        "hypervolume_mean": g["hypervolume"].mean(), "hypervolume_std": g["hypervolume"].std(ddof=1),
                        "hypervolume_min": g["hypervolume"].min(), "hypervolume_max": g["hypervolume"].max(),
                        "front_size_mean": g["front_size"].mean(),
                        "best_accuracy_mean": g["best_accuracy"].mean()}).reset_index()
    if "nsga2" in set(out["method"]):
        nsga = float(out.loc[out["method"] == "nsga2", "hypervolume_mean"].iloc[0])
        out["nsga2_ge"] = [None if m == "nsga2" else bool(nsga >= h)
                           for m, h in zip(out["method"], out["hypervolume_mean"])]
    return out


def vgg16_evaluated(evaluated: pd.DataFrame, model: nn.Module, table: L.LatencyTable) -> pd.DataFrame:
    """Every distinct configuration the searches evaluated, with predicted latency and the methods that found it.

    Returns
    -------
    pandas.DataFrame
        Columns ``config, accuracy, macs, gconv_macs, predicted_ms, found_by`` (methods, comma-separated).
    """
    found_by = evaluated.groupby("config", sort=False)["method"].agg(lambda m: ",".join(dict.fromkeys(m)))
    first = evaluated.drop_duplicates("config")
    return _costed(list(first["config"]), list(first["accuracy"]), model, table).assign(
        found_by=[found_by[c] for c in first["config"]])


def vgg16_figure(evaluated: pd.DataFrame, distinct: pd.DataFrame, ax=None):
    """Left: the three searches' fronts of the first seed (accuracy vs MACs); right: the front of everything
    evaluated, accuracy vs predicted latency."""
    from gross.report import plots

    seed = int(evaluated["seed"].min())
    first = evaluated[evaluated["seed"] == seed]
    names = {"bfs": "BFS ladder", "nsga2": "NSGA-II", "random": "random"}
    fronts = {names.get(m, m): pareto_front(g, PAIR) for m, g in first.groupby("method", sort=False)}
    panels = {f"VGG-16, seed {seed}: MACs": {"x": "macs", "all": first, "fronts": fronts},
              "VGG-16, all searches: predicted latency": {
                  "x": "predicted_ms", "all": distinct, "fronts": {"front": pareto_front(distinct, LATENCY_PAIR)}}}
    return plots.pareto_figure(panels, ax=ax)


@step(NOTEBOOK, tables=("pareto_vgg16_hypervolume", "pareto_vgg16_seeds", "pareto_vgg16_front",
                        "pareto_vgg16_evaluations", "pareto_vgg16_distinct"), figures=("fig_pareto_vgg16",))
def vgg16_fronts(cfg: Mapping, model: nn.Module | None = None, evaluated: pd.DataFrame | None = None,
                 seeds: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
                 front: pd.DataFrame | None = None, figure=None) -> StepResult:
    """Three searches of the GroSS VGG-16 at equal evaluations: hypervolumes, the front, its latency.

    Every keyword argument is the result of one verb, computed when ``None``: ``model``
    (:func:`gross.pipeline.decomposition.load_gross`), ``evaluated``
    (:func:`vgg16_searches`), ``seeds`` (:func:`hypervolume_table` with the ranges
    described in the module), ``summary`` (:func:`hypervolume_summary`), ``front``
    (:func:`fronts_table` of :func:`vgg16_evaluated`, then :func:`measure_front`) and
    ``figure`` (:func:`vgg16_figure`). Needs notebook 02 (the fine-tuned GroSS VGG-16).
    """
    model = load_gross(cfg, "vgg16", 0) if model is None else model
    evaluated = vgg16_searches(cfg, model) if evaluated is None else evaluated
    ranges = hypervolume_ranges(model, evaluated["accuracy"])
    seeds = hypervolume_table(evaluated, ranges) if seeds is None else seeds
    summary = hypervolume_summary(seeds) if summary is None else summary
    distinct = vgg16_evaluated(evaluated, model, latency_table(cfg, model))
    front = measure_front(cfg, model, fronts_table(distinct)) if front is None else front
    figure = vgg16_figure(evaluated, distinct) if figure is None else figure
    data_n = len(vgg16_data(cfg).val)
    notes = latency._notes(_lat(cfg)) + [
        f"GroSS validation accuracy on {data_n} validation images; seeds {_seeds(cfg)}; per seed BFS over the ladder "
        f"{[config_str(c) for c in vgg16_ladder(cfg, model)['config']]} ({cfg['pareto']['bfs_runs']} run(s) of at "
        f"most {cfg['pareto']['bfs_max_steps']} step(s) per budget) first, then NSGA-II (population "
        f"{cfg['pareto']['population_size']}) and random search with exactly as many distinct evaluations",
        f"hypervolume on normalised objectives: MACs {ranges['macs'][0]}..{ranges['macs'][1]} (cheapest..dearest "
        f"configuration) -> 0..1, accuracy 0..{ranges['accuracy'][1]:.2f} (best found by any search) -> 0..1, "
        "reference point (accuracy 0, dearest MACs); target: NSGA-II mean >= BFS mean and >= random mean (nsga2_ge)"]
    return StepResult(tables={"pareto_vgg16_hypervolume": summary, "pareto_vgg16_seeds": seeds,
                              "pareto_vgg16_front": _front_out(front), "pareto_vgg16_evaluations": _front_out(evaluated),
                              "pareto_vgg16_distinct": _front_out(distinct)},
                      figures={"fig_pareto_vgg16": figure}, notes=notes)
