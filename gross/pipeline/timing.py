"""Notebook 05, last part: inference over the Sec. 5.2 configurations, switching GroSS vs rebuilding.

The step :func:`inference_timing` is the composition of :func:`timing_model`,
:func:`timing_configs` and :func:`time_inference`, one per notebook cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from gross.method.decomposition import search_space
from gross.pipeline.common import eval_kwargs, prepare_data
from gross.pipeline.decomposition import load_gross
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.table5 import MODEL, ap_configs

__all__ = ["timing_model", "timing_configs", "time_inference", "inference_timing"]


def timing_model(cfg: Mapping) -> nn.Module:
    """The GroSS fine-tuned 4-layer network that is timed (repeat ``ap.repeat``, notebook 02)."""
    return load_gross(cfg, MODEL, int(cfg["ap"]["repeat"]))


def timing_configs(cfg: Mapping, model: nn.Module) -> list[tuple]:
    """The configurations timed: the first ``timing.n_configs`` of Table 5's random draw.

    Parameters
    ----------
    cfg : Profile
    model : nn.Module
        A GroSS model of the 4-layer network (for its search space).

    Returns
    -------
    list of tuple of int
        The first ``min(timing.n_configs, ap.n_configs)`` configurations of
        :func:`gross.pipeline.table5.ap_configs` (drawn again: the draw is seeded and cheap).
    """
    n = min(int(cfg["timing"]["n_configs"]), int(cfg["ap"]["n_configs"]))
    return ap_configs(cfg, search_space(model))[:n]


def time_inference(cfg: Mapping, model: nn.Module, configs: Sequence[tuple]) -> pd.DataFrame:
    """Time validation inference at every configuration: GroSS switching vs one network per configuration.

    Parameters
    ----------
    cfg : Profile
    model : nn.Module
        The GroSS model (:func:`timing_model`).
    configs : sequence of tuple of int
        :func:`timing_configs`.

    Returns
    -------
    pandas.DataFrame
        One row (:func:`gross.search.evaluation.time_switching_vs_rebuild`): ``device,
        n_configs, switching_s, rebuild_s, ratio, max_abs_diff`` and ``n_images`` (the first
        ``timing.n_images`` validation images).
    """
    from gross.search.evaluation import time_switching_vs_rebuild

    data = prepare_data(cfg, MODEL)
    m = min(int(cfg["timing"]["n_images"]), len(data.val))
    df = time_switching_vs_rebuild(model, configs, data.val[torch.arange(m)], **eval_kwargs(cfg, data))
    return df.assign(n_images=m)


@step("05_ap_comparison", tables=("inference_timing",))
def inference_timing(cfg: Mapping, timed: pd.DataFrame | None = None) -> StepResult:
    """Switching GroSS group sizes vs rebuilding a network per configuration, timed.

    The first ``timing.n_configs`` of the random configurations of Table 5
    (:func:`gross.pipeline.table5.ap_configs`) on the first ``timing.n_images``
    validation images. Writes ``inference_timing``.

    Parameters
    ----------
    cfg : Profile
    timed : pandas.DataFrame, optional
        :func:`time_inference`'s table (None: the model is loaded, the configurations drawn
        and the inference timed here).

    Returns
    -------
    StepResult
        Table ``inference_timing``.
    """
    if timed is None:
        model = timing_model(cfg)
        timed = time_inference(cfg, model, timing_configs(cfg, model))
    row = timed.iloc[0]
    return StepResult(tables={"inference_timing": timed},
                      notes=[f"{int(row['n_configs'])} configurations x {int(row['n_images'])} validation images"])
