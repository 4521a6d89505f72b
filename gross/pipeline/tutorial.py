"""Notebook 00: the outputs of the grouped-convolution tutorial (costs, Fig. 2, the numerical Ψ check)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from gross.pipeline.outputs import StepResult, step

__all__ = ["conv_costs", "expansion_figure", "psi_check"]


@step("00_grouped_convolutions", tables=("grouped_conv_costs",), figures=("fig_grouped_conv_costs",))
def conv_costs(cfg: Mapping, channels: int, kernel_size: int, feature_size: int) -> StepResult:
    """Parameters and MACs of a ``channels``-channel convolution for every number of groups, table and figure."""
    from gross.method.grouped import grouped_conv_costs
    from gross.report.plots import grouped_conv_cost_figure

    costs = grouped_conv_costs(channels, channels, kernel_size, feature_size, feature_size)
    return StepResult(tables={"grouped_conv_costs": costs},
                      figures={"fig_grouped_conv_costs": grouped_conv_cost_figure(costs)})


@step("00_grouped_convolutions", figures=("fig2_expansion",))
def expansion_figure(cfg: Mapping, channels: int, sizes: Sequence[int]) -> StepResult:
    """Fig. 2: a depthwise weight of ``channels`` channels expanded to the group sizes ``sizes`` (seed ``seed``)."""
    from gross.report.plots import fig2_expansion

    fig = fig2_expansion(group_size=1, new_sizes=tuple(sizes), channels=channels, seed=cfg["seed"])
    return StepResult(figures={"fig2_expansion": fig})


@step("00_grouped_convolutions", tables=("psi_expansion_check",))
def psi_check(cfg: Mapping, channels: int, generator: torch.Generator) -> StepResult:
    """Ψ checked numerically: a conv with group size g equals the conv with its Ψ-expanded weight at h > g.

    Random float64 input and weights for every pair of power-of-two sizes g < h
    dividing ``channels`` (stride 2, padding 1), drawn from ``generator``.
    """
    from gross.method.expansion import expand_grouped_weight

    sizes = [2 ** i for i in range(channels.bit_length()) if channels % 2 ** i == 0]
    x = torch.randn(2, channels, 8, 8, generator=generator, dtype=torch.float64)
    weights = {g: torch.randn(channels, g, 3, 3, generator=generator, dtype=torch.float64) for g in sizes}
    rows = []
    for g in sizes:
        for h in (h for h in sizes if h > g):
            expanded = expand_grouped_weight(weights[g], g, h)
            diff = (F.conv2d(x, weights[g], stride=2, padding=1, groups=channels // g)
                    - F.conv2d(x, expanded, stride=2, padding=1, groups=channels // h)).abs().max().item()
            rows.append({"g": g, "h": h, "groups g -> h": f"{channels // g} -> {channels // h}",
                         "stored weights g -> h": f"{weights[g].numel()} -> {expanded.numel()}",
                         "max |difference|": diff})
    return StepResult(tables={"psi_expansion_check": pd.DataFrame(rows)})
