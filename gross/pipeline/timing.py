"""Notebook 05, last part: inference over the Sec. 5.2 configurations, switching GroSS vs rebuilding."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from gross.method.decomposition import search_space
from gross.pipeline.common import eval_kwargs, prepare_data
from gross.pipeline.decomposition import load_gross
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.table5 import ap_configs

__all__ = ["inference_timing"]


@step("05_ap_comparison", tables=("inference_timing",))
def inference_timing(cfg: Mapping) -> StepResult:
    """Switching GroSS group sizes vs rebuilding a network per configuration, timed.

    The first ``timing.n_configs`` of the random configurations of Table 5
    (:func:`gross.pipeline.table5.ap_configs`) on the first ``timing.n_images``
    validation images. Writes ``inference_timing``.
    """
    from gross.search.evaluation import time_switching_vs_rebuild

    name, r = "four_layer", int(cfg["ap"]["repeat"])
    data = prepare_data(cfg, name)
    tuned = load_gross(cfg, name, r)
    n = min(int(cfg["timing"]["n_configs"]), int(cfg["ap"]["n_configs"]))
    configs = ap_configs(cfg, search_space(tuned))[:n]
    m = min(int(cfg["timing"]["n_images"]), len(data.val))
    df = time_switching_vs_rebuild(tuned, configs, data.val[torch.arange(m)], **eval_kwargs(cfg, data))
    return StepResult(tables={"inference_timing": df.assign(n_images=m)},
                      notes=[f"{len(configs)} configurations x {m} validation images"])
