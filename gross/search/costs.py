"""Costs of configurations for the searches: MACs (the paper's) or predicted latency.

The search algorithms of :mod:`gross.search.algorithms` (``exhaustive_search``, ``bfs_search``,
``bfs_incremental_search``) take any ``cost(config)`` callable as ``cost=``;
:func:`as_cost` turns what it returns into ``MACs(total, secondary)`` (secondary
``-1`` when the cost is a single number). :func:`cost_model` builds one by name:

``"macs"`` (default)
    Total MACs, the paper's budget: :class:`MacLookup` (any per-layer additive cost
    tabulated from a few calls) via :func:`model_mac_lookup` (MACs of a GroSS model
    from :func:`gross.method.macs.count_macs`, as ``(total MACs, grouped-convolution MACs)``).
``"latency"``
    Predicted latency from a :class:`gross.search.latency.LatencyTable`, in integer
    nanoseconds (:class:`LatencyCost`) so the searches' integer budgets apply unchanged.

The budget of a search is the uniform baseline's cost under the same model
(:func:`budget_of`); a budget below the cheapest configuration is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch import nn

from gross.method.macs import MACs, count_macs
from gross.method.space import Config, SearchSpace, as_space

__all__ = ["COST_MODELS", "number", "as_cost", "MacLookup", "model_mac_lookup", "LatencyCost", "cost_model",
           "budget_of"]

#: Names accepted by :func:`cost_model`.
COST_MODELS = ("macs", "latency")


def number(value, what: str):
    """``value`` as a number: an int stays an int, anything else becomes a finite float.

    Raises
    ------
    ValueError
        A bool, a non-number, NaN or infinity (the message starts with ``what``).
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return out


