"""How well does a search space rank configurations? (Sec. 5.2, Table 5).

A *search space* assigns every candidate configuration a proxy accuracy
(GroSS accuracy, accuracy with no fine-tuning, accuracy after a partial
fine-tune). It is good for search when ordering configurations by the proxy
puts the configurations with the best *true* accuracy (full conventional
fine-tune) first. The paper measures this with the top-k average precision
(AP) of the proxy ordering, computed on the whole set of configurations and
after removing the X configurations with the highest true accuracy
("X ↓"), which simulates searches lower down the accuracy range.

Conventions (the paper does not state them; these are ours):

* **Positives** are the configurations whose true accuracy is at least the
  k-th largest true accuracy. When several configurations tie at the k-th
  place they are *all* positive, so there can be more than ``k`` positives;
  the rule depends only on the values, not on the order of the input.
* **Ties in the search score** are resolved by averaging: the returned AP is
  the exact expected AP over all orderings of tied configurations, each
  equally likely (``ties="average"``). It equals the usual AP when there are
  no ties and does not depend on the order of the input. ``"pessimistic"``
  ranks positives after negatives of equal score (a lower bound) and
  ``"optimistic"`` before them (an upper bound).
* **Dropping the top X** removes exactly X configurations: those first in the
  order by true accuracy, descending, ties kept in input order.

AP is ``(1 / |positives|) * sum over positives of precision@rank(positive)``,
where ``precision@r`` is the fraction of positives among the first ``r``
configurations of the search ordering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["TIES", "positives", "average_precision", "drop_label", "ap_table"]

#: Allowed values of the ``ties`` argument.
TIES = ("average", "pessimistic", "optimistic")


def _as_vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per configuration), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; every configuration needs a finite accuracy")
    return arr


def _aligned(true_acc, search_acc) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 vectors, aligned by index when both are Series."""
    if isinstance(true_acc, pd.Series) and isinstance(search_acc, pd.Series):
        if not true_acc.index.is_unique or not search_acc.index.is_unique:
            raise ValueError("true_acc and search_acc Series must have unique indices (one entry per configuration)")
        if set(true_acc.index) != set(search_acc.index):
            raise ValueError(
                "true_acc and search_acc Series index different configurations; "
                "pass Series over the same configurations (or aligned arrays)"
            )
        search_acc = search_acc.reindex(true_acc.index)
    t = _as_vector(true_acc, "true_acc")
    s = _as_vector(search_acc, "search_acc")
    if t.shape != s.shape:
        raise ValueError(
            f"true_acc and search_acc must have one value per configuration each; got {t.size} and {s.size} values"
        )
    return t, s


def _check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of configurations ({n}); use k <= {n}")
    return int(k)


def positives(true_acc, k: int = 5) -> np.ndarray:
    """Boolean mask of the positives: true accuracy at least the k-th largest.

    Parameters
    ----------
    true_acc : array-like of float
        True accuracy of each configuration.
    k : int, default 5
        Number of top configurations that count as positive. All
        configurations tied with the k-th largest value are positive.

    Returns
    -------
    numpy.ndarray of bool
    """
    t = _as_vector(true_acc, "true_acc")
    k = _check_k(k, t.size)
    kth = np.sort(t)[::-1][k - 1]
    return t >= kth


def _tie_group_sum(a: int, b: int, n: int, m: int, ties: str) -> float:
    """Sum of precision@rank over the ``m`` positives of one tie group.

    ``a`` positives and ``b`` items in total are ranked before the group of
    ``n`` items. For ``"average"`` this is the exact expectation over the
    ``n!`` orderings: a given positive sits at position ``j`` with
    probability ``1/n`` and, given that, the expected number of other
    positives before it is ``(j - 1)(m - 1)/(n - 1)`` (hypergeometric), while
    its rank ``b + j`` is fixed, so the expectation is linear.
    """
    if m == 0:
        return 0.0
    if ties == "optimistic":
        i = np.arange(1, m + 1)
        return float(np.sum((a + i) / (b + i)))
    if ties == "pessimistic":
        i = np.arange(1, m + 1)
        return float(np.sum((a + i) / (b + n - m + i)))
    if n == 1:
        return (a + 1) / (b + 1)
    j = np.arange(1, n + 1)
    expected_hits = a + 1 + (j - 1) * (m - 1) / (n - 1)
    return float(m / n * np.sum(expected_hits / (b + j)))


