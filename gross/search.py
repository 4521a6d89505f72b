"""Group-size search on a GroSS-decomposed network (Sections 3.4, 5.1, 5.2).

The paper's search code was never released; this module implements what the
text describes.

* **Fast evaluation** (:func:`evaluate_configs`). Because switching a GroSS
  layer's group size needs no new network or weights, many configurations can
  be evaluated in one pass over the data. For a flat ``nn.Sequential`` model
  the layers before the first GroSS layer run once per batch and the
  configurations are walked as a *prefix tree* of group sizes: configurations
  that share the sizes of the first ``d`` decomposed layers share the
  activations up to the ``(d+1)``-th decomposed layer. The result is exactly
  that of evaluating every configuration separately (same floating-point
  operations).
* **Exhaustive search** (:func:`exhaustive`): evaluate every configuration,
  keep those with MACs not above the baseline's, return the most accurate.
* **Breadth-first (greedy) search** (:func:`bfs`, :func:`bfs_incremental`):
  Sec. 3.4 — from a random configuration under the budget, repeatedly move to
  the most accurate one-layer neighbour under the budget while it improves;
  20 runs of at most 25 steps; incrementally over ascending budgets with the
  first 10 runs of a search started from the 10 best configurations of the
  previous one.
* **Sec. 5.2 helpers**: :func:`random_configs`, :func:`evaluate_finetuned`,
  :func:`sec52_spaces` (no fine-tuning, partial fine-tuning, GroSS).
* **Timing** as the paper reports it: :func:`time_tree_vs_one_by_one`,
  :func:`time_switching_vs_rebuild`.

The search algorithms (:func:`exhaustive_search`, :func:`bfs_search`,
:func:`bfs_incremental_search`) are pure: they work on configuration tuples
with an ``evaluate(configs) -> accuracies`` callable (batched, memoised) and a
``macs(config) -> (total, gconv)`` callable, so they can be run and tested on
any accuracy function. The model-level functions wrap them with
:func:`evaluate_configs` and a :class:`MacLookup` built from
:func:`gross.macs.count_macs`.

Conventions
-----------
* A *configuration* is a tuple of ints, one group size per decomposed layer in
  :func:`gross.decomposition.search_space` order; in DataFrames the
  ``config`` column holds such tuples (:func:`config_str` prints them like
  the paper: ``"8 16 64"``).
* A *baseline* is either a configuration (its MACs are the budget) or an int
  MAC budget. A configuration is *within budget* when its total MACs are
  ``<=`` the budget.
* Ranking ties are broken deterministically: higher accuracy first, then
  fewer total MACs, then the lexicographically smaller configuration.
* Accuracies are top-1 percentages.

Performance notes
-----------------
The cost of a tree evaluation is dominated by the last decomposed layer and
the classifier, run once per configuration and batch. On CPU,
``channels_last=True`` roughly halves the time (PyTorch's grouped convolutions
and max-pooling are much faster in that layout) at the price of bit-level
differences to an evaluation in the default layout. On a heavily shared CPU
use ``torch.set_num_threads(1)``: busy-waiting intra-op threads can make
small operations many times slower.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from gross.data import CIFAR_MEAN, CIFAR_STD, Dataset, Split, batches
from gross.decomposition import export, get_config, gross_layers, search_space, set_config
from gross.macs import MACs, count_macs

__all__ = [
    "config_str",
    "parse_config",
    "neighbours",
    "random_configs",
    "MacLookup",
    "model_mac_lookup",
    "forward_configs",
    "evaluate_configs",
    "exhaustive_search",
    "exhaustive",
    "bfs_search",
    "bfs_incremental_search",
    "bfs",
    "bfs_incremental",
    "evaluate_finetuned",
    "sec52_spaces",
    "time_tree_vs_one_by_one",
    "time_switching_vs_rebuild",
]

Config = tuple[int, ...]

#: Columns of a BFS trace.
TRACE_COLUMNS = ["baseline", "budget", "run", "step", "config", "macs", "gconv_macs", "accuracy", "selected"]
#: Columns of an exhaustive-search table.
TABLE_COLUMNS = ["config", "macs", "gconv_macs", "accuracy", "within_budget"]


# ----------------------------------------------------------------------------- configurations


def config_str(config: Iterable[int]) -> str:
    """A configuration as the paper prints it: ``(8, 16, 64) -> "8 16 64"``."""
    return " ".join(str(int(s)) for s in config)


def parse_config(text: str) -> Config:
    """Inverse of :func:`config_str`: ``"8 16 64" -> (8, 16, 64)``."""
    try:
        return tuple(int(s) for s in str(text).replace(",", " ").split())
    except ValueError:
        raise ValueError(f"cannot parse configuration {text!r}; expected group sizes like '8 16 64'") from None


def _space_sizes(space) -> list[tuple[int, ...]]:
    """Allowed sizes per layer from a search-space mapping or a sequence of size tuples."""
    values = list(space.values()) if isinstance(space, Mapping) else list(space)
    if not values:
        raise ValueError("the search space is empty; expected one tuple of group sizes per decomposed layer")
    out = []
    for i, sizes in enumerate(values):
        sizes = tuple(int(s) for s in sizes)
        if not sizes or len(set(sizes)) != len(sizes):
            raise ValueError(f"layer {i} of the search space must list distinct group sizes, got {sizes}")
        out.append(tuple(sorted(sizes)))
    return out


def _layer_names(space) -> list[str]:
    if isinstance(space, Mapping):
        return [str(k) for k in space]
    return [f"layer {i}" for i in range(len(space))]


def _check_config(config, sizes: Sequence[tuple[int, ...]], names: Sequence[str] | None = None) -> Config:
    """``config`` as a tuple of ints, validated against the allowed sizes."""
    if isinstance(config, str):
        config = parse_config(config)
    try:
        config = tuple(int(s) for s in config)
    except (TypeError, ValueError):
        raise ValueError(f"a configuration must be a sequence of ints (one group size per layer), got {config!r}") from None
    if len(config) != len(sizes):
        raise ValueError(
            f"configuration {config} has {len(config)} group sizes but the search space has {len(sizes)} layers"
        )
    for i, (s, allowed) in enumerate(zip(config, sizes)):
        if s not in allowed:
            name = names[i] if names is not None else f"layer {i}"
            raise ValueError(f"group size {s} is not valid for layer {name!r}: allowed sizes are {allowed}")
    return config


def neighbours(config: Sequence[int], space) -> list[Config]:
    """Configurations that differ from ``config`` in exactly one layer's group size.

    Parameters
    ----------
    config : sequence of int
        A configuration of ``space``.
    space : mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.

    Returns
    -------
    list of tuple of int
        Ordered by layer, then by ascending group size.
    """
    sizes = _space_sizes(space)
    config = _check_config(config, sizes, _layer_names(space))
    out = []
    for i, allowed in enumerate(sizes):
        for s in allowed:
            if s != config[i]:
                out.append(config[:i] + (s,) + config[i + 1:])
    return out


def _num_configs(sizes) -> int:
    return math.prod(len(s) for s in sizes)


def random_configs(space, n: int = 45, seed=0) -> list[Config]:
    """``n`` distinct configurations drawn uniformly at random (Sec. 5.2).

    Parameters
    ----------
    space : mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    n : int, default 45
        Number of configurations (the paper uses 45).
    seed : int or numpy.random.SeedSequence, default 0
        Seed of the :func:`numpy.random.default_rng` generator.

    Returns
    -------
    list of tuple of int
        In drawing order (a uniformly random subset of size ``n``). Draws are nested:
        with the same seed, the first ``m`` of ``n >= m`` configurations are exactly the
        ``m``-draw, so a larger study re-uses (memoised) results of a smaller one.
    """
    sizes = _space_sizes(space)
    total = _num_configs(sizes)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if n > total:
        raise ValueError(f"cannot draw {n} distinct configurations from a space of {total}; use n <= {total}")
    rng = np.random.default_rng(seed)
    # sequential uniform draws with rejection of repeats: a uniformly random subset in
    # random order, nested in n by construction (~total * ln(total) draws when n = total)
    out, seen = [], set()
    while len(out) < n:
        c = tuple(int(a[rng.integers(len(a))]) for a in sizes)
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


# ----------------------------------------------------------------------------- MACs


def _as_macs(value) -> MACs:
    """``MACs(total, gconv)`` from an int, a pair or a MACs tuple (gconv unknown -> -1)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"macs(config) must return an int or a (total, gconv) pair, got {value!r}")
        return MACs(int(value[0]), int(value[1]))
    return MACs(int(value), -1)


