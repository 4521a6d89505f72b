"""Core of the benchmark suite: settings, timing, the row format, the registry of groups, ``run`` and ``main``.

A benchmark *group* is a function ``fn(settings, device) -> list[dict]`` returning
rows made with :func:`row`, registered with :func:`register` (see the package
docstring of :mod:`gross.bench` for how to add one).
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
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from gross import utils
from gross.utils import paths
from gross.utils.assignments import parse_assignments
from gross.utils.timing import time_call

__all__ = ["COLUMNS", "BENCHMARKS", "GROUPS", "Group", "Settings", "PRESETS", "register", "row", "override",
           "time_call", "run", "main"]

#: Columns of the benchmark table.
COLUMNS = [
    "benchmark", "case", "measured", "measured_s", "versus", "versus_s", "ratio",
    "repeats", "target", "met", "device", "note",
]

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




def _median(times: Sequence[float]) -> float:
    return float(statistics.median(times))


def row(benchmark, case, measured, measured_s, versus="", versus_s=math.nan, repeats=1, target="",
        met=None, device="cpu", note="") -> dict:
    """One row of the benchmark table (:data:`COLUMNS`); ``ratio = measured_s / versus_s``."""
    ratio = measured_s / versus_s if versus_s and not math.isnan(versus_s) else math.nan
    return {"benchmark": benchmark, "case": case, "measured": measured, "measured_s": measured_s,
            "versus": versus, "versus_s": versus_s, "ratio": ratio, "repeats": repeats, "target": target,
            "met": met, "device": str(device), "note": note}


_row = row  # the name the benchmark modules (and gross.bench.jobs) import


class _Budget:
    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def spent(self) -> bool:
        return time.perf_counter() > self.deadline



# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Group:
    """A registered benchmark group.

    Attributes
    ----------
    name : str
        Its name (the ``--only`` choice; rows may use other ``benchmark`` names).
    fn : callable
        ``fn(settings, device) -> list[dict]``: the rows (made with :func:`row`).
    presets : mapping, optional
        The group's own settings per preset name (``"default"`` required, ``"quick"``
        and ``"full"`` optional, falling back to ``"default"``); None: ``fn`` gets the
        shared :class:`Settings`.
    """

    name: str
    fn: Callable[[object, torch.device], list[dict]]
    presets: Mapping[str, object] | None = None


#: Registered groups by name, in run order (registration order).
GROUPS: dict[str, Group] = {}
#: Group name -> function(settings, device) -> list of rows, in run order.
BENCHMARKS: dict[str, Callable[[object, torch.device], list[dict]]] = {}


def register(name: str, fn: Callable | None = None, *, presets: Mapping[str, object] | None = None):
    """Register a benchmark group; usable as a decorator (``@register("name")``) or called directly.

    Parameters
    ----------
    name : str
        Group name (unique).
    fn : callable, optional
        ``fn(settings, device) -> list[dict]``; omitted when used as a decorator.
    presets : mapping, optional
        The group's own settings objects per preset name (must include ``"default"``);
        by default the group reads the shared :class:`Settings`.

    Returns
    -------
    callable
        ``fn`` (unchanged), or the decorator.
    """
    if fn is None:
        return lambda f: register(name, f, presets=presets)
    if name in GROUPS and GROUPS[name].fn is not fn:
        raise ValueError(f"benchmark group {name!r} is already registered by {GROUPS[name].fn.__module__}; "
                         f"choose another name (registered: {list(GROUPS)})")
    if presets is not None and "default" not in presets:
        raise ValueError(f"presets of benchmark group {name!r} must include 'default', got {sorted(presets)}")
    GROUPS[name] = Group(name, fn, presets)
    BENCHMARKS[name] = fn
    return fn


def _group_settings(group: Group, settings: Settings, preset: str):
    """The settings ``group`` runs with under ``preset`` (the shared ones unless it has its own)."""
    if group.presets is None:
        return settings
    return group.presets.get(preset, group.presets["default"])


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
    fields = {f.name for f in dataclasses.fields(Settings)}
    changes = parse_assignments(assignments, example=f"KEY=VALUE with KEY one of {sorted(fields)}")
    for key, value in changes.items():
        if key not in fields:
            raise ValueError(f"cannot apply {key}={value!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        old = getattr(settings, key)
        if isinstance(old, (int, float)) and not isinstance(old, bool) and not isinstance(value, (int, float)):
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
    rows, seconds, used = [], {}, dataclasses.asdict(settings)
    start = time.perf_counter()
    for bench in only:
        log(f"[{time.perf_counter() - start:6.0f} s] {bench} ...")
        t0 = time.perf_counter()
        own = _group_settings(GROUPS[bench], settings, preset)
        if own is not settings:
            used[bench] = dataclasses.asdict(own) if dataclasses.is_dataclass(own) else repr(own)
        rows += GROUPS[bench].fn(own, device)
        seconds[bench] = round(time.perf_counter() - t0, 2)
        log(f"[{time.perf_counter() - start:6.0f} s] {bench} done in {seconds[bench]:.1f} s")
    table = pd.DataFrame(rows, columns=COLUMNS)
    meta = utils.provenance(
        device=device, preset=preset, settings=used, machine=_machine(),
        benchmark_seconds=seconds, wall_time_s=round(time.perf_counter() - start, 2),
        command=" ".join([Path(sys.executable).name, "-m", "gross.bench", *sys.argv[1:]]),
        columns="ratio = measured_s / versus_s; times in seconds, medians of `repeats` runs after warm-up",
    )
    utils.save_table(table, name, meta, directory=out)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m gross.bench [--quick | --full] [--device D] [--out DIR] [--only a,b]``."""
    doc = sys.modules["gross.bench"].__doc__ or __doc__
    parser = argparse.ArgumentParser(prog="python -m gross.bench", description=doc.splitlines()[0])
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
