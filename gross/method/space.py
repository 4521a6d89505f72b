"""Configurations and search spaces: one home for validating, enumerating, drawing and printing them.

A *configuration* is a tuple of ints, one group size per decomposed layer, in
:func:`gross.method.decomposition.search_space` order (the order of
``model.named_modules()``). A *search space* lists the allowed group sizes of
every decomposed layer. :class:`SearchSpace` is built from a GroSS model
(:meth:`SearchSpace.from_model`), from a mapping ``layer name -> sizes`` (such
as :func:`gross.method.decomposition.search_space` returns) or from a sequence of
size tuples (layers are then called ``"layer 0"``, ``"layer 1"``, ...).

Allowed sizes are kept in ascending order; enumeration follows
:func:`itertools.product` over them (the first layer varies slowest), which is
also the order of :func:`gross.method.decomposition.enumerate_configs` for a GroSS
model (whose layers list their sizes in ascending order).

Examples
--------
>>> space = SearchSpace({"conv2": (1, 2, 4), "conv3": (1, 8)})
>>> space.num_configs
6
>>> space.parse("2 8")
(2, 8)
>>> space.format((2, 8))
'2 8'
>>> space.neighbours((2, 8))
[(1, 8), (4, 8), (2, 1)]
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from gross.method.layers import gross_layers

__all__ = ["Config", "SearchSpace", "as_space", "config_str", "parse_config", "random_configs"]

#: A configuration: one group size per decomposed layer.
Config = tuple[int, ...]


def config_str(config: Iterable[int], sep: str = " ") -> str:
    """A configuration as the paper prints it: ``(8, 16, 64) -> "8 16 64"``.

    ``sep="-"`` gives the file-name form ``"8-16-64"`` (checkpoint names, column labels).
    """
    return sep.join(str(int(s)) for s in config)


def parse_config(text: str) -> Config:
    """Inverse of :func:`config_str`: ``"8 16 64" -> (8, 16, 64)`` (commas are accepted too).

    Not validated against a space; use :meth:`SearchSpace.parse` for that.

    Raises
    ------
    ValueError
        ``text`` holds something other than integers.
    """
    try:
        return tuple(int(s) for s in str(text).replace(",", " ").split())
    except ValueError:
        raise ValueError(f"cannot parse configuration {text!r}; expected group sizes like '8 16 64'") from None


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _integral(value) -> bool:
    """An int, or a number equal to an int (``4.0``); never a bool or a string."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    try:
        return int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