class MacLookup:
    """MACs of any configuration as a sum of per-layer terms.

    A decomposed layer's MACs depend only on its own group size, so
    ``macs(config) = macs(reference) + Σ_l [macs(reference with layer l at
    config[l]) - macs(reference)]`` with the reference the configuration of
    smallest sizes. The table is built with ``1 + Σ_l (|sizes_l| - 1)`` calls
    of ``macs_fn``; lookups are then free.

    Parameters
    ----------
    space : mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    macs_fn : callable
        ``macs_fn(config) -> (total, gconv)`` (or an int total), e.g.
        ``lambda c: count_macs(model, config=c)``.

    Examples
    --------
    >>> lookup = MacLookup([(1, 2), (1, 4)], lambda c: (100 + 3 * c[0] + 5 * c[1], 3 * c[0] + 5 * c[1]))
    >>> lookup((2, 4))
    MACs(total=126, gconv=26)
    """

    def __init__(self, space, macs_fn: Callable):
        self.sizes = _space_sizes(space)
        self.names = _layer_names(space)
        self.reference = tuple(s[0] for s in self.sizes)
        self.base = _as_macs(macs_fn(self.reference))
        self.deltas: list[dict[int, tuple[int, int]]] = []
        for i, allowed in enumerate(self.sizes):
            table = {}
            for s in allowed:
                m = self.base if s == self.reference[i] else _as_macs(
                    macs_fn(self.reference[:i] + (s,) + self.reference[i + 1:])
                )
                table[s] = (m.total - self.base.total, m.gconv - self.base.gconv)
            self.deltas.append(table)
        self._gconv_known = self.base.gconv >= 0

    def __call__(self, config) -> MACs:
        config = _check_config(config, self.sizes, self.names)
        total, gconv = self.base
        for table, s in zip(self.deltas, config):
            dt, dg = table[s]
            total += dt
            gconv += dg
        return MACs(total, gconv if self._gconv_known else -1)

    def min_config(self) -> Config:
        """The cheapest configuration (fewest total MACs; ties: smaller sizes)."""
        return tuple(min(t, key=lambda s: (t[s][0], s)) for t in self.deltas)


def model_mac_lookup(model: nn.Module, input_size=(3, 32, 32)) -> MacLookup:
    """:class:`MacLookup` of a GroSS model, built with :func:`gross.macs.count_macs`."""
    space = search_space(model)
    if not space:
        raise ValueError("the model has no GroSS layers; decompose it first (gross.decomposition.decompose)")
    return MacLookup(space, lambda c: count_macs(model, input_size, config=c))


def _budget(baseline, macs_fn) -> int:
    """Budget in total MACs of a baseline given as a configuration or as an int."""
    if isinstance(baseline, (bool, np.bool_)):
        raise ValueError(f"baseline must be a configuration or an int MAC budget, got {baseline!r}")
    if isinstance(baseline, (int, np.integer)):
        if baseline < 0:
            raise ValueError(f"a MAC budget must be non-negative, got {baseline}")
        return int(baseline)
    return _as_macs(macs_fn(baseline)).total


def _baseline_label(baseline) -> str:
    if isinstance(baseline, (int, np.integer)):
        return str(int(baseline))
    return config_str(baseline)


def _rank_key(accuracy: float, macs: int, config: Config):
    """Sort key: most accurate first, then fewer MACs, then lexicographically smaller."""
    return (-accuracy, macs, config)


