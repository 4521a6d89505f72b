"""What every step needs: the config turned into a device, data, recipes, networks and configurations.

These adapters are the only place the pipeline reads settings that are not step
specific (``seed``, ``device``, ``data.*``, ``<model>.*_epochs``); because the
config records reads (:func:`gross.runs.config.recording`), a step's fingerprint and
reductions include them exactly when it calls these functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from gross import utils
from gross.utils.hashing import digest

__all__ = [
    "MODELS",
    "NOTEBOOKS",
    "setup",
    "resolve_device",
    "prepare_data",
    "data_summary",
    "recipe",
    "build_model",
    "check_models",
    "eval_kwargs",
    "evaluate",
    "n_repeats",
    "true_repeats",
    "uniform",
    "uniform_configs",
    "executor",
    "networks_at_once",
    "precision",
    "artefact_job",
    "artefact_jobs",
    "fan_out",
]

#: The two CIFAR-10 networks of the paper, by pipeline name.
MODELS = ("four_layer", "vgg16")

#: Notebook (stem) of each stage, used in "run ... first" messages.
NOTEBOOKS = {
    "decomposition": "01_decomposition",
    "finetuning": "02_finetuning",
    "exhaustive": "03_exhaustive_search",
    "bfs": "04_breadth_first_search",
    "ap": "05_ap_comparison",
}

_EPOCH_KEYS = {"base": "base_epochs", "gross": "gross_epochs", "config": "config_epochs"}


def resolve_device(cfg: Mapping) -> torch.device:
    """``cfg["device"]`` as a torch device (``"auto"``: CUDA when available).

    Raises
    ------
    ValueError
        A name torch does not know, or CUDA requested where there is none.
    """
    return utils.resolve_device(cfg["device"])


def setup(cfg: Mapping) -> torch.device:
    """Seed everything, set torch's CPU threads (``num_threads``) and return the device."""
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    utils.seed_everything(int(cfg["seed"]))
    return resolve_device(cfg)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {MODELS}")


def check_models(models: Sequence[str] | str) -> tuple[str, ...]:
    """Validate a ``models`` argument (a non-empty subset of :data:`MODELS`)."""
    models = (models,) if isinstance(models, str) else tuple(models)
    if not models:
        raise ValueError(f"models must name at least one of {MODELS}")
    for name in models:
        _check_name(name)
    return models


_DATA_CACHE: dict = {}


def _base_data(cfg: Mapping):
    from gross import data as gdata

    d = {k: v for k, v in cfg["data"].items() if k not in ("eval_batch_size",)}
    key = digest(d)
    if key not in _DATA_CACHE:
        if d["source"] == "synthetic":
            ds = gdata.synthetic(d["n_train"], d["n_val"], d["n_test"], seed=d["split_seed"])
        else:
            ds = gdata.cifar10(d["path"] or None, val_size=10_000, seed=d["split_seed"])
            sizes = {}
            for split in ("train", "val", "test"):
                n = d[f"n_{split}"]
                if n > len(getattr(ds, split)):
                    raise ValueError(f"data.n_{split} = {n} exceeds the {split} split ({len(getattr(ds, split))})")
                sizes[f"n_{split}"] = n if n < len(getattr(ds, split)) else None
            if any(v is not None for v in sizes.values()):
                ds = gdata.subset(ds, seed=d["split_seed"], **sizes)
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = ds
    return _DATA_CACHE[key]


def prepare_data(cfg: Mapping, name: str = "four_layer"):
    """The dataset a model is trained and evaluated on, normalised with its recipe.

    ``data.source`` picks CIFAR-10 (``data.path`` or ``$GROSS_DATA`` or a download)
    or synthetic data; ``data.n_*`` subsample the splits (stratified, seeded by
    ``data.split_seed``); VGG-16 may use fewer training / validation images
    (``vgg16.n_train`` / ``vgg16.n_val``, 0 = all). The returned
    :class:`gross.data.Dataset` carries the model's normalisation as its default.
    """
    from gross import data as gdata
    from gross.training.loop import RECIPES

    _check_name(name)
    ds = _base_data(cfg)
    if name == "vgg16":
        n_train, n_val = cfg["vgg16"]["n_train"], cfg["vgg16"]["n_val"]
        sizes = {"n_train": n_train if 0 < n_train < len(ds.train) else None,
                 "n_val": n_val if 0 < n_val < len(ds.val) else None}
        if any(v is not None for v in sizes.values()):
            ds = gdata.subset(ds, seed=cfg["data"]["split_seed"] + 7, **sizes)
    r = RECIPES[f"{name}_base"]
    return ds.with_normalization(r.mean, r.std)


