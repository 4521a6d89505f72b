"""Benchmark suite: how fast are the pieces of GroSS, and do its speed claims hold?

Run ``make bench`` or ``python -m gross.bench [--quick | --full] [--device cpu|cuda] [--out DIR]``.
It writes ``benchmarks.csv`` (``benchmarks_gpu.csv`` on CUDA) with ``.md`` and
``.meta.json`` (machine, device, versions, settings) to ``results/`` (or ``--out``).

Every row compares two timings, ``measured_s`` against ``versus_s``, with
``ratio = measured_s / versus_s`` and the ``target`` the issue sets for it (``met`` says
whether it was reached; misses are reported as they are). Timings are medians of
``repeats`` runs after warm-up; CUDA timings synchronise before reading the clock.

Benchmarks (the ``benchmark`` column):

``btd``
    Block term decomposition time per layer (all its group sizes) and in total, for the
    4-layer network and the CIFAR VGG-16 (sizes 1, 4, 16, 32). Random (untrained) weights.
``train_step``
    One SGD step of the GroSS network at a configuration vs the exported plain
    bottleneck network at the same configuration (target ratio <= 1.3).
``switching``
    Evaluating 45 random configurations by switching group sizes vs building and
    loading a separate decomposed network per configuration (paper: 287 s / 7 s = 41x).
``tree``
    All 252 configurations of the 4-layer network: one by one vs prefix-tree evaluation
    (target >= 5x), absolute time on a 10k validation split.
``latency``
    Inference latency of exported configurations vs their uniform baselines at batch 1
    and 256: do fewer MACs give lower latency? (The paper reports only MACs.)
``data``
    CIFAR-10 load from the decoded cache vs decoding the source, and batched
    augmentation (:func:`gross.data.augment`) vs torchvision's per-image transforms.

Timing does not depend on weight values, so GroSS models here are built from random
factors (no BTD) and data are synthetic unless the row says otherwise. The default
settings are sized to finish within about 15 minutes on 2 CPU cores: where a row's
budget runs out, it measures a subset and its ``note`` says which; ``--full`` removes
those reductions (meant for a GPU), ``--quick`` runs a tiny version of every row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import paths, utils
from .decomposition import (
    decomposable_layers,
    default_group_sizes,
    enumerate_configs,
    export,
    search_space,
    set_config,
)
from .layers import GroSSConv2d

__all__ = [
    "COLUMNS",
    "BENCHMARKS",
    "Settings",
    "PRESETS",
    "override",
    "time_call",
    "random_gross",
    "bench_btd",
    "bench_train_step",
    "bench_switching",
    "bench_tree",
    "bench_latency",
    "bench_data",
    "run",
    "main",
]

#: Columns of the benchmark table.
COLUMNS = [
    "benchmark", "case", "measured", "measured_s", "versus", "versus_s", "ratio",
    "repeats", "target", "met", "device", "note",
]

#: Group sizes of the paper's VGG-16 search space.
VGG_GROUP_SIZES = (1, 4, 16, 32)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of every benchmark (see :data:`PRESETS`).

    ``*_budget_s`` are soft wall-time budgets: a row stops starting new items (layers,
    configurations) once its budget is spent, after at least one, and says so in its note.
    """

    seed: int = 0
    warmup: int = 1
    repeats: int = 5
    # btd
    btd_four_layer_layers: int = 3          # decomposable layers of the 4-layer net to decompose
    btd_four_layer_tol: float = 1e-5        # as configs/cpu.toml
    btd_four_layer_max_iter: int = 2000
    btd_vgg_width: float = 1.0
    btd_vgg_tol: float = 1e-4
    btd_vgg_max_iter: int = 3               # sweeps per decomposition (paper: 5e5)
    btd_budget_s: float = 120.0             # per network
    # train_step
    train_models: tuple = (("four_layer", 1.0), ("vgg16", 0.25))
    train_batch: int = 128
    train_configs: int = 3
    train_repeats: int = 3
    # switching
    switch_configs: int = 45
    switch_images: int = 1000
    switch_repeats: int = 1
    # tree
    tree_images: int = 10_000
    tree_repeats: int = 1
    tree_flat_configs: int = 6              # configurations timed one by one (scaled to all)
    eval_batch: int = 1000
    # latency
    latency_batches: tuple = (1, 256)
    latency_baselines: tuple = (32, 16, 8, 4)
    latency_min_s: float = 0.05             # each timed call loops the forward for at least this long
    # data
    data_source: str = "auto"               # "auto" ($GROSS_DATA / data/), "tiny" (generated), "none"
    data_repeats: int = 3
    aug_images: int = 10_000
    aug_batch: int = 256


