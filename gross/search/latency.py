"""Per-device latency tables of a GroSS model and the additive latency predictor.

On real hardware fewer MACs need not mean faster (small-group convolutions are
memory-bound). Because the whole search space is one network, the latency of any
configuration is *predicted* from a small table (:meth:`LatencyTable.predict`)::

    predict(config) = fixed + Σ_l entry_l(config_l)

``mode="isolated"`` (default): ``entry_l(s)`` is the time of layer ``l``'s exported
bottleneck (1×1 ``P`` → grouped ``k×k`` ``R`` → 1×1 ``Q``, as
:func:`gross.method.decomposition.export` builds it) alone on an input of its context shape
(captured with a forward hook) at the table's batch size, and ``fixed`` (the rest of
the network and framework overhead) the median over calibration configurations of
``T(exported network) − Σ_l entry_l``. ``mode="in_context"``: ``entry_l(s) = T(net at
ref with layer l at s) − T(net at ref)`` and ``fixed = T(net at ref)``, from whole
exported networks; ``ref`` (``reference=``) is by default the middle size of every
layer (with the smallest sizes as reference the latency is far from additive: +29 %
on the 4-layer net at batch 1). Timed in one round-robin on the 2-core CPU, isolated
entries predicted 30 random 4-layer configurations at batch 1 within 2.7 %
(Spearman 0.70, in-context around the middle reference 3.9 % / 0.42), so
``"isolated"`` is the default.

Every module a table (or a validation, :func:`measure_configs`) times is timed
**round-robin** (:func:`measure_rounds`): ``rounds`` passes over all of them, per
module the min (or median) over the passes. Timing them one after the other let slow
changes of the machine (other processes, frequency, allocator state) enter the
differences: on the shared 2-core CPU, tables timed in one pass were off by ±25–30 %
against networks timed a minute later, with 5 passes by about 2 %.
Each timing (:func:`measure_forward`) runs under :func:`torch.inference_mode`: warm-up,
then the median (or min) over ``repeats`` loops lasting at least ``min_time`` s; CUDA is
synchronised before reading the clock. Any ``timer(module, x) -> seconds`` can replace it.

Tables are cached as JSON (default ``runs/latency/``), one file per architecture, mode,
batch size and **device fingerprint** (:func:`device_fingerprint`: CPU model and
threads or GPU name, torch version, batch size); a table of another fingerprint is
refused (:meth:`LatencyTable.check`) or re-measured (``on_mismatch="remeasure"``),
never reused silently. The search cost built on a table is
:func:`gross.search.costs.cost_model` ``("latency", table=...)``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from gross import utils
from gross.utils import paths
from gross.method.decomposition import export, gross_layers, search_space
from gross.search.measure import (CLOCKS, STATISTICS, Timer, _device, _positive_int, _progress, _threads,
                              device_fingerprint, measure_forward, measure_rounds)
from gross.method.space import SearchSpace
from gross.utils.hashing import bytes_digest, digest

__all__ = [
    "predictor_verdict",
    "MODES",
    "DEFAULT_MODE",
    "STATISTICS",
    "CLOCKS",
    "FITS",
    "LatencyTable",
    "device_fingerprint",
    "measure_forward",
    "measure_rounds",
    "context_shapes",
    "measure_table",
    "latency_table",
    "table_path",
    "load_table",
    "measure_configs",
    "validate_predictor",
    "predictor_summary",
    "spearman",
]

#: Ways of measuring the per-layer entries (see the module docstring).
MODES = ("isolated", "in_context")
#: The mode of :func:`measure_table` and :func:`latency_table` by default (the most accurate measured).
DEFAULT_MODE = "isolated"
#: How the fixed part is fitted to the calibration networks (:func:`measure_table`).
FITS = ("offset", "affine")


# ----------------------------------------------------------------------------- the table


@dataclasses.dataclass
class LatencyTable:
    """Per-layer latency entries (seconds) of one architecture on one device.

    Attributes
    ----------
    layers : list of str
        Decomposed layers, in :func:`gross.method.decomposition.search_space` order.
    entries : list of dict of int to float
        ``entries[l][s]``: seconds of layer ``l`` at group size ``s``.
    fixed : float
        Seconds of the rest of the network.
    fingerprint : dict
        :func:`device_fingerprint` of the device it was measured on.
    architecture : str
        Hash of the exported architecture and input size (:func:`_architecture`).
    settings : dict
        How it was measured: mode, warm-up, repeats, min_time, input size,
        calibration configurations and their residuals, wall time.
    """

    layers: list
    entries: list
    fixed: float
    fingerprint: dict
    architecture: str
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def sizes(self) -> list[tuple[int, ...]]:
        """Group sizes per layer."""
        return [tuple(sorted(e)) for e in self.entries]

    def _check(self, config) -> tuple[int, ...]:
        return SearchSpace(dict(zip(self.layers, self.sizes))).validate(config)

    def predict(self, config) -> float:
        """Predicted seconds per forward: ``fixed + Σ_l entries[l][config[l]]``."""
        config = self._check(config)
        return self.fixed + sum(e[s] for e, s in zip(self.entries, config))

    __call__ = predict

    def cheapest(self) -> tuple[tuple[int, ...], float]:
        """The fastest predicted configuration and its predicted seconds."""
        config = tuple(min(e, key=lambda s: (e[s], s)) for e in self.entries)
        return config, self.predict(config)

    def to_frame(self) -> pd.DataFrame:
        """Columns ``layer, group_size, seconds`` (the fixed part as layer ``"(fixed)"``)."""
        rows = [(n, s, t) for n, e in zip(self.layers, self.entries) for s, t in sorted(e.items())]
        rows.append(("(fixed)", 0, self.fixed))
        return pd.DataFrame(rows, columns=["layer", "group_size", "seconds"])

    def to_json(self) -> str:
        """The table as JSON (:meth:`from_json` reads it back)."""
        data = dataclasses.asdict(self)
        data["entries"] = [{str(s): t for s, t in e.items()} for e in self.entries]
        return json.dumps(data, indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> "LatencyTable":
        """Read a table written by :meth:`to_json`."""
        data = json.loads(text)
        data["entries"] = [{int(s): float(t) for s, t in e.items()} for e in data["entries"]]
        return cls(**data)

    def check(self, fingerprint: Mapping, architecture: str | None = None, source="the table") -> None:
        """Raise ``ValueError`` unless measured with ``fingerprint`` (and ``architecture``)."""
        diff = sorted(k for k in set(self.fingerprint) | set(fingerprint)
                      if self.fingerprint.get(k) != fingerprint.get(k))
        if diff:
            detail = ", ".join(f"{k}: table {self.fingerprint.get(k)!r} vs here {fingerprint.get(k)!r}" for k in diff)
            raise ValueError(
                f"{source} was measured on another device or setup ({detail}); latencies do not transfer. "
                "Re-measure here with gross.search.latency.latency_table(..., on_mismatch='remeasure') "
                "or measure_table(...)"
            )
        if architecture is not None and architecture != self.architecture:
            raise ValueError(f"{source} was measured for another architecture or input size "
                             f"({self.architecture} vs {architecture}); measure a table for this model")


def _architecture(model: nn.Module, input_size) -> str:
    """Hash of the exported architecture (module structure and shapes, no weights) and input size."""
    space = search_space(model)
    ref = tuple(s[0] for s in space.values())
    text = repr(export(model, ref)) + json.dumps({"space": {k: list(v) for k, v in space.items()},
                                                   "input_size": list(input_size)})
    return bytes_digest(text.encode(), 12)


def _check_model(model: nn.Module) -> "dict[str, tuple[int, ...]]":
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module with GroSS layers, got {type(model).__name__}")
    return SearchSpace.from_model(model).as_dict()


def _input_size(input_size) -> tuple[int, ...]:
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence) or not input_size \
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in input_size):
        raise ValueError(f"input_size must be a sequence of positive ints like (3, 32, 32), got {input_size!r}")
    return tuple(int(d) for d in input_size)


def context_shapes(model: nn.Module, input_size=(3, 32, 32)) -> "dict[str, tuple[int, ...]]":
    """Input shape (without batch) of every GroSS layer inside ``model`` (one batch-1 forward)."""
    from gross.method.macs import _forward_once

    input_size = _input_size(input_size)
    shapes, handles = {}, []
    for name, layer in gross_layers(model).items():
        handles.append(layer.register_forward_pre_hook(
            lambda mod, args, name=name: shapes.__setitem__(name, tuple(args[0].shape[1:]))))
    try:
        _forward_once(model, input_size)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _default_timer(warmup, repeats, min_time, statistic="median", clock="wall") -> Timer:
    return lambda module, x: measure_forward(module, x, warmup, repeats, min_time, statistic, clock)


def _calibration(space) -> list[tuple[int, ...]]:
    """The "uniform by rank" configurations: the i-th smallest size of every layer (clipped)."""
    sizes = list(space.values())
    return list(dict.fromkeys(tuple(s[min(i, len(s) - 1)] for s in sizes) for i in range(max(map(len, sizes)))))


def _reference(space, reference) -> tuple[int, ...]:
    """The in-context reference: ``"mid"`` (middle size of every layer), ``"min"`` or a configuration."""
    sizes = list(space.values())
    if reference == "mid":
        return tuple(s[len(s) // 2] for s in sizes)
    if reference == "min":
        return tuple(s[0] for s in sizes)
    return SearchSpace(space).validate(reference)


def _fit_fixed(entries, calibration, totals, fit):
    """(entries, fixed, residuals, scale) from the calibration networks' times (see ``fit``)."""
    sums = np.array([sum(e[s] for e, s in zip(entries, c)) for c in calibration])
    totals = np.asarray(totals, dtype=float)
    scale = 1.0
    if fit == "affine" and len(sums) >= 2 and np.ptp(sums) > 0:
        scale, _ = np.polyfit(sums, totals, 1)
        scale = float(scale) if scale > 0 else 1.0
    residuals = totals - scale * sums
    entries = [{s: v * scale for s, v in e.items()} for e in entries]
    return entries, float(np.median(residuals)), residuals.tolist(), scale