def data_summary(cfg: Mapping) -> pd.DataFrame:
    """Images per split for each model (what notebook 01 shows first)."""
    rows = []
    for name in MODELS:
        ds = prepare_data(cfg, name)
        rows.append({"model": name, "source": ds.source, "train": len(ds.train), "val": len(ds.val),
                     "test": len(ds.test)})
    return pd.DataFrame(rows)


def recipe(cfg: Mapping, name: str, kind: str, seed: int | None = None):
    """The paper's recipe (:data:`gross.training.loop.RECIPES`) for ``name`` and ``kind`` at the profile's epochs.

    ``kind`` is ``"base"``, ``"gross"``, ``"config"`` (epochs ``<name>.<kind>_epochs``)
    or ``"partial"``: the short individual fine-tune of Sec. 5.2 (Table 5, 4-layer
    network only), ``ap.partial_epochs`` epochs of the configuration recipe.
    Milestones scale with the epochs (:meth:`gross.training.loop.Recipe.scaled`).
    The augmentation padding is ``<name>.augment_padding`` and the weight decay
    ``<name>.base_weight_decay`` (base) or ``<name>.finetune_weight_decay`` (every other
    kind): the paper's text / our defaults, or the authors' code's values under
    ``configs/paper_code.toml`` (``docs/differences.md``).
    """
    from gross.training.loop import RECIPES

    _check_name(name)
    kinds = tuple(_EPOCH_KEYS) + ("partial",)
    if kind not in kinds:
        raise ValueError(f"unknown recipe kind {kind!r}: expected one of {kinds}")
    if kind == "partial":
        if name != "four_layer":
            raise ValueError(f"the partial fine-tune (Table 5) is defined for the 4-layer network, not {name!r}")
        epochs = cfg["ap"]["partial_epochs"]
    else:
        epochs = cfg[name][_EPOCH_KEYS[kind]]
    key = f"{name}_{kind}" if f"{name}_{kind}" in RECIPES else f"{name}_config"
    base = RECIPES[key]
    r = base.scaled(epochs) if epochs != base.epochs else base
    decay = cfg[name]["base_weight_decay" if kind == "base" else "finetune_weight_decay"]
    return r.replace(seed=int(cfg["seed"] if seed is None else seed), padding=int(cfg[name]["augment_padding"]),
                     weight_decay=float(decay))


def build_model(cfg: Mapping, name: str) -> nn.Module:
    """A freshly initialised (seeded with ``seed``) base network."""
    from gross.models import four_layer_net, vgg16_cifar

    _check_name(name)
    torch.manual_seed(int(cfg["seed"]))
    if name == "four_layer":
        return four_layer_net()
    return vgg16_cifar(width_mult=cfg["vgg16"]["width_mult"])


def eval_kwargs(cfg: Mapping, data) -> dict:
    """Keyword arguments of the evaluation functions: batch size, device, the data's normalisation."""
    return dict(batch_size=cfg["data"]["eval_batch_size"], device=resolve_device(cfg), mean=data.mean,
                std=data.std)


def evaluate(cfg: Mapping, model, data, split: str, config=None) -> float:
    """Accuracy (%) of ``model`` (at ``config``) on ``split`` of ``data``."""
    from gross.training.loop import evaluate as _evaluate

    return _evaluate(model, data, config=config, split=split, **eval_kwargs(cfg, data))


def n_repeats(cfg: Mapping, name: str) -> int:
    """Independent decompositions + GroSS fine-tunes of ``name`` (``four_layer.repeats``; VGG-16: 1)."""
    return int(cfg["four_layer"]["repeats"]) if name == "four_layer" else 1


def true_repeats(cfg: Mapping, name: str) -> int:
    """Individual fine-tunes per configuration (``<name>.true_repeats``)."""
    return int(cfg[name]["true_repeats"])


def uniform(space: Mapping, s: int) -> tuple:
    """Uniform configuration ``s`` (capped at each layer's largest size, if it lacks ``s``)."""
    out = []
    for sizes in space.values():
        out.append(s if s in sizes else max(x for x in sizes if x <= s) if min(sizes) <= s else min(sizes))
    return tuple(out)


def uniform_configs(space: Mapping) -> list[tuple]:
    """Every distinct uniform configuration of ``space``, smallest size first."""
    sizes = sorted({s for ss in space.values() for s in ss})
    return list(dict.fromkeys(uniform(space, s) for s in sizes))


# ----------------------------------------------------------------------------- jobs (gross.runs.jobs)