#: ``quick`` (a tiny version of every row, for tests), ``default`` (about 15 min on 2 CPU
#: cores) and ``full`` (the paper's BTD settings: tol 1e-6 / 1e-5, up to 5e5 sweeps,
#: every layer and configuration measured, 10k images everywhere; meant for a GPU).
PRESETS = {
    "default": Settings(),
    "quick": Settings(
        warmup=1, repeats=2, btd_four_layer_layers=1, btd_four_layer_max_iter=3,
        btd_vgg_width=0.125, btd_vgg_max_iter=1, btd_budget_s=10.0,
        train_models=(("four_layer", 1.0),), train_batch=16, train_configs=2, train_repeats=2,
        switch_configs=4, switch_images=100, tree_images=100, tree_flat_configs=3, eval_batch=100,
        latency_batches=(1, 8), latency_baselines=(32,), latency_min_s=0.002,
        data_source="tiny", data_repeats=2, aug_images=512, aug_batch=128,
    ),
    "full": Settings(
        btd_four_layer_tol=1e-6, btd_four_layer_max_iter=500_000, btd_vgg_tol=1e-5, btd_vgg_max_iter=500_000,
        btd_budget_s=math.inf, train_models=(("four_layer", 1.0), ("vgg16", 0.25), ("vgg16", 1.0)),
        train_configs=6, train_repeats=10, switch_images=10_000, switch_repeats=3, tree_repeats=3,
        tree_flat_configs=252,
    ),
}


