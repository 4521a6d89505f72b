"""Benchmark group ``train_step``: one SGD step of a GroSS network vs the exported plain bottleneck network."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..decomposition import export, search_space, set_config
from .common import _config_str, _gross_model, _label
from .core import Settings, _median, _row, register, time_call

__all__ = ['bench_train_step']


def _sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


@register("train_step")
def bench_train_step(settings: Settings, device) -> list[dict]:
    """GroSS training step at a configuration vs the exported bottleneck network's step."""
    from ..search import random_configs

    device = torch.device(device)
    rows = []
    for name, width in settings.train_models:
        model = _gross_model(name, width, settings.seed, device)
        space = search_space(model)
        configs = random_configs(space, n=settings.train_configs, seed=settings.seed)
        g = torch.Generator().manual_seed(settings.seed)
        x = torch.randn(settings.train_batch, 3, 32, 32, generator=g).to(device)
        y = torch.randint(0, 10, (settings.train_batch,), generator=g).to(device)
        gross_s, plain_s = [], []
        for config in configs:
            set_config(model, config)
            plain = export(model, config).to(device)
            t_gross = _median(time_call(_sgd_step(model, x, y), settings.train_repeats, settings.warmup + 1, device))
            t_plain = _median(time_call(_sgd_step(plain, x, y), settings.train_repeats, settings.warmup + 1, device))
            gross_s.append(t_gross)
            plain_s.append(t_plain)
            rows.append(_row("train_step", f"{_label(name, width)} config {_config_str(config)}",
                             "GroSS step", t_gross, "exported bottleneck step", t_plain, settings.train_repeats,
                             "ratio <= 1.3", t_gross / t_plain <= 1.3, device,
                             f"batch {settings.train_batch}, SGD momentum 0.9, forward + backward + update; "
                             "random weights and inputs"))
        ratios = [a / b for a, b in zip(gross_s, plain_s)]
        rows.append(_row("train_step", f"{_label(name, width)} mean of {len(configs)} configs", "GroSS step",
                         float(np.mean(gross_s)), "exported bottleneck step", float(np.mean(plain_s)),
                         settings.train_repeats, "every config's ratio <= 1.3", max(ratios) <= 1.3, device,
                         f"per-config ratios {', '.join(f'{r:.2f}' for r in ratios)}"))
    return rows
