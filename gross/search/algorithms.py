"""Group-size search on a GroSS-decomposed network (Sections 3.4, 5.1).

The paper's search code was never released; this module implements what the
text describes, as pure algorithms on configuration tuples:

* **Exhaustive search** (:func:`exhaustive_search`): evaluate every
  configuration, keep those whose cost is not above the budget, return the
  most accurate.
* **Breadth-first (greedy) search** (:func:`bfs_search`,
  :func:`bfs_incremental_search`): Sec. 3.4 — from a random configuration
  under the budget, repeatedly move to the most accurate one-layer neighbour
  under the budget while it improves; 20 runs of at most 25 steps;
  incrementally over ascending budgets with the first 10 runs of a search
  started from the 10 best configurations of the previous one.
  :func:`bfs_step` is one step of it made visible (the same rule), and
  :func:`bfs_first_step` the first step of :func:`bfs_incremental`.

The algorithms take an ``evaluate(configs) -> accuracies`` callable (batched;
memoised here) and a ``cost(config)`` callable returning a number or a
``(total, secondary)`` pair — by default MACs (a :class:`MacLookup`, whose
pair is ``(total MACs, grouped-convolution MACs)``), but any cost works, e.g.
a latency. The ``macs`` and ``gconv_macs`` columns of the results hold the
cost's total and secondary value (``-1`` when the cost is a single number).
For a GroSS model, :class:`gross.search.evaluation.ConfigEvaluator` is the evaluate
callable (prefix-tree evaluation) and :func:`model_mac_lookup` the MAC cost;
:func:`bfs_incremental` wires them together.

Conventions
-----------
* A *configuration* is a tuple of ints, one group size per decomposed layer in
  :func:`gross.method.decomposition.search_space` order (see :mod:`gross.method.space`); in
  DataFrames the ``config`` column holds such tuples (:func:`config_str`
  prints them like the paper: ``"8 16 64"``).
* A *baseline* is either a configuration (its cost is the budget) or a number
  (the budget itself). A configuration is *within budget* when its total cost
  is ``<=`` the budget.
* Ranking ties are broken deterministically: higher accuracy first, then
  lower total cost, then the lexicographically smaller configuration.
* Accuracies are top-1 percentages.

Accuracy evaluation lives in :mod:`gross.search.evaluation` (:func:`evaluate_configs`
and :func:`time_switching_vs_rebuild` are re-exported here for compatibility).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from torch import nn

from gross.method.decomposition import search_space
from gross.search.evaluation import ConfigEvaluator, evaluate_configs, time_switching_vs_rebuild
from gross.search.costs import MacLookup, as_cost as _as_cost, model_mac_lookup, number as _number
from gross.method.macs import MACs
from gross.method.space import Config, SearchSpace, as_space, config_str, parse_config, random_configs

__all__ = [
    "config_str",
    "parse_config",
    "neighbours",
    "MacLookup",
    "model_mac_lookup",
    "evaluate_configs",
    "exhaustive_search",
    "bfs_search",
    "bfs_incremental_search",
    "bfs_incremental",
    "bfs_step",
    "bfs_first_step",
    "time_switching_vs_rebuild",
]

#: Columns of a BFS trace.
TRACE_COLUMNS = ["baseline", "budget", "run", "step", "config", "macs", "gconv_macs", "accuracy", "selected"]


# ----------------------------------------------------------------------------- configurations


def neighbours(config: Sequence[int], space) -> list[Config]:
    """Configurations that differ from ``config`` in one layer's group size (:meth:`SearchSpace.neighbours`)."""
    return as_space(space).neighbours(config)


# ----------------------------------------------------------------------------- cost and budget


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _budget(baseline, cost) -> int | float:
    """Budget of a baseline given as a configuration (its total cost) or as a number."""
    if isinstance(baseline, (bool, np.bool_)):
        raise ValueError(f"baseline must be a configuration or a number (the budget), got {baseline!r}")
    if _is_number(baseline):
        budget = _number(baseline, "a budget")
        if budget < 0:
            raise ValueError(f"a budget must be non-negative, got {baseline}")
        return budget
    return cost(baseline).total


