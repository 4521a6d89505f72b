"""Benchmark groups ``switching`` (switch group sizes vs rebuild a network per configuration) and ``tree`` (prefix-tree vs one-by-one evaluation)."""

from __future__ import annotations

import pandas as pd
import torch

from gross.method.decomposition import enumerate_configs, search_space
from gross.bench.common import _gross_model
from gross.bench.core import Settings, _median, _row, register, time_call

__all__ = ['bench_switching', 'bench_tree']


@register("switching")
def bench_switching(settings: Settings, device) -> list[dict]:
    """45 random configurations: switch group sizes vs build + load one network per configuration."""
    from gross.data import synthetic
    from gross.search.algorithms import time_switching_vs_rebuild
    from gross.method.space import random_configs

    device = torch.device(device)
    model = _gross_model("four_layer", 1.0, settings.seed, device)
    space = search_space(model)
    configs = random_configs(space, n=settings.switch_configs, seed=settings.seed)
    data = synthetic(n_train=10, n_val=settings.switch_images, n_test=10, seed=settings.seed)
    kwargs = dict(split="val", batch_size=settings.eval_batch, device=device)
    warm = synthetic(n_train=10, n_val=min(64, settings.switch_images), n_test=10, seed=settings.seed)
    time_switching_vs_rebuild(model, configs[:2], warm, **kwargs)  # warm-up
    runs = pd.concat([time_switching_vs_rebuild(model, configs, data, **kwargs)
                      for _ in range(settings.switch_repeats)])
    switching, rebuild = _median(runs["switching_s"]), _median(runs["rebuild_s"])
    return [_row(
        "switching", f"four_layer, {len(configs)} random configs, {settings.switch_images} images",
        "build + load + evaluate a network per config", rebuild, "set group sizes + evaluate (prefix tree)",
        switching, settings.switch_repeats, "ratio >= 41 (paper: 287 s / 7 s)", rebuild / switching >= 41, device,
        f"synthetic validation images (the paper: 10,000 CIFAR-10 images; both sides grow linearly with them); "
        f"rebuild = export() + torch.load of a state_dict written beforehand + evaluation; "
        f"largest accuracy difference between the two {float(runs['max_abs_diff'].max()):.2g}",
    )]


@register("tree")
def bench_tree(settings: Settings, device) -> list[dict]:
    """All configurations of the 4-layer net: prefix tree vs one by one, on the validation split."""
    from gross.data import synthetic
    from gross.search.algorithms import evaluate_configs
    from gross.method.space import random_configs

    device = torch.device(device)
    model = _gross_model("four_layer", 1.0, settings.seed, device)
    space = search_space(model)
    configs = enumerate_configs(space)
    data = synthetic(n_train=10, n_val=settings.tree_images, n_test=10, seed=settings.seed).to(device)
    kwargs = dict(split="val", batch_size=settings.eval_batch, device=device)
    warm = data.val[: min(64, len(data.val))]
    evaluate_configs(model, configs[:4], warm, **kwargs)  # warm-up
    subset = configs if settings.tree_flat_configs >= len(configs) else \
        random_configs(space, n=settings.tree_flat_configs, seed=settings.seed)
    last = {}  # the accuracies of the last timed run of each way

    def run(way, chosen, tree):
        last[way] = evaluate_configs(model, chosen, data, tree=tree, **kwargs)

    tree_runs = time_call(lambda: run("tree", configs, True), settings.tree_repeats, warmup=0, device=device)
    flat_runs = time_call(lambda: run("flat", subset, False), settings.tree_repeats, warmup=0, device=device)
    tree_df, flat_df = last["tree"], last["flat"]
    scale = len(configs) / len(subset)
    tree_acc = dict(zip(tree_df["config"], tree_df["accuracy"]))
    diff = max(abs(tree_acc[c] - a) for c, a in zip(flat_df["config"], flat_df["accuracy"]))
    tree_s, flat_s = _median(tree_runs), _median(flat_runs) * scale
    how = ("all configurations" if scale == 1 else
           f"{len(subset)} random configurations timed one by one, scaled by {len(configs)}/{len(subset)} "
           "(one-by-one time is linear in the number of configurations)")
    return [_row(
        "tree", f"four_layer, all {len(configs)} configs, {settings.tree_images} images",
        "one by one", flat_s, "prefix tree", tree_s, settings.tree_repeats, "ratio >= 5",
        flat_s / tree_s >= 5, device,
        f"{how}; tree: {1e3 * tree_s / len(configs):.1f} ms per configuration; synthetic validation images, "
        f"batch {settings.eval_batch}; largest accuracy difference tree vs one by one {diff:.2g}",
    )]
