"""gross.search.multiobjective: NSGA-II (Optuna), random search and the BFS ladder at equal evaluations."""

import itertools

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("optuna", reason="optuna is a pinned requirement (requirements.txt); install it")

from gross.search.algorithms import bfs_incremental_search  # noqa: E402
from gross.search.costs import MacLookup  # noqa: E402
from gross.search.multiobjective import (SEARCH_COLUMNS, bfs_ladder_search, compare_searches,  # noqa: E402
                                         nsga2_search, random_search)
from gross.search.pareto import hypervolume, pareto_front  # noqa: E402

SIZES = [(1, 2, 4, 8, 16, 32), (1, 2, 4, 8, 16, 32, 64), (1, 2, 4, 8, 16, 32)]
PAIR = {"accuracy": "max", "macs": "min"}


class Counting:
    """Accuracy of a synthetic additive landscape; counts every configuration it is asked for."""

    def __init__(self, seed=0):
        self.w = np.random.default_rng(seed).normal(size=(3, 7))
        self.asked = []

    def acc(self, c):
        idx = [int(np.log2(s)) for s in c]
        return float(20 + sum(self.w[i, j] for i, j in enumerate(idx)) + 8 * np.sqrt(sum(idx)))

    def __call__(self, configs):
        self.asked += list(configs)
        return [self.acc(c) for c in configs]


COST = MacLookup(SIZES, lambda c: (5000 + 30 * c[0] + 20 * c[1] + 40 * c[2], 30 * c[0] + 20 * c[1] + 40 * c[2]))


def exhaustive(evaluate):
    configs = list(itertools.product(*SIZES))
    return pd.DataFrame({"config": configs, "accuracy": [evaluate.acc(c) for c in configs],
                         "macs": [COST(c).total for c in configs]})


def test_nsga2_evaluates_exactly_n_distinct_configurations_seeded():
    ev = Counting()
    a = nsga2_search(SIZES, ev, COST, 37, seed=3, population_size=8)
    assert list(a.columns) == SEARCH_COLUMNS and len(a) == 37 and a["config"].nunique() == 37
    assert len(ev.asked) == 37 and len(set(ev.asked)) == 37  # never asked twice
    assert list(a["evaluation"]) == list(range(1, 38))
    assert a.attrs["trials"] >= 37
    for c, acc, m in zip(a["config"], a["accuracy"], a["macs"]):
        assert acc == ev.acc(c) and m == COST(c).total
    b = nsga2_search(SIZES, Counting(), COST, 37, seed=3, population_size=8)
    pd.testing.assert_frame_equal(a, b)  # seeded: the same search
    c = nsga2_search(SIZES, Counting(), COST, 37, seed=4, population_size=8)
    assert list(a["config"]) != list(c["config"])


def test_nsga2_recovers_most_of_the_exact_front_and_beats_random():
    # the target on a 252-configuration space: >= 90 % of the exact hypervolume in 60 evaluations
    ev = Counting(1)
    table = exhaustive(ev)
    ranges = {"accuracy": (0.0, table["accuracy"].max()), "macs": (table["macs"].min(), table["macs"].max())}
    exact = hypervolume(table, PAIR, ranges)
    ratios = [hypervolume(nsga2_search(SIZES, ev, COST, 60, seed=s, population_size=12), PAIR, ranges) / exact
              for s in range(3)]
    assert min(ratios) >= 0.9 and max(ratios) <= 1 + 1e-12


def test_shared_cache_changes_no_result_and_still_counts():
    cache = {}
    first = nsga2_search(SIZES, Counting(), COST, 20, seed=0, population_size=6, cache=cache)
    ev = Counting()
    again = nsga2_search(SIZES, ev, COST, 20, seed=0, population_size=6, cache=cache)
    pd.testing.assert_frame_equal(first, again)
    assert ev.asked == []  # everything came from the cache, still 20 evaluations of this search


def test_random_search_is_the_spaces_seeded_draw():
    from gross.method.space import SearchSpace

    ev = Counting()
    r = random_search(SIZES, ev, COST, 25, seed=7)
    assert list(r["config"]) == SearchSpace(SIZES).random(25, 7)
    assert len(ev.asked) == 25


def test_bfs_ladder_is_the_incremental_search():
    ev = Counting()
    ladder = [(4, 4, 4), (16, 16, 16)]
    table, best = bfs_ladder_search(SIZES, ev, COST, ladder, runs=2, max_steps=3, seeded_runs=1, seed=5)
    ref_best, trace = bfs_incremental_search(SIZES, Counting(), COST, ladder, runs=2, max_steps=3, seeded_runs=1,
                                             seed=5)
    assert list(table["config"]) == list(dict.fromkeys(trace["config"]))
    pd.testing.assert_frame_equal(best, ref_best)
    assert len(ev.asked) == len(table)


def test_compare_searches_gives_equal_evaluations():
    df = compare_searches(SIZES, Counting(), COST, [(4, 4, 4), (16, 16, 16)], seeds=[0, 1], runs=2, max_steps=3,
                          seeded_runs=1, population_size=8)
    counts = df.groupby(["seed", "method"]).size().unstack()
    for seed, row in counts.iterrows():
        assert row["bfs"] == row["nsga2"] == row["random"] == df[df["seed"] == seed]["n_evaluations"].iloc[0]
    assert set(df["method"]) == {"bfs", "nsga2", "random"}
    front = pareto_front(df[(df["method"] == "nsga2") & (df["seed"] == 0)])
    assert len(front) >= 1


@pytest.mark.parametrize("kwargs, match", [
    ({"n_evaluations": 0}, "n_evaluations must be an integer >= 1"),
    ({"n_evaluations": 10_000}, "exceeds the 252 configurations"),
    ({"n_evaluations": 5, "population_size": 1}, "population_size must be at least 2"),
    ({"n_evaluations": True}, "n_evaluations must be an integer"),
])
def test_nsga2_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nsga2_search(SIZES, Counting(), COST, **kwargs)


def test_nsga2_gives_up_when_nothing_new_is_proposed():
    with pytest.raises(ValueError, match="no new configuration in 1 trials"):
        nsga2_search([(1, 2)], Counting(), lambda c: c[0], 2, population_size=2, max_trials=1)


def test_compare_searches_needs_a_seed():
    with pytest.raises(ValueError, match="at least one seed"):
        compare_searches(SIZES, Counting(), COST, [(4, 4, 4)], seeds=[])