def as_cost(value) -> MACs:
    """``MACs(total, secondary)`` from a number, a pair or a MACs tuple (secondary unknown -> -1)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"cost(config) must return a number or a (total, secondary) pair, got {value!r}")
        return MACs(number(value[0], "cost(config)"), number(value[1], "cost(config)"))
    return MACs(number(value, "cost(config)"), -1)


class MacLookup:
    """MACs (or any per-layer additive cost) of every configuration as a sum of per-layer terms.

    A decomposed layer's MACs depend only on its own group size, so
    ``macs(config) = macs(reference) + Σ_l [macs(reference with layer l at
    config[l]) - macs(reference)]`` with the reference the configuration of
    smallest sizes. The table is built with ``1 + Σ_l (|sizes_l| - 1)`` calls
    of ``macs_fn``; lookups are then free.

    Parameters
    ----------
    space : SearchSpace, mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    macs_fn : callable
        ``macs_fn(config) -> (total, gconv)`` (or a number), e.g.
        ``lambda c: count_macs(model, config=c)``.

    Examples
    --------
    >>> lookup = MacLookup([(1, 2), (1, 4)], lambda c: (100 + 3 * c[0] + 5 * c[1], 3 * c[0] + 5 * c[1]))
    >>> lookup((2, 4))
    MACs(total=126, gconv=26)
    """

    def __init__(self, space, macs_fn: Callable):
        self.space = as_space(space)
        self.sizes, self.names = list(self.space.sizes), list(self.space.names)
        self.reference = self.space.min_config()
        self.base = as_cost(macs_fn(self.reference))
        self.deltas: list[dict[int, tuple]] = []
        for i, allowed in enumerate(self.sizes):
            table = {}
            for s in allowed:
                m = self.base if s == self.reference[i] else as_cost(
                    macs_fn(self.reference[:i] + (s,) + self.reference[i + 1:])
                )
                table[s] = (m.total - self.base.total, m.gconv - self.base.gconv)
            self.deltas.append(table)
        self._gconv_known = self.base.gconv >= 0

    def __call__(self, config) -> MACs:
        config = self.space.validate(config)
        total, gconv = self.base
        for table, s in zip(self.deltas, config):
            dt, dg = table[s]
            total += dt
            gconv += dg
        return MACs(total, gconv if self._gconv_known else -1)

    def min_config(self) -> Config:
        """The cheapest configuration (lowest total; ties: smaller sizes)."""
        return tuple(min(t, key=lambda s: (t[s][0], s)) for t in self.deltas)

    def max_config(self) -> Config:
        """The dearest configuration (highest total; ties: larger sizes)."""
        return tuple(max(t, key=lambda s: (t[s][0], s)) for t in self.deltas)


def model_mac_lookup(model: nn.Module, input_size=(3, 32, 32)) -> MacLookup:
    """:class:`MacLookup` of a GroSS model, built with :func:`gross.method.macs.count_macs`."""
    return MacLookup(SearchSpace.from_model(model), lambda c: count_macs(model, input_size, config=c))


class LatencyCost:
    """Cost of a configuration as predicted latency in integer nanoseconds (for the searches).

    Search functions compare integer costs with an integer budget; nanoseconds keep the
    predictor's resolution. ``seconds(config)`` gives the float prediction.
    """

    unit = "ns"

    def __init__(self, table):
        from gross.search.latency import LatencyTable

        if not isinstance(table, LatencyTable):
            raise ValueError(f"the latency cost model needs a LatencyTable, got {type(table).__name__}")
        self.table = table

    def seconds(self, config) -> float:
        """Predicted seconds (float) of ``config``."""
        return self.table.predict(config)

    def __call__(self, config) -> int:
        return int(round(self.table.predict(config) * 1e9))

    def min_config(self) -> tuple[int, ...]:
        """The configuration of lowest predicted latency."""
        return self.table.cheapest()[0]


def cost_model(name: str = "macs", model: nn.Module | None = None, *, input_size=(3, 32, 32),
               table=None, **table_kwargs):
    """A ``config -> cost`` callable for the searches of :mod:`gross.search.algorithms`.

    Parameters
    ----------
    name : {"macs", "latency"}
        ``"macs"``: total MACs (the paper's budget; :class:`gross.search.algorithms.MacLookup`,
        returns ``MACs(total, gconv)``). ``"latency"``: predicted latency in integer
        nanoseconds (:class:`LatencyCost`) from ``table`` or, if not given, from
        :func:`latency_table` of ``model`` (``table_kwargs``: batch_size, device, ...).
    model : nn.Module, optional
        The GroSS model (needed for ``"macs"`` and for ``"latency"`` without ``table``).
    input_size : tuple of int

    Raises
    ------
    ValueError
        Unknown ``name``, or missing model / table.
    """
    if name not in COST_MODELS:
        raise ValueError(f"unknown cost model {name!r}: expected one of {COST_MODELS}")
    if name == "macs":
        if model is None:
            raise ValueError("cost model 'macs' needs the GroSS model (model=...)")
        return model_mac_lookup(model, input_size)
    if table is None:
        if model is None:
            raise ValueError("cost model 'latency' needs a LatencyTable (table=...) or the model to measure one")
        from gross.search.latency import latency_table

        table = latency_table(model, input_size, **table_kwargs)
    return LatencyCost(table)


def _total(value) -> float:
    return float(value[0]) if isinstance(value, tuple) else float(value)


def budget_of(cost: Callable, baseline, space=None) -> int:
    """Budget under ``cost``: the cost of a baseline configuration, or an int budget checked.

    A baseline configuration's cost is its budget (it is within it, so nothing needs
    checking). An int budget is checked against the cheapest configuration, from
    ``cost.min_config()`` or, with ``space``, from enumerating it.

    Raises
    ------
    ValueError
        A bool baseline, or an int budget below the cheapest configuration's cost
        (nothing could be found; the message names the cheapest and its cost).
    """
    if isinstance(baseline, (bool, np.bool_)):
        raise ValueError(f"baseline must be a configuration or an int budget, got {baseline!r}")
    if not isinstance(baseline, (int, np.integer)):
        return int(_total(cost(tuple(baseline))))
    budget = int(baseline)
    if hasattr(cost, "min_config"):
        cheapest = cost.min_config()
    elif space is not None:
        cheapest = min(as_space(space).configs(), key=lambda c: _total(cost(c)))
    else:
        return budget
    low = _total(cost(cheapest))
    if budget < low:
        unit = getattr(cost, "unit", "MACs" if hasattr(cost, "deltas") else "cost units")
        raise ValueError(f"budget {budget} {unit} is below the cheapest configuration "
                         f"{' '.join(map(str, cheapest))} ({int(low)} {unit}); raise the budget or use a "
                         "more expensive baseline")
    return budget
