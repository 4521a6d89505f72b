"""Tests for gross.search.algorithms: exhaustive and breadth-first search on any evaluate/cost callables."""

import itertools

import numpy as np
import pandas as pd
import pytest

from gross.method.decomposition import enumerate_configs, search_space
from gross.method.macs import count_macs
from gross.search.evaluation import ConfigEvaluator, accuracy
from gross.search.algorithms import (
    MacLookup,
    bfs_incremental,
    bfs_first_step,
    bfs_incremental_search,
    bfs_search,
    bfs_step,
    config_str,
    exhaustive_search,
    model_mac_lookup,
    neighbours,
    parse_config,
    random_configs,
)
from gross.method.space import SearchSpace
from test_evaluation import INPUT, _cpu_by_default, data, model  # noqa: F401 (shared fixtures)



# ----------------------------------------------------------------------------- configurations


def test_config_str_roundtrip():
    assert config_str((8, 16, 64)) == "8 16 64"
    assert parse_config("8 16 64") == (8, 16, 64)
    with pytest.raises(ValueError, match="cannot parse"):
        parse_config("8 x 64")


def test_neighbours():
    space = {"a": (1, 2, 4), "b": (1, 2), "c": (1, 8)}
    nb = neighbours((2, 1, 8), space)
    assert len(nb) == 2 + 1 + 1 and len(set(nb)) == len(nb)
    for c in nb:
        assert sum(x != y for x, y in zip(c, (2, 1, 8))) == 1
    assert set(nb) == {c for c in itertools.product(*space.values())
                       if sum(x != y for x, y in zip(c, (2, 1, 8))) == 1}
    with pytest.raises(ValueError, match="group size 3 is not valid for layer 'a'"):
        neighbours((3, 1, 8), space)


def test_random_configs():
    space = {"a": (1, 2, 4), "b": (1, 2, 4, 8), "c": (1, 8)}
    cs = random_configs(space, n=10, seed=3)
    assert len(cs) == 10 and len(set(cs)) == 10
    assert all(c in set(enumerate_configs(space)) for c in cs)
    assert cs == random_configs(space, n=10, seed=3)
    assert cs != random_configs(space, n=10, seed=4)
    assert sorted(random_configs(space, n=24, seed=0)) == sorted(enumerate_configs(space))
    for m in (0, 1, 5, 10):  # nested draws: the m-draw is the prefix of the n-draw
        assert random_configs(space, n=m, seed=3) == cs[:m]
    # large space (VGG-16 sized) works and stays distinct
    big = random_configs([(1, 4, 16, 32)] * 16, n=45, seed=0)
    assert len(set(big)) == 45
    with pytest.raises(ValueError, match="n <= 24"):
        random_configs(space, n=25)
    # uniformity: each of the 3 sizes of layer a appears about equally often over many draws
    counts = np.zeros(3)
    for seed in range(300):
        for c in random_configs(space, n=4, seed=seed):
            counts[(1, 2, 4).index(c[0])] += 1
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.05)


def test_mac_lookup_equals_count_macs(model):
    lookup = model_mac_lookup(model, INPUT)
    assert model_mac_lookup(model, INPUT).base == lookup.base
    for c in enumerate_configs(search_space(model)):
        assert lookup(c) == count_macs(model, INPUT, config=c)
    assert lookup.min_config() == (1, 1, 1)


def test_mac_lookup_synthetic():
    lookup = MacLookup([(1, 2), (1, 4)], lambda c: (100 + 3 * c[0] + 5 * c[1], 3 * c[0] + 5 * c[1]))
    assert lookup((2, 4)) == (126, 26)
    assert lookup((1, 1)) == (108, 8)


# ----------------------------------------------------------------------------- synthetic search problems


SPACE = [(1, 2, 4, 8)] * 4  # 256 configurations
WEIGHTS = (8, 4, 2, 1)


def synthetic_macs(c):
    gconv = sum(w * s for w, s in zip(WEIGHTS, c))
    return (1000 + gconv, gconv)


