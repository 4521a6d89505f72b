"""Costs for the searches (:mod:`gross.search.costs`): MAC lookups, cost values, cost models (MACs, latency), budgets."""

import numpy as np
import pytest

from gross.search import costs as C
from gross.search import latency as L
from gross.method.decomposition import random_gross
from gross.method.decomposition import enumerate_configs, search_space
from gross.method.macs import count_macs
from gross.models import four_layer_net
from gross.search.algorithms import bfs_search, exhaustive_search
from gross.method.space import random_configs


def weight_timer(module, x):
    """Additive fake timer: 1 ns per weight element and sample (no wall time)."""
    return 1e-9 * x.shape[0] * sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def model():
    return random_gross(four_layer_net(), seed=2).eval()


@pytest.fixture(scope="module")
def table(model):
    table = L.measure_table(model, batch_size=3, timer=weight_timer, progress=False)
    assert table.settings["timer"] == "weight_timer"
    return table


def test_cost_models(model, table):
    macs = C.cost_model("macs", model)
    lat = C.cost_model("latency", table=table)
    for c in random_configs(search_space(model), 5, seed=0):
        assert macs(c).total == count_macs(model, config=c).total
        assert lat(c) == int(round(table.predict(c) * 1e9))


def test_latency_budget_search_equals_brute_force(model, table):
    space = search_space(model)
    configs = enumerate_configs(space)
    rng = np.random.default_rng(0)
    acc = dict(zip(configs, rng.uniform(0, 100, len(configs))))
    cost = C.cost_model("latency", table=table)
    baseline = (8, 8, 8)
    budget = C.budget_of(cost, baseline)
    best, _ = exhaustive_search(space, lambda cs: [acc[c] for c in cs], cost, baseline)
    brute = max((c for c in configs if cost(c) <= budget), key=acc.__getitem__)
    assert best["config"] == brute and best["budget"] == budget == cost(baseline)


def test_bfs_under_a_latency_budget_stays_within_it(model, table):
    space = search_space(model)
    rng = np.random.default_rng(1)
    acc = {c: float(v) for c, v in zip(enumerate_configs(space), rng.uniform(0, 100, 252))}
    cost = C.cost_model("latency", table=table)
    best, trace = bfs_search(space, lambda cs: [acc[c] for c in cs], cost, (4, 4, 4), runs=3, max_steps=4)
    budget = C.budget_of(cost, (4, 4, 4))
    assert best["budget"] == budget and all(cost(tuple(c)) <= budget for c in trace["config"])


def test_bad_inputs(model, table):
    with pytest.raises(ValueError, match="unknown cost model 'flops'.*macs.*latency"):
        C.cost_model("flops", model)
    with pytest.raises(ValueError, match="needs a LatencyTable"):
        C.cost_model("latency")
    with pytest.raises(ValueError, match="needs the GroSS model"):
        C.cost_model("macs")
    cost = C.cost_model("latency", table=table)
    with pytest.raises(ValueError, match="below the cheapest configuration"):
        C.budget_of(cost, 10)
    with pytest.raises(ValueError, match="below the cheapest configuration .* MACs"):
        C.budget_of(C.cost_model("macs", model), 1000)
    with pytest.raises(ValueError, match="baseline must be"):
        C.budget_of(cost, True)


def test_mac_lookup_equals_count_macs_on_random_configs(model):
    lookup = C.model_mac_lookup(model)
    for c in random_configs(search_space(model), 8, seed=3):
        assert lookup(c) == count_macs(model, config=c)
    cheapest = lookup.min_config()
    assert all(lookup(cheapest).total <= lookup(c).total for c in enumerate_configs(search_space(model)))
    dearest = lookup.max_config()
    assert max(count_macs(model, config=c).total for c in enumerate_configs(search_space(model))) == \
        lookup(dearest).total == count_macs(model, config=dearest).total


def test_as_cost():
    assert C.as_cost(5) == (5, -1) and C.as_cost((7, 3)) == (7, 3) and C.as_cost(2.5) == (2.5, -1)
    with pytest.raises(ValueError, match="number or a .total, secondary. pair"):
        C.as_cost((1, 2, 3))
    with pytest.raises(ValueError, match="must be finite"):
        C.as_cost(float("nan"))
    with pytest.raises(ValueError, match="must be a number"):
        C.as_cost(True)


def test_budget_of_a_plain_callable_uses_the_space(model):
    space = search_space(model)
    macs = C.model_mac_lookup(model)

    def total(c):
        return macs(c).total

    assert C.budget_of(total, (4, 4, 4), space=space) == macs((4, 4, 4)).total
    with pytest.raises(ValueError, match="below the cheapest configuration .* cost units"):
        C.budget_of(total, 10, space=space)
