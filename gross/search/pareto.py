"""Pareto fronts of evaluated configurations and their hypervolume (beyond the paper).

The paper's searches answer one question per run: the most accurate configuration under one
budget. The whole trade-off is the **Pareto front**: the configurations no other one beats in
every objective at once (at least as accurate *and* at most as costly, strictly better in one).
Its quality is measured by the **hypervolume**: the area of objective space the front
dominates, up to a reference point.

Conventions
-----------
* ``objectives`` maps a table column to its sense, ``"max"`` or ``"min"``
  (default ``{"accuracy": "max", "macs": "min"}``, the paper's pair; accuracy against
  predicted latency is ``{"accuracy": "max", "predicted_ms": "min"}``). A sequence of column
  names is accepted too: ``"accuracy"`` is maximised, every other column minimised.
* A row *dominates* another when it is at least as good in every objective and strictly
  better in one. Rows with equal objective values do not dominate each other, so duplicates
  of a front point are all on the front.
* The hypervolume is computed on **normalised** objectives, each mapped onto 0..1 by a range
  ``(low, high)`` (for the paper's pair: MACs from the cheapest to the dearest configuration of
  the space, accuracy from 0 to the best accuracy any method found), turned so that 0 is best.
  The reference point is the worst corner (accuracy ``low``, MACs ``high``: 1 in every
  normalised objective) unless given. A hypervolume of 1 would be a configuration as accurate
  as the best and as cheap as the cheapest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["SENSES", "as_objectives", "dominated", "pareto_front", "normalise", "hypervolume"]

#: The senses an objective can have.
SENSES = ("max", "min")


def as_objectives(objectives) -> dict[str, str]:
    """``objectives`` as an ordered ``{column: "max" | "min"}`` (checked).

    A mapping is taken as it is; a sequence of names maximises ``"accuracy"`` and minimises
    the others; a single string is one objective.

    Raises
    ------
    ValueError
        No objective, a sense other than ``"max"`` / ``"min"``, or a name given twice.
    """
    if isinstance(objectives, str):
        objectives = [objectives]
    if isinstance(objectives, Mapping):
        out = {str(k): v for k, v in objectives.items()}
    else:
        names = [str(n) for n in objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives name a column twice: {names}; give each column once")
        out = {n: "max" if n == "accuracy" else "min" for n in names}
    if not out:
        raise ValueError("objectives must name at least one column, e.g. {'accuracy': 'max', 'macs': 'min'}")
    for name, sense in out.items():
        if sense not in SENSES:
            raise ValueError(f"objective {name!r} has sense {sense!r}; expected one of {SENSES}")
    return out


def _values(table: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """The objective columns as a float64 array, every objective turned into one to minimise."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [n for n in objectives if n not in table.columns]
    if missing:
        raise ValueError(f"objective column(s) {missing} are not columns of the table; "
                         f"its columns are {list(table.columns)}")
    if table.empty:
        raise ValueError("the table is empty: a Pareto front needs at least one evaluated configuration")
    cols = []
    for name, sense in objectives.items():
        try:
            col = pd.to_numeric(table[name], errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"objective column {name!r} must hold numbers, got dtype {table[name].dtype}") from None
        if not np.all(np.isfinite(col)):
            bad = table.index[~np.isfinite(col)].tolist()
            raise ValueError(f"objective column {name!r} has non-finite values (NaN or infinity) at rows {bad[:5]}; "
                             "drop or evaluate those configurations first")
        cols.append(-col if sense == "max" else col)
    return np.column_stack(cols)


