"""Notebook 01, second half: GroSS decompositions (``<model>_gross_init_<r>.pt``), BTD errors and MACs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from torch import nn

from gross.method.decomposition import assemble, btd_factors, gross_layers, planned_space, search_space, skeleton
from gross.runs.btd_jobs import btd_jobs
from gross.runs.jobs import run_jobs
from gross.pipeline.base import base_model
from gross.pipeline.common import MODELS, NOTEBOOKS, build_model, check_models, executor, n_repeats, uniform
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store

__all__ = ["PAPER_MACS", "init_path", "tuned_path", "group_sizes", "btd_dir", "decomposition_jobs", "gross_payload",
           "gross_from_payload", "gross_decompose", "load_gross", "btd_error_table", "mac_table"]


def init_path(name: str, repeat: int) -> str:
    """Artefact name of GroSS decomposition ``repeat`` of ``name`` (before fine-tuning)."""
    return f"{name}_gross_init_{repeat}.pt"


def tuned_path(name: str, repeat: int) -> str:
    """Artefact name of the GroSS fine-tuned model ``repeat`` of ``name`` (notebook 02)."""
    return f"{name}_gross_{repeat}.pt"


def group_sizes(cfg: Mapping, name: str):
    """Candidate group sizes of ``name``: all powers of two (4-layer) or ``vgg16.group_sizes``."""
    return None if name == "four_layer" else list(cfg["vgg16"]["group_sizes"])


def gross_payload(model: nn.Module, **extra) -> dict:
    """What the store keeps of a GroSS model: weights, search space and per-layer BTD errors."""
    layers = gross_layers(model)
    return {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "space": {n: list(s) for n, s in search_space(model).items()},
        "btd_errors": {n: {str(s): float(e) for s, e in layer.btd_errors.items()} for n, layer in layers.items()},
        **extra,
    }


def gross_from_payload(cfg: Mapping, name: str, payload: Mapping) -> nn.Module:
    """Rebuild the GroSS model of :func:`gross_payload` (eval mode)."""
    model = skeleton(build_model(cfg, name), payload["space"])
    model.load_state_dict(payload["state_dict"])
    for layer_name, layer in gross_layers(model).items():
        layer.btd_errors = {int(s): e for s, e in payload["btd_errors"].get(layer_name, {}).items()}
        layer.clear_cache()
    return model.eval()


def btd_dir(cfg: Mapping, name: str) -> Path:
    """Folder of the per-(layer, group size) BTD job outputs of ``name``: ``runs/<profile>/btd/<name>/``."""
    return Store(cfg).root / "btd" / name


def decomposition_jobs(cfg: Mapping, name: str, repeat: int, model: nn.Module | None = None) -> list:
    """The BTD jobs of GroSS decomposition ``repeat`` of ``name``: one per (layer, group size).

    :func:`gross.runs.btd_jobs.btd_jobs` of the base network (``model``, default: the
    stored one) with the settings ``decompose`` used before jobs existed: the
    ``<name>.btd_*`` options, :func:`group_sizes` and seed ``seed + repeat`` (the same
    for every layer and size). Outputs go to :func:`btd_dir`, named from a fingerprint of
    the layer's weights and these settings, so repeats never share a file.

    Returns
    -------
    list of (layer name, group size, gross.runs.jobs.Job)
    """
    sec = cfg[name]
    model = base_model(cfg, name, train=False) if model is None else model
    return btd_jobs(model, btd_dir(cfg, name), group_sizes=group_sizes(cfg, name), tol=sec["btd_tol"],
                    max_iter=sec["btd_max_iter"], method=sec["btd_method"], ridge=sec["btd_ridge"],
                    seed=int(cfg["seed"]) + int(repeat))


def _decompose(cfg: Mapping, name: str, repeat: int) -> dict:
    model = base_model(cfg, name, train=False)
    jobs = decomposition_jobs(cfg, name, repeat, model)
    results = run_jobs([job for _, _, job in jobs], executor(cfg), desc=f"BTD {name} #{repeat}")
    assemble(model, btd_factors(jobs, results))
    return gross_payload(model, wall_time_s=sum(float(r["seconds"]) for r in results))


def gross_decompose(cfg: Mapping, name: str, repeat: int = 0, compute: bool = True) -> nn.Module:
    """GroSS decomposition ``repeat`` of base network ``name`` (BTD seed ``seed + repeat``).

    Stored as ``runs/<profile>/<name>_gross_init_<repeat>.pt`` with the per-layer BTD
    errors and the decomposition time ``wall_time_s``: the sum of the BTD jobs' own
    times (compute time, whatever the executor ran in parallel); loaded from there when
    fresh. Missing BTDs run as jobs (:func:`decomposition_jobs`) on the profile's
    executor; finished ones in :func:`btd_dir` are reused. The model equals
    ``decompose(base, ..., seed=seed + repeat)`` bit for bit when the jobs run with the
    same torch thread count. With ``compute=False`` a missing or stale file raises an
    error naming notebook 01.
    """
    store, path = Store(cfg), init_path(name, repeat)
    if compute:
        payload = store.make(path, lambda: _decompose(cfg, name, repeat), NOTEBOOKS["decomposition"])
    else:
        payload = store.load(path, NOTEBOOKS["decomposition"])
    return gross_from_payload(cfg, name, payload)


def load_gross(cfg: Mapping, name: str, repeat: int = 0, tuned: bool = True) -> nn.Module:
    """A GroSS model from the store: fine-tuned (notebook 02) or freshly decomposed (01)."""
    if not tuned:
        return gross_decompose(cfg, name, repeat, compute=False)
    payload = Store(cfg).load(tuned_path(name, repeat), NOTEBOOKS["finetuning"])
    return gross_from_payload(cfg, name, payload)


@step("01_decomposition", tables=("btd_errors",), figures=("fig_btd_error",))
def btd_error_table(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """Decompose both networks (all repeats) and tabulate the BTD error per layer and group size.

    The BTDs of every layer, group size, model and repeat whose decomposition is not
    stored yet are submitted together to the profile's executor (one
    :func:`gross.runs.jobs.run_jobs` call), then each decomposition is assembled and stored
    (:func:`gross_decompose`). ``decomposition_s`` is the sum of its BTD jobs' times.

    Writes table ``btd_errors`` (columns ``model, repeat, layer, group_size, error,
    decomposition_s``) and figure ``fig_btd_error`` (one panel per model).
    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    from gross.report import plots

    names = list(check_models(models))
    store, jobs = Store(cfg), []
    for name in names:
        model = base_model(cfg, name)  # trained once if missing, before its BTDs run as independent jobs
        for r in range(n_repeats(cfg, name)):
            if not store.is_fresh(init_path(name, r)):
                jobs += [job for _, _, job in decomposition_jobs(cfg, name, r, model)]
    run_jobs(jobs, executor(cfg), desc="01_decomposition BTD")  # every layer, size and repeat at once
    rows = []
    for name in names:
        for r in range(n_repeats(cfg, name)):
            gross_decompose(cfg, name, r)
            state = Store(cfg).load(init_path(name, r), NOTEBOOKS["decomposition"])
            for layer, errs in state["btd_errors"].items():
                for s, e in errs.items():
                    rows.append({"model": name, "repeat": r, "layer": layer, "group_size": int(s), "error": e,
                                 "decomposition_s": state["wall_time_s"]})
    df = pd.DataFrame(rows)
    fig = plots.btd_error_figure(df, by="model")  # one panel per model, drawn on axes (vector PDF)
    return StepResult(tables={"btd_errors": df}, figures={"fig_btd_error": fig})