# ----------------------------------------------------------------------------- evaluation


def _get_split(data, split: str):
    """The split to evaluate: ``data`` itself if it is a split, else ``data.split(split)``."""
    if isinstance(data, Split) or (isinstance(data, torch.utils.data.Dataset) and not isinstance(data, Dataset)):
        return data
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a gross.data.Dataset or Split, got {type(data).__name__}")
    return data.split(split)


def _norm_stats(data, mean, std) -> tuple[tuple, tuple]:
    """Normalisation: the given values, else the dataset's defaults, else 0.5 / 0.5."""
    if mean is None:
        mean = data.mean if isinstance(data, Dataset) else CIFAR_MEAN
    if std is None:
        std = data.std if isinstance(data, Dataset) else CIFAR_STD
    return tuple(mean), tuple(std)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _resolve_device(model: nn.Module, device) -> torch.device:
    return torch.device(device) if device is not None else _model_device(model)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.float32


def _stages(model: nn.Module, names: Sequence[str]):
    """``(prefix, segments)`` of a flat Sequential, or None when the model is not one.

    ``prefix`` are the children before the first GroSS layer; ``segments[d]``
    runs from the ``d``-th GroSS layer (inclusive) to the next one (exclusive),
    the last one to the output.
    """
    if not isinstance(model, nn.Sequential):
        return None
    children = list(model.named_children())
    child_names = [n for n, _ in children]
    if any(n not in child_names for n in names):
        return None  # a GroSS layer is nested deeper: no stage-by-stage execution
    cuts = [child_names.index(n) for n in names]
    modules = [m for _, m in children]
    prefix = modules[:cuts[0]]
    segments = [modules[a:b] for a, b in zip(cuts, cuts[1:] + [len(modules)])]
    return prefix, segments