def _baseline_label(baseline, space: SearchSpace) -> str:
    return str(_number(baseline, "a budget")) if _is_number(baseline) else space.format(baseline)


def _rank_key(accuracy: float, cost, config: Config):
    """Sort key: most accurate first, then lower cost, then lexicographically smaller."""
    return (-accuracy, cost, config)


def _macs_alias(fn):
    """Accept the deprecated keyword ``macs=`` for ``cost=``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "macs" in kwargs:
            if "cost" in kwargs:
                raise TypeError(f"{fn.__name__}() got both cost= and its deprecated alias macs=; pass cost= only")
            warnings.warn(f"{fn.__name__}(macs=...) is deprecated; pass cost=...", DeprecationWarning, stacklevel=2)
            kwargs["cost"] = kwargs.pop("macs")
        return fn(*args, **kwargs)

    return wrapper


class _Cost:
    """Validated, memoised ``cost(config) -> MACs(total, secondary)``."""

    def __init__(self, cost: Callable, space: SearchSpace):
        self.cost, self.space, self.cache = cost, space, {}

    def __call__(self, config) -> MACs:
        hit = self.cache.get(config) if isinstance(config, tuple) else None
        if hit is not None:
            return hit
        c = self.space.validate(config)
        if c not in self.cache:
            self.cache[c] = _as_cost(self.cost(c))
        return self.cache[c]


class _Memo:
    """Memoised batched evaluation: only configurations never seen are evaluated."""

    def __init__(self, evaluate: Callable, cache: dict | None = None):
        self.evaluate = evaluate
        self.cache = {} if cache is None else cache

    def __call__(self, configs: Sequence[Config]) -> list[float]:
        missing = [c for c in dict.fromkeys(configs) if c not in self.cache]
        if missing:
            values = list(self.evaluate(missing))
            if len(values) != len(missing):
                raise ValueError(
                    f"evaluate returned {len(values)} accuracies for {len(missing)} configurations; "
                    "it must return one per configuration, in order"
                )
            for c, v in zip(missing, values):
                v = float(v)
                if not math.isfinite(v):
                    raise ValueError(f"evaluate returned a non-finite accuracy {v} for configuration {c}")
                self.cache[c] = v
        return [self.cache[c] for c in configs]


def _best_row(rows: pd.DataFrame) -> pd.Series:
    keys = [_rank_key(a, m, c) for a, m, c in zip(rows["accuracy"], rows["macs"], rows["config"])]
    return rows.iloc[min(range(len(keys)), key=keys.__getitem__)]


def _best_dict(baseline, budget, row, memo, space: SearchSpace) -> dict:
    best = {
        "baseline": _baseline_label(baseline, space),
        "budget": budget,
        "config": tuple(row["config"]),
        "macs": _number(row["macs"], "cost"),
        "gconv_macs": _number(row["gconv_macs"], "cost"),
        "accuracy": float(row["accuracy"]),
        "baseline_accuracy": math.nan,
    }
    if not _is_number(baseline):
        best["baseline_accuracy"] = memo([space.validate(baseline)])[0]
    return best


# ----------------------------------------------------------------------------- exhaustive search


def _table(configs, memo, cost) -> pd.DataFrame:
    accuracy = memo(configs)
    costs = [cost(c) for c in configs]
    return pd.DataFrame({"config": configs, "macs": [m.total for m in costs], "gconv_macs": [m.gconv for m in costs],
                         "accuracy": accuracy})


def _reuse_table(table: pd.DataFrame, memo: _Memo) -> pd.DataFrame:
    missing = {"config", "macs", "gconv_macs", "accuracy"} - set(table.columns)
    if missing:
        raise ValueError(f"table is missing columns {sorted(missing)}; pass a table returned by exhaustive search")
    table = table[["config", "macs", "gconv_macs", "accuracy"]].copy()
    for c, a in zip(table["config"], table["accuracy"]):
        memo.cache.setdefault(tuple(c), float(a))
    return table


@_macs_alias
def exhaustive_search(
    space,
    evaluate: Callable,
    cost: Callable,
    baseline,
    configs: Sequence[Config] | None = None,
    table: pd.DataFrame | None = None,
    cache: dict | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Exhaustive search (Sec. 3.4) on any accuracy function.

    Parameters
    ----------
    space : SearchSpace, mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    evaluate : callable
        ``evaluate(list of configs) -> accuracies`` (one per configuration).
    cost : callable
        ``cost(config) -> number`` or ``(total, secondary)``, e.g. a
        :class:`MacLookup` (``macs=`` is a deprecated alias).
    baseline : configuration or number
        Reference configuration (its cost is the budget) or the budget.
    configs : sequence of configurations, optional
        Candidates; default every configuration of ``space``.
    table : pandas.DataFrame, optional
        A previous result table (columns ``config``, ``macs``, ``gconv_macs``,
        ``accuracy``) to re-use instead of evaluating again, e.g. when
        searching under several baselines.
    cache : dict, optional
        Memo ``config -> accuracy`` shared with other searches.

    Returns
    -------
    best : dict
        ``baseline``, ``budget``, ``config``, ``macs``, ``gconv_macs``,
        ``accuracy`` of the most accurate configuration within budget and
        ``baseline_accuracy`` (NaN when the baseline is a number).
    table : pandas.DataFrame
        Columns ``config, macs, gconv_macs, accuracy, within_budget``, one row
        per candidate (data for Fig. 3).
    """
    space = as_space(space)
    cost = _Cost(cost, space)
    budget = _budget(baseline, cost)
    memo = _Memo(evaluate, cache)
    if table is None:
        configs = space.configs() if configs is None else [space.validate(c) for c in configs]
        if not configs:
            raise ValueError("no configurations to search")
        table = _table(configs, memo, cost)
    else:
        table = _reuse_table(table, memo)
    table["within_budget"] = table["macs"] <= budget
    feasible = table[table["within_budget"]]
    if feasible.empty:
        raise ValueError(
            f"no configuration has MACs <= the budget {budget} (cheapest: {table['macs'].min()}); "
            "raise the budget or choose a more expensive baseline"
        )
    best = _best_dict(baseline, budget, _best_row(feasible), memo, space)
    return best, table.reset_index(drop=True)