def _isolated(model, sizes, calibration, x, g, timer, rounds, statistic, bar):
    """Bottlenecks alone in their context shapes, and the calibration networks, all timed round-robin."""
    shapes = context_shapes(model, tuple(x.shape[1:]))
    keys, jobs = [], []
    for i, (name, layer) in enumerate(gross_layers(model).items()):
        xi = torch.randn(x.shape[0], *shapes[name], generator=g).to(x.device)
        for s in sizes[i]:
            keys.append((i, s))
            jobs.append((layer.to_bottleneck(s).to(x.device).eval(), xi))
    jobs += [(export(model, c).to(x.device).eval(), x) for c in calibration]
    times = measure_rounds(jobs, timer, rounds, statistic, bar)
    entries = [{} for _ in sizes]
    for (i, s), t in zip(keys, times):
        entries[i][s] = t
    return entries, times[len(keys):]


def _in_context(model, sizes, ref, x, timer, rounds, statistic, bar):
    """Whole networks differing from ``ref`` in one layer, timed round-robin with ``ref``: (entries, T(ref))."""
    variants = [ref] + [ref[:i] + (s,) + ref[i + 1:] for i, allowed in enumerate(sizes) for s in allowed
                        if s != ref[i]]
    times = dict(zip(variants, measure_rounds([(export(model, c).to(x.device).eval(), x) for c in variants],
                                              timer, rounds, statistic, bar)))
    base = times[ref]
    entries = [{s: 0.0 if s == ref[i] else times[ref[:i] + (s,) + ref[i + 1:]] - base for s in allowed}
               for i, allowed in enumerate(sizes)]
    return entries, base