def synthetic_accuracy(seed=0):
    """Accuracy rising with group size, with layer interactions and noise (several local optima)."""
    rng = np.random.default_rng(seed)
    noise = {c: rng.normal(0, 0.4) for c in itertools.product(*SPACE)}
    coef = rng.uniform(0.5, 1.5, 4)

    def acc(c):
        logs = np.log2(c)
        return float(70 + coef @ logs - 0.15 * (logs[0] - logs[3]) ** 2 + noise[c])

    return acc


class Recorder:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, configs):
        self.calls.append(list(configs))
        return [self.fn(c) for c in configs]


def test_exhaustive_search_synthetic():
    acc = synthetic_accuracy()
    budget_cfg = (4, 4, 4, 4)
    best, table = exhaustive_search(SPACE, Recorder(acc), synthetic_macs, budget_cfg)
    assert list(table.columns) == ["config", "macs", "gconv_macs", "accuracy", "within_budget"]
    assert len(table) == 256
    budget = synthetic_macs(budget_cfg)[0]
    feasible = [c for c in itertools.product(*SPACE) if synthetic_macs(c)[0] <= budget]
    expected = max(feasible, key=acc)
    assert best["config"] == expected and best["accuracy"] == acc(expected)
    assert best["macs"] <= budget and best["budget"] == budget and best["baseline"] == "4 4 4 4"
    assert best["baseline_accuracy"] == acc(budget_cfg)
    assert table["within_budget"].sum() == len(feasible)
    # re-use of a table: nothing evaluated again
    rec = Recorder(acc)
    best2, _ = exhaustive_search(SPACE, rec, synthetic_macs, 1030, table=table)
    assert rec.calls == []
    assert best2["macs"] <= 1030


def test_exhaustive_tie_break_prefers_fewer_macs():
    best, _ = exhaustive_search(SPACE, lambda cs: [50.0] * len(cs), synthetic_macs, 2000)
    assert best["config"] == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="no configuration has MACs <= the budget 10"):
        exhaustive_search(SPACE, lambda cs: [50.0] * len(cs), synthetic_macs, 10)


