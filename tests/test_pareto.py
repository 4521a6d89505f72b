"""gross.search.pareto: fronts against a brute-force dominance check, hypervolume against a grid count."""

import itertools

import numpy as np
import pandas as pd
import pytest

from gross.search.pareto import as_objectives, dominated, hypervolume, normalise, pareto_front

PAIR = {"accuracy": "max", "macs": "min"}


def brute_force_front(table, objectives):
    """Indices of rows no other row dominates: the O(n²) definition, in plain Python floats."""
    rows = [[float(table[n].iloc[i]) * (-1 if s == "max" else 1) for n, s in objectives.items()]
            for i in range(len(table))]
    keep = []
    for i, a in enumerate(rows):
        if not any(all(b[k] <= a[k] for k in range(len(a))) and any(b[k] < a[k] for k in range(len(a)))
                   for j, b in enumerate(rows) if j != i):
            keep.append(table.index[i])
    return keep


def grid_hypervolume(points, ref):
    """Area of the union of boxes [p, ref] (minimisation) by counting cells of the coordinate grid."""
    pts = [p for p in points if all(p[k] < ref[k] for k in range(2))]
    xs = sorted({p[0] for p in pts} | {ref[0]})
    ys = sorted({p[1] for p in pts} | {ref[1]})
    area = 0.0
    for x0, x1 in zip(xs, xs[1:]):
        for y0, y1 in zip(ys, ys[1:]):
            if any(p[0] <= x0 and p[1] <= y0 for p in pts):
                area += (x1 - x0) * (y1 - y0)
    return area


def random_table(rng, n, k=2, integer=False):
    data = rng.integers(0, 6, size=(n, k)) if integer else rng.normal(size=(n, k))  # integers: many ties
    cols = {"accuracy": data[:, 0].astype(np.float64), "macs": data[:, 1]}
    for j in range(2, k):
        cols[f"o{j}"] = data[:, j]
    return pd.DataFrame({"config": [f"c{i}" for i in range(n)], **cols}, index=rng.permutation(n) + 100)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_front_equals_brute_force_on_random_tables(seed, k):
    rng = np.random.default_rng(seed)
    table = random_table(rng, int(rng.integers(1, 60)), k=max(k, 2), integer=seed % 2 == 0)
    objectives = dict(list({"accuracy": "max", "macs": "min", "o2": "max"}.items())[:k])
    front = pareto_front(table, objectives)
    assert sorted(front.index) == sorted(brute_force_front(table, objectives))
    assert list(~dominated(table, objectives)) == [i in set(front.index) for i in table.index]


def test_hand_made_front_with_ties_and_duplicates():
    table = pd.DataFrame({"config": list("abcdefg"),
                          "accuracy": [90.0, 90.0, 80.0, 80.0, 95.0, 70.0, 95.0],
                          "macs": [10, 12, 5, 5, 20, 5, 20]})
    front = pareto_front(table, PAIR)
    # b: same accuracy as a but dearer; f: as cheap as c/d but less accurate; c, d and e, g: duplicates
    assert list(front["config"]) == ["c", "d", "a", "e", "g"]


def test_single_objective_keeps_every_tie_of_the_best():
    table = pd.DataFrame({"accuracy": [1.0, 3.0, 3.0, 2.0], "macs": [4, 3, 2, 1]})
    assert list(pareto_front(table, ["accuracy"]).index) == [1, 2]
    assert list(pareto_front(table, {"macs": "min"}).index) == [3]


def test_sequence_objectives_maximise_accuracy_only():
    assert as_objectives(["accuracy", "predicted_ms"]) == {"accuracy": "max", "predicted_ms": "min"}
    assert as_objectives("macs") == {"macs": "min"}


@pytest.mark.parametrize("bad, match", [
    ({"acc": "max"}, r"\['acc'\] are not columns of the table"),
    ({"accuracy": "up"}, "sense 'up'"),
    ({}, "at least one column"),
    (["macs", "macs"], "twice"),
    ({"config": "min"}, "must hold numbers"),
])
def test_bad_objectives_are_named(bad, match):
    table = pd.DataFrame({"config": ["a", "b"], "accuracy": [1.0, 2.0], "macs": [1, 2]})
    with pytest.raises(ValueError, match=match):
        pareto_front(table, bad)