def _check_choices(mode, fit, statistic):
    for what, value, allowed in (("mode", mode, MODES), ("fit", fit, FITS), ("statistic", statistic, STATISTICS)):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}: expected one of {allowed}")


def measure_table(model: nn.Module, input_size=(3, 32, 32), batch_size: int = 1, device="cpu", *,
                  mode: str = DEFAULT_MODE, num_threads: int | None = None, warmup: int = 2, repeats: int = 2,
                  min_time: float = 0.01, statistic: str = "median", clock: str = "wall", rounds: int = 5,
                  reference="mid", calibration: Sequence | None = None, fit: str = "offset",
                  timer: Timer | None = None, seed: int = 0, progress: bool | None = None) -> LatencyTable:
    """Measure a :class:`LatencyTable` of a GroSS model (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed model (not modified; weights do not matter for timing).
    input_size : tuple of int
        One input without the batch dimension, e.g. ``(3, 32, 32)``.
    batch_size : int
    device : str or torch.device
    mode : {"in_context", "isolated"}
    num_threads : int, optional
        CPU threads while measuring (restored afterwards); default torch's current.
    warmup, repeats, min_time, statistic, clock
        Passed to :func:`measure_forward` (ignored when ``timer`` is given).
    rounds : int
        Round-robin passes over every module the table times (:func:`measure_rounds`);
        per module the ``statistic`` over the passes.
    reference : {"mid", "min"} or configuration
        ``"in_context"``: the network the one-layer variants differ from (``"mid"``: the
        middle size of every layer).
    calibration : sequence of configurations, optional
        Whole networks timed to fit the fixed part (``"isolated"``); default the
        uniform-by-rank configurations (i-th smallest size of every layer).
    fit : {"offset", "affine"}
        ``"isolated"``: ``"offset"``: fixed = median over the calibration networks of
        ``T − Σ entries``; ``"affine"``: least squares ``T ≈ fixed + scale · Σ entries``
        over them, and the entries multiplied by ``scale``.
    timer : callable, optional
        ``timer(module, x) -> seconds`` replacing :func:`measure_forward`.
    seed : int
        Seed of the random inputs.
    progress : bool, optional
        tqdm progress bar; default: only on a terminal.
    """
    space = _check_model(model)
    _check_choices(mode, fit, statistic)
    input_size, device = _input_size(input_size), _device(device)
    fingerprint = device_fingerprint(device, batch_size, num_threads)
    timer_name = "measure_forward" if timer is None else getattr(timer, "__name__", type(timer).__name__)
    timer = timer or _default_timer(warmup, repeats, min_time, statistic, clock)
    names, sizes = list(space), [tuple(v) for v in space.values()]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *input_size, generator=g).to(device)
    t0 = time.perf_counter()
    ref = _reference(space, reference) if mode == "in_context" else None
    calibration = [tuple(c) for c in (calibration or _calibration(space))] if mode == "isolated" else [ref]
    n_jobs = sum(map(len, sizes)) - len(sizes) + 1 if mode == "in_context" else sum(map(len, sizes)) + len(calibration)
    with _threads(num_threads), _progress(n_jobs * _positive_int("rounds", rounds),
                                          f"latency table ({device}, batch {batch_size})", progress) as bar:
        if mode == "isolated":
            entries, totals = _isolated(model, sizes, calibration, x, g, timer, rounds, statistic, bar)
            entries, fixed, residuals, scale = _fit_fixed(entries, calibration, totals, fit)
        else:
            entries, fixed = _in_context(model, sizes, ref, x, timer, rounds, statistic, bar)
            residuals, totals, scale = [], [fixed], 1.0
    settings = {
        "mode": mode, "input_size": list(input_size), "warmup": warmup, "repeats": repeats, "min_time": min_time,
        "statistic": statistic, "clock": clock, "rounds": rounds, "timer": timer_name,
        "num_threads": torch.get_num_threads() if num_threads is None else num_threads,
        "fit": fit if mode == "isolated" else "none", "scale": scale,
        "reference": reference if isinstance(reference, str) else list(reference),
        "reference_config": list(ref) if ref is not None else None,
        "calibration": [list(c) for c in calibration], "calibration_s": [float(v) for v in totals],
        "residuals": [float(r) for r in residuals],
        "wall_time_s": round(time.perf_counter() - t0, 3), "seed": seed,
    }
    return LatencyTable(names, entries, float(fixed), fingerprint, _architecture(model, input_size), settings)