def check_bfs_rules(trace, acc, budget, max_steps):
    """Independent check of the Sec. 3.4 rules on a trace."""
    assert (trace["macs"] <= budget).all()
    for run, rows in trace.groupby("run"):
        start = rows[rows["step"] == 0]
        assert len(start) == 1 and start["selected"].all()
        current = start["config"].iloc[0]
        steps = sorted(set(rows["step"]) - {0})
        assert steps == list(range(1, len(steps) + 1)) and len(steps) <= max_steps
        for step in steps:
            here = rows[rows["step"] == step]
            expected = [c for c in neighbours(current, SPACE) if synthetic_macs(c)[0] <= budget]
            assert sorted(here["config"]) == sorted(expected)
            assert np.allclose(here["accuracy"], [acc(c) for c in here["config"]])
            best = max(expected, key=lambda c: (acc(c), -synthetic_macs(c)[0]))
            chosen = here[here["selected"]]
            if acc(best) > acc(current):
                assert chosen["config"].tolist() == [best]
                current = best
            else:  # no strictly better neighbour: the run stops here
                assert chosen.empty and step == steps[-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_bfs_finds_exhaustive_optimum_and_obeys_rules(seed):
    acc = synthetic_accuracy(seed)
    baseline = (4, 4, 4, 4)
    budget = synthetic_macs(baseline)[0]
    rec = Recorder(acc)
    best, trace = bfs_search(SPACE, rec, synthetic_macs, baseline, runs=40, max_steps=25, seed=seed)
    ex_best, _ = exhaustive_search(SPACE, Recorder(acc), synthetic_macs, baseline)
    assert best["config"] == ex_best["config"]
    assert best["accuracy"] == ex_best["accuracy"]
    check_bfs_rules(trace, acc, budget, 25)
    assert list(trace.columns) == ["baseline", "budget", "run", "step", "config", "macs", "gconv_macs",
                                   "accuracy", "selected"]
    # memoised: every configuration evaluated at most once, across all runs
    evaluated = [c for call in rec.calls for c in call]
    assert len(evaluated) == len(set(evaluated))
    assert set(evaluated) == set(trace["config"]) | {baseline}
    assert best["evaluated"] == trace["config"].nunique()


def test_bfs_max_steps_and_determinism():
    acc = synthetic_accuracy(2)
    kwargs = dict(runs=5, max_steps=2, seed=7)
    _, t1 = bfs_search(SPACE, Recorder(acc), synthetic_macs, 1045, **kwargs)
    _, t2 = bfs_search(SPACE, Recorder(acc), synthetic_macs, 1045, **kwargs)
    assert t1.equals(t2)
    assert t1["step"].max() <= 2
    check_bfs_rules(t1, acc, 1045, 2)
    _, t3 = bfs_search(SPACE, Recorder(acc), synthetic_macs, 1045, runs=5, max_steps=2, seed=8)
    assert t3[t3["step"] == 0]["config"].tolist() != t1[t1["step"] == 0]["config"].tolist()


def test_bfs_starts_budget_and_errors():
    acc = synthetic_accuracy(0)
    best, trace = bfs_search(SPACE, Recorder(acc), synthetic_macs, 1030, runs=2, starts=[(1, 1, 1, 1)])
    assert trace[(trace["run"] == 0) & (trace["step"] == 0)]["config"].tolist() == [(1, 1, 1, 1)]
    assert best["macs"] <= 1030 and np.isnan(best["baseline_accuracy"])
    with pytest.raises(ValueError, match="above the budget"):
        bfs_search(SPACE, Recorder(acc), synthetic_macs, 1030, starts=[(8, 8, 8, 8)])
    with pytest.raises(ValueError, match="no configuration has MACs <= the budget 1000"):
        bfs_search(SPACE, Recorder(acc), synthetic_macs, 1000)
    # constant accuracy: no neighbour is strictly better, every run stops after one step
    _, flat = bfs_search(SPACE, lambda cs: [1.0] * len(cs), synthetic_macs, 1060, runs=3)
    assert flat["step"].max() == 1 and flat["selected"].sum() == 3


def test_bfs_incremental_seeds_from_previous_search():
    acc = synthetic_accuracy(3)
    rec = Recorder(acc)
    baselines = [(8, 8, 8, 8), (2, 2, 2, 2), (4, 4, 4, 4)]
    best, trace = bfs_incremental_search(SPACE, rec, synthetic_macs, baselines, runs=12, seed=0)
    assert best["baseline"].tolist() == ["2 2 2 2", "4 4 4 4", "8 8 8 8"]
    assert (best["macs"] <= best["budget"]).all()
    evaluated = [c for call in rec.calls for c in call]
    assert len(evaluated) == len(set(evaluated))  # memo shared across the searches
    for prev, cur in (("2 2 2 2", "4 4 4 4"), ("4 4 4 4", "8 8 8 8")):
        p = trace[trace["baseline"] == prev].drop_duplicates("config")
        top = sorted(zip(p["accuracy"], p["macs"], p["config"]), key=lambda t: (-t[0], t[1], t[2]))[:10]
        c = trace[trace["baseline"] == cur]
        starts = c[c["step"] == 0].sort_values("run")["config"].tolist()
        assert starts[:10] == [t[2] for t in top]
    # the same seeds and baselines give the same result, whatever their order
    best2, trace2 = bfs_incremental_search(SPACE, Recorder(acc), synthetic_macs, baselines[::-1], runs=12, seed=0)
    assert trace.equals(trace2) and best.equals(best2)


# ----------------------------------------------------------------------------- model-level search


def test_exhaustive_on_model_matches_independent(model, data):
    evaluate = ConfigEvaluator(model, data, batch_size=128)
    best, table = exhaustive_search(search_space(model), evaluate, model_mac_lookup(model, INPUT), (2, 2, 8))
    budget = count_macs(model, INPUT, config=(2, 2, 8)).total
    rows = []
    for c in enumerate_configs(search_space(model)):
        m = count_macs(model, INPUT, config=c)
        rows.append((c, m.total, accuracy(model, data, config=c, batch_size=128)))
    assert table["accuracy"].tolist() == [r[2] for r in rows]
    assert table["macs"].tolist() == [r[1] for r in rows]
    feasible = [r for r in rows if r[1] <= budget]
    top = max(feasible, key=lambda r: (r[2], -r[1]))
    assert best["accuracy"] == top[2] and best["macs"] <= budget
    assert best["baseline_accuracy"] == accuracy(model, data, config=(2, 2, 8), batch_size=128)


def test_bfs_incremental_on_model(model, data):
    best, trace = bfs_incremental(model, data, [(2, 2, 8), (1, 1, 1)], runs=3, max_steps=4, seed=0,
                                  batch_size=150)
    assert best["baseline"].tolist() == ["1 1 1", "2 2 8"]
    budgets = [count_macs(model, INPUT, config=c).total for c in [(1, 1, 1), (2, 2, 8)]]
    assert best["budget"].tolist() == budgets
    for b, rows in trace.groupby("baseline"):
        assert (rows["macs"] <= rows["budget"]).all()
    for c, a in zip(trace["config"], trace["accuracy"]):
        assert a == accuracy(model, data, config=c, batch_size=150)
    # the same search through the pure function with the engine's evaluate callable
    ref_best, ref_trace = bfs_incremental_search(search_space(model), ConfigEvaluator(model, data, batch_size=150),
                                                 model_mac_lookup(model, INPUT), [(2, 2, 8), (1, 1, 1)],
                                                 runs=3, max_steps=4, seed=0)
    assert trace.equals(ref_trace) and best.equals(ref_best)
    with pytest.raises(TypeError, match="bogus"):
        bfs_incremental(model, data, [(1, 1, 1)], bogus=1)


# ----------------------------------------------------------------------------- generic costs


def test_any_cost_callable_and_deprecated_macs_keyword():
    acc = synthetic_accuracy(4)
    latency = lambda c: 0.5 + 0.01 * sum(w * s for w, s in zip(WEIGHTS, c))  # noqa: E731 (a float cost)
    budget = latency((4, 4, 4, 4))
    best, table = exhaustive_search(SPACE, Recorder(acc), latency, budget)
    feasible = [c for c in itertools.product(*SPACE) if latency(c) <= budget]
    assert best["config"] == max(feasible, key=acc) and isinstance(best["budget"], float)
    assert (table["gconv_macs"] == -1).all() and table["macs"].tolist() == [latency(c) for c in table["config"]]
    b2, t2 = bfs_search(SPACE, Recorder(acc), latency, (4, 4, 4, 4), runs=4, seed=1)
    assert (t2["macs"] <= budget).all() and b2["budget"] == budget
    with pytest.warns(DeprecationWarning, match="cost="):
        b3, _ = exhaustive_search(SPACE, Recorder(acc), baseline=budget, macs=latency)
    assert b3 == best
    with pytest.raises(TypeError, match="both cost= and"):
        exhaustive_search(SPACE, Recorder(acc), baseline=budget, cost=latency, macs=latency)
    with pytest.raises(ValueError, match="finite"):
        exhaustive_search(SPACE, Recorder(acc), lambda c: float("nan"), 1.0)
    # a SearchSpace works wherever a mapping or sequence of sizes does
    assert exhaustive_search(SearchSpace(SPACE), Recorder(acc), latency, budget)[0] == best


# ----------------------------------------------------------------------------- one step made visible


def test_bfs_step_is_every_step_of_the_search():
    """bfs_step from each configuration a run moved to gives that run's next step of the trace."""
    acc = synthetic_accuracy(5)
    baseline, columns = (4, 4, 4, 4), ["config", "macs", "gconv_macs", "accuracy", "selected"]
    budget = synthetic_macs(baseline)[0]
    _, trace = bfs_search(SPACE, Recorder(acc), synthetic_macs, baseline, runs=6, seed=3)
    checked = 0
    for run, rows in trace.groupby("run"):
        for k in range(1, rows["step"].max() + 1):
            current = rows[(rows["step"] == k - 1) & rows["selected"]]["config"].iloc[0]
            rec = Recorder(acc)
            step = bfs_step(SPACE, rec, synthetic_macs, baseline, current)
            assert list(step.columns) == ["role", "layer", "change", "config", "macs", "gconv_macs", "within_budget",
                                          "accuracy", "selected"]
            assert step.iloc[0]["role"] == "current" and step.iloc[0]["config"] == current
            assert step.iloc[0]["accuracy"] == acc(current) and not step.iloc[0]["selected"]
            here = step[(step["role"] == "neighbour") & step["within_budget"]][columns].reset_index(drop=True)
            expected = rows[rows["step"] == k][columns].reset_index(drop=True)
            pd.testing.assert_frame_equal(here, expected)
            # every neighbour is listed, with the layer it changes; over-budget ones are not evaluated
            assert step["config"].tolist()[1:] == neighbours(current, SPACE)
            assert (step["within_budget"] == (step["macs"] <= budget)).all()
            assert step[~step["within_budget"]]["accuracy"].isna().all()
            assert [c for call in rec.calls for c in call] == [current] + expected["config"].tolist()
            checked += 1
    assert checked >= 6
    row = step.iloc[1]
    i = next(j for j, (a, b) in enumerate(zip(current, row["config"])) if a != b)
    assert row["layer"] == f"layer {i}" and row["change"] == f"{current[i]} → {row['config'][i]}"


def test_bfs_step_over_budget_and_errors():
    acc = synthetic_accuracy(6)
    rec = Recorder(acc)
    current = (2, 2, 2, 2)
    step = bfs_step(SPACE, rec, synthetic_macs, (2, 2, 2, 2), current, evaluate_over_budget=True)
    assert not step["accuracy"].isna().any()
    assert step["accuracy"].tolist() == [acc(c) for c in step["config"]]
    over = step[~step["within_budget"]]
    assert len(over) > 0 and not over["selected"].any()
    # the step's own batch first (what the search evaluates), then the over-budget neighbours
    assert rec.calls[1] == step[step["within_budget"] & (step["role"] == "neighbour")]["config"].tolist()
    assert rec.calls[2] == over["config"].tolist()
    assert step["selected"].sum() <= 1
    with pytest.raises(ValueError, match="above the budget"):
        bfs_step(SPACE, rec, synthetic_macs, 1030, (8, 8, 8, 8))
    # no neighbour more accurate: nothing selected (the run stops)
    flat = bfs_step(SPACE, lambda cs: [1.0] * len(cs), synthetic_macs, 2000, (1, 1, 1, 1))
    assert not flat["selected"].any() and flat["within_budget"].all()


def test_bfs_first_step_is_the_incremental_search_first_step(model, data):
    baselines = [(2, 2, 8), (1, 1, 1), (4, 4, 8)]
    kwargs = dict(runs=3, max_steps=4, seed=2, batch_size=150)
    best, trace = bfs_incremental(model, data, baselines, **kwargs)
    cache = {}
    step = bfs_first_step(model, data, baselines, seed=2, cache=cache, batch_size=150)
    first = trace[(trace["baseline"] == "1 1 1") & (trace["run"] == 0)]
    columns = ["config", "macs", "gconv_macs", "accuracy", "selected"]
    assert step.iloc[0]["config"] == first[first["step"] == 0]["config"].iloc[0]
    assert step.iloc[0]["accuracy"] == first[first["step"] == 0]["accuracy"].iloc[0]
    here = step[(step["role"] == "neighbour") & step["within_budget"]][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(here, first[first["step"] == 1][columns].reset_index(drop=True))
    assert not step["accuracy"].isna().any()  # over-budget neighbours evaluated too (for display)
    # sharing the memo with the search changes nothing but the work
    shared_best, shared_trace = bfs_incremental(model, data, baselines, cache=cache, **kwargs)
    assert shared_trace.equals(trace) and shared_best.equals(best)
    # an explicit start
    other = bfs_first_step(model, data, baselines, start=(1, 1, 1), batch_size=150, evaluate_over_budget=False)
    assert other.iloc[0]["config"] == (1, 1, 1) and other[~other["within_budget"]]["accuracy"].isna().all()