# ----------------------------------------------------------------------------- breadth-first search


def _random_within_budget(space: SearchSpace, cost, budget, rng, max_tries: int) -> Config:
    """Uniformly random configuration with cost <= budget (rejection sampling)."""
    for _ in range(max_tries):
        c = space.draw(rng)
        if cost(c).total <= budget:
            return c
    if space.num_configs <= 1_000_000:  # small space: sample uniformly from the feasible set
        feasible = [c for c in space if cost(c).total <= budget]
        if feasible:
            return feasible[int(rng.integers(len(feasible)))]
    raise ValueError(
        f"no configuration with MACs <= {budget} found in {max_tries} random draws; "
        "the budget is (nearly) below the cheapest configuration, raise it or pass explicit starts"
    )


def _any_within(space: SearchSpace, cost, budget) -> bool:
    if space.num_configs > 1_000_000:
        return True  # cannot tell cheaply; rejection sampling will report failure
    return any(cost(c).total <= budget for c in space)


def _bfs_starts(space: SearchSpace, cost, budget, runs, starts, seed, max_tries) -> list[Config]:
    """Given starts (validated, within budget) followed by random ones, ``runs`` in all."""
    starts = [space.validate(c) for c in (starts or [])][:runs]
    for c in starts:
        if cost(c).total > budget:
            raise ValueError(f"start configuration {config_str(c)} has {cost(c).total} MACs, above the budget {budget}")
    rng = np.random.default_rng(seed)
    cheapest = space.min_config()
    if len(starts) < runs and cost(cheapest).total > budget and not _any_within(space, cost, budget):
        raise ValueError(
            f"no configuration has MACs <= the budget {budget}; "
            f"e.g. {config_str(cheapest)} needs {cost(cheapest).total}"
        )
    while len(starts) < runs:
        starts.append(_random_within_budget(space, cost, budget, rng, max_tries))
    return starts