def dominated(table: pd.DataFrame, objectives=None) -> np.ndarray:
    """Which rows of ``table`` another row dominates (boolean array, table order).

    Two objectives: one sort and a sweep, O(n log n). Otherwise a vectorised pairwise check,
    O(n²) memory in blocks.

    Parameters
    ----------
    table : pandas.DataFrame
    objectives : mapping or sequence, optional
        :func:`as_objectives`; default ``{"accuracy": "max", "macs": "min"}``.

    Raises
    ------
    ValueError
        An objective that is not a numeric column, non-finite values, or an empty table.
    """
    objectives = as_objectives({"accuracy": "max", "macs": "min"} if objectives is None else objectives)
    v = _values(table, objectives)
    n, k = v.shape
    if k == 1:
        return v[:, 0] > v[:, 0].min()
    if k == 2:
        return _dominated_2d(v)
    out = np.zeros(n, dtype=bool)
    for start in range(0, n, 1024):
        block = v[start:start + 1024]  # is row i (block) dominated by some row j?
        le = np.all(v[None, :, :] <= block[:, None, :], axis=2)
        lt = np.any(v[None, :, :] < block[:, None, :], axis=2)
        out[start:start + 1024] = np.any(le & lt, axis=1)
    return out


def _dominated_2d(v: np.ndarray) -> np.ndarray:
    """Dominated rows of a 2-objective minimisation: sort by (f0, f1), sweep the best f1 so far."""
    order = np.lexsort((v[:, 1], v[:, 0]))
    out = np.zeros(len(v), dtype=bool)
    best1 = np.inf  # smallest f1 among rows with f0 strictly smaller than the current group's
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and v[order[j], 0] == v[order[i], 0]:
            j += 1
        group = order[i:j]  # equal f0, ascending f1
        low = v[group[0], 1]
        for r in group:
            # dominated by an earlier group (f0 smaller, f1 <=) or by a row of this group with smaller f1
            out[r] = v[r, 1] >= best1 or v[r, 1] > low
        best1 = min(best1, low)
        i = j
    return out


def pareto_front(table: pd.DataFrame, objectives=None) -> pd.DataFrame:
    """The non-dominated rows of an evaluated table: its Pareto front.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per evaluated configuration (other columns are kept).
    objectives : mapping or sequence, optional
        Columns and senses (:func:`as_objectives`); default ``{"accuracy": "max", "macs": "min"}``.

    Returns
    -------
    pandas.DataFrame
        The rows no other row dominates, sorted by the first minimised objective (else the
        first objective) ascending, ties by the others; the original index is kept. Rows with
        equal objective values are all kept (drop duplicate configurations first if wanted).

    Raises
    ------
    ValueError
        An objective that is not a numeric column of the table, non-finite values, or an
        empty table.

    Examples
    --------
    >>> t = pd.DataFrame({"config": ["a", "b", "c"], "accuracy": [90.0, 80.0, 85.0], "macs": [10, 5, 12]})
    >>> list(pareto_front(t)["config"])
    ['b', 'a']
    """
    objectives = as_objectives({"accuracy": "max", "macs": "min"} if objectives is None else objectives)
    front = table[~dominated(table, objectives)]
    names = list(objectives)
    first = next((n for n in names if objectives[n] == "min"), names[0])
    keys = [first] + [n for n in names if n != first]
    ascending = [objectives[n] == "min" for n in keys]
    return front.sort_values(keys, ascending=ascending, kind="stable")


def _ranges(objectives: Mapping[str, str], ranges: Mapping) -> dict[str, tuple[float, float]]:
    if not isinstance(ranges, Mapping):
        raise ValueError(f"ranges must map every objective to (low, high), got {type(ranges).__name__}")
    missing = [n for n in objectives if n not in ranges]
    if missing:
        raise ValueError(f"ranges has no (low, high) for objective(s) {missing}; give one per objective")
    out = {}
    for name in objectives:
        try:
            low, high = (float(x) for x in ranges[name])
        except (TypeError, ValueError):
            raise ValueError(f"range of {name!r} must be a (low, high) pair of numbers, got {ranges[name]!r}") from None
        if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
            raise ValueError(f"range of {name!r} must have finite low < high, got ({low}, {high})")
        out[name] = (low, high)
    return out