def _run(modules: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    # Identical to nn.Sequential.forward over these children. Every segment starts with a
    # GroSS layer, whose first op (a 1x1 conv) does not modify its input, so an activation
    # shared by several branches of the tree is never changed in place by a later ReLU.
    for m in modules:
        x = m(x)
    return x


def _trie(configs: Sequence[Config]) -> dict:
    """Prefix tree ``{size: subtree}``; leaves are lists of (unique) config indices."""
    root: dict = {}
    for idx, c in enumerate(configs):
        node = root
        for s in c[:-1]:
            node = node.setdefault(s, {})
        node.setdefault(c[-1], []).append(idx)
    return root


def _walk(segments, layers, h, node, depth, visit) -> None:
    layer = layers[depth]
    last = depth == len(segments) - 1
    for s in sorted(node):
        layer.group_size = s
        out = _run(segments[depth], h)
        if last:
            visit(node[s], out)
        else:
            _walk(segments, layers, out, node[s], depth + 1, visit)


class _Restore:
    """Context manager: put back the model's configuration and train/eval mode."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.config = get_config(self.model)
        self.training = self.model.training
        self.model.eval()
        return self

    def __exit__(self, *exc):
        set_config(self.model, self.config)
        self.model.train(self.training)
        return False


def _prepare(model: nn.Module, configs) -> tuple[list[Config], list, list]:
    layers = gross_layers(model)
    if not layers:
        raise ValueError("the model has no GroSS layers; decompose it first (gross.decomposition.decompose)")
    space = search_space(model)
    sizes, names = _space_sizes(space), list(space)
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Iterable):
        raise ValueError("configs must be a sequence of configurations (tuples of group sizes)")
    configs = [_check_config(c, sizes, names) for c in configs]
    return configs, names, list(layers.values())


def forward_configs(model: nn.Module, configs, x: torch.Tensor, tree: bool = True) -> list[torch.Tensor]:
    """Outputs of ``model`` on one input batch at every configuration.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model (put in eval mode during the call; its
        configuration and mode are restored afterwards).
    configs : sequence of configurations
    x : Tensor
        Input batch on the model's device and dtype.
    tree : bool, default True
        Share the prefix and common group-size prefixes (flat ``nn.Sequential``
        only; other models are run configuration by configuration).

    Returns
    -------
    list of Tensor
        ``model(x)`` at ``configs[i]``, for each ``i``.
    """
    configs, names, layers = _prepare(model, configs)
    unique = list(dict.fromkeys(configs))
    out: dict[Config, torch.Tensor] = {}
    stages = _stages(model, names) if tree else None
    with _Restore(model), torch.inference_mode():
        if stages is not None:
            prefix, segments = stages

            def visit(idxs, logits):
                for i in idxs:
                    out[unique[i]] = logits

            _walk(segments, layers, _run(prefix, x), _trie(unique), 0, visit)
        else:
            for c in unique:
                set_config(model, c)
                out[c] = model(x)
    return [out[c] for c in configs]


def evaluate_configs(
    model: nn.Module,
    configs,
    data,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    tree: bool = True,
    channels_last: bool = False,
) -> pd.DataFrame:
    """Top-1 accuracy of many configurations of a GroSS model.

    With ``tree=True`` and a flat ``nn.Sequential`` model (as built by
    :mod:`gross.models`), the data are read once: per batch, the layers before
    the first GroSS layer run once and the configurations are walked as a
    prefix tree of group sizes, so configurations sharing the sizes of the
    first ``d`` decomposed layers share the computation up to layer ``d+1``.
    Other models (e.g. a ResNet, whose GroSS layers sit inside blocks) are
    evaluated configuration by configuration inside the batch loop. With
    ``tree=False`` every configuration is evaluated separately (its own pass
    over the data), the reference for timing. All variants perform the same
    floating-point operations per configuration, so the accuracies are equal
    (and equal to :func:`gross.train.evaluate` at each configuration).

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model. Its configuration and train/eval mode are
        restored afterwards.
    configs : sequence of configurations
        Tuples (or ``"8 16 64"`` strings) of group sizes in
        :func:`gross.decomposition.search_space` order; duplicates are allowed.
    data : gross.data.Dataset or gross.data.Split
        A dataset (``split`` selects the split) or the split itself.
    split : {"val", "test", "train"}, default "val"
    batch_size : int, default 1000
    device : torch.device or str, optional
        Default: where the model's parameters are (the model is moved when given).
    mean, std : sequence of float, optional
        Input normalisation ``(x / 255 - mean) / std``; default the dataset's
        ``mean`` / ``std`` (0.5 / 0.5 for a bare split), as in
        :func:`gross.train.evaluate`.
    tree : bool, default True
        Prefix-tree evaluation (see above).
    channels_last : bool, default False
        Feed the batches in ``torch.channels_last`` memory format. On CPU this
        is about twice as fast for these networks (much faster grouped
        convolutions and pooling), but the convolution kernels differ from
        the default layout, so results can differ from
        :func:`gross.train.evaluate` in the last bits (tree and one-by-one
        evaluation still agree exactly with each other).

    Returns
    -------
    pandas.DataFrame
        Columns ``config`` (tuple) and ``accuracy`` (top-1, percent), one row
        per entry of ``configs``, in order.
    """
    configs, names, layers = _prepare(model, configs)
    split_data = _get_split(data, split)
    mean, std = _norm_stats(data, mean, std)
    batch_size = _check_batch_size(batch_size)
    device = _resolve_device(model, device)
    model.to(device)
    dtype = _model_dtype(model)
    unique = list(dict.fromkeys(configs))
    index = {c: i for i, c in enumerate(unique)}
    correct = torch.zeros(len(unique), dtype=torch.int64, device=device)
    stages = _stages(model, names) if tree else None
    n_images = 0

    def data_batches():
        nonlocal n_images
        n_images = 0
        for x, y in batches(split_data, batch_size, mean=mean, std=std, device=device):
            n_images += len(y)
            x = x.to(dtype)
            yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y

    with _Restore(model), torch.inference_mode():
        if not tree:
            for i, c in enumerate(unique):
                set_config(model, c)
                for x, y in data_batches():
                    correct[i] += (model(x).argmax(1) == y).sum()
        elif stages is not None:
            prefix, segments = stages
            trie = _trie(unique)
            for x, y in data_batches():

                def visit(idxs, logits, y=y):
                    hits = (logits.argmax(1) == y).sum()
                    for i in idxs:
                        correct[i] += hits

                _walk(segments, layers, _run(prefix, x), trie, 0, visit)
        else:
            for x, y in data_batches():
                for i, c in enumerate(unique):
                    set_config(model, c)
                    correct[i] += (model(x).argmax(1) == y).sum()
    if n_images == 0:
        raise ValueError(f"split {split!r} is empty")
    acc = [100.0 * int(n) / n_images for n in correct.cpu().tolist()]
    return pd.DataFrame({"config": configs, "accuracy": [acc[index[c]] for c in configs]})


def _evaluate_plain(net: nn.Module, split_data, batch_size, mean, std, device, channels_last=False) -> float:
    """Top-1 accuracy (percent) of an ordinary network (as :func:`gross.train.evaluate`)."""
    net.to(device).eval()
    dtype = _model_dtype(net)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    with torch.inference_mode():
        for x, y in batches(split_data, batch_size, mean=mean, std=std, device=device):
            x = x.to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            correct += (net(x).argmax(1) == y).sum()
            total += len(y)
    if total == 0:
        raise ValueError("the split is empty")
    return 100.0 * int(correct) / total


class _Memo:
    """Memoised batched evaluation: only configurations never seen are evaluated."""

    def __init__(self, evaluate: Callable, cache: dict | None = None):
        self.evaluate = evaluate
        self.cache = {} if cache is None else cache

    def __call__(self, configs: Sequence[Config]) -> list[float]:
        missing = [c for c in dict.fromkeys(configs) if c not in self.cache]
        if missing:
            values = list(self.evaluate(missing))
            if len(values) != len(missing):
                raise ValueError(
                    f"evaluate returned {len(values)} accuracies for {len(missing)} configurations; "
                    "it must return one per configuration, in order"
                )
            for c, v in zip(missing, values):
                v = float(v)
                if not math.isfinite(v):
                    raise ValueError(f"evaluate returned a non-finite accuracy {v} for configuration {c}")
                self.cache[c] = v
        return [self.cache[c] for c in configs]


def _model_evaluator(model, data, split, batch_size, device, mean, std, tree, channels_last) -> Callable:
    def evaluate(configs):
        return evaluate_configs(
            model, configs, data, split=split, batch_size=batch_size, device=device, mean=mean, std=std, tree=tree,
            channels_last=channels_last,
        )["accuracy"].tolist()

    return evaluate


def _input_size(data, split, input_size):
    if input_size is not None:
        return tuple(input_size)
    return tuple(_get_split(data, split).images.shape[1:])


# ----------------------------------------------------------------------------- exhaustive search


def _best_row(rows: pd.DataFrame) -> pd.Series:
    keys = [_rank_key(a, m, c) for a, m, c in zip(rows["accuracy"], rows["macs"], rows["config"])]
    return rows.iloc[min(range(len(keys)), key=keys.__getitem__)]


def exhaustive_search(
    space,
    evaluate: Callable,
    macs: Callable,
    baseline,
    configs: Sequence[Config] | None = None,
    table: pd.DataFrame | None = None,
    cache: dict | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Exhaustive search (Sec. 3.4) on any accuracy function.

    Parameters
    ----------
    space : mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    evaluate : callable
        ``evaluate(list of configs) -> accuracies`` (one per configuration).
    macs : callable
        ``macs(config) -> (total, gconv)`` (e.g. a :class:`MacLookup`).
    baseline : configuration or int
        Reference configuration (its MACs are the budget) or a MAC budget.
    configs : sequence of configurations, optional
        Candidates; default every configuration of ``space``.
    table : pandas.DataFrame, optional
        A previous result table (columns ``config``, ``macs``, ``gconv_macs``,
        ``accuracy``) to re-use instead of evaluating again, e.g. when
        searching under several baselines.
    cache : dict, optional
        Memo ``config -> accuracy`` shared with other searches.

    Returns
    -------
    best : dict
        ``baseline``, ``budget``, ``config``, ``macs``, ``gconv_macs``,
        ``accuracy`` of the most accurate configuration within budget and
        ``baseline_accuracy`` (NaN when the baseline is an int budget).
    table : pandas.DataFrame
        Columns ``config, macs, gconv_macs, accuracy, within_budget``, one row
        per candidate (data for Fig. 3).
    """
    sizes, names = _space_sizes(space), _layer_names(space)
    budget = _budget(baseline, macs)
    memo = _Memo(evaluate, cache)
    if table is None:
        configs = list(itertools.product(*sizes)) if configs is None else [_check_config(c, sizes, names) for c in configs]
        if not configs:
            raise ValueError("no configurations to search")
        accuracy = memo(configs)
        cost = [_as_macs(macs(c)) for c in configs]
        table = pd.DataFrame({
            "config": configs,
            "macs": [m.total for m in cost],
            "gconv_macs": [m.gconv for m in cost],
            "accuracy": accuracy,
        })
    else:
        missing = {"config", "macs", "gconv_macs", "accuracy"} - set(table.columns)
        if missing:
            raise ValueError(f"table is missing columns {sorted(missing)}; pass a table returned by exhaustive search")
        table = table[["config", "macs", "gconv_macs", "accuracy"]].copy()
        for c, a in zip(table["config"], table["accuracy"]):
            memo.cache.setdefault(tuple(c), float(a))
    table["within_budget"] = table["macs"] <= budget
    feasible = table[table["within_budget"]]
    if feasible.empty:
        raise ValueError(
            f"no configuration has MACs <= the budget {budget} (cheapest: {int(table['macs'].min())}); "
            "raise the budget or choose a more expensive baseline"
        )
    row = _best_row(feasible)
    best = _best_dict(baseline, budget, row, memo, sizes, names)
    return best, table.reset_index(drop=True)


def _best_dict(baseline, budget, row, memo, sizes, names) -> dict:
    best = {
        "baseline": _baseline_label(baseline),
        "budget": budget,
        "config": tuple(row["config"]),
        "macs": int(row["macs"]),
        "gconv_macs": int(row["gconv_macs"]),
        "accuracy": float(row["accuracy"]),
        "baseline_accuracy": math.nan,
    }
    if not isinstance(baseline, (int, np.integer)):
        best["baseline_accuracy"] = memo([_check_config(baseline, sizes, names)])[0]
    return best


def exhaustive(
    model: nn.Module,
    data,
    baseline,
    *,
    table: pd.DataFrame | None = None,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    input_size=None,
    tree: bool = True,
    channels_last: bool = False,
) -> tuple[dict, pd.DataFrame]:
    """Exhaustive search of a GroSS model (Sec. 3.4, Table 2, Fig. 3).

    Every configuration is evaluated with :func:`evaluate_configs` (one
    prefix-tree pass) and MACs come from :func:`gross.macs.count_macs` (via
    :class:`MacLookup`).

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model.
    data : gross.data.Dataset or Split
    baseline : configuration or int
        Baseline configuration or MAC budget.
    table : pandas.DataFrame, optional
        Result table of a previous call on the same model and data; re-used
        instead of evaluating again (to search under several baselines).
    split, batch_size, device, mean, std, tree, channels_last
        As in :func:`evaluate_configs`.
    input_size : tuple of int, optional
        Input size for MAC counting; default the images' ``(C, H, W)``.

    Returns
    -------
    best : dict
        See :func:`exhaustive_search`.
    table : pandas.DataFrame
        Columns ``config, macs, gconv_macs, accuracy, within_budget``.
    """
    space = search_space(model)
    lookup = model_mac_lookup(model, _input_size(data, split, input_size))
    evaluate = _model_evaluator(model, data, split, batch_size, device, mean, std, tree, channels_last)
    return exhaustive_search(space, evaluate, lookup, baseline, table=table)


# ----------------------------------------------------------------------------- breadth-first search


def _random_within_budget(sizes, macs_fn, budget: int, rng, max_tries: int) -> Config:
    """Uniformly random configuration with MACs <= budget (rejection sampling)."""
    for _ in range(max_tries):
        c = tuple(int(a[rng.integers(len(a))]) for a in sizes)
        if macs_fn(c).total <= budget:
            return c
    if _num_configs(sizes) <= 1_000_000:  # small space: sample uniformly from the feasible set
        feasible = [c for c in itertools.product(*sizes) if macs_fn(c).total <= budget]
        if feasible:
            return feasible[int(rng.integers(len(feasible)))]
    raise ValueError(
        f"no configuration with MACs <= {budget} found in {max_tries} random draws; "
        "the budget is (nearly) below the cheapest configuration, raise it or pass explicit starts"
    )


def bfs_search(
    space,
    evaluate: Callable,
    macs: Callable,
    baseline,
    runs: int = 20,
    max_steps: int = 25,
    starts: Sequence[Config] | None = None,
    seed=0,
    cache: dict | None = None,
    max_tries: int = 100_000,
) -> tuple[dict, pd.DataFrame]:
    """Greedy breadth-first search (Sec. 3.4) on any accuracy function.

    Each run starts at a configuration within budget (``starts[run]`` for the
    first ``len(starts)`` runs, then uniformly random ones drawn by rejection
    sampling). At every step all one-layer neighbours of the current
    configuration that are within budget are evaluated (neighbours over budget
    are never evaluated: their MACs are known in advance); the most accurate
    one becomes current if it is strictly more accurate, otherwise the run
    stops. A run also stops after ``max_steps`` steps or when no neighbour is
    within budget. Evaluations are memoised across runs (and across searches
    sharing ``cache``).

    Parameters
    ----------
    space : mapping of str to sequence of int, or sequence of sequences
        Allowed group sizes per layer.
    evaluate : callable
        ``evaluate(list of configs) -> accuracies``; called once per step with
        every new configuration of the step.
    macs : callable
        ``macs(config) -> (total, gconv)`` or an int total.
    baseline : configuration or int
        Baseline configuration (its MACs are the budget) or a MAC budget.
    runs : int, default 20
    max_steps : int, default 25
    starts : sequence of configurations, optional
        Start configurations of the first runs (each must be within budget).
    seed : int or numpy SeedSequence, default 0
        Seed of the generator drawing the random starts (all drawn up front).
    cache : dict, optional
        Memo ``config -> accuracy``, read and extended.
    max_tries : int, default 100000
        Rejection-sampling draws per random start before giving up.

    Returns
    -------
    best : dict
        ``baseline``, ``budget``, ``config``, ``macs``, ``gconv_macs``,
        ``accuracy``, ``run``, ``step`` (first time it was reached),
        ``evaluated`` (distinct configurations in the trace) and
        ``baseline_accuracy`` (NaN for an int budget).
    trace : pandas.DataFrame
        Every evaluated configuration of every run and step, columns
        ``baseline, budget, run, step, config, macs, gconv_macs, accuracy,
        selected``. Step 0 is the start (selected); at step ``k >= 1`` the rows
        are the neighbours evaluated and ``selected`` marks the one moved to
        (none on the final step of a run that stopped without improving).
    """
    sizes, names = _space_sizes(space), _layer_names(space)
    for name, value, low in (("runs", runs, 1), ("max_steps", max_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    mac_cache: dict[Config, MACs] = {}

    def cost(c: Config) -> MACs:
        if c not in mac_cache:
            mac_cache[c] = _as_macs(macs(c))
        return mac_cache[c]

    budget = _budget(baseline, lambda c: cost(_check_config(c, sizes, names)))
    memo = _Memo(evaluate, cache)
    starts = [_check_config(c, sizes, names) for c in (starts or [])][:runs]
    for c in starts:
        if cost(c).total > budget:
            raise ValueError(f"start configuration {config_str(c)} has {cost(c).total} MACs, above the budget {budget}")
    rng = np.random.default_rng(seed)
    cheapest = tuple(a[0] for a in sizes)
    if len(starts) < runs and cost(cheapest).total > budget and not _any_within(sizes, cost, budget):
        raise ValueError(
            f"no configuration has MACs <= the budget {budget}; "
            f"e.g. {config_str(cheapest)} needs {cost(cheapest).total}"
        )
    while len(starts) < runs:
        starts.append(_random_within_budget(sizes, cost, budget, rng, max_tries))

    label = _baseline_label(baseline)
    rows = []

    def add(run, step, configs, accs, selected=None):
        for c, a in zip(configs, accs):
            m = cost(c)
            rows.append((label, budget, run, step, c, m.total, m.gconv, a, c == selected))

    for run, current in enumerate(starts):
        acc = memo([current])[0]
        add(run, 0, [current], [acc], current)
        for step in range(1, max_steps + 1):
            candidates = [n for n in neighbours(current, sizes) if cost(n).total <= budget]
            if not candidates:
                break
            accs = memo(candidates)
            best_i = min(range(len(candidates)), key=lambda i: _rank_key(accs[i], cost(candidates[i]).total, candidates[i]))
            improves = accs[best_i] > acc
            add(run, step, candidates, accs, candidates[best_i] if improves else None)
            if not improves:
                break
            current, acc = candidates[best_i], accs[best_i]

    trace = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    row = _best_row(trace)
    target = row["config"]
    first = trace[[c == target for c in trace["config"]]].iloc[0]
    best = _best_dict(baseline, budget, row, memo, sizes, names)
    best.update(run=int(first["run"]), step=int(first["step"]), evaluated=int(trace["config"].nunique()))
    return best, trace


def _any_within(sizes, cost, budget) -> bool:
    if _num_configs(sizes) > 1_000_000:
        return True  # cannot tell cheaply; rejection sampling will report failure
    return any(cost(c).total <= budget for c in itertools.product(*sizes))


def _top_configs(trace: pd.DataFrame, n: int) -> list[Config]:
    """The ``n`` most accurate distinct configurations of a trace (deterministic ties)."""
    seen = trace.drop_duplicates("config")
    keys = sorted(zip(seen["accuracy"], seen["macs"], seen["config"]), key=lambda t: _rank_key(*t))
    return [tuple(c) for _, _, c in keys[:n]]


def bfs_incremental_search(
    space,
    evaluate: Callable,
    macs: Callable,
    baselines: Sequence,
    runs: int = 20,
    max_steps: int = 25,
    seeded_runs: int = 10,
    seed=0,
    cache: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Breadth-first searches under several baselines, incrementally (Sec. 3.4).

    Baselines are searched in ascending order of budget. The first
    ``seeded_runs`` runs of every search after the first start from the
    ``seeded_runs`` most accurate configurations evaluated by the previous
    search (they are within the new, larger budget); the other runs start at
    random. Evaluations are memoised across all searches.

    Parameters
    ----------
    space, evaluate, macs, runs, max_steps, cache
        As in :func:`bfs_search`.
    baselines : sequence of configurations or ints
    seeded_runs : int, default 10
    seed : int, default 0
        Search ``i`` (in ascending budget order) uses the ``i``-th child of
        ``numpy.random.SeedSequence(seed)``.

    Returns
    -------
    best : pandas.DataFrame
        One row per baseline (ascending budget): the ``best`` dicts of
        :func:`bfs_search`.
    trace : pandas.DataFrame
        The traces of all searches, concatenated.
    """
    if len(baselines) == 0:
        raise ValueError("baselines must contain at least one configuration or MAC budget")
    sizes, names = _space_sizes(space), _layer_names(space)

    def cost(c):
        return _as_macs(macs(_check_config(c, sizes, names)))

    cache = {} if cache is None else cache
    order = sorted(range(len(baselines)), key=lambda i: _budget(baselines[i], cost))
    seeds = np.random.SeedSequence(seed).spawn(len(baselines))
    bests, traces, starts = [], [], []
    for k, i in enumerate(order):
        best, trace = bfs_search(
            space, evaluate, macs, baselines[i], runs=runs, max_steps=max_steps,
            starts=starts, seed=seeds[k], cache=cache,
        )
        bests.append(best)
        traces.append(trace)
        starts = _top_configs(trace, min(seeded_runs, runs))
    return pd.DataFrame(bests), pd.concat(traces, ignore_index=True)


def bfs(
    model: nn.Module,
    data,
    baseline,
    runs: int = 20,
    max_steps: int = 25,
    start=None,
    seed=0,
    *,
    cache: dict | None = None,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    input_size=None,
    tree: bool = True,
    channels_last: bool = False,
) -> tuple[dict, pd.DataFrame]:
    """Breadth-first search of a GroSS model (Sec. 3.4, Tables 3-4, Fig. 4).

    All new configurations of a step are evaluated in one
    :func:`evaluate_configs` call (one prefix-tree pass over the data); MACs
    come from a :class:`MacLookup` built with :func:`gross.macs.count_macs`.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model.
    data : gross.data.Dataset or Split
    baseline : configuration or int
        Baseline configuration or MAC budget.
    runs, max_steps, seed
        As in :func:`bfs_search`.
    start : configuration or sequence of configurations, optional
        Start of the first run (or of the first runs).
    cache : dict, optional
        Memo ``config -> accuracy`` shared with other searches on the same
        model and data.
    split, batch_size, device, mean, std, tree, channels_last
        As in :func:`evaluate_configs`.
    input_size : tuple of int, optional
        Input size for MAC counting; default the images' ``(C, H, W)``.

    Returns
    -------
    best : dict
    trace : pandas.DataFrame
        See :func:`bfs_search`.
    """
    space = search_space(model)
    lookup = model_mac_lookup(model, _input_size(data, split, input_size))
    evaluate = _model_evaluator(model, data, split, batch_size, device, mean, std, tree, channels_last)
    if start is not None:
        first = next(iter(start), None)
        start = [start] if isinstance(first, (int, np.integer)) or isinstance(start, str) else list(start)
    return bfs_search(space, evaluate, lookup, baseline, runs=runs, max_steps=max_steps,
                      starts=start, seed=seed, cache=cache)


def bfs_incremental(
    model: nn.Module,
    data,
    baselines: Sequence,
    runs: int = 20,
    max_steps: int = 25,
    seeded_runs: int = 10,
    seed=0,
    *,
    cache: dict | None = None,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    input_size=None,
    tree: bool = True,
    channels_last: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Incremental breadth-first searches of a GroSS model (Sec. 3.4).

    See :func:`bfs_incremental_search` (search logic) and :func:`bfs`
    (evaluation and MACs).

    Returns
    -------
    best : pandas.DataFrame
        One row per baseline, ascending budget.
    trace : pandas.DataFrame
        All searches' traces, concatenated (the ``baseline`` column tells them apart).
    """
    space = search_space(model)
    lookup = model_mac_lookup(model, _input_size(data, split, input_size))
    evaluate = _model_evaluator(model, data, split, batch_size, device, mean, std, tree, channels_last)
    return bfs_incremental_search(space, evaluate, lookup, baselines, runs=runs, max_steps=max_steps,
                                  seeded_runs=seeded_runs, seed=seed, cache=cache)


# ----------------------------------------------------------------------------- Sec. 5.2 search spaces


def _config_dirname(config: Config) -> str:
    return "config_" + "_".join(str(s) for s in config)


def evaluate_finetuned(
    model: nn.Module,
    configs,
    data,
    recipe,
    *,
    run_dir=None,
    resume: bool = False,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    finetune: Callable | None = None,
) -> pd.DataFrame:
    """Accuracy of configurations each fine-tuned separately (conventional BTD).

    For every configuration, ``finetune(model, config, data, recipe, ...)``
    (default :func:`gross.train.finetune_config`: export the freshly
    decomposed ``model`` at ``config`` and fine-tune the decomposed layers)
    returns a network, which is evaluated with the recipe's normalisation.
    With the 5-epoch recipe this is the *partial fine-tuning* search space of
    Sec. 5.2; with the full individual schedule it gives the *true* accuracy.

    Parameters
    ----------
    model : nn.Module
        Freshly GroSS-decomposed (not fine-tuned) model.
    configs : sequence of configurations
    data : gross.data.Dataset
    recipe : gross.train.Recipe
    run_dir : path, optional
        Checkpoints go to ``run_dir / "config_8_16_64"`` etc.
    resume : bool, default False
    split, batch_size, device
        Evaluation split, batch size and device.
    finetune : callable, optional
        Replaces :func:`gross.train.finetune_config` (same signature,
        returns ``(network, history)``).

    Returns
    -------
    pandas.DataFrame
        Columns ``config`` and ``accuracy``.
    """
    if finetune is None:
        from gross.train import finetune_config as finetune
    configs, _, _ = _prepare(model, configs)
    split_data = _get_split(data, split)
    device = _resolve_device(model, device)
    batch_size = _check_batch_size(batch_size)
    mean, std = _norm_stats(data, getattr(recipe, "mean", None), getattr(recipe, "std", None))
    accuracy = []
    for c in configs:
        sub = None if run_dir is None else Path(run_dir) / _config_dirname(c)
        net, _ = finetune(model, c, data, recipe, run_dir=sub, resume=resume, device=device)
        accuracy.append(_evaluate_plain(net, split_data, batch_size, mean, std, device))
    return pd.DataFrame({"config": configs, "accuracy": accuracy})


def sec52_spaces(
    fresh_model: nn.Module,
    gross_model: nn.Module,
    configs,
    data,
    partial_recipe,
    *,
    run_dir=None,
    resume: bool = False,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    finetune: Callable | None = None,
) -> pd.DataFrame:
    """The three search spaces of Sec. 5.2 for the same configurations.

    * ``no_finetune``: the freshly decomposed model at each configuration, no
      training (identical to exporting it at the configuration);
    * ``partial``: each configuration exported and fine-tuned with
      ``partial_recipe`` (5 epochs in the paper), see :func:`evaluate_finetuned`;
    * ``gross``: the fine-tuned GroSS model switched to each configuration.

    Parameters
    ----------
    fresh_model : nn.Module
        GroSS-decomposed model before fine-tuning.
    gross_model : nn.Module
        The same after GroSS fine-tuning.
    configs : sequence of configurations
        E.g. ``random_configs(search_space(fresh_model), 45, seed)``.
    data : gross.data.Dataset
    partial_recipe : gross.train.Recipe
    run_dir, resume, finetune
        Passed to :func:`evaluate_finetuned`.
    split, batch_size, device, mean, std
        Evaluation settings (``mean``/``std`` for the two GroSS spaces; the
        partial space uses the recipe's).

    Returns
    -------
    pandas.DataFrame
        Columns ``config, no_finetune, partial, gross`` (accuracies, percent).
    """
    kwargs = dict(split=split, batch_size=batch_size, device=device)
    none = evaluate_configs(fresh_model, configs, data, mean=mean, std=std, **kwargs)
    tuned = evaluate_configs(gross_model, configs, data, mean=mean, std=std, **kwargs)
    partial = evaluate_finetuned(fresh_model, configs, data, partial_recipe, run_dir=run_dir, resume=resume,
                                 finetune=finetune, **kwargs)
    return pd.DataFrame({
        "config": none["config"],
        "no_finetune": none["accuracy"],
        "partial": partial["accuracy"],
        "gross": tuned["accuracy"],
    })


# ----------------------------------------------------------------------------- timing


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _synchronize(device)
    start = time.perf_counter()
    out = fn()
    _synchronize(device)
    return out, time.perf_counter() - start


def time_tree_vs_one_by_one(
    model: nn.Module,
    configs,
    data,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    channels_last: bool = False,
) -> pd.DataFrame:
    """Wall time of :func:`evaluate_configs` with and without the prefix tree.

    Both are run once, in the same call (tree first), on the same device;
    arguments as in :func:`evaluate_configs`.

    Returns
    -------
    pandas.DataFrame
        One row: ``device, n_configs, n_images, tree_s, one_by_one_s, ratio``
        (one_by_one / tree) and ``max_abs_diff`` (largest accuracy difference
        between the two, expected 0).
    """
    device = _resolve_device(model, device)
    kwargs = dict(split=split, batch_size=batch_size, device=device, mean=mean, std=std, channels_last=channels_last)
    model.to(device)
    tree, t_tree = _timed(lambda: evaluate_configs(model, configs, data, tree=True, **kwargs), device)
    flat, t_flat = _timed(lambda: evaluate_configs(model, configs, data, tree=False, **kwargs), device)
    return pd.DataFrame([{
        "device": str(device),
        "n_configs": len(tree),
        "n_images": len(_get_split(data, split)),
        "tree_s": t_tree,
        "one_by_one_s": t_flat,
        "ratio": t_flat / t_tree,
        "max_abs_diff": float(np.max(np.abs(tree["accuracy"].to_numpy() - flat["accuracy"].to_numpy()))),
    }])


def time_switching_vs_rebuild(
    model: nn.Module,
    configs,
    data,
    split: str = "val",
    batch_size: int = 1000,
    device=None,
    mean=None,
    std=None,
    tree: bool = True,
    channels_last: bool = False,
    tmp_dir=None,
) -> pd.DataFrame:
    """Switching GroSS group sizes vs building and loading one network per configuration (Sec. 5.2).

    *Switching*: :func:`evaluate_configs` on the GroSS model. *Rebuild*: the
    conventional route, where every configuration is its own network whose
    weights sit on disk: for each configuration, build the decomposed network
    (:func:`gross.decomposition.export`), load its ``state_dict`` with
    :func:`torch.load` from a file and evaluate it. The files are written
    before the clock starts (untimed), as they would exist after fine-tuning.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model.
    configs : sequence of configurations
        E.g. the 45 random configurations of Sec. 5.2.
    data, split, batch_size, device, mean, std, tree, channels_last
        As in :func:`evaluate_configs` (``channels_last`` applies to both routes).
    tmp_dir : path, optional
        Where the per-configuration weight files go (default: a temporary
        directory, removed afterwards).

    Returns
    -------
    pandas.DataFrame
        One row: ``device, n_configs, switching_s, rebuild_s, ratio`` (rebuild /
        switching) and ``max_abs_diff`` between the two accuracy lists.
    """
    configs, _, _ = _prepare(model, configs)
    device = _resolve_device(model, device)
    split_data = _get_split(data, split)
    batch_size = _check_batch_size(batch_size)
    mean_, std_ = _norm_stats(data, mean, std)
    model.to(device)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        files = []
        for i, c in enumerate(configs):
            path = os.path.join(tmp, f"config_{i}.pt")
            torch.save(export(model, c).state_dict(), path)
            files.append(path)

        def rebuild():
            acc = []
            for c, path in zip(configs, files):
                net = export(model, c)
                net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
                acc.append(_evaluate_plain(net, split_data, batch_size, mean_, std_, device, channels_last))
            return acc

        switched, t_switch = _timed(
            lambda: evaluate_configs(model, configs, data, split=split, batch_size=batch_size, device=device,
                                     mean=mean, std=std, tree=tree, channels_last=channels_last
                                     )["accuracy"].to_numpy(), device)
        rebuilt, t_rebuild = _timed(rebuild, device)
    return pd.DataFrame([{
        "device": str(device),
        "n_configs": len(configs),
        "switching_s": t_switch,
        "rebuild_s": t_rebuild,
        "ratio": t_rebuild / t_switch,
        "max_abs_diff": float(np.max(np.abs(switched - np.asarray(rebuilt)))),
    }])