def average_precision(true_acc, search_acc, k: int = 5, ties: str = "average") -> float:
    """Top-k average precision of the ordering by search-space accuracy.

    Parameters
    ----------
    true_acc : array-like of float
        True accuracy of each configuration (defines the positives).
    search_acc : array-like of float
        Search-space (proxy) accuracy of the same configurations, aligned with
        ``true_acc`` (by position, or by index when both are pandas Series).
    k : int, default 5
        The top-k true accuracies are the positives (ties at the k-th place
        are all positive; see the module docstring).
    ties : {"average", "pessimistic", "optimistic"}, default "average"
        How configurations with equal search accuracy are ordered: the exact
        expectation over random orders, positives last, or positives first.

    Returns
    -------
    float
        Average precision in [0, 1].

    Examples
    --------
    >>> average_precision([0.9, 0.8, 0.1], [0.1, 0.9, 0.5], k=1)  # positive ranked 3rd
    0.3333333333333333
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    t, s = _aligned(true_acc, search_acc)
    if t.size == 0:
        raise ValueError("average_precision needs at least one configuration")
    pos = positives(t, k)
    scores = np.unique(s)[::-1]  # distinct search scores, best first
    total, a, b = 0.0, 0, 0
    for score in scores:
        in_group = s == score
        n = int(in_group.sum())
        m = int(pos[in_group].sum())
        total += _tie_group_sum(a, b, n, m, ties)
        a += m
        b += n
    return total / int(pos.sum())


def drop_label(drop: int) -> str:
    """Column label of a drop in the paper's Table 5: ``"All"`` or ``"X ↓"``."""
    return "All" if drop == 0 else f"{drop} ↓"


def ap_table(
    true_acc,
    spaces: Mapping[str, Sequence[float]],
    drops: Sequence[int] = (0, 10, 20, 30),
    k: int = 5,
    ties: str = "average",
) -> pd.DataFrame:
    """Average precision of several search spaces across the range (Table 5).

    Parameters
    ----------
    true_acc : array-like of float
        True accuracy of each configuration.
    spaces : mapping of str to array-like of float
        Search-space accuracy of the same configurations for each strategy
        (e.g. ``{"No Fine-tuning": ..., "Partial Fine-tuning": ..., "GroSS": ...}``),
        aligned with ``true_acc`` by position (or by index for pandas Series).
    drops : sequence of int, default (0, 10, 20, 30)
        For each X, the X configurations with the highest true accuracy are
        removed before computing the AP.
    k : int, default 5
        Number of positives among the remaining configurations.
    ties : str, default "average"
        Tie handling of search scores, see :func:`average_precision`.

    Returns
    -------
    pandas.DataFrame
        One row per space (index named ``"space"``), one column per drop
        (``"All"``, ``"10 ↓"``, ...) and ``"Mean"`` over the drops; values in
        percent (AP × 100), unrounded.
    """
    if not isinstance(spaces, Mapping) or len(spaces) == 0:
        raise ValueError("spaces must be a non-empty mapping of space name to search accuracies")
    drops = [int(d) for d in drops]
    if len(drops) == 0 or any(d < 0 for d in drops) or len(set(drops)) != len(drops):
        raise ValueError(f"drops must be distinct non-negative integers, got {drops}")
    rows = {}
    for name, search_acc in spaces.items():
        t, s = _aligned(true_acc, search_acc)
        order = np.argsort(-t, kind="stable")
        row = {}
        for d in drops:
            if d + k > t.size:
                raise ValueError(
                    f"cannot drop {d} of {t.size} configurations and still have k={k} positives; "
                    f"use drops <= {t.size - k}"
                )
            keep = np.sort(order[d:])
            row[drop_label(d)] = 100.0 * average_precision(t[keep], s[keep], k=k, ties=ties)
        row["Mean"] = float(np.mean(list(row.values())))
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "space"
    return table
