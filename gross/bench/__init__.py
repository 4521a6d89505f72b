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
``latency_predictor``, ``latency_search`` (:mod:`gross.bench.latency_search`)
    Median relative error of the additive latency predictor; measured latency of the
    latency-budget search's winner over the MAC-budget winner at the same baseline.
``data``
    CIFAR-10 load from the decoded cache vs decoding the source, and batched
    augmentation (:func:`gross.data.augment`) vs torchvision's per-image transforms.

Timing does not depend on weight values, so GroSS models here are built from random
factors (no BTD) and data are synthetic unless the row says otherwise. The default
settings are sized to finish within about 15 minutes on 2 CPU cores: where a row's
budget runs out, it measures a subset and its ``note`` says which; ``--full`` removes
those reductions (meant for a GPU), ``--quick`` runs a tiny version of every row.

Layout: :mod:`gross.bench.core` (settings, timing, rows, the registry, ``run``,
``main``), :mod:`gross.bench.common` (random GroSS networks) and one module per
group. To add a group, write ``fn(settings, device) -> list[dict]`` returning rows
made with :func:`row`, decorate it with ``@register("name")`` (or
``@register("name", presets={"default": MySettings(), "quick": MySettings(...)})``
for its own settings), and add one import line to the block below.
"""

# The private names stay importable from gross.bench, where they lived before the split (noqa: F401).
from gross.bench.common import VGG_GROUP_SIZES, _config_str, _gross_model, _uniform  # noqa: F401
from gross.bench.core import (BENCHMARKS, COLUMNS, GROUPS, PRESETS, Group, Settings, _Budget, _median, _row,  # noqa: F401
                   main, override, register, row, run, time_call)

# Benchmark groups, in run order: importing a module registers its groups. One line per module.
from gross.bench.decomposition import bench_btd  # noqa: E402  "btd"
from gross.bench.training import bench_train_step  # noqa: E402  "train_step"
from gross.bench.evaluation import bench_switching, bench_tree  # noqa: E402  "switching", "tree"
from gross.bench.latency import _found_configs, bench_latency  # noqa: E402, F401  "latency"
from gross.bench.data import bench_data  # noqa: E402  "data"
from gross.bench.jobs import bench_batched, bench_executor, bench_packed  # noqa: E402  "executor", "batched", "packed"
from gross.bench.latency_search import bench_latency_predictor, bench_latency_search  # noqa: E402  "latency_*"

__all__ = [
    "COLUMNS",
    "BENCHMARKS",
    "GROUPS",
    "Group",
    "Settings",
    "PRESETS",
    "VGG_GROUP_SIZES",
    "register",
    "row",
    "override",
    "time_call",
    "bench_btd",
    "bench_train_step",
    "bench_switching",
    "bench_tree",
    "bench_latency",
    "bench_data",
    "run",
    "main",
]
