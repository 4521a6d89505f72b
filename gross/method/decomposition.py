"""Model surgery: replace convolutions by GroSS series layers and switch configurations.

A *configuration* is one group size per decomposed layer, in the order of
:func:`search_space` (the order of ``model.named_modules()``).
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from tqdm import tqdm

from gross.method.layers import GroSSConv2d, as_group_sizes, as_widths, gross_layers, valid_group_sizes
from gross.method.space import SearchSpace

__all__ = [
    "decomposable_layers",
    "default_group_sizes",
    "decompose",
    "gross_layers",
    "search_space",
    "get_config",
    "set_config",
    "export",
    "per_layer",
    "enumerate_configs",
    "num_configs",
    "planned_space",
    "skeleton",
    "layer_widths",
    "decomposition_plan",
    "assemble",
    "btd_factors",
    "random_gross",
]


def _is_spatial_conv(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and tuple(module.kernel_size) != (1, 1)
    )


def decomposable_layers(model: nn.Module, layers: Sequence[str] | None = None) -> list[str]:
    """Qualified names of the convolutions GroSS decomposes.

    By default (paper, Sec. 4.3) every ungrouped k×k convolution with k > 1 except the
    first one met in ``model.named_modules()`` order; 1×1 convolutions (e.g. ResNet
    downsamples) are never decomposed.

    Parameters
    ----------
    model : nn.Module
        A plain (not yet decomposed) model.
    layers : sequence of str, optional
        Explicit layer names; each must name an ungrouped ``nn.Conv2d`` with a k×k kernel.

    Returns
    -------
    list of str
    """
    modules = dict(model.named_modules())
    if layers is not None:
        out = []
        candidates = [n for n, m in modules.items() if _is_spatial_conv(m)]
        for name in layers:
            if name not in modules:
                raise ValueError(
                    f"unknown layer {name!r}: decomposable convolutions of this model are {candidates}"
                )
            if not _is_spatial_conv(modules[name]):
                raise ValueError(
                    f"layer {name!r} is a {type(modules[name]).__name__}, not an ungrouped k×k nn.Conv2d "
                    f"(k > 1); decomposable convolutions of this model are {candidates}"
                )
            out.append(name)
        order = {n: i for i, n in enumerate(modules)}
        return sorted(dict.fromkeys(out), key=order.__getitem__)
    names = [n for n, m in modules.items() if _is_spatial_conv(m)]
    return names[1:]


def default_group_sizes(width: int) -> tuple[int, ...]:
    """All powers of two that do not exceed ``width`` (paper, 4-layer network)."""
    if width < 1:
        raise ValueError(f"bottleneck width must be a positive integer, got {width}")
    return tuple(2**i for i in range(width.bit_length()) if 2**i <= width)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def layer_widths(name: str, conv: nn.Module, width) -> tuple[int, int]:
    """``(w_in, w_out)`` of layer ``name`` from ``width`` (None, an int, a pair, or a mapping of those)."""
    w = width.get(name) if isinstance(width, Mapping) else width
    return as_widths(w, conv.in_channels, where=f"width[{name!r}]" if isinstance(width, Mapping) else "width")


def _plain_width(widths: tuple[int, int]):
    """The ``width`` argument for a layer: an int when symmetric (as before asymmetric widths), else the pair."""
    return widths[0] if widths[0] == widths[1] else tuple(widths)


def _resolve_sizes(name: str, width, group_sizes) -> tuple[int, ...]:
    width, width_out = (width, width) if isinstance(width, int) else width
    valid = valid_group_sizes(width, width_out)
    if group_sizes is None:
        return tuple(s for s in default_group_sizes(width) if s in valid)
    if isinstance(group_sizes, Mapping):
        if name not in group_sizes:
            raise ValueError(f"no group sizes given for layer {name!r}; keys given: {sorted(group_sizes)}")
        sizes = as_group_sizes(group_sizes[name], f"group_sizes[{name!r}]")
        bad = [s for s in sizes if width % s]
        if bad:
            raise ValueError(
                f"group sizes {bad} do not divide the bottleneck width {width} of layer {name!r}; "
                f"valid sizes are divisors of {width}, e.g. {default_group_sizes(width)}"
            )
        bad = [s for s in sizes if s not in valid]
        if bad:
            raise ValueError(
                f"group sizes {bad} of layer {name!r} give numbers of groups ({width} / size) that do not divide "
                f"its bottleneck output width {width_out}: valid sizes for widths ({width}, {width_out}) are {valid}"
            )
        return tuple(sorted(set(sizes)))
    given = as_group_sizes(group_sizes, "group_sizes")
    sizes = tuple(sorted({s for s in given if s in valid}))
    if not sizes:
        raise ValueError(
            f"none of the group sizes {given} divides the bottleneck width {width} "
            f"of layer {name!r}; valid sizes are divisors of {width}"
        )
    return sizes


def _check_unused(group_sizes, space: Mapping[str, tuple[int, ...]], widths: Mapping[str, int],
                  drop_unused: bool) -> None:
    """A size of a shared ``group_sizes`` sequence that no layer can use: an error, or a warning if dropped."""
    if group_sizes is None or isinstance(group_sizes, Mapping):
        return
    used = set().union(*space.values()) if space else set()
    unused = sorted(set(as_group_sizes(group_sizes, "group_sizes")) - used)
    if not unused:
        return
    what = f"group sizes {unused} divide no decomposed layer's bottleneck width (widths {dict(widths)})"
    if not drop_unused:
        raise ValueError(f"{what}: remove them, or pass drop_unused=True to drop them")
    warnings.warn(f"{what}: dropped (drop_unused=True)", stacklevel=3)


def decomposition_plan(model: nn.Module, group_sizes, layers, width,
                       drop_unused: bool = False) -> list[tuple[str, nn.Conv2d, int, tuple[int, ...]]]:
    """``(name, conv, bottleneck width, group sizes)`` of every layer :func:`decompose` replaces."""
    done = list(gross_layers(model))
    if done and layers is None:
        raise ValueError(
            f"the model is already decomposed: it holds GroSS layers {done}. Decompose the plain model "
            f"(e.g. a copy taken before gross.decompose), switch group sizes with gross.set_config, or "
            f"name further plain convolutions to decompose with layers=[...]"
        )
    names = decomposable_layers(model, layers)
    if not names:
        raise ValueError("the model has no decomposable convolution (ungrouped k×k nn.Conv2d after the first)")
    plan = []
    if isinstance(width, Mapping):
        modules = dict(model.named_modules())
        unknown = [k for k in width if k not in modules]
        if unknown:
            raise ValueError(f"width names layer(s) {unknown} that are not in the model; its decomposable "
                             f"layers are {decomposable_layers(model)}")
    for name in names:
        conv = model.get_submodule(name)
        w = _plain_width(layer_widths(name, conv, width))
        plan.append((name, conv, w, _resolve_sizes(name, w, group_sizes)))
    _check_unused(group_sizes, {p[0]: p[3] for p in plan}, {p[0]: p[2] for p in plan}, drop_unused)
    return plan


def decompose(
    model: nn.Module,
    group_sizes=None,
    layers: Sequence[str] | None = None,
    width: int | tuple[int, int] | Mapping[str, int | tuple[int, int]] | None = None,
    progress: bool | None = None,
    drop_unused: bool = False,
    **btd_options,
) -> nn.Module:
    """Replace convolutions of ``model`` by :class:`~gross.method.layers.GroSSConv2d` (in place).

    Parameters
    ----------
    model : nn.Module
        Trained model; modified in place and returned.
    group_sizes : None, sequence of int or mapping of str to sequence of int
        ``None``: the powers of two up to each layer's width (paper's 4-layer net).
        A sequence of positive integers: the same candidate sizes for every layer, keeping
        those that divide the layer's width (paper's VGG-16 / ResNet-18: ``(1, 4, 16, 32)``);
        a size that divides no layer's width is an error unless ``drop_unused``.
        A mapping: explicit sizes per layer name (each must divide that layer's width).
    layers : sequence of str, optional
        Which convolutions to decompose (default: every k×k conv except the first).
    width : int, pair or mapping, optional
        Bottleneck width (default: each layer's input channels); a pair ``(w_in, w_out)``
        is an asymmetric bottleneck (``P: t → w_in``, grouped ``R: w_in → w_out`` with
        ``w_in // s`` groups, ``Q: w_out → u``); a mapping gives one per layer name
        (e.g. :data:`gross.method.structures.WANG_ET_AL`'s widths).
    progress : bool, optional
        A tqdm bar over the BTDs (one per layer and group size) showing the layer,
        group size, sweep and error: ``None`` shows it only when stderr is a
        terminal, ``True`` always, ``False`` never.
    drop_unused : bool, default False
        Drop (with a warning naming them) sizes of a ``group_sizes`` sequence that divide
        no layer's width instead of raising.
    **btd_options
        Passed to :func:`gross.method.btd.btd` (``tol``, ``max_iter``, ``seed``, ``method``,
        ``ridge``, ``n_init``).

    Returns
    -------
    nn.Module
        ``model``, now holding GroSS layers.

    Raises
    ------
    ValueError
        If ``model`` is already decomposed (holds GroSS layers) and ``layers`` is not
        given, has nothing to decompose, or on bad sizes, widths or BTD options.
    """
    plan = decomposition_plan(model, group_sizes, layers, width, drop_unused)
    with tqdm(total=sum(len(p[3]) for p in plan), desc="BTD", unit="BTD", leave=False,
              disable=None if progress is None else not progress) as bar:
        for name, conv, w, sizes in plan:
            report = _BTDProgress(bar, name)
            layer = GroSSConv2d.from_conv(conv, sizes, width=w, progress=report, **btd_options)
            report.finish()
            layer.name = name
            _set_submodule(model, name, layer)
    return model


class _BTDProgress:
    """``progress`` callback of :func:`gross.method.btd.btd` advancing ``bar`` once per finished BTD of one layer."""

    def __init__(self, bar, layer: str):
        self.bar, self.layer, self.current = bar, layer, None

    def __call__(self, group_size: int, sweep: int, error: float) -> None:
        if group_size != self.current:
            self.finish()
            self.current = group_size
        self.bar.set_postfix_str(f"{self.layer} s={group_size} sweep {sweep} error {error:.3e}", refresh=False)
        if sweep == 0:
            self.bar.refresh()

    def finish(self) -> None:
        """Count the BTD in progress (if any) as done."""
        if self.current is not None:
            self.bar.update(1)
            self.current = None


def search_space(model: nn.Module) -> "OrderedDict[str, tuple[int, ...]]":
    """Candidate group sizes per decomposed layer, in configuration order."""
    return OrderedDict((n, tuple(m.group_sizes)) for n, m in gross_layers(model).items())


def get_config(model: nn.Module) -> tuple[int, ...]:
    """The active group size of every decomposed layer."""
    return tuple(m.group_size for m in gross_layers(model).values())


def per_layer(values, names: Sequence[str], what: str, kind: str = "decomposed layers",
              unit: str = "entries") -> "OrderedDict[str, object]":
    """Per-layer values given as a sequence (one per layer, in order) or a mapping (a subset).

    Parameters
    ----------
    values : sequence or mapping of str to value
    names : sequence of str
        The layers, in order.
    what, kind, unit : str
        Used in error messages: ``"{what} has 2 {unit} but the model has 3 {kind} [...]"``.

    Returns
    -------
    OrderedDict
        ``name -> value`` in ``names`` order (only the named layers for a mapping).

    Raises
    ------
    ValueError
        A mapping naming an unknown layer, or a sequence of the wrong length.
    """
    names = list(names)
    if isinstance(values, Mapping):
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} in {what}; {kind} are {names}")
        return OrderedDict((n, values[n]) for n in names if n in values)
    values = tuple(values)
    if len(values) != len(names):
        raise ValueError(f"{what} has {len(values)} {unit} but the model has {len(names)} {kind} {names}")
    return OrderedDict(zip(names, values))


def _normalise_config(model: nn.Module, config) -> "OrderedDict[str, int]":
    space = search_space(model)
    if not space:
        raise ValueError("the model has no GroSS layers; call gross.decompose(model) first")
    chosen = SearchSpace(space).validate(config, default=get_config(model))
    return OrderedDict(zip(space, chosen))


def set_config(model: nn.Module, config) -> nn.Module:
    """Switch every GroSS layer to the group size given by ``config``.

    Parameters
    ----------
    config : sequence of int or mapping of str to int
        One size per decomposed layer in :func:`search_space` order, or a mapping from
        layer name to size (layers not named keep their size).

    Raises
    ------
    ValueError
        Wrong length, unknown layer, or a size not among a layer's choices.
    """
    chosen = _normalise_config(model, config)
    layers = gross_layers(model)
    for name, s in chosen.items():
        layers[name].group_size = s
    return model


def export(model: nn.Module, config=None) -> nn.Module:
    """A plain PyTorch copy of ``model`` at ``config`` with real grouped convolutions.

    Every GroSS layer becomes ``nn.Sequential(P=Conv2d 1×1, R=Conv2d k×k with
    groups=width/s, Q=Conv2d 1×1 with the original bias)``. ``model`` is not modified.
    """
    chosen = _normalise_config(model, get_config(model) if config is None else config)
    out = copy.deepcopy(model)
    for name, layer in gross_layers(out).items():
        _set_submodule(out, name, layer.to_bottleneck(chosen[name]))
    return out


def enumerate_configs(space: Mapping[str, Sequence[int]]) -> list[tuple[int, ...]]:
    """Every configuration of ``space`` (``itertools.product`` order)."""
    return [tuple(c) for c in itertools.product(*space.values())]


def num_configs(space: Mapping[str, Sequence[int]]) -> int:
    """Size of the search space (product of the number of choices per layer)."""
    n = 1
    for sizes in space.values():
        n *= len(sizes)
    return n



def planned_space(model: nn.Module, group_sizes=None, layers: Sequence[str] | None = None,
                  width: int | tuple[int, int] | Mapping[str, int | tuple[int, int]] | None = None,
                  drop_unused: bool = False) -> "OrderedDict[str, tuple[int, ...]]":
    """The search space :func:`decompose` would give ``model`` (no decomposition is run).

    Parameters are those of :func:`decompose`; ``model`` is not modified.
    """
    out, widths = OrderedDict(), {}
    for name in decomposable_layers(model, layers):
        conv = model.get_submodule(name)
        widths[name] = _plain_width(layer_widths(name, conv, width))
        out[name] = _resolve_sizes(name, widths[name], group_sizes)
    _check_unused(group_sizes, out, widths, drop_unused)
    return out


def skeleton(model: nn.Module, space: Mapping[str, Sequence[int]], width=None) -> nn.Module:
    """Replace the convolutions named in ``space`` by untrained GroSS layers (in place).

    The layers get the given group sizes and the convolution's shape but no BTD: the
    result is the architecture of a decomposed model, ready for ``load_state_dict``
    of one saved after :func:`decompose` (bottleneck width: ``width`` as in
    :func:`decompose`, default the input channels).

    Raises
    ------
    ValueError
        A name in ``space`` that is not a decomposable convolution of ``model``.
    """
    for name in decomposable_layers(model, list(space)):
        conv = model.get_submodule(name)
        w = _plain_width(layer_widths(name, conv, width))
        layer = GroSSConv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                            _resolve_sizes(name, w, {name: space[name]}), width=w,
                            stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                            bias=conv.bias is not None)
        layer.name = name
        _set_submodule(model, name, layer)
    return model


# ----------------------------------------------------------------------------- from BTD factors


def assemble(model: nn.Module, factors: Mapping[str, Mapping[int, Mapping]], width=None) -> nn.Module:
    """Replace the named convolutions by GroSS layers built from per-(layer, size) BTD results (in place).

    Parameters
    ----------
    model : nn.Module
        The plain model the factors were computed from.
    factors : mapping of layer name to mapping of group size to dict
        ``{"P", "R", "Q", "error"}`` per size (a :func:`btd_layer_job` result).
    width : int, pair or mapping, optional
        Bottleneck width (default: each layer's input channels), as in :func:`decompose`.

    Returns
    -------
    nn.Module
        ``model``, with layers equal to those :func:`decompose` builds from the same BTDs
        (:meth:`GroSSConv2d.from_factors`; ``btd_errors`` set).
    """
    for name in decomposable_layers(model, list(factors)):
        conv = model.get_submodule(name)
        per_size = {int(s): r for s, r in factors[name].items()}
        layer = GroSSConv2d.from_factors(conv, {s: (r["P"], r["R"], r["Q"]) for s, r in per_size.items()},
                                         width=_plain_width(layer_widths(name, conv, width)))
        layer.btd_errors = {s: float(r["error"]) for s, r in sorted(per_size.items())}
        layer.name = name
        _set_submodule(model, name, layer)
    return model


def btd_factors(jobs: Sequence[tuple[str, int, object]], results: Sequence[Mapping]) -> dict:
    """The ``factors`` argument of :func:`assemble` from :func:`btd_jobs`'s list and the jobs' results.

    Parameters
    ----------
    jobs : sequence of (layer name, group size, Job)
        As returned by :func:`btd_jobs`.
    results : sequence of dict
        :func:`gross.runs.jobs.run_jobs`'s results for those jobs, in the same order.

    Returns
    -------
    dict
        ``{layer: {group size: result}}``.
    """
    if len(jobs) != len(results):
        raise ValueError(f"{len(jobs)} BTD jobs but {len(results)} results: pass run_jobs' results of exactly those jobs")
    factors: dict = {}
    for (name, s, _), result in zip(jobs, results):
        factors.setdefault(name, {})[int(s)] = result
    return factors


def random_gross(model: nn.Module, group_sizes=None, seed: int = 0) -> nn.Module:
    """Replace every decomposable conv by a :class:`GroSSConv2d` built from random factors.

    Same structure as :func:`decompose` (``group_sizes``: None = powers
    of two up to each width, or a sequence filtered to the sizes that divide the width)
    but without running BTD: for timing, the factor values do not matter.
    """
    g = torch.Generator().manual_seed(seed)
    for name in decomposable_layers(model):
        conv = model.get_submodule(name)
        t, u = conv.in_channels, conv.out_channels
        kh, kw = conv.kernel_size
        sizes = default_group_sizes(t) if group_sizes is None else tuple(
            s for s in sorted(set(group_sizes)) if s <= t and t % s == 0)
        factors = {
            s: (torch.randn(t, t, 1, 1, generator=g) / math.sqrt(t),
                torch.randn(t, s, kh, kw, generator=g) / math.sqrt(s * kh * kw),
                torch.randn(u, t, 1, 1, generator=g) / math.sqrt(t))
            for s in sizes
        }
        layer = GroSSConv2d.from_factors(conv, factors)
        layer.name = name
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    return model