class SearchSpace:
    """Allowed group sizes per decomposed layer.

    Parameters
    ----------
    sizes : mapping of str to sequence of int, sequence of sequences of int, or SearchSpace
        The allowed sizes of every layer, in configuration order. A mapping
        gives the layer names; otherwise layers are named ``"layer <i>"``.

    Raises
    ------
    ValueError
        No layers, or a layer with no sizes, repeated sizes or non-positive /
        non-integer sizes.
    """

    def __init__(self, sizes):
        if isinstance(sizes, SearchSpace):
            names, values = list(sizes.names), list(sizes.sizes)
        elif isinstance(sizes, Mapping):
            names, values = [str(k) for k in sizes], list(sizes.values())
        elif isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
            raise ValueError(
                f"a search space is a mapping of layer name to group sizes or a sequence of size tuples, got {sizes!r}"
            )
        else:
            values = list(sizes)
            names = [f"layer {i}" for i in range(len(values))]
        if not values:
            raise ValueError("the search space is empty; expected one tuple of group sizes per decomposed layer")
        self.names: tuple[str, ...] = tuple(names)
        self.sizes: tuple[tuple[int, ...], ...] = tuple(self._layer_sizes(n, v) for n, v in zip(names, values))

    @staticmethod
    def _layer_sizes(name: str, sizes) -> tuple[int, ...]:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
            raise ValueError(f"layer {name!r} of the search space must list group sizes, got {sizes!r}")
        sizes = tuple(sizes)
        if not sizes or not all(_is_int(s) and s > 0 for s in sizes) or len(set(sizes)) != len(sizes):
            raise ValueError(f"layer {name!r} of the search space must list distinct positive group sizes, got {sizes}")
        return tuple(sorted(int(s) for s in sizes))

    @classmethod
    def from_model(cls, model) -> "SearchSpace":
        """The search space of a GroSS model (:func:`gross.method.decomposition.search_space`).

        Raises
        ------
        ValueError
            The model has no GroSS layers.
        """
        space = {name: tuple(layer.group_sizes) for name, layer in gross_layers(model).items()}
        if not space:
            raise ValueError("the model has no GroSS layers; decompose it first (gross.method.decomposition.decompose)")
        return cls(space)

    # ------------------------------------------------------------------ basic properties
    @property
    def num_layers(self) -> int:
        """Number of decomposed layers (iterating over the space yields configurations, not layers)."""
        return len(self.sizes)

    def __repr__(self) -> str:
        return f"SearchSpace({dict(self.as_dict())!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, SearchSpace) and (self.names, self.sizes) == (other.names, other.sizes)

    def __hash__(self) -> int:
        return hash((self.names, self.sizes))

    @property
    def num_configs(self) -> int:
        """Number of configurations (product of the number of sizes per layer)."""
        return math.prod(len(s) for s in self.sizes)

    def as_dict(self) -> "OrderedDict[str, tuple[int, ...]]":
        """``layer name -> allowed sizes`` (the form of :func:`gross.method.decomposition.search_space`)."""
        return OrderedDict(zip(self.names, self.sizes))

    def min_config(self) -> Config:
        """The smallest group size in every layer."""
        return tuple(s[0] for s in self.sizes)

    def max_config(self) -> Config:
        """The largest group size in every layer."""
        return tuple(s[-1] for s in self.sizes)

    # ------------------------------------------------------------------ validation
    def validate(self, config, default: Sequence[int] | None = None) -> Config:
        """``config`` as a tuple of ints, checked against the allowed sizes.

        Parameters
        ----------
        config : sequence of int, str or mapping of str to int
            One size per layer in order, a string such as ``"8 16 64"``, or a
            mapping ``layer name -> size``.
        default : sequence of int, optional
            Sizes of the layers a mapping does not name; without it a mapping
            must name every layer.

        Returns
        -------
        tuple of int

        Raises
        ------
        ValueError
            Naming the layer, the bad value and the allowed sizes (or the
            expected number of sizes / the layer names).
        """
        if isinstance(config, str):
            config = parse_config(config)
        if isinstance(config, Mapping):
            config = self._from_mapping(config, default)
        if isinstance(config, bytes) or not isinstance(config, Iterable):
            raise ValueError(
                f"a configuration must be a sequence of ints (one group size per layer), got {config!r}"
            )
        config = tuple(config)
        if len(config) != len(self.sizes):
            raise ValueError(
                f"config has {len(config)} group sizes but the model has {len(self.sizes)} decomposed layers "
                f"{list(self.names)} (got {config})"
            )
        for name, s, allowed in zip(self.names, config, self.sizes):
            if not _integral(s) or int(s) not in allowed:
                raise ValueError(f"group size {s!r} is not valid for layer {name!r}: allowed sizes are {allowed}")
        return tuple(int(s) for s in config)

    def _from_mapping(self, config: Mapping, default) -> list:
        unknown = [k for k in config if k not in self.names]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} in config; the decomposed layers are {list(self.names)}")
        missing = [n for n in self.names if n not in config]
        if missing and default is None:
            raise ValueError(f"config names layers {list(config)}, but the decomposed layers are {list(self.names)}")
        fallback = dict(zip(self.names, default)) if default is not None else {}
        return [config[n] if n in config else fallback[n] for n in self.names]

    def __contains__(self, config) -> bool:
        try:
            self.validate(config)
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------------ text
    def format(self, config) -> str:
        """A (validated) configuration as the paper prints it: ``"8 16 64"``."""
        return config_str(self.validate(config))

    def parse(self, text: str) -> Config:
        """``"8 16 64" -> (8, 16, 64)``, validated against the space."""
        return self.validate(parse_config(text))

    # ------------------------------------------------------------------ enumeration and sampling
    def __iter__(self) -> Iterator[Config]:
        return itertools.product(*self.sizes)

    def configs(self) -> list[Config]:
        """Every configuration, in :func:`itertools.product` order (first layer slowest)."""
        return list(itertools.product(*self.sizes))

    def neighbours(self, config) -> list[Config]:
        """Configurations that differ from ``config`` in exactly one layer's group size.

        Returns
        -------
        list of tuple of int
            Ordered by layer, then by ascending group size.
        """
        config = self.validate(config)
        return [config[:i] + (s,) + config[i + 1:]
                for i, allowed in enumerate(self.sizes) for s in allowed if s != config[i]]

    def draw(self, rng: np.random.Generator) -> Config:
        """One configuration drawn uniformly at random (one ``rng.integers`` call per layer)."""
        return tuple(int(a[rng.integers(len(a))]) for a in self.sizes)

    def random(self, n: int = 45, seed=0) -> list[Config]:
        """``n`` distinct configurations drawn uniformly at random (Sec. 5.2).

        Parameters
        ----------
        n : int, default 45
            Number of configurations (the paper uses 45).
        seed : int or numpy.random.SeedSequence, default 0
            Seed of the :func:`numpy.random.default_rng` generator.

        Returns
        -------
        list of tuple of int
            In drawing order (a uniformly random subset of size ``n``). Draws are
            nested: with the same seed, the first ``m`` of ``n >= m``
            configurations are exactly the ``m``-draw, so a larger study re-uses
            (memoised) results of a smaller one.
        """
        total = self.num_configs
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if n > total:
            raise ValueError(f"cannot draw {n} distinct configurations from a space of {total}; use n <= {total}")
        rng = np.random.default_rng(seed)
        # sequential uniform draws with rejection of repeats: a uniformly random subset in
        # random order, nested in n by construction (~total * ln(total) draws when n = total)
        out, seen = [], set()
        while len(out) < n:
            c = self.draw(rng)
            if c not in seen:
                seen.add(c)
                out.append(c)
        return out


def as_space(space) -> SearchSpace:
    """``space`` as a :class:`SearchSpace`: a SearchSpace, a mapping, a sequence of size tuples or a GroSS model."""
    if isinstance(space, SearchSpace):
        return space
    from torch import nn

    if isinstance(space, nn.Module):
        return SearchSpace.from_model(space)
    return SearchSpace(space)


def random_configs(space, n: int = 45, seed=0) -> list[Config]:
    """``n`` distinct uniformly random configurations, nested in ``n`` (:meth:`SearchSpace.random`)."""
    return as_space(space).random(n, seed)
