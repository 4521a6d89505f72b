"""Cost models for the group-size searches: MACs (the paper's) or predicted latency.

:func:`cost_model` returns a ``config -> cost`` callable for the searches of
:mod:`gross.search` (``exhaustive_search``, ``bfs_search``, ``bfs_incremental_search``
take it as their cost argument):

``"macs"`` (default)
    Total MACs, the paper's budget: a :class:`gross.search.MacLookup` (returns
    ``MACs(total, gconv)``).
``"latency"``
    Predicted latency from a :class:`gross.latency.LatencyTable`, in integer
    nanoseconds (:class:`LatencyCost`) so the searches' integer budgets apply unchanged.

The budget of a search is the uniform baseline's cost under the same model
(:func:`budget_of`); a budget below the cheapest configuration is an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from .decomposition import enumerate_configs
from .latency import LatencyTable, latency_table

__all__ = ["COST_MODELS", "LatencyCost", "cost_model", "budget_of"]

#: Names accepted by :func:`cost_model`.
COST_MODELS = ("macs", "latency")

class LatencyCost:
    """Cost of a configuration as predicted latency in integer nanoseconds (for the searches).

    Search functions compare integer costs with an integer budget; nanoseconds keep the
    predictor's resolution. ``seconds(config)`` gives the float prediction.
    """

    unit = "ns"

    def __init__(self, table: LatencyTable):
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
               table: LatencyTable | None = None, **table_kwargs):
    """A ``config -> cost`` callable for the searches of :mod:`gross.search`.

    Parameters
    ----------
    name : {"macs", "latency"}
        ``"macs"``: total MACs (the paper's budget; :class:`gross.search.MacLookup`,
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
        from .search import model_mac_lookup

        if model is None:
            raise ValueError("cost model 'macs' needs the GroSS model (model=...)")
        return model_mac_lookup(model, input_size)
    if table is None:
        if model is None:
            raise ValueError("cost model 'latency' needs a LatencyTable (table=...) or the model to measure one")
        table = latency_table(model, input_size, **table_kwargs)
    return LatencyCost(table)


def _total(value) -> float:
    return float(value[0]) if isinstance(value, tuple) else float(value)


def budget_of(cost: Callable, baseline, space=None) -> int:
    """Budget under ``cost``: the cost of a baseline configuration (or an int budget), checked.

    Raises ``ValueError`` when the budget is below the cheapest configuration's cost
    (nothing could be found); the cheapest comes from ``cost.min_config()`` or, with
    ``space``, from enumerating it.
    """
    if isinstance(baseline, (bool, np.bool_)):
        raise ValueError(f"baseline must be a configuration or an int budget, got {baseline!r}")
    budget = int(baseline) if isinstance(baseline, (int, np.integer)) else int(_total(cost(tuple(baseline))))
    if hasattr(cost, "min_config"):
        cheapest = cost.min_config()
    elif space is not None:
        cheapest = min(enumerate_configs(space), key=lambda c: _total(cost(c)))
    else:
        return budget
    low = _total(cost(cheapest))
    if budget < low:
        unit = getattr(cost, "unit", "MACs" if hasattr(cost, "deltas") else "cost units")
        raise ValueError(f"budget {budget} {unit} is below the cheapest configuration "
                         f"{' '.join(map(str, cheapest))} ({int(low)} {unit}); raise the budget or use a "
                         "more expensive baseline")
    return budget