# ----------------------------------------------------------------------------- cache


def table_path(model: nn.Module, input_size=(3, 32, 32), batch_size: int = 1, device="cpu",
               mode: str = DEFAULT_MODE, num_threads: int | None = None, directory=None) -> Path:
    """Cache file of a table: ``runs/latency/<architecture>-<mode>-<fingerprint hash>.json``."""
    fingerprint = device_fingerprint(device, batch_size, num_threads)
    key = digest(fingerprint, 10)
    directory = Path(directory) if directory is not None else paths.runs_root() / "latency"
    return directory / f"{_architecture(model, _input_size(input_size))}-{mode}-b{batch_size}-{key}.json"


def load_table(path, device="cpu", batch_size: int | None = None, num_threads: int | None = None,
               model: nn.Module | None = None, input_size=(3, 32, 32)) -> LatencyTable:
    """Read a table and check it was measured here (same fingerprint; same architecture if ``model``).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Measured on another device, thread count, torch version or batch size (or for
        another architecture): never silently reused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no latency table at {path}; measure one with gross.search.latency.latency_table")
    table = LatencyTable.from_json(path.read_text())
    batch_size = table.fingerprint.get("batch_size", 1) if batch_size is None else batch_size
    arch = _architecture(model, _input_size(input_size)) if model is not None else None
    table.check(device_fingerprint(device, batch_size, num_threads), arch, source=str(path))
    return table


#: Measurement settings a cached table must share with the request to be re-used.
_MEASUREMENT_KEYS = ("warmup", "repeats", "min_time", "statistic", "clock", "rounds", "reference", "seed", "fit")


def latency_table(model: nn.Module, input_size=(3, 32, 32), batch_size: int = 1, device="cpu", *,
                  mode: str = DEFAULT_MODE, num_threads: int | None = None, cache: bool = True, directory=None,
                  on_mismatch: str = "error", **kwargs) -> LatencyTable:
    """The latency table of ``model`` on this device: from the cache when valid, else measured.

    ``kwargs`` go to :func:`measure_table`. A cached file whose fingerprint or
    architecture does not match raises (``on_mismatch="error"``) or is re-measured and
    overwritten (``"remeasure"``); a cached table measured with other settings
    (``warmup``, ``repeats``, ``min_time``, ``statistic``, ``clock``, ``rounds``,
    ``reference``, ``seed``, ``fit`` in ``kwargs``) is measured again. Cache files are
    written atomically.
    """
    if on_mismatch not in ("error", "remeasure"):
        raise ValueError(f"on_mismatch must be 'error' or 'remeasure', got {on_mismatch!r}")
    _check_model(model)
    path = table_path(model, input_size, batch_size, device, mode, num_threads, directory)
    if cache and path.is_file():
        try:
            table = load_table(path, device, batch_size, num_threads, model, input_size)
        except ValueError:
            if on_mismatch == "error":
                raise
        else:
            asked = {k: v for k, v in kwargs.items() if k in _MEASUREMENT_KEYS}
            if all(table.settings.get(k) == v for k, v in asked.items()):
                return table  # else: measured with other settings (repeats, ...): measure again
    table = measure_table(model, input_size, batch_size, device, mode=mode, num_threads=num_threads, **kwargs)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        utils.atomic_write_text(table.to_json() + "\n", path)
    return table


# ----------------------------------------------------------------------------- validation


def measure_configs(model: nn.Module, configs, input_size=(3, 32, 32), batch_size: int = 1, device="cpu", *,
                    timer: Timer | None = None, warmup: int = 2, repeats: int = 2, min_time: float = 0.01,
                    statistic: str = "median", clock: str = "wall", rounds: int = 5,
                    num_threads: int | None = None, seed: int = 0, progress: bool | None = None) -> list[float]:
    """Measured seconds per forward of the exported network at each configuration.

    The networks are timed round-robin (:func:`measure_rounds`, ``rounds`` passes, per
    network the ``statistic`` over them), like the table's networks.
    """
    device = _device(device)
    space = SearchSpace(_check_model(model))
    configs = [space.validate(c) for c in configs]
    timer = timer or _default_timer(warmup, repeats, min_time, statistic, clock)
    x = torch.randn(batch_size, *_input_size(input_size), generator=torch.Generator().manual_seed(seed)).to(device)
    jobs = [(export(model, c).to(device).eval(), x) for c in configs]
    with _threads(num_threads), _progress(len(jobs) * _positive_int("rounds", rounds), "end-to-end latency",
                                          progress) as bar:
        return measure_rounds(jobs, timer, rounds, statistic, bar)


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties) of two equal-length sequences."""
    a, b = pd.Series(np.asarray(a, dtype=float)), pd.Series(np.asarray(b, dtype=float))
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two sequences of the same length >= 2, got lengths {len(a)} and {len(b)}")
    return float(np.corrcoef(a.rank().to_numpy(), b.rank().to_numpy())[0, 1])


