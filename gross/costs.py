"""Costs of configurations for the search: a number, or a ``(total, secondary)`` pair per configuration.

The search algorithms of :mod:`gross.search` take any ``cost(config)``
callable; :func:`as_cost` turns what it returns into ``MACs(total,
secondary)`` (secondary ``-1`` when the cost is a single number). The default
cost is MACs: :class:`MacLookup` (any per-layer additive cost tabulated from a
few calls) and :func:`model_mac_lookup` (MACs of a GroSS model from
:func:`gross.macs.count_macs`, as ``(total MACs, grouped-convolution MACs)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch import nn

from .macs import MACs, count_macs
from .space import Config, SearchSpace, as_space

__all__ = ["number", "as_cost", "MacLookup", "model_mac_lookup"]


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


def model_mac_lookup(model: nn.Module, input_size=(3, 32, 32)) -> MacLookup:
    """:class:`MacLookup` of a GroSS model, built with :func:`gross.macs.count_macs`."""
    return MacLookup(SearchSpace.from_model(model), lambda c: count_macs(model, input_size, config=c))