def executor(cfg: Mapping):
    """The :class:`gross.runs.jobs.ExecutorSettings` of the profile's ``[executor]`` section (and ``$GROSS_EXECUTOR``).

    Every key of :data:`gross.runs.config.EXECUTOR_KEYS` is read (they are in :data:`gross.runs.config.NO_EFFECT`: no fingerprint or
    reductions line depends on them). The ``serial`` executor runs jobs in this process
    with its own thread count (``num_threads``), so it computes exactly what the step
    computed before jobs existed.
    """
    import dataclasses

    from gross.runs.config import EXECUTOR_KEYS
    from gross.runs.jobs import executor_settings

    settings = executor_settings({k: cfg["executor"][k] for k in EXECUTOR_KEYS})
    if settings.name == "serial":
        settings = dataclasses.replace(settings, threads=torch.get_num_threads())
    return settings


def networks_at_once(cfg: Mapping) -> int:
    """How many individual fine-tunes train at once (``training.networks_at_once`` on the profile's device).

    ``"auto"``: :data:`gross.training.batched.AUTO_NETWORKS` on CUDA, 1 on CPU
    (:func:`gross.training.batched.networks_at_once`). In :data:`gross.runs.config.NO_EFFECT`:
    K at once computes what one at a time computes.
    """
    from gross.training.batched import networks_at_once as _resolve

    return _resolve(cfg["training"]["networks_at_once"], resolve_device(cfg))


def precision(cfg: Mapping):
    """Context of the profile's reduced precision for training (``training.tf32`` / ``training.bf16``).

    CUDA only (:func:`gross.training.batched.precision`): on a CPU device the keys are not read,
    so they are no part of the CPU artefacts' settings; on CUDA they are (they change numbers).
    """
    from gross.training.batched import precision as _precision

    device = resolve_device(cfg)
    if device.type != "cuda":
        return _precision(device)
    return _precision(device, tf32=cfg["training"]["tf32"], bf16=cfg["training"]["bf16"])


def artefact_job(*, cfg: Mapping, target: str, args: Sequence, seed: int = 0) -> dict:
    """Job function (:class:`gross.runs.jobs.Job`): make one store artefact by calling ``target(cfg, *args)``.

    ``cfg`` is a plain dict of the resolved config, ``target`` ``"module:function"``
    (e.g. ``"gross.pipeline.finetune:true_accuracy"``). The artefact goes to the store
    (``runs/<profile>/``) as when the step calls the function itself; the job's own
    output only records that it ran. ``seed`` is used by :func:`gross.runs.jobs.execute`.
    """
    from gross.runs.config import Profile

    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    fn(Profile(dict(cfg)), *args)
    return {"target": target, "args": list(args)}


def artefact_jobs(cfg: Mapping, step: str, calls: Sequence[tuple[Callable, tuple, str]]) -> list:
    """The :class:`gross.runs.jobs.Job` of every call of ``calls`` whose artefact is not fresh (see :func:`fan_out`).

    Each job runs :func:`artefact_job` with the resolved config (without its
    ``[executor]`` section, so the executor is no part of a job's fingerprint); its
    marker goes to ``runs/<profile>/jobs/<step>/``. Duplicate artefacts give one job.
    """
    from gross.runs.jobs import Job
    from gross.runs.store import Store

    store = Store(cfg)
    plain = {k: v for k, v in cfg.to_dict().items() if k != "executor"}
    jobs: dict = {}
    for fn, args, artefact in calls:
        if artefact in jobs or store.is_fresh(artefact):
            continue
        label = artefact.replace("/", "_").rsplit(".", 1)[0]
        jobs[artefact] = Job(artefact_job, {"cfg": plain, "target": f"{fn.__module__}:{fn.__name__}",
                                            "args": list(args), "seed": int(cfg["seed"])},
                             name=label, directory=store.root / "jobs" / step)
    return list(jobs.values())


def fan_out(cfg: Mapping, step: str, calls: Sequence[tuple[Callable, tuple, str]]) -> int:
    """Make the missing artefacts of ``calls`` as independent jobs on the profile's executor.

    Parameters
    ----------
    cfg : Profile
    step : str
        Job folder ``runs/<profile>/jobs/<step>`` and progress-bar label.
    calls : sequence of (function, args, artefact)
        ``function(cfg, *args)`` makes store artefact ``artefact`` (a module-level
        function of :mod:`gross.pipeline`; ``args`` JSON-like). Calls whose artefact is
        fresh are skipped; duplicates run once.

    Returns
    -------
    int
        Jobs run (or found finished). The step then loads the artefacts as before, so
        its outputs do not depend on the executor.
    """
    from gross.runs.jobs import run_jobs

    jobs = artefact_jobs(cfg, step, calls)
    run_jobs(jobs, executor(cfg), desc=step)
    return len(jobs)