def _greedy_step(space: SearchSpace, memo, cost, budget, current, acc) -> tuple[list, list, int | None]:
    """One greedy step from ``current`` (accuracy ``acc``): the rule :func:`bfs_search` and :func:`bfs_step` share.

    Returns the neighbours within budget (in :meth:`SearchSpace.neighbours` order), their
    accuracies (evaluated in one batch) and the index of the neighbour moved to: the best by
    :func:`_rank_key` when it is strictly more accurate than ``acc``, else ``None`` (the run stops).
    """
    candidates = [n for n in space.neighbours(current) if cost(n).total <= budget]
    if not candidates:
        return candidates, [], None
    accs = memo(candidates)
    best_i = min(range(len(candidates)), key=lambda i: _rank_key(accs[i], cost(candidates[i]).total, candidates[i]))
    return candidates, accs, best_i if accs[best_i] > acc else None


def _bfs_run(space: SearchSpace, memo, cost, budget, current, max_steps, add) -> None:
    """One greedy run from ``current``; every evaluated configuration is reported to ``add``."""
    acc = memo([current])[0]
    add(0, [current], [acc], current)
    for step in range(1, max_steps + 1):
        candidates, accs, chosen = _greedy_step(space, memo, cost, budget, current, acc)
        if not candidates:
            break
        add(step, candidates, accs, candidates[chosen] if chosen is not None else None)
        if chosen is None:
            break
        current, acc = candidates[chosen], accs[chosen]


