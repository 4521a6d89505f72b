"""Benchmark groups ``train_step`` (a GroSS network's SGD step vs the exported plain bottleneck
network's) and ``train_layout`` (the training step in ``channels_last`` vs the default layout)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gross.method.decomposition import export, search_space, set_config
from gross.bench.common import _config_str, _gross_model, _label
from gross.bench.core import Settings, _median, _row, register, time_call

__all__ = ['bench_train_step', 'bench_train_layout']


def _sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


@register("train_step")
def bench_train_step(settings: Settings, device) -> list[dict]:
    """GroSS training step at a configuration vs the exported bottleneck network's step."""
    from gross.method.space import random_configs

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


def _layout_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool) -> Callable[[], None]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return _sgd_step(model.to(memory_format=fmt), x.contiguous(memory_format=fmt), y)


@register("train_layout")
def bench_train_layout(settings: Settings, device) -> list[dict]:
    """The training step in ``channels_last`` layout vs the default one (what :func:`gross.training.loop`
    does on CPU): base networks and exported bottleneck networks with only the decomposed layers
    trainable (the individual fine-tunes)."""
    from gross.method.space import random_configs

    device = torch.device(device)
    rows = []
    for name, width in settings.train_models:
        model = _gross_model(name, width, settings.seed, device)
        config = random_configs(search_space(model), n=1, seed=settings.seed)[0]
        g = torch.Generator().manual_seed(settings.seed)
        x = torch.randn(settings.train_batch, 3, 32, 32, generator=g).to(device)
        y = torch.randint(0, 10, (settings.train_batch,), generator=g).to(device)
        exported = export(model, config).to(device)
        for p_name, p in exported.named_parameters():
            p.requires_grad_(p_name.split(".")[0] in search_space(model))
        cases = [("base network", lambda: _build_base(name, width, settings.seed).to(device)),
                 (f"exported config {_config_str(config)}, decomposed layers trained", lambda: exported)]
        for case, make in cases:
            times = {}
            for cl in (False, True):
                net = make()
                times[cl] = _median(time_call(_layout_step(net, x, y, cl), settings.train_repeats,
                                              settings.warmup + 1, device))
            rows.append(_row("train_layout", f"{_label(name, width)} {case}", "channels_last step", times[True],
                             "default-layout step", times[False], settings.train_repeats, "ratio < 1 on CPU",
                             times[True] < times[False] if device.type == "cpu" else None, device,
                             f"batch {settings.train_batch}, SGD momentum 0.9, forward + backward + update"))
    return rows


def _build_base(name: str, width: float, seed: int) -> nn.Module:
    from gross.bench.common import _build

    torch.manual_seed(seed)
    return _build(name, width)