def validate_predictor(model: nn.Module, table: LatencyTable, configs=None, n_configs: int = 30, seed: int = 0,
                       input_size=None, device="cpu", repeat: bool = False, **kwargs) -> pd.DataFrame:
    """Predicted vs measured end-to-end latency of ``n_configs`` random configurations.

    ``configs`` (default: a seeded draw of distinct random configurations) are measured
    with :func:`measure_configs` (``kwargs``) at the table's batch size; with
    ``repeat=True`` measured a second time, independently (the noise ceiling: how
    well two measurements of the same networks agree, :func:`predictor_summary`).

    Returns
    -------
    pandas.DataFrame
        Columns ``config, macs, predicted_s, measured_s, rel_error``
        (``(predicted − measured) / measured``) and, with ``repeat``,
        ``measured_repeat_s``; summarise with :func:`predictor_summary`.
    """
    from gross.method.macs import count_macs
    from gross.method.space import random_configs

    space = _check_model(model)
    input_size = tuple(table.settings.get("input_size", (3, 32, 32))) if input_size is None else input_size
    table.check(device_fingerprint(device, table.fingerprint["batch_size"], kwargs.get("num_threads")),
                _architecture(model, _input_size(input_size)))
    configs = random_configs(space, n_configs, seed) if configs is None else [tuple(c) for c in configs]
    measured = measure_configs(model, configs, input_size, table.fingerprint["batch_size"], device, **kwargs)
    predicted = [table.predict(c) for c in configs]
    macs = [count_macs(model, input_size, config=c).total for c in configs]
    df = pd.DataFrame({"config": configs, "macs": macs, "predicted_s": predicted, "measured_s": measured})
    df["rel_error"] = (df["predicted_s"] - df["measured_s"]) / df["measured_s"]
    if repeat:
        df["measured_repeat_s"] = measure_configs(model, configs, input_size, table.fingerprint["batch_size"],
                                                  device, **kwargs)
    return df


