"""Searching for the whole accuracy-cost trade-off at equal evaluations (beyond the paper).

Three searches on the same ``evaluate(configs) -> accuracies`` and ``cost(config)`` callables
as the paper's (:mod:`gross.search.algorithms`), each returning the table of the distinct
configurations it evaluated, in evaluation order (its Pareto front is
:func:`gross.search.pareto.pareto_front` of that table):

* :func:`nsga2_search` -- a multi-objective evolutionary search (Optuna's NSGA-II sampler:
  one categorical parameter per layer, objectives accuracy (max) and cost (min)), stopped
  after exactly ``n_evaluations`` distinct configurations;
* :func:`random_search` -- ``n_evaluations`` distinct configurations drawn uniformly;
* :func:`bfs_ladder_search` -- the paper's incremental breadth-first search
  (:func:`gross.search.algorithms.bfs_incremental_search`) under a ladder of budgets; it
  decides itself how many configurations it evaluates.

:func:`compare_searches` runs the three per seed, giving NSGA-II and random search exactly
as many evaluations as the breadth-first ladder used with that seed.

Optuna is imported inside :func:`nsga2_search` only (the GPU image lacks it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from gross.method.space import Config, as_space
from gross.search.algorithms import _Cost, _Memo, bfs_incremental_search

__all__ = ["SEARCH_COLUMNS", "METHODS", "nsga2_search", "random_search", "bfs_ladder_search", "compare_searches"]

#: Columns of a search's table of evaluated configurations.
SEARCH_COLUMNS = ["evaluation", "config", "macs", "gconv_macs", "accuracy"]

#: The searches :func:`compare_searches` runs, in order.
METHODS = ("bfs", "nsga2", "random")


def _check_count(n, name: str = "n_evaluations") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


def _table(configs: Sequence[Config], memo: _Memo, cost: _Cost) -> pd.DataFrame:
    accuracy = memo(list(configs))
    costs = [cost(c) for c in configs]
    return pd.DataFrame({"evaluation": np.arange(1, len(configs) + 1), "config": list(configs),
                         "macs": [m.total for m in costs], "gconv_macs": [m.gconv for m in costs],
                         "accuracy": accuracy}, columns=SEARCH_COLUMNS)


def nsga2_search(space, evaluate: Callable, cost: Callable, n_evaluations: int, *, seed: int = 0,
                 population_size: int = 20, max_trials: int | None = None,
                 cache: dict | None = None) -> pd.DataFrame:
    """Multi-objective search with Optuna's NSGA-II sampler: maximise accuracy, minimise cost.

    Every layer's group size is a categorical parameter (its allowed sizes). Trials are asked
    a generation at a time (``population_size``); the configurations of a generation not
    evaluated before are evaluated in one ``evaluate`` call and every trial is told its
    accuracy and total cost. A configuration the sampler proposes again is told its memoised
    values and not counted again. The search stops once ``n_evaluations`` distinct
    configurations are evaluated (the last generation is cut short there).

    Parameters
    ----------
    space : SearchSpace, mapping or sequence of size sequences
    evaluate : callable
        ``evaluate(list of configs) -> accuracies``.
    cost : callable
        ``cost(config) -> number`` or ``(total, secondary)`` (e.g. a MacLookup).
    n_evaluations : int
        Distinct configurations to evaluate (at most the size of the space).
    seed : int, default 0
        Seed of the sampler.
    population_size : int, default 20
        NSGA-II's population (trials per generation).
    max_trials : int, optional
        Most trials asked before giving up on finding new configurations (default
        ``50 * n_evaluations``); reaching it raises.
    cache : dict, optional
        Memo ``config -> accuracy`` shared with other searches (read and extended; a
        configuration found there still counts as one of this search's evaluations).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SEARCH_COLUMNS` (``evaluation`` = 1, 2, ... in evaluation order),
        ``n_evaluations`` rows; ``attrs["trials"]`` is the number of trials asked.

    Raises
    ------
    ValueError
        ``n_evaluations`` not a positive integer or above the size of the space,
        ``population_size`` below 2, or no new configuration within ``max_trials`` trials.
    """
    import optuna

    space = as_space(space)
    n = _check_count(n_evaluations)
    if n > space.num_configs:
        raise ValueError(f"n_evaluations {n} exceeds the {space.num_configs} configurations of the space")
    population_size = _check_count(population_size, "population_size")
    if population_size < 2:
        raise ValueError(f"population_size must be at least 2 (NSGA-II needs parents), got {population_size}")
    max_trials = 50 * n if max_trials is None else _check_count(max_trials, "max_trials")
    cost, memo = _Cost(cost, space), _Memo(evaluate, cache)
    names = [f"{i}:{name}" for i, name in enumerate(space.names)]
    distributions = {k: optuna.distributions.CategoricalDistribution(list(sizes))
                     for k, sizes in zip(names, space.sizes)}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        sampler = optuna.samplers.NSGAIISampler(population_size=population_size, seed=int(seed))
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        order: list[Config] = []
        seen: set = set()
        trials = 0
        while len(order) < n:
            batch, new = [], []
            while len(batch) < population_size and len(order) + len(new) < n:
                if trials >= max_trials:
                    raise ValueError(f"NSGA-II proposed no new configuration in {max_trials} trials "
                                     f"({len(order) + len(new)} of {n} evaluated); lower n_evaluations")
                trial = study.ask(distributions)
                trials += 1
                config = space.validate(tuple(int(trial.params[k]) for k in names))
                batch.append((trial, config))
                if config not in seen:
                    seen.add(config)
                    new.append(config)
            memo(new)  # one batch for the generation's new configurations
            order += new
            for trial, config in batch:
                study.tell(trial, [memo([config])[0], float(cost(config).total)])
    finally:
        optuna.logging.set_verbosity(verbosity)
    table = _table(order, memo, cost)
    table.attrs["trials"] = trials
    return table


def random_search(space, evaluate: Callable, cost: Callable, n_evaluations: int, *, seed=0,
                  cache: dict | None = None) -> pd.DataFrame:
    """``n_evaluations`` distinct configurations drawn uniformly at random, evaluated in one batch.

    The draw is :meth:`gross.method.space.SearchSpace.random` (nested in ``n_evaluations``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SEARCH_COLUMNS`, in drawing order.

    Raises
    ------
    ValueError
        ``n_evaluations`` not a positive integer or above the size of the space.
    """
    space = as_space(space)
    n = _check_count(n_evaluations)
    return _table(space.random(n, seed), _Memo(evaluate, cache), _Cost(cost, space))


def bfs_ladder_search(space, evaluate: Callable, cost: Callable, baselines: Sequence, *, runs: int = 20,
                      max_steps: int = 25, seeded_runs: int = 10, seed=0,
                      cache: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's incremental breadth-first search over a ladder of budgets, as a table of evaluations.

    :func:`gross.search.algorithms.bfs_incremental_search` under every baseline (ascending
    budget, each search after the first seeded with the previous one's best); the table
    holds every distinct configuration of its traces, in the order first evaluated.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`SEARCH_COLUMNS`: the distinct configurations the ladder evaluated
        (their number is the count the other searches get).
    best : pandas.DataFrame
        One row per budget (the single-budget answers), ascending budget.
    """
    space = as_space(space)
    cache = {} if cache is None else cache
    best, trace = bfs_incremental_search(space, evaluate, cost, baselines, runs=runs, max_steps=max_steps,
                                         seeded_runs=seeded_runs, seed=seed, cache=cache)
    configs = list(dict.fromkeys(tuple(c) for c in trace["config"]))
    return _table(configs, _Memo(evaluate, cache), _Cost(cost, space)), best


def compare_searches(space, evaluate: Callable, cost: Callable, baselines: Sequence, seeds: Sequence[int], *,
                     runs: int = 20, max_steps: int = 25, seeded_runs: int = 10, population_size: int = 20,
                     cache: dict | None = None) -> pd.DataFrame:
    """BFS over the ladder, NSGA-II and random search per seed, at equal evaluations.

    Per seed: :func:`bfs_ladder_search` first; the number of distinct configurations it
    evaluated is then the budget of :func:`nsga2_search` and :func:`random_search` (the
    same seed). Accuracies are memoised in ``cache`` across all searches (an accuracy does
    not depend on which search asks for it), which changes the work, never a result.

    Parameters
    ----------
    space, evaluate, cost
        As in :func:`nsga2_search`.
    baselines : sequence of configurations or numbers
        The budget ladder of the breadth-first search.
    seeds : sequence of int
    runs, max_steps, seeded_runs
        Of the breadth-first search.
    population_size : int
        Of NSGA-II.
    cache : dict, optional
        Memo ``config -> accuracy`` (default a new one).

    Returns
    -------
    pandas.DataFrame
        Columns ``method`` (:data:`METHODS`), ``seed``, ``n_evaluations`` (the seed's
        count, equal for the three) and :data:`SEARCH_COLUMNS`: every evaluated
        configuration of every search.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    cache = {} if cache is None else cache
    frames = []
    for seed in seeds:
        ladder, _ = bfs_ladder_search(space, evaluate, cost, baselines, runs=runs, max_steps=max_steps,
                                      seeded_runs=seeded_runs, seed=seed, cache=cache)
        n = len(ladder)
        nsga = nsga2_search(space, evaluate, cost, n, seed=seed, population_size=population_size, cache=cache)
        rand = random_search(space, evaluate, cost, n, seed=seed, cache=cache)
        for method, table in zip(METHODS, (ladder, nsga, rand)):
            frames.append(table.assign(method=method, seed=seed, n_evaluations=n))
    out = pd.concat(frames, ignore_index=True)
    return out[["method", "seed", "n_evaluations"] + SEARCH_COLUMNS]
