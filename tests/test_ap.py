"""Tests for gross.search.ap (Table 5 average precision)."""

import itertools

import numpy as np
import pandas as pd
import pytest

from gross.search.ap import ap_table, average_precision, drop_label, positives


def ap_of_order(order, is_pos):
    """AP of one fixed ranking (independent reference): mean precision at each positive."""
    hits, precisions = 0, []
    for rank, idx in enumerate(order, start=1):
        if is_pos[idx]:
            hits += 1
            precisions.append(hits / rank)
    return float(np.mean(precisions))


def brute_force_ap(true_acc, search_acc, k):
    """AP averaged over every ranking consistent with the search scores (ties in any order)."""
    true_acc, search_acc = np.asarray(true_acc, float), np.asarray(search_acc, float)
    kth = np.sort(true_acc)[::-1][k - 1]
    is_pos = true_acc >= kth
    values = []
    for order in itertools.permutations(range(len(true_acc))):
        s = search_acc[list(order)]
        if np.all(s[:-1] >= s[1:]):
            values.append(ap_of_order(order, is_pos))
    return float(np.mean(values)), min(values), max(values)


def test_hand_computed_no_ties():
    true = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]  # positives (k=2): items 0 and 1
    search = [0.5, 0.1, 0.9, 0.3, 0.2, 0.8]  # search order: 2, 5, 0, 3, 4, 1 -> positives at ranks 3 and 6
    assert average_precision(true, search, k=2) == pytest.approx((1 / 3 + 2 / 6) / 2)
    # perfect ranking
    assert average_precision(true, true, k=3) == pytest.approx(1.0)
    # docstring example
    assert average_precision([0.9, 0.8, 0.1], [0.1, 0.9, 0.5], k=1) == pytest.approx(1 / 3)


def test_hand_computed_search_ties():
    true, search = [3.0, 2.0, 1.0], [1.0, 1.0, 0.0]  # positive 0 tied with negative 1 at the top
    assert average_precision(true, search, k=1, ties="pessimistic") == pytest.approx(0.5)
    assert average_precision(true, search, k=1, ties="optimistic") == pytest.approx(1.0)
    assert average_precision(true, search, k=1, ties="average") == pytest.approx(0.75)
    # two positives and one negative tied after one negative: orders (P P N), (P N P), (N P P)
    true, search = [5.0, 4.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.9]
    expected = np.mean([(1 / 2 + 2 / 3) / 2, (1 / 2 + 2 / 4) / 2, (1 / 3 + 2 / 4) / 2])
    assert average_precision(true, search, k=2) == pytest.approx(expected)


def test_positive_ties_are_all_positive():
    # k=2 but items 1, 2 and 3 tie at the 2nd place -> 4 positives
    true = [9.0, 7.0, 7.0, 7.0, 1.0]
    assert positives(true, k=2).tolist() == [True, True, True, True, False]
    search = [0.0, 4.0, 3.0, 2.0, 1.0]  # order 1,2,3,4,0: positives at ranks 1,2,3,5
    assert average_precision(true, search, k=2) == pytest.approx((1 + 1 + 1 + 4 / 5) / 4)


@pytest.mark.parametrize("seed", range(6))
def test_against_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 7
    true = rng.integers(0, 5, n).astype(float)  # ties in true accuracy too
    search = rng.integers(0, 3, n).astype(float)  # many ties in search accuracy
    k = int(rng.integers(1, 4))
    mean, lo, hi = brute_force_ap(true, search, k)
    assert average_precision(true, search, k=k, ties="average") == pytest.approx(mean, abs=1e-12)
    assert average_precision(true, search, k=k, ties="pessimistic") == pytest.approx(lo, abs=1e-12)
    assert average_precision(true, search, k=k, ties="optimistic") == pytest.approx(hi, abs=1e-12)


def test_invariant_to_input_order_and_series_alignment():
    rng = np.random.default_rng(1)
    true = rng.normal(80, 2, 20).round(1)
    search = rng.normal(80, 2, 20).round(0)
    perm = rng.permutation(20)
    ap = average_precision(true, search, k=5)
    assert average_precision(true[perm], search[perm], k=5) == pytest.approx(ap, abs=1e-12)
    configs = [(i, 2 * i) for i in range(20)]
    t = pd.Series(true, index=pd.Index(configs, tupleize_cols=False))
    s = pd.Series(search[perm], index=pd.Index([configs[i] for i in perm], tupleize_cols=False))
    assert average_precision(t, s, k=5) == pytest.approx(ap, abs=1e-12)


def test_ap_table_matches_direct_computation():
    rng = np.random.default_rng(2)
    n = 45
    true = rng.normal(82, 1.5, n)
    spaces = {"noisy": true + rng.normal(0, 2, n), "good": true + rng.normal(0, 0.1, n), "perfect": true.copy()}
    table = ap_table(true, spaces, drops=(0, 10, 20, 30), k=5)
    assert list(table.columns) == ["All", "10 ↓", "20 ↓", "30 ↓", "Mean"]
    assert list(table.index) == ["noisy", "good", "perfect"]
    order = np.argsort(-true)
    for name, search in spaces.items():
        for d in (0, 10, 20, 30):
            keep = order[d:]
            expected = 100 * average_precision(true[keep], search[keep], k=5)
            assert table.loc[name, drop_label(d)] == pytest.approx(expected)
        assert table.loc[name, "Mean"] == pytest.approx(table.loc[name, ["All", "10 ↓", "20 ↓", "30 ↓"]].mean())
    assert np.allclose(table.loc["perfect"], 100.0)
    assert table.loc["noisy", "Mean"] < table.loc["perfect", "Mean"]


def test_ap_table_drop_removes_exactly_x_with_true_ties():
    true = np.array([5.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    search = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    # drop 1 removes item 0 (first of the tied pair in input order); positives (k=1): item 1
    # search order of the rest: 5, 4, 3, 2, 1 -> item 1 is ranked 5th
    table = ap_table(true, {"s": search}, drops=(0, 1), k=1)
    assert table.loc["s", "1 ↓"] == pytest.approx(100 / 5)
    # with no drop both tied items are positive: ranks 5 and 6 -> (1/5 + 2/6) / 2
    assert table.loc["s", "All"] == pytest.approx(100 * (1 / 5 + 2 / 6) / 2)


def test_errors():
    with pytest.raises(ValueError, match="k=4 exceeds"):
        average_precision([1, 2, 3], [1, 2, 3], k=4)
    with pytest.raises(ValueError, match="one value per configuration"):
        average_precision([1, 2, 3], [1, 2], k=1)
    with pytest.raises(ValueError, match="ties must be one of"):
        average_precision([1, 2], [1, 2], k=1, ties="random")
    with pytest.raises(ValueError, match="NaN"):
        average_precision([1, np.nan], [1, 2], k=1)
    with pytest.raises(ValueError, match="drops <= 5"):
        ap_table(np.arange(10.0), {"s": np.arange(10.0)}, drops=(0, 6), k=5)
    with pytest.raises(ValueError, match="same configurations"):
        average_precision(pd.Series([1.0, 2.0], index=["a", "b"]), pd.Series([1.0, 2.0], index=["a", "c"]), k=1)