def normalise(table: pd.DataFrame, objectives, ranges: Mapping) -> np.ndarray:
    """Objectives mapped onto 0..1 by their ranges, each turned so that 0 is best (float64, rows x objectives).

    A minimised objective ``x`` becomes ``(x - low) / (high - low)``, a maximised one
    ``(high - x) / (high - low)``.

    Raises
    ------
    ValueError
        As :func:`pareto_front`; a range missing or not ``low < high``; a value outside its
        range (the ranges must span every configuration normalised).
    """
    objectives = as_objectives(objectives)
    rng = _ranges(objectives, ranges)
    v = _values(table, objectives)
    out = np.empty_like(v)
    for i, (name, sense) in enumerate(objectives.items()):
        low, high = rng[name]
        raw = -v[:, i] if sense == "max" else v[:, i]
        outside = (raw < low - 1e-12 * abs(low)) | (raw > high + 1e-12 * abs(high))
        if outside.any():
            raise ValueError(f"objective {name!r} has values outside its range ({low}, {high}): "
                             f"{raw[outside][:5].tolist()}; widen the range to span every configuration")
        out[:, i] = (high - raw) / (high - low) if sense == "max" else (raw - low) / (high - low)
    return out


def hypervolume(table: pd.DataFrame, objectives, ranges: Mapping, reference: Mapping | None = None) -> float:
    """Hypervolume of a table's Pareto front on normalised objectives (one or two objectives).

    The area (length, for one objective) of the normalised objective space that the table's
    configurations dominate, bounded by the reference point. Only the front matters: the
    value is the same for a table and for its :func:`pareto_front`.

    Parameters
    ----------
    table : pandas.DataFrame
        Evaluated configurations (e.g. everything a search evaluated).
    objectives : mapping or sequence
        :func:`as_objectives`, e.g. ``{"accuracy": "max", "macs": "min"}``.
    ranges : mapping of str to (low, high)
        Per objective, the values mapped onto 0 and 1 (:func:`normalise`): for MACs the
        cheapest and dearest configurations of the space, for accuracy 0 and the best
        accuracy any compared method found.
    reference : mapping of str to float, optional
        The reference point in the objectives' own units; default the worst corner of the
        ranges (``low`` of a maximised objective, ``high`` of a minimised one), which is 1 in
        every normalised objective.

    Returns
    -------
    float
        In 0..1 with the default reference.

    Raises
    ------
    ValueError
        As :func:`normalise`; more than two objectives; a reference point missing an
        objective; or a reference point no configuration of the table strictly dominates
        (the hypervolume would be 0 whatever the table: move the reference to the worse side).
    """
    objectives = as_objectives(objectives)
    if len(objectives) > 2:
        raise ValueError(f"hypervolume is computed for one or two objectives, "
                         f"got {len(objectives)}: {list(objectives)}")
    rng = _ranges(objectives, ranges)
    v = normalise(table, objectives, rng)
    if reference is None:
        ref = np.ones(len(objectives))
    else:
        missing = [n for n in objectives if n not in reference]
        if missing:
            raise ValueError(f"reference point has no value for objective(s) {missing}")
        ref = np.array([(rng[n][1] - float(reference[n])) / (rng[n][1] - rng[n][0]) if s == "max"
                        else (float(reference[n]) - rng[n][0]) / (rng[n][1] - rng[n][0])
                        for n, s in objectives.items()])
    inside = np.all(v < ref, axis=1)
    if not inside.any():
        shown = reference if reference is not None else {n: rng[n][0] if s == "max" else rng[n][1]
                                                         for n, s in objectives.items()}
        raise ValueError(f"no configuration of the table dominates the reference point {shown}: every one is at "
                         "or beyond it in some objective, so the hypervolume is 0; choose a worse reference point")
    v = v[inside]
    if len(objectives) == 1:
        return float(ref[0] - v[:, 0].min())
    order = np.lexsort((v[:, 1], v[:, 0]))  # ascending f0, then f1
    area, best1 = 0.0, ref[1]
    for i in order:
        if v[i, 1] < best1:
            # the strip from this point's f0 to the reference, between its f1 and the best f1 so far
            area += (ref[0] - v[i, 0]) * (best1 - v[i, 1])
            best1 = v[i, 1]
    return float(area)