# ----------------------------------------------------------------------------- helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device=None) -> list[float]:
    """Wall times (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    On CUDA the device is synchronised before and after each timed call.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _median(times: Sequence[float]) -> float:
    return float(statistics.median(times))


def _row(benchmark, case, measured, measured_s, versus="", versus_s=math.nan, repeats=1, target="",
         met=None, device="cpu", note="") -> dict:
    ratio = measured_s / versus_s if versus_s and not math.isnan(versus_s) else math.nan
    return {"benchmark": benchmark, "case": case, "measured": measured, "measured_s": measured_s,
            "versus": versus, "versus_s": versus_s, "ratio": ratio, "repeats": repeats, "target": target,
            "met": met, "device": str(device), "note": note}


def _build(name: str, width: float = 1.0) -> nn.Sequential:
    from .models import four_layer_net, vgg16_cifar

    if name == "four_layer":
        return four_layer_net()
    if name == "vgg16":
        return vgg16_cifar(width_mult=width)
    raise ValueError(f"unknown model {name!r}: expected 'four_layer' or 'vgg16'")


def _label(name: str, width: float) -> str:
    return name if width == 1.0 else f"{name} x{width:g}"


def random_gross(model: nn.Module, group_sizes=None, seed: int = 0) -> nn.Module:
    """Replace every decomposable conv by a :class:`GroSSConv2d` built from random factors.

    Same structure as :func:`gross.decomposition.decompose` (``group_sizes``: None = powers
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


def _gross_model(name: str, width: float, seed: int, device) -> nn.Module:
    torch.manual_seed(seed)
    sizes = None if name == "four_layer" else VGG_GROUP_SIZES
    return random_gross(_build(name, width), sizes, seed).to(device)


class _Budget:
    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def spent(self) -> bool:
        return time.perf_counter() > self.deadline


def _uniform(space, s: int) -> tuple[int, ...]:
    """Every layer at group size ``s`` (a layer without ``s`` takes its largest size below it)."""
    return tuple(max([x for x in sizes if x <= s] or [min(sizes)]) for sizes in space.values())


def _config_str(config) -> str:
    return " ".join(str(int(s)) for s in config)


# ----------------------------------------------------------------------------- 1. BTD


def bench_btd(settings: Settings, device) -> list[dict]:
    """BTD time per layer (all its group sizes) and in total, 4-layer net and VGG-16."""
    from .btd import btd

    device = torch.device(device)
    rows = []
    torch.manual_seed(settings.seed)
    btd(torch.randn(4, 4, 3, 3, device=device), 2, max_iter=2)  # warm-up (imports, kernels)
    # 4-layer network: every size, the cpu profile's stopping rule.
    budget = _Budget(settings.btd_budget_s)
    model = _build("four_layer")
    names = decomposable_layers(model)[: settings.btd_four_layer_layers]
    total, sweeps_total, done = 0.0, 0, []
    for name in names:
        if done and budget.spent():
            break
        done.append(name)
        weight = model.get_submodule(name).weight.detach().to(device)
        sizes = default_group_sizes(weight.shape[1])
        seconds, info = 0.0, []
        for s in sizes:
            start = time.perf_counter()
            res = btd(weight, s, tol=settings.btd_four_layer_tol, max_iter=settings.btd_four_layer_max_iter,
                      seed=settings.seed)
            _sync(device)
            dt = time.perf_counter() - start
            seconds += dt
            sweeps_total += len(res.errors) - 1
            info.append(f"s={s}: {dt:.2f} s, {len(res.errors) - 1} sweeps, error {res.errors[-1]:.3f}")
        total += seconds
        rows.append(_row("btd", f"four_layer {name} {tuple(weight.shape)}", f"BTD at sizes {sizes}", seconds,
                         device=device, note="; ".join(info)))
    skipped = [n for n in names if n not in done]
    rows.append(_row(
        "btd", "four_layer total", f"BTD of {len(done)} layers, all sizes", total, device=device,
        note=f"tol {settings.btd_four_layer_tol:g}, max {settings.btd_four_layer_max_iter} sweeps, "
             f"{sweeps_total} sweeps in all; random (untrained) weights, single run per decomposition"
             + (f"; not measured (budget {settings.btd_budget_s:g} s spent): {', '.join(skipped)}" if skipped else ""),
    ))

    # VGG-16: sizes (1, 4, 16, 32), a capped number of sweeps; distinct layer shapes first.
    budget = _Budget(settings.btd_budget_s)
    model = _build("vgg16", settings.btd_vgg_width)
    names = decomposable_layers(model)
    shapes = {n: tuple(model.get_submodule(n).weight.shape) for n in names}
    first_of_shape = list(dict.fromkeys(shapes.values()))
    order = [next(n for n in names if shapes[n] == sh) for sh in first_of_shape]
    order += [n for n in names if n not in order]
    measured, capped = {}, []
    for name in order:
        if measured and budget.spent():
            break
        weight = model.get_submodule(name).weight.detach().to(device)
        sizes = tuple(s for s in VGG_GROUP_SIZES if weight.shape[1] % s == 0)
        start = time.perf_counter()
        sweeps = []
        for s in sizes:
            res = btd(weight, s, tol=settings.btd_vgg_tol, max_iter=settings.btd_vgg_max_iter, seed=settings.seed)
            sweeps.append(len(res.errors) - 1)
        _sync(device)
        measured[name] = time.perf_counter() - start
        capped += [f"{name} s={s}" for s, n in zip(sizes, sweeps) if n >= settings.btd_vgg_max_iter]
        rows.append(_row("btd", f"{_label('vgg16', settings.btd_vgg_width)} {name} {shapes[name]}",
                         f"BTD at sizes {sizes}", measured[name], device=device,
                         note=f"{sweeps} sweeps (max {settings.btd_vgg_max_iter})"))
    by_shape = {}
    for n, sec in measured.items():
        by_shape.setdefault(shapes[n], sec)
    estimated = [n for n in names if n not in measured and shapes[n] in by_shape]
    missing = [n for n in names if n not in measured and shapes[n] not in by_shape]
    total = sum(measured.values()) + sum(by_shape[shapes[n]] for n in estimated)
    stopping = (f"{len(capped)} decompositions stopped at the cap of {settings.btd_vgg_max_iter} sweeps before "
                f"reaching tol {settings.btd_vgg_tol:g} (the paper allows 5e5), so converged BTDs take longer"
                if capped else f"every decomposition converged (tol {settings.btd_vgg_tol:g})")
    note = (f"{len(measured)} of {len(names)} layers measured (budget {settings.btd_budget_s:g} s)"
            + (f"; {', '.join(estimated)} estimated from the measured layer of the same shape" if estimated else "")
            + (f"; not measured and not estimated: {', '.join(missing)}" if missing else "")
            + f"; {stopping}; random (He-initialised) weights")
    rows.append(_row("btd", f"{_label('vgg16', settings.btd_vgg_width)} total",
                     f"BTD of {len(names)} layers x sizes {VGG_GROUP_SIZES}", total, device=device, note=note))
    return rows


# ----------------------------------------------------------------------------- 2. training step


def _sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def bench_train_step(settings: Settings, device) -> list[dict]:
    """GroSS training step at a configuration vs the exported bottleneck network's step."""
    from .search import random_configs

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


# ----------------------------------------------------------------------------- 3. switching


def bench_switching(settings: Settings, device) -> list[dict]:
    """45 random configurations: switch group sizes vs build + load one network per configuration."""
    from .data import synthetic
    from .search import random_configs, time_switching_vs_rebuild

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


# ----------------------------------------------------------------------------- 4. prefix tree


def bench_tree(settings: Settings, device) -> list[dict]:
    """All configurations of the 4-layer net: prefix tree vs one by one, on the validation split."""
    from .data import synthetic
    from .search import evaluate_configs, random_configs

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


# ----------------------------------------------------------------------------- 5. latency


def _found_configs(model, baselines, seed) -> tuple[list[tuple], str]:
    """Configurations found by the committed exhaustive search, else seeded stand-ins."""
    from .search import exhaustive_search, model_mac_lookup, parse_config

    space = search_space(model)
    lookup = model_mac_lookup(model)
    source = paths.RESULTS / "exhaustive_search_all.csv"
    if source.is_file():
        table = pd.read_csv(source)
        table["config"] = [parse_config(c) for c in table["config"]]
        found = [tuple(exhaustive_search(space, None, lookup, b, table=table)[0]["config"]) for b in baselines]
        return found, f"found by the exhaustive search in {source.relative_to(paths.ROOT)}"
    rng = np.random.default_rng(seed)
    configs = enumerate_configs(space)
    found = []
    for b in baselines:
        budget = lookup(b).total
        cheaper = [c for c in configs if c != b and lookup(c).total <= budget]
        found.append(cheaper[rng.integers(len(cheaper))])
    return found, ("stand-ins: seeded random configurations with MACs <= the baseline's "
                   "(no results/exhaustive_search_all.csv yet)")


def _latency(net: nn.Module, x: torch.Tensor, settings: Settings, device) -> tuple[float, int]:
    """Median seconds per forward (loops of ``inner`` forwards last >= latency_min_s)."""
    with torch.inference_mode():
        single = _median(time_call(lambda: net(x), 3, settings.warmup, device))
        inner = max(1, math.ceil(settings.latency_min_s / max(single, 1e-9)))

        def loop():
            for _ in range(inner):
                net(x)

        return _median(time_call(loop, settings.repeats, 1, device)) / inner, inner


def bench_latency(settings: Settings, device) -> list[dict]:
    """Latency of exported (found) configurations vs their uniform baselines, batch 1 and 256."""
    from .macs import count_macs

    device = torch.device(device)
    model = _gross_model("four_layer", 1.0, settings.seed, "cpu")
    space = search_space(model)
    baselines = [_uniform(space, s) for s in settings.latency_baselines]
    found, source = _found_configs(model, baselines, settings.seed)
    rows = []
    for base, cand in zip(baselines, found):
        nets = {c: export(model, c).to(device).eval() for c in (base, cand)}
        macs = {c: count_macs(nets[c], (3, 32, 32)) for c in (base, cand)}
        fewer = macs[cand].total < macs[base].total
        for batch in settings.latency_batches:
            x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(settings.seed)).to(device)
            t_cand, inner = _latency(nets[cand], x, settings, device)
            t_base, _ = _latency(nets[base], x, settings, device)
            rows.append(_row(
                "latency", f"four_layer batch {batch}: {_config_str(cand)} vs baseline {_config_str(base)}",
                "exported config", t_cand, "exported uniform baseline", t_base, settings.repeats,
                "ratio < 1 when the config has fewer MACs", (t_cand < t_base) if fewer else None, device,
                f"MACs {macs[cand].total:,} vs {macs[base].total:,} (G.Conv {macs[cand].gconv:,} vs "
                f"{macs[base].gconv:,}); config {source}; {torch.get_num_threads()} threads, "
                f"seconds per forward (median of loops of {inner})",
            ))
    return rows


