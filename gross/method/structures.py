"""Named decomposition structures: per-layer asymmetric bottleneck widths and group-size series.

Table 4 of the paper has two VGG-16 ImageNet rows ("[26]") that use the decomposition
structure of Wang et al. [26] (P. Wang, Q. Hu, Z. Fang, C. Zhao, J. Cheng: "DeepSearch: A
fast image search framework for mobile devices", ACM TOMM 14(1), 2018). The structure is
not printed in the paper ("detailed in the supplementary material"); it is given in the
authors' public configuration,
``configs/vgg/imagenet/wang-et-al/gross/decompose.yaml`` of ActiveVisionLab/GroSS
(``BOTTLE_DIMS`` = the ``(in, out)`` widths, ``DECOMPOSE_STRUCTURE`` = the series per layer;
``search/ft_under-orig.yaml`` the found configuration). For each of the 12 decomposed
layers ``conv1_2 ... conv5_3``:

* ``P`` maps the layer's input (``t`` channels) to ``in`` channels, the grouped ``k×k``
  ``R`` maps ``in`` to ``out`` with ``in / s`` groups, ``Q`` maps ``out`` to the output;
* each BTD block has ranks ``(out / groups, in / groups)`` (the authors' ``engine/btd.py``).

:data:`WANG_ET_AL` holds these facts; :func:`layout` maps them onto a model's
decomposable layers (and onto a narrowed model, see :func:`scaled`) as the ``width`` and
``group_sizes`` arguments of :func:`gross.method.decomposition.decompose`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import pandas as pd
from torch import nn

from gross.method.decomposition import decomposable_layers
from gross.method.layers import valid_group_sizes
from gross.method.macs import count_macs, format_macs

__all__ = ["Structure", "WANG_ET_AL", "STRUCTURES", "layout", "scaled", "structure_table", "mac_comparison"]


@dataclass(frozen=True)
class Structure:
    """A decomposition structure: per layer ``(in, out)`` bottleneck widths and a group-size series.

    Attributes
    ----------
    name : str
        Registry key.
    model : str
        The :mod:`gross.models` network it is for (layer order = its decomposable layers).
    layers : tuple of str
        The source's layer names (documentation; mapped by position).
    widths : tuple of (int, int)
        ``(in, out)`` bottleneck widths per layer.
    group_sizes : tuple of tuple of int
        The series' group sizes per layer (ascending).
    configs : dict of str to tuple of int
        Named configurations (one size per layer), e.g. the paper's ``original`` and ``found`` rows.
    source : str
        Where the facts come from.
    """

    name: str
    model: str
    layers: tuple
    widths: tuple
    group_sizes: tuple
    configs: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.layers)
        if len(self.widths) != n or len(self.group_sizes) != n:
            raise ValueError(f"structure {self.name!r}: {n} layers but {len(self.widths)} widths and "
                             f"{len(self.group_sizes)} group-size series")
        for layer, (w_in, w_out), sizes in zip(self.layers, self.widths, self.group_sizes):
            bad = [s for s in sizes if s not in valid_group_sizes(w_in, w_out)]
            if bad:
                raise ValueError(f"structure {self.name!r}, layer {layer!r}: group sizes {bad} are not valid for "
                                 f"widths ({w_in}, {w_out}); valid sizes are {valid_group_sizes(w_in, w_out)}")
        for label, config in self.configs.items():
            if len(config) != n or any(s not in sizes for s, sizes in zip(config, self.group_sizes)):
                raise ValueError(f"structure {self.name!r}: configuration {label!r} {config} is not in the series "
                                 f"{self.group_sizes}")


#: Wang et al. [26] on the ImageNet VGG-16 (Table 4's "[26]" rows), from the GroSS authors' public
#: configuration (ActiveVisionLab/GroSS ``configs/vgg/imagenet/wang-et-al/``).
WANG_ET_AL = Structure(
    name="wang_et_al",
    model="vgg16_imagenet",
    layers=("conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
            "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"),
    widths=((11, 18), (10, 24), (28, 28), (36, 48), (60, 48), (64, 56),
            (64, 100), (116, 100), (132, 132), (224, 224), (224, 224), (224, 224)),
    group_sizes=((11,), (5, 10), (1, 7, 14, 28), (3, 9, 18), (15, 30, 60), (16, 32, 64),
                 (16, 32, 64), (29, 58, 116), (3, 33, 66), (7, 28, 56, 112), (7, 28, 56, 112), (7, 28, 56, 112)),
    configs={"original": (11, 10, 14, 9, 15, 16, 16, 29, 33, 56, 56, 56),
             "found": (11, 10, 14, 9, 15, 32, 64, 58, 3, 56, 7, 7)},
    source=("ActiveVisionLab/GroSS configs/vgg/imagenet/wang-et-al/gross/decompose.yaml (BOTTLE_DIMS, "
            "DECOMPOSE_STRUCTURE); configs .../ft_orig.yaml and .../search/ft_under-orig.yaml (configurations)"),
)

#: Registry of named structures.
STRUCTURES = {WANG_ET_AL.name: WANG_ET_AL}


def scaled(structure: Structure, width_mult: float) -> Structure:
    """The structure for a network narrowed by ``width_mult`` (the smoke profile's tiny VGG-16).

    Rule (stated in ``docs/wang_et_al.md``): **the widths and group sizes are kept as they
    are** (``width_mult`` is ignored): a bottleneck may be wider than the layer it replaces
    (``P`` and ``Q`` are 1×1 maps of any width), so the [26] layers run at full width on the
    narrowed network and every group size still divides its width and every number of
    groups its output width. Only ``width_mult > 0`` is checked.
    """
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    return structure


def layout(model: nn.Module, structure: Structure | str) -> dict:
    """``width``, ``group_sizes`` and the named configurations of ``structure`` for ``model``'s layers.

    Parameters
    ----------
    model : nn.Module
        The plain network (its decomposable layers, in order, are the structure's layers).
    structure : Structure or str
        A :class:`Structure` or a key of :data:`STRUCTURES` (``"wang_et_al"``).

    Returns
    -------
    dict
        ``width`` (``{layer: (in, out)}``), ``group_sizes`` (``{layer: sizes}``): the arguments
        of :func:`gross.method.decomposition.decompose`; ``configs`` (``{label: config}``) and
        ``names`` (``{model layer: source layer name}``).

    Raises
    ------
    ValueError
        An unknown structure name, or a model whose decomposable layers do not match in number.
    """
    if isinstance(structure, str):
        if structure not in STRUCTURES:
            raise ValueError(f"unknown structure {structure!r}: known structures are {sorted(STRUCTURES)}")
        structure = STRUCTURES[structure]
    names = decomposable_layers(model)
    if len(names) != len(structure.layers):
        raise ValueError(f"structure {structure.name!r} is for {structure.model} with {len(structure.layers)} "
                         f"decomposable layers {list(structure.layers)}; this model has {len(names)}: {names}")
    return {"width": OrderedDict(zip(names, structure.widths)),
            "group_sizes": OrderedDict(zip(names, structure.group_sizes)),
            "configs": dict(structure.configs),
            "names": OrderedDict(zip(names, structure.layers))}


def structure_table(structure: Structure) -> pd.DataFrame:
    """One row per layer: source name, ``in``/``out`` widths, group sizes and each named configuration's size."""
    rows = []
    for i, (layer, (w_in, w_out), sizes) in enumerate(zip(structure.layers, structure.widths, structure.group_sizes)):
        row = {"layer": layer, "in": w_in, "out": w_out, "group_sizes": " ".join(map(str, sizes))}
        for label, config in structure.configs.items():
            row[label] = config[i]
            row[f"{label}_groups"] = w_in // config[i]
        rows.append(row)
    return pd.DataFrame(rows)


def mac_comparison(model: nn.Module, structure: Structure | str, input_size=(3, 224, 224)) -> pd.DataFrame:
    """MACs of each named configuration of ``structure`` on ``model``, counted by both rules.

    Columns ``configuration``, ``macs``/``gconv_macs`` (correct: groups = ``in // s``),
    ``macs_authors_rule``/``gconv_macs_authors_rule`` (the GroSS authors' counter: groups = the
    layer's input channels ``// s``; :func:`gross.method.macs.count_macs` ``groups_from``), their
    formatted totals and the G.Conv change of each configuration against the first (percent).
    """
    lay = layout(model, structure)
    rows = []
    for label, config in lay["configs"].items():
        m = count_macs(model, input_size, config=config, width=lay["width"])
        a = count_macs(model, input_size, config=config, width=lay["width"], groups_from="input_channels")
        rows.append({"configuration": label, "config": " ".join(map(str, config)), "macs": m.total,
                     "gconv_macs": m.gconv, "formatted": format_macs(m.total), "macs_authors_rule": a.total,
                     "gconv_macs_authors_rule": a.gconv, "formatted_authors_rule": format_macs(a.total)})
    df = pd.DataFrame(rows)
    df["gconv_change_pct"] = 100.0 * (df["gconv_macs"] / df["gconv_macs"].iloc[0] - 1)
    df["gconv_change_pct_authors_rule"] = 100.0 * (df["gconv_macs_authors_rule"] / df["gconv_macs_authors_rule"].iloc[0] - 1)
    return df