# Paper values (Tables 2 and 3) checked by the MAC table: (model, config or None, printed total).
PAPER_MACS = [
    ("four_layer", None, "5.13M"),
    ("four_layer", (32, 32, 32), "5.09M"),
    ("four_layer", (32, 16, 64), "5.09M"),
    ("four_layer", (16, 16, 16), "3.47M"),
    ("four_layer", (16, 8, 16), "3.33M"),
    ("four_layer", (8, 16, 64), "3.33M"),
    ("four_layer", (8, 8, 8), "2.66M"),
    ("four_layer", (2, 16, 32), "2.59M"),
    ("four_layer", (4, 4, 4), "2.26M"),
    ("four_layer", (1, 8, 16), "2.22M"),
    ("four_layer", (1, 1, 1), "1.95M"),
    ("vgg16", None, "314M"),
    ("vgg16", (32,) * 12, "121M"),
    ("vgg16", (32, 4, 16, 32, 16, 16, 32, 16, 4, 16, 32, 1), "103M"),
    ("vgg16", (16,) * 12, "94.6M"),
    ("vgg16", (4, 4, 16, 32, 16, 16, 1, 32, 4, 32, 16, 1), "86.7M"),
    ("vgg16", (4,) * 12, "74.9M"),
    ("vgg16", (1, 1, 1, 16, 16, 4, 1, 1, 4, 4, 1, 4), "74.1M"),
    ("vgg16", (1,) * 12, "70.0M"),
]


def _mac_row(net, model: str, width_mult: float, config, printed: str | None) -> dict:
    from gross.method.macs import count_macs, format_macs
    from gross.method.space import config_str

    m = count_macs(net, config=config)
    return {"model": model, "width_mult": width_mult, "config": "full" if config is None else config_str(config),
            "macs": m.total, "gconv_macs": m.gconv, "formatted": format_macs(m.total),
            "paper": printed or "", "matches_paper": pd.NA if printed is None else format_macs(m.total) == printed}


@step("01_decomposition", tables=("table_macs",))
def mac_table(cfg: Mapping) -> StepResult:
    """MACs of the full and decomposed configurations printed in Tables 2-3, checked against the paper.

    Rows for the paper's networks (VGG-16 at full width) with the paper's printed
    value and whether ours formats identically; when the profile uses a reduced
    VGG-16 width, the uniform configurations of that network are added (no paper
    value). Writes table ``table_macs``.
    """
    from gross.models import four_layer_net, vgg16_cifar

    nets = {"four_layer": four_layer_net(), "vgg16": vgg16_cifar()}
    rows = [_mac_row(nets[name], name, 1.0, config, printed) for name, config, printed in PAPER_MACS]
    wm = cfg["vgg16"]["width_mult"]
    if wm != 1.0:
        net = vgg16_cifar(width_mult=wm)
        space = planned_space(net, group_sizes=group_sizes(cfg, "vgg16"))
        configs = [None] + [uniform(space, s) for s in sorted(cfg["vgg16"]["baselines"], reverse=True)]
        rows += [_mac_row(net, "vgg16", wm, c, None) for c in configs + [uniform(space, 1)]]
    return StepResult(tables={"table_macs": pd.DataFrame(rows)})
