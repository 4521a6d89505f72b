"""gross: Group-Size Series (GroSS) decomposition for grouped architecture search.

A reproduction of Howard-Jenkins, Li and Prisacariu, *GroSS: Group-Size Series
Decomposition for Grouped Architecture Search*, ECCV 2020.

The most used entry points are re-exported here::

    import gross
    gross.decompose(model, group_sizes=(1, 4, 16, 32))   # every k×k conv but the first
    gross.set_config(model, (4, 16, 32, ...))             # switch group sizes (free)
    plain = gross.export(model)                           # real grouped convolutions
    gross.count_macs(plain, (3, 32, 32))

Subpackages follow the paper, layered top to bottom (each imports only the layers below it;
``pyproject.toml``'s import-linter contracts, ``docs/design.md``):

``bench`` > ``pipeline`` (the notebooks' steps) > ``report`` (tables, plots) > ``runs`` (profiles,
artefacts, jobs) > ``training`` > ``search`` (evaluation, costs, latency, algorithms, AP) > ``data``
> ``method`` (Ψ, BTD, :class:`GroSSConv2d`, decomposition, search space, MACs, VBMF, export) |
``models`` > ``utils``.
"""

from gross import models
from gross.method.btd import btd, reconstruct
from gross.method.decomposition import (
    decomposable_layers,
    decompose,
    enumerate_configs,
    export,
    get_config,
    gross_layers,
    search_space,
    set_config,
)
from gross.method.expansion import expand_grouped_weight
from gross.method.layers import GroSSConv2d
from gross.method.macs import count_macs, format_macs

__version__ = "0.2.0"

__all__ = [
    "GroSSConv2d",
    "btd",
    "count_macs",
    "decomposable_layers",
    "decompose",
    "enumerate_configs",
    "expand_grouped_weight",
    "export",
    "format_macs",
    "get_config",
    "gross_layers",
    "models",
    "reconstruct",
    "search_space",
    "set_config",
]