def test_empty_table_and_nan_are_errors():
    with pytest.raises(ValueError, match="table is empty"):
        pareto_front(pd.DataFrame({"accuracy": [], "macs": []}))
    with pytest.raises(ValueError, match="non-finite"):
        pareto_front(pd.DataFrame({"accuracy": [1.0, np.nan], "macs": [1, 2]}))
    with pytest.raises(ValueError, match="DataFrame"):
        pareto_front([(1.0, 2)])


@pytest.mark.parametrize("seed", range(10))
def test_hypervolume_equals_a_grid_count(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    table = pd.DataFrame({"accuracy": rng.uniform(0, 80, n).round(1 if seed % 2 else 6),
                          "macs": rng.integers(100, 200, n)})
    ranges = {"accuracy": (0.0, 80.0), "macs": (100, 200)}
    got = hypervolume(table, PAIR, ranges)
    pts = [((80.0 - a) / 80.0, (m - 100) / 100) for a, m in zip(table["accuracy"], table["macs"])]
    assert got == pytest.approx(grid_hypervolume(pts, (1.0, 1.0)), rel=1e-12, abs=1e-15)
    assert got == pytest.approx(hypervolume(pareto_front(table, PAIR), PAIR, ranges), rel=1e-12)


def test_hypervolume_by_hand():
    table = pd.DataFrame({"accuracy": [50.0, 100.0], "macs": [0, 50]})
    # normalised (0 best): (0.5, 0) and (0, 0.5); union of [0.5,1]x[0,1] and [0,1]x[0.5,1] = 0.75
    assert hypervolume(table, PAIR, {"accuracy": (0, 100), "macs": (0, 100)}) == pytest.approx(0.75)
    # one point at the best corner covers everything
    best = pd.DataFrame({"accuracy": [100.0], "macs": [0]})
    assert hypervolume(best, PAIR, {"accuracy": (0, 100), "macs": (0, 100)}) == pytest.approx(1.0)
    # one objective: a length; explicit reference point in the objectives' units
    assert hypervolume(table, ["accuracy"], {"accuracy": (0, 100)}) == pytest.approx(1.0)
    assert hypervolume(table, PAIR, {"accuracy": (0, 100), "macs": (0, 100)},
                       reference={"accuracy": 50.0, "macs": 100}) == pytest.approx(0.25)


def test_normalise_maps_ranges_onto_zero_one_best_first():
    table = pd.DataFrame({"accuracy": [0.0, 40.0, 80.0], "macs": [10, 15, 20]})
    got = normalise(table, PAIR, {"accuracy": (0, 80), "macs": (10, 20)})
    np.testing.assert_allclose(got, [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], rtol=0, atol=1e-15)


def test_hypervolume_bad_input():
    table = pd.DataFrame({"accuracy": [0.0, 50.0], "macs": [100, 200]})
    ranges = {"accuracy": (0, 50), "macs": (100, 200)}
    with pytest.raises(ValueError, match="no configuration of the table dominates the reference point"):
        hypervolume(table, PAIR, ranges, reference={"accuracy": 60.0, "macs": 100})
    with pytest.raises(ValueError, match="no configuration of the table dominates"):
        hypervolume(table.iloc[[0]], PAIR, ranges)  # accuracy 0 sits on the reference
    with pytest.raises(ValueError, match="outside its range"):
        hypervolume(table, PAIR, {"accuracy": (0, 40), "macs": (100, 200)})
    with pytest.raises(ValueError, match=r"no \(low, high\) for objective"):
        hypervolume(table, PAIR, {"accuracy": (0, 50)})
    with pytest.raises(ValueError, match="low < high"):
        hypervolume(table, PAIR, {"accuracy": (50, 50), "macs": (100, 200)})
    with pytest.raises(ValueError, match="one or two objectives"):
        hypervolume(table.assign(x=1.0), ["accuracy", "macs", "x"], {**ranges, "x": (0, 2)})
    with pytest.raises(ValueError, match="reference point has no value"):
        hypervolume(table, PAIR, ranges, reference={"accuracy": 0.0})


def test_exact_front_of_a_product_space():
    # additive accuracy and cost over a small space: the front must contain the cheapest and the best
    sizes = [(1, 2, 4), (1, 2, 4, 8)]
    configs = list(itertools.product(*sizes))
    table = pd.DataFrame({"config": configs, "accuracy": [float(a + 2 * b) for a, b in configs],
                          "macs": [a * 3 + b * 5 for a, b in configs]})
    front = pareto_front(table)
    assert (1, 1) in set(front["config"]) and (4, 8) in set(front["config"])
    assert sorted(front.index) == sorted(brute_force_front(table, PAIR))