@_macs_alias
def bfs_search(
    space,
    evaluate: Callable,
    cost: Callable,
    baseline,
    runs: int = 20,
    max_steps: int = 25,
    starts: Sequence[Config] | None = None,
    seed=0,
    cache: dict | None = None,
    max_tries: int = 100_000,
) -> tuple[dict, pd.DataFrame]:
    """Greedy breadth-first search (Sec. 3.4) on any accuracy function.

    Each run starts at a configuration within budget (``starts[run]`` for the
    first ``len(starts)`` runs, then uniformly random ones drawn by rejection
    sampling). At every step all one-layer neighbours of the current
    configuration that are within budget are evaluated (neighbours over budget
    are never evaluated: their cost is known in advance); the most accurate
    one becomes current if it is strictly more accurate, otherwise the run
    stops. A run also stops after ``max_steps`` steps or when no neighbour is
    within budget. Evaluations are memoised across runs (and across searches
    sharing ``cache``).

    Parameters
    ----------
    space : SearchSpace, mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    evaluate : callable
        ``evaluate(list of configs) -> accuracies``; called once per step with
        every new configuration of the step.
    cost : callable
        ``cost(config) -> number`` or ``(total, secondary)`` (``macs=`` is a deprecated alias).
    baseline : configuration or number
        Baseline configuration (its cost is the budget) or the budget.
    runs : int, default 20
    max_steps : int, default 25
    starts : sequence of configurations, optional
        Start configurations of the first runs (each must be within budget).
    seed : int or numpy SeedSequence, default 0
        Seed of the generator drawing the random starts (all drawn up front).
    cache : dict, optional
        Memo ``config -> accuracy``, read and extended.
    max_tries : int, default 100000
        Rejection-sampling draws per random start before giving up.

    Returns
    -------
    best : dict
        ``baseline``, ``budget``, ``config``, ``macs``, ``gconv_macs``,
        ``accuracy``, ``run``, ``step`` (first time it was reached),
        ``evaluated`` (distinct configurations in the trace) and
        ``baseline_accuracy`` (NaN for a number budget).
    trace : pandas.DataFrame
        Every evaluated configuration of every run and step, columns
        ``baseline, budget, run, step, config, macs, gconv_macs, accuracy,
        selected``. Step 0 is the start (selected); at step ``k >= 1`` the rows
        are the neighbours evaluated and ``selected`` marks the one moved to
        (none on the final step of a run that stopped without improving).
    """
    space = as_space(space)
    for name, value, low in (("runs", runs, 1), ("max_steps", max_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    cost = _Cost(cost, space)
    budget = _budget(baseline, cost)
    memo = _Memo(evaluate, cache)
    starts = _bfs_starts(space, cost, budget, runs, starts, seed, max_tries)
    label, rows = _baseline_label(baseline, space), []
    for run, current in enumerate(starts):

        def add(step, configs, accs, selected, run=run):
            for c, a in zip(configs, accs):
                m = cost(c)
                rows.append((label, budget, run, step, c, m.total, m.gconv, a, c == selected))

        _bfs_run(space, memo, cost, budget, current, max_steps, add)
    trace = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    row = _best_row(trace)
    first = trace[[c == row["config"] for c in trace["config"]]].iloc[0]
    best = _best_dict(baseline, budget, row, memo, space)
    best.update(run=int(first["run"]), step=int(first["step"]), evaluated=int(trace["config"].nunique()))
    return best, trace


#: Columns of :func:`bfs_step`.
STEP_COLUMNS = ["role", "layer", "change", "config", "macs", "gconv_macs", "within_budget", "accuracy", "selected"]


def bfs_step(
    space,
    evaluate: Callable,
    cost: Callable,
    baseline,
    current: Sequence[int],
    *,
    cache: dict | None = None,
    evaluate_over_budget: bool = False,
) -> pd.DataFrame:
    """One step of the greedy breadth-first search (Sec. 3.4, Algorithm 1), made visible.

    The step :func:`bfs_search` takes from ``current`` (the same rule, :func:`_greedy_step`):
    every one-layer neighbour within budget is evaluated (in one batch) and the
    most accurate becomes current if it is strictly more accurate than ``current``
    (ties: lower cost, then the smaller configuration); otherwise the run stops.
    Its within-budget rows are the rows of the search's trace at that step.

    Parameters
    ----------
    space, evaluate, cost, baseline, cache
        As in :func:`bfs_search`.
    current : configuration
        The configuration the step starts from (within budget).
    evaluate_over_budget : bool, default False
        Also evaluate the neighbours above the budget (the search never does: their
        cost is known in advance); for showing what the budget excludes. They are
        evaluated after the step's own batch and never chosen.

    Returns
    -------
    pandas.DataFrame
        Columns ``role, layer, change, config, macs, gconv_macs, within_budget,
        accuracy, selected``: first ``current`` (role ``"current"``), then every
        neighbour (role ``"neighbour"``) in :meth:`SearchSpace.neighbours` order, with
        the layer changed and its ``"old → new"`` group size; ``accuracy`` is NaN for
        neighbours not evaluated, ``selected`` marks the neighbour moved to (none when
        the run stops here).

    Raises
    ------
    ValueError
        ``current`` is not a configuration of ``space`` or is above the budget.
    """
    space = as_space(space)
    cost = _Cost(cost, space)
    budget = _budget(baseline, cost)
    memo = _Memo(evaluate, cache)
    current = space.validate(current)
    if cost(current).total > budget:
        raise ValueError(f"configuration {config_str(current)} has cost {cost(current).total}, "
                         f"above the budget {budget}")
    acc = memo([current])[0]
    candidates, accs, chosen = _greedy_step(space, memo, cost, budget, current, acc)
    accuracy = dict(zip(candidates, accs))
    over = [n for n in space.neighbours(current) if n not in accuracy]
    if evaluate_over_budget and over:
        accuracy.update(zip(over, memo(over)))
    moved_to = candidates[chosen] if chosen is not None else None
    rows = [("current", "", "", current, True, acc, False)]
    for n in space.neighbours(current):
        i = next(i for i, (a, b) in enumerate(zip(current, n)) if a != b)
        rows.append(("neighbour", space.names[i], f"{current[i]} → {n[i]}", n, cost(n).total <= budget,
                     accuracy.get(n, math.nan), n == moved_to))
    costs = [cost(r[3]) for r in rows]
    return pd.DataFrame({"role": [r[0] for r in rows], "layer": [r[1] for r in rows], "change": [r[2] for r in rows],
                         "config": [r[3] for r in rows], "macs": [m.total for m in costs],
                         "gconv_macs": [m.gconv for m in costs], "within_budget": [r[4] for r in rows],
                         "accuracy": [float(r[5]) for r in rows], "selected": [r[6] for r in rows]},
                        columns=STEP_COLUMNS)


def _top_configs(trace: pd.DataFrame, n: int) -> list[Config]:
    """The ``n`` most accurate distinct configurations of a trace (deterministic ties)."""
    seen = trace.drop_duplicates("config")
    keys = sorted(zip(seen["accuracy"], seen["macs"], seen["config"]), key=lambda t: _rank_key(*t))
    return [tuple(c) for _, _, c in keys[:n]]


def _budget_order(baselines: Sequence, cost) -> list[int]:
    """Indices of ``baselines`` in ascending budget order (stable): the order of the incremental searches."""
    return sorted(range(len(baselines)), key=lambda i: _budget(baselines[i], cost))


def _search_seeds(seed, n: int) -> list:
    """Seed of each of the ``n`` incremental searches (ascending budget): children of ``SeedSequence(seed)``."""
    return np.random.SeedSequence(seed).spawn(n)


@_macs_alias
def bfs_incremental_search(
    space,
    evaluate: Callable,
    cost: Callable,
    baselines: Sequence,
    runs: int = 20,
    max_steps: int = 25,
    seeded_runs: int = 10,
    seed=0,
    cache: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Breadth-first searches under several baselines, incrementally (Sec. 3.4).

    Baselines are searched in ascending order of budget. The first
    ``seeded_runs`` runs of every search after the first start from the
    ``seeded_runs`` most accurate configurations evaluated by the previous
    search (they are within the new, larger budget); the other runs start at
    random. Evaluations are memoised across all searches.

    Parameters
    ----------
    space, evaluate, cost, runs, max_steps, cache
        As in :func:`bfs_search`.
    baselines : sequence of configurations or numbers
    seeded_runs : int, default 10
    seed : int, default 0
        Search ``i`` (in ascending budget order) uses the ``i``-th child of
        ``numpy.random.SeedSequence(seed)``.

    Returns
    -------
    best : pandas.DataFrame
        One row per baseline (ascending budget): the ``best`` dicts of
        :func:`bfs_search`.
    trace : pandas.DataFrame
        The traces of all searches, concatenated.
    """
    if len(baselines) == 0:
        raise ValueError("baselines must contain at least one configuration or budget")
    space = as_space(space)
    checked = _Cost(cost, space)
    cache = {} if cache is None else cache
    order = _budget_order(baselines, checked)
    seeds = _search_seeds(seed, len(baselines))
    bests, traces, starts = [], [], []
    for k, i in enumerate(order):
        best, trace = bfs_search(space, evaluate, cost, baselines[i], runs=runs, max_steps=max_steps,
                                 starts=starts, seed=seeds[k], cache=cache)
        bests.append(best)
        traces.append(trace)
        starts = _top_configs(trace, min(seeded_runs, runs))
    return pd.DataFrame(bests), pd.concat(traces, ignore_index=True)


# ----------------------------------------------------------------------------- on a GroSS model


def bfs_incremental(
    model: nn.Module,
    data,
    baselines: Sequence,
    runs: int = 20,
    max_steps: int = 25,
    seeded_runs: int = 10,
    seed=0,
    *,
    cache: dict | None = None,
    cost: Callable | None = None,
    input_size=None,
    **options,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Incremental breadth-first searches of a GroSS model (Sec. 3.4, Tables 3-4, Fig. 4).

    :func:`bfs_incremental_search` with a :class:`gross.search.evaluation.ConfigEvaluator`
    (all new configurations of a step evaluated in one prefix-tree pass over the
    data) and, by default, MACs from :func:`model_mac_lookup`.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model.
    data : gross.data.Dataset or Split
    baselines, runs, max_steps, seeded_runs, seed, cache
        As in :func:`bfs_incremental_search`.
    cost : callable, optional
        ``cost(config)``; default the model's MACs at ``input_size``.
    input_size : tuple of int, optional
        Input size for MAC counting; default the images' ``(C, H, W)``.
    **options
        ``split, batch_size, device, mean, std, tree, channels_last`` of
        :class:`gross.search.evaluation.ConfigEvaluator`.

    Returns
    -------
    best : pandas.DataFrame
        One row per baseline, ascending budget.
    trace : pandas.DataFrame
        All searches' traces, concatenated (the ``baseline`` column tells them apart).
    """
    evaluate = ConfigEvaluator(model, data, **options)
    if cost is None:
        cost = model_mac_lookup(model, tuple(input_size) if input_size is not None else evaluate.input_size())
    return bfs_incremental_search(search_space(model), evaluate, cost, baselines, runs=runs, max_steps=max_steps,
                                  seeded_runs=seeded_runs, seed=seed, cache=cache)


def bfs_first_step(
    model: nn.Module,
    data,
    baselines: Sequence,
    seed=0,
    start: Sequence[int] | None = None,
    *,
    cache: dict | None = None,
    cost: Callable | None = None,
    input_size=None,
    evaluate_over_budget: bool = True,
    max_tries: int = 100_000,
    **options,
) -> pd.DataFrame:
    """The first step of :func:`bfs_incremental` on the same arguments, made visible (:func:`bfs_step`).

    The incremental search begins with the smallest budget; its first run starts at a
    random configuration within that budget drawn from the search's seed. This is
    that step: from that start (or from ``start``), the neighbours, their accuracies
    and costs, which are within the smallest budget and the move taken. Its
    within-budget rows equal the trace rows of run 0, step 1 of the smallest
    baseline's search of :func:`bfs_incremental` with the same ``baselines`` and
    ``seed`` (and its first row the start, step 0).

    Parameters
    ----------
    model, data, baselines, seed, cost, input_size, **options
        As in :func:`bfs_incremental`.
    start : configuration, optional
        Start of the step; default the first run's random start.
    cache : dict, optional
        Memo ``config -> accuracy``, read and extended: pass the same dict to
        :func:`bfs_incremental` to evaluate nothing twice.
    evaluate_over_budget : bool, default True
        Also evaluate the neighbours above the budget (:func:`bfs_step`).
    max_tries : int, default 100000
        Rejection-sampling draws for the random start.

    Returns
    -------
    pandas.DataFrame
        As :func:`bfs_step`.
    """
    if len(baselines) == 0:
        raise ValueError("baselines must contain at least one configuration or budget")
    evaluate = ConfigEvaluator(model, data, **options)
    if cost is None:
        cost = model_mac_lookup(model, tuple(input_size) if input_size is not None else evaluate.input_size())
    space = as_space(search_space(model))
    checked = _Cost(cost, space)
    first = baselines[_budget_order(baselines, checked)[0]]
    if start is None:
        start = _bfs_starts(space, checked, _budget(first, checked), 1, [], _search_seeds(seed, len(baselines))[0],
                            max_tries)[0]
    return bfs_step(space, evaluate, cost, first, start, cache=cache, evaluate_over_budget=evaluate_over_budget)