def predictor_summary(df: pd.DataFrame) -> dict:
    """Median relative error and rank correlations of a :func:`validate_predictor` frame.

    Returns ``n``, ``median_abs_rel_error`` and ``spearman`` (predicted vs measured),
    ``spearman_macs`` (MACs vs measured) and, when ``df`` has ``measured_repeat_s``,
    the noise ceiling: ``spearman_repeat`` (rank correlation of the two independent
    measurements of the same configurations; a predictor is compared with one noisy
    measurement, so Spearman much above this is out of reach) and
    ``repeat_rel_diff`` (median ``|repeat − measured| / measured``).
    """
    missing = {"predicted_s", "measured_s", "macs"} - set(df.columns)
    if missing:
        raise ValueError(f"df is missing columns {sorted(missing)}; pass the output of validate_predictor")
    rel = (df["predicted_s"] - df["measured_s"]).abs() / df["measured_s"]
    out = {"n": len(df), "median_abs_rel_error": float(rel.median()),
           "spearman": spearman(df["predicted_s"], df["measured_s"]),
           "spearman_macs": spearman(df["macs"], df["measured_s"])}
    if "measured_repeat_s" in df:
        out["spearman_repeat"] = spearman(df["measured_repeat_s"], df["measured_s"])
        out["repeat_rel_diff"] = float(((df["measured_repeat_s"] - df["measured_s"]).abs() / df["measured_s"]).median())
    return out


def predictor_verdict(row: Mapping) -> str:
    """``"met"``, ``"missed"`` or ``"within noise"``: the targets judged with the noise the run measured.

    The error target holds beyond noise when ``median_abs_rel_error + repeat_rel_diff`` is
    within it, and fails beyond noise when ``median_abs_rel_error - repeat_rel_diff`` exceeds
    it (``repeat_rel_diff``: how much two measurements of the same configurations differ).
    Spearman fails beyond noise below the target while the repeat ceiling
    (``spearman_repeat``) reaches it, and cannot be judged when the ceiling itself is below
    the target. ``"met"``: both hold beyond noise; ``"missed"``: either fails beyond noise;
    else ``"within noise"`` (two identical runs may fall on either side).
    """
    err, noise, target = row["median_abs_rel_error"], row["repeat_rel_diff"], row["target_error"]
    rho, ceiling, rho_target = row["spearman"], row["spearman_repeat"], row["target_spearman"]
    error = "met" if err + noise <= target else "missed" if err - noise > target else "within noise"
    if ceiling < rho_target:
        rank = "within noise"
    else:
        rank = "met" if rho >= rho_target else "missed"
    if "missed" in (error, rank):
        return "missed"
    return "met" if error == rank == "met" else "within noise"
