"""gross: Group-Size Series (GroSS) decomposition for grouped architecture search.

A reproduction of Howard-Jenkins, Li and Prisacariu, *GroSS: Group-Size Series
Decomposition for Grouped Architecture Search*, ECCV 2020.

The most used entry points are re-exported here::

    import gross
    gross.decompose(model, group_sizes=(1, 4, 16, 32))   # every k×k conv but the first
    gross.set_config(model, (4, 16, 32, ...))             # switch group sizes (free)
    plain = gross.export(model)                           # real grouped convolutions
    gross.count_macs(plain, (3, 32, 32))

Sub-modules follow the paper: ``expansion`` (Ψ), ``btd``, ``layers``
(:class:`GroSSConv2d`), ``decomposition`` (model surgery), ``macs``, ``vbmf``,
``models``, ``data``, ``train``, ``search``, ``metrics``, ``tables``, ``plots``,
``config``, ``pipeline`` (the notebooks' steps, one module per paper result).
"""

from . import models
from .btd import btd, reconstruct
from .decomposition import (
    decomposable_layers,
    decompose,
    enumerate_configs,
    export,
    get_config,
    gross_layers,
    search_space,
    set_config,
)
from .expansion import expand_grouped_weight
from .layers import GroSSConv2d
from .macs import count_macs, format_macs

__version__ = "0.1.0"

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