# ----------------------------------------------------------------------------- 6. data pipeline


def _tiny_tree(root: Path, per_class: int, seed: int) -> Path:
    """A small CIFAR-like image-folder tree of PNGs (train/test x 10 classes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", max(1, per_class // 2))):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root


def _data_source(settings: Settings, tmp: Path):
    """(root, description, validation size) of the CIFAR-10 source to time, or (None, reason, 0)."""
    if settings.data_source == "tiny":
        return _tiny_tree(tmp / "tiny", 20, settings.seed), "a generated 10-class PNG tree (200 train images)", 50
    if settings.data_source == "none":
        return None, "skipped (data_source='none')", 0
    root = os.environ.get("GROSS_DATA")
    if root:
        return Path(root), f"$GROSS_DATA ({Path(root).name})", 10_000
    batches_dir = paths.DATA / "cifar-10-batches-py"
    if batches_dir.is_dir():
        return batches_dir, "data/cifar-10-batches-py", 10_000
    return None, "skipped: no CIFAR-10 source (set GROSS_DATA)", 0


def bench_data(settings: Settings, device) -> list[dict]:
    """CIFAR-10 load from cache vs decode, and batched vs torchvision per-image augmentation."""
    from .data import augment, cifar10, synthetic

    device = torch.device(device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gross-bench-") as tmp:
        tmp = Path(tmp)
        root, source, val_size = _data_source(settings, tmp)
        images = None
        if root is None:
            rows.append(_row("data", "CIFAR-10 load", "load from cache", math.nan, device="cpu", note=source))
        else:
            cache = tmp / "cache"
            start = time.perf_counter()
            data = cifar10(root, val_size=val_size, cache_dir=cache, download=False)
            decode_s = time.perf_counter() - start
            load = time_call(lambda: cifar10(root, val_size=val_size, cache_dir=cache, download=False),
                             settings.data_repeats, 0)
            n = len(data.train) + len(data.val) + len(data.test)
            rows.append(_row("data", f"CIFAR-10 load ({n:,} images)", "load from the decoded cache", _median(load),
                             "decode the source + write the cache", decode_s, settings.data_repeats,
                             "load from cache takes a few seconds at most", _median(load) < 5.0, "cpu",
                             f"source: {source}; decode timed once (a fresh cache each run)"))
            images = data.train.images
    if images is None or len(images) < settings.aug_images:
        images = synthetic(n_train=settings.aug_images, n_val=0, n_test=0, seed=settings.seed).train.images
    images = images[: settings.aug_images]

    # batched augmentation on the device vs torchvision's per-image transforms on the CPU
    from torchvision.transforms import v2

    gen = torch.Generator().manual_seed(settings.seed)
    on_device = images.to(device)

    def batched():
        for i in range(0, len(on_device), settings.aug_batch):
            augment(on_device[i:i + settings.aug_batch], gen)

    per_image = v2.Compose([v2.RandomCrop(32, padding=2), v2.RandomHorizontalFlip()])

    def torchvision_loop():
        for img in images:
            per_image(img)

    t_batched = _median(time_call(batched, settings.data_repeats, settings.warmup, device))
    t_tv = _median(time_call(torchvision_loop, settings.data_repeats, settings.warmup, "cpu"))
    n = len(images)
    rows.append(_row(
        "data", f"augmentation of {n:,} images", "torchvision per-image RandomCrop(pad 2) + flip", t_tv,
        f"gross.data.augment, batches of {settings.aug_batch}", t_batched, settings.data_repeats,
        "batched faster (ratio > 1)", t_tv > t_batched, device,
        f"{n / t_batched:,.0f} images/s batched on {device} vs {n / t_tv:,.0f} images/s per image on cpu",
    ))
    return rows


# ----------------------------------------------------------------------------- suite

#: Benchmark name -> function(settings, device) -> list of rows, in run order.
BENCHMARKS: dict[str, Callable[[Settings, torch.device], list[dict]]] = {
    "btd": bench_btd,
    "train_step": bench_train_step,
    "switching": bench_switching,
    "tree": bench_tree,
    "latency": bench_latency,
    "data": bench_data,
}


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform()}
    with contextlib.suppress(AttributeError, OSError):
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def override(settings: Settings, assignments: Sequence[str]) -> Settings:
    """Copy of ``settings`` with ``"key=value"`` assignments applied (values parsed as literals)."""
    import ast

    fields = {f.name for f in dataclasses.fields(Settings)}
    changes = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise ValueError(f"cannot apply {item!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        try:
            changes[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            changes[key] = value.strip()
        old = getattr(settings, key)
        if isinstance(old, (int, float)) and not isinstance(old, bool) and not isinstance(changes[key], (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
    return dataclasses.replace(settings, **changes)


def run(settings: Settings | str = "default", device=None, out: str | os.PathLike | None = None,
        only: Sequence[str] | None = None, name: str | None = None,
        log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run the benchmarks and write ``<out>/<name>.csv``, ``.md`` and ``.meta.json``.

    Parameters
    ----------
    settings : Settings or str
        A :class:`Settings` or a :data:`PRESETS` name (``"default"``, ``"quick"``, ``"full"``).
    device : torch.device or str, optional
        Default :func:`gross.utils.default_device`.
    out : path, optional
        Output folder (default ``results/``).
    only : sequence of str, optional
        Subset of :data:`BENCHMARKS` to run.
    name : str, optional
        File stem; default ``benchmarks`` on CPU and ``benchmarks_gpu`` on CUDA.
    log : callable, optional
        Called with a progress line before and after each benchmark.

    Returns
    -------
    pandas.DataFrame
        The table (columns :data:`COLUMNS`).
    """
    if isinstance(settings, str):
        if settings not in PRESETS:
            raise ValueError(f"unknown preset {settings!r}: expected one of {sorted(PRESETS)}")
        preset, settings = settings, PRESETS[settings]
    else:
        preset = next((k for k, v in PRESETS.items() if v == settings), "custom")
    device = torch.device(device) if device is not None else utils.default_device()
    only = list(BENCHMARKS) if only is None else list(only)
    unknown = [b for b in only if b not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}: expected some of {list(BENCHMARKS)}")
    name = name or ("benchmarks_gpu" if device.type == "cuda" else "benchmarks")
    out = Path(out) if out is not None else paths.RESULTS
    log = log or (lambda message: None)
    rows, seconds = [], {}
    start = time.perf_counter()
    for bench in only:
        log(f"[{time.perf_counter() - start:6.0f} s] {bench} ...")
        t0 = time.perf_counter()
        rows += BENCHMARKS[bench](settings, device)
        seconds[bench] = round(time.perf_counter() - t0, 2)
        log(f"[{time.perf_counter() - start:6.0f} s] {bench} done in {seconds[bench]:.1f} s")
    table = pd.DataFrame(rows, columns=COLUMNS)
    meta = utils.provenance(
        device=device, preset=preset, settings=dataclasses.asdict(settings), machine=_machine(),
        benchmark_seconds=seconds, wall_time_s=round(time.perf_counter() - start, 2),
        command=" ".join([Path(sys.executable).name, "-m", "gross.bench", *sys.argv[1:]]),
        columns="ratio = measured_s / versus_s; times in seconds, medians of `repeats` runs after warm-up",
    )
    utils.save_table(table, name, meta, directory=out)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m gross.bench [--quick | --full] [--device D] [--out DIR] [--only a,b]``."""
    parser = argparse.ArgumentParser(prog="python -m gross.bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny version of every benchmark (< 1 min)")
    mode.add_argument("--full", action="store_true", help="no reductions (meant for a GPU)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when available)")
    parser.add_argument("--out", default=None, help="output folder (default: results/)")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--name", default=None, help="file stem (default: benchmarks / benchmarks_gpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one Settings field, e.g. --set tree_images=2000 (repeatable)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = "quick" if args.quick else "full" if args.full else "default"
    settings = override(PRESETS[preset], args.set) if args.set else preset
    only = args.only.split(",") if args.only else None

    def log(message):
        print(message, file=sys.stderr, flush=True)

    table = run(settings, args.device, args.out, only, args.name, log)
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 60):
        print(table.drop(columns=["note"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
