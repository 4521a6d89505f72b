"""Training, GroSS fine-tuning and individual-configuration fine-tuning.

:func:`evaluate` is :func:`gross.search.evaluation.accuracy` (the one accuracy path,
re-exported here); ``device=None`` means CUDA when available, else CPU
(:func:`gross.utils.resolve_device`). All loops share one engine: SGD with momentum, a per-epoch ``MultiStepLR``
schedule, cross-entropy loss, whole-split tensor batches (moved once to the
training device), a tqdm bar that is quiet when not on a terminal, atomic
checkpoints that make ``resume=True`` bitwise identical to an uninterrupted run on
CPU, and a clear error on a non-finite loss.

Normalisation: the training functions normalise with ``recipe.mean`` /
``recipe.std`` (per-model, see :data:`RECIPES`); :func:`evaluate` uses its
``mean`` / ``std`` arguments, falling back to ``data.mean`` / ``data.std``. For the
CIFAR VGG-16 (std 0.225) evaluate with ``mean=recipe.mean, std=recipe.std`` or use
``data.with_normalization(recipe.mean, recipe.std)``.

Recipes (the paper's schedules): :mod:`gross.training.recipes` (``Recipe``, ``RECIPES``, re-exported here).
"""

from __future__ import annotations

import math
import pickle
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from gross.data import Dataset, batches
from gross.method.decomposition import export, get_config, gross_layers, search_space, set_config
from gross.search.evaluation import _model_dtype
from gross.search.evaluation import accuracy as evaluate
from gross.method.space import SearchSpace, config_str
from gross.training.recipes import RECIPES, Recipe, _recipe_dict  # noqa: F401  (_recipe_dict: gross.training.distributed, gross.training.batched)
from gross.utils import atomic_save, resolve_device
from gross.utils.sealed import load_sealed, seal

__all__ = [
    "SAMPLER_SEED_OFFSET",
    "group_size_sampler",
    "Recipe",
    "RECIPES",
    "TrainingDivergedError",
    "train_base",
    "finetune_gross",
    "finetune_config",
    "evaluate",
    "load_checkpoint",
    "uniform_configs",
    "draw_config",
]

_CHECKPOINT_FORMAT = "gross-train-checkpoint"
_CHECKPOINT_VERSION = 1


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------- helpers
def _signature(model: nn.Module) -> list:
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def _set_bn_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def uniform_configs(model: nn.Module) -> "OrderedDict[str, tuple[int, ...]]":
    """The smallest (``min``) and largest (``max``) group size in every decomposed layer."""
    space = SearchSpace.from_model(model)
    return OrderedDict(min=space.min_config(), max=space.max_config())


def _check_config(model: nn.Module, config) -> tuple[int, ...]:
    """``config`` validated against the model's search space (also used by gross.training.batched)."""
    return SearchSpace.from_model(model).validate(config)


def _track_dict(model: nn.Module, track_configs) -> "OrderedDict[str, tuple[int, ...]]":
    if track_configs is None:
        return uniform_configs(model)
    if isinstance(track_configs, Mapping):
        return OrderedDict((str(k), _check_config(model, v)) for k, v in track_configs.items())
    configs = [_check_config(model, c) for c in track_configs]
    return OrderedDict((config_str(c, sep="-"), c) for c in configs)


# ----------------------------------------------------------------------------- checkpoints
def load_checkpoint(path, model: nn.Module | None = None) -> dict:
    """Read a training checkpoint (and load its weights into ``model`` when given).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is truncated, corrupt or not a gross training checkpoint, or its
        weights do not fit ``model``.
    """
    path = Path(path)
    state = load_sealed(path, _CHECKPOINT_FORMAT, "training checkpoint",
                        "delete it or call again with resume=False to start over")
    if model is not None:
        _check_signature(state, model, path)
        model.load_state_dict(state["model"])
    return state


def _check_signature(state: dict, model: nn.Module, path: Path) -> None:
    ours, theirs = _signature(model), state.get("signature")
    if ours != theirs:
        ours_d, theirs_d = dict((k, tuple(s)) for k, s in ours), dict((k, tuple(s)) for k, s in theirs or [])
        diff = sorted(set(ours_d.items()) ^ set(theirs_d.items()))[:4]
        raise ValueError(
            f"checkpoint {path} was written for a different model (state_dict keys/shapes differ, e.g. {diff}); "
            "use the matching model, another run_dir, or resume=False"
        )


# ----------------------------------------------------------------------------- the engine
@dataclass
class _Job:
    kind: str                     # "base" | "gross" | "config"
    model: nn.Module
    params: list
    bn_eval: bool
    name: str
    sampler_layers: list          # [(GroSSConv2d, sizes)] for GroSS
    track: "OrderedDict[str, tuple[int, ...]]"
    config: tuple | None = None
    channels_last: bool = False


def _apply_train_mode(model: nn.Module, bn_eval: bool) -> None:
    """Training mode, with batch norm kept in eval mode when ``bn_eval`` (also used by gross.training.batched)."""
    model.train()
    if bn_eval:
        _set_bn_eval(model)


def _set_trainable(model: nn.Module, layers=None) -> list:
    """Only the parameters of submodules ``layers`` (every one when ``None``) require grad; returns them.

    The freezing rule of every training function here (also used by gross.training.batched).
    """
    keep = None if layers is None else {id(p) for n in layers for p in model.get_submodule(n).parameters()}
    for p in model.parameters():
        p.requires_grad_(keep is None or id(p) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def _history_row(epoch: int, lr: float, loss: float, acc: float, val: dict, history: list, seconds: float,
                 seen: int, train_s: float) -> dict:
    """One epoch's history row (``val``: the validation columns; ``history``: the rows before it)."""
    best = max([r["val_acc"] for r in history] + [val["val_acc"]])
    return {"epoch": epoch, "lr": lr, "train_loss": loss, "train_acc": acc, **val, "best_val_acc": best,
            "seconds": seconds, "images_per_s": seen / train_s if train_s > 0 else float("nan")}


#: Offset of the group-size sampler's seed from the recipe's seed (:func:`group_size_sampler`), so
#: the configurations drawn never share a stream with the data order (seeded ``recipe.seed``).
SAMPLER_SEED_OFFSET = 1_000_003


def group_size_sampler(recipe: Recipe) -> torch.Generator:
    """The generator a GroSS fine-tune with ``recipe`` draws its configurations from (:func:`draw_config`).

    Seeded ``recipe.seed + SAMPLER_SEED_OFFSET``; its state is checkpointed with the run.
    """
    return torch.Generator().manual_seed(recipe.seed + SAMPLER_SEED_OFFSET)


def draw_config(layers: Sequence[tuple[nn.Module, Sequence[int]]], sampler: torch.Generator) -> tuple[int, ...]:
    """Set one group size per ``(GroSS layer, sizes)``, uniformly from ``sampler``; return them.

    One ``torch.rand`` of ``len(layers)`` numbers per call, so generators with the same
    state draw the same configuration (every DDP rank, :mod:`gross.training.distributed`).
    """
    u = torch.rand(len(layers), generator=sampler).tolist()
    config = tuple(sizes[min(int(ui * len(sizes)), len(sizes) - 1)] for (_, sizes), ui in zip(layers, u))
    for (layer, _), s in zip(layers, config):
        layer.group_size = s
    return config


def _run_epoch(job, recipe, data, optimizer, data_rng, sampler, device, epoch, bar_disabled, last_ckpt):
    """One pass over the training split; returns (mean loss, accuracy %, images, seconds).

    With ``job.channels_last`` the weights and batches are in ``torch.channels_last``
    layout for the epoch only (the model is back in the default layout afterwards, so
    validation, checkpoints and the returned model are those of the plain path).
    """
    if not job.channels_last:
        return _epoch_pass(job, recipe, data, optimizer, data_rng, sampler, device, epoch, bar_disabled, last_ckpt)
    job.model.to(memory_format=torch.channels_last)
    try:
        return _epoch_pass(job, recipe, data, optimizer, data_rng, sampler, device, epoch, bar_disabled, last_ckpt)
    finally:
        job.model.to(memory_format=torch.contiguous_format)


def _epoch_pass(job, recipe, data, optimizer, data_rng, sampler, device, epoch, bar_disabled, last_ckpt):
    _apply_train_mode(job.model, job.bn_eval)
    dtype = _model_dtype(job.model)  # float32 batches; float64 models (the tests) get float64 ones
    layout = torch.channels_last if job.channels_last else torch.preserve_format
    n = len(data.train)
    n_batches = math.ceil(n / recipe.batch_size)
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = 0
    seen = 0
    t0 = time.perf_counter()
    it = batches(data.train, recipe.batch_size, shuffle=True, augment=recipe.augment, mean=recipe.mean,
                 std=recipe.std, device=device, generator=data_rng, padding=recipe.padding)
    with tqdm(it, total=n_batches, desc=f"epoch {epoch}", leave=False, disable=bar_disabled,
              unit="batch") as bar:
        for i, (x, y) in enumerate(bar, start=1):
            x = x.to(dtype=dtype, memory_format=layout)
            if job.sampler_layers:
                draw_config(job.sampler_layers, sampler)
            logits = job.model(x)
            loss = F.cross_entropy(logits, y)
            stats = torch.stack([loss.detach().double(), (logits.argmax(1) == y).sum().double()]).tolist()
            if not math.isfinite(stats[0]):
                where = f"the last good checkpoint {last_ckpt} is kept" if last_ckpt else "no checkpoint was written yet"
                raise TrainingDivergedError(
                    f"training loss became {stats[0]} at epoch {epoch}, iteration {i} of {n_batches} "
                    f"({job.name}, lr {optimizer.param_groups[0]['lr']:g}); {where}. Lower the learning rate "
                    "or check the data/model"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            b = len(y)
            total_loss += stats[0] * b
            correct += int(stats[1])
            seen += b
            if not bar.disable:
                bar.set_postfix(loss=f"{stats[0]:.3f}", acc=f"{100 * correct / seen:.1f}",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    seconds = time.perf_counter() - t0
    return float(total_loss) / max(seen, 1), 100.0 * correct / max(seen, 1), seen, seconds


def _validate(job: _Job, data: Dataset, recipe: Recipe, device) -> dict:
    if job.kind != "gross":
        return {"val_acc": evaluate(job.model, data, split="val", device=device, mean=recipe.mean, std=recipe.std)}
    row = {}
    for label, cfg in job.track.items():
        row[f"val_acc_{label}"] = evaluate(job.model, data, config=cfg, split="val", device=device,
                                           mean=recipe.mean, std=recipe.std)
    row["val_acc"] = sum(row.values()) / len(row)
    return row


def _check_fit_inputs(data: Dataset, recipe: Recipe, run_dir, resume: bool) -> None:
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a gross.training.loop.Recipe (e.g. RECIPES['four_layer_base']), got {recipe!r}")
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a gross.data.Dataset (cifar10(), synthetic(), imagenet()), got {type(data)}")
    if len(data.train) == 0:
        raise ValueError("the training split is empty")
    if resume and run_dir is None:
        raise ValueError("resume=True needs run_dir (where the checkpoint is)")


def _resume_state(ckpt: Path, job: _Job, recipe: Recipe) -> dict:
    """The checkpoint to resume from, checked against this run (before anything changes)."""
    state = load_checkpoint(ckpt)  # ValueError on corrupt files
    _check_signature(state, job.model, ckpt)
    if state.get("recipe") != _recipe_dict(recipe):
        raise ValueError(
            f"checkpoint {ckpt} was written with a different recipe {state.get('recipe')}; "
            f"this call uses {_recipe_dict(recipe)}. Use the same recipe, another run_dir, or resume=False"
        )
    if state.get("kind") != job.kind or state.get("config") != (list(job.config) if job.config else None):
        raise ValueError(
            f"checkpoint {ckpt} is a {state.get('kind')!r} run at config {state.get('config')}, not a "
            f"{job.kind!r} run at {job.config}; use another run_dir or name, or resume=False"
        )
    return state


class _Optim:
    """Optimiser, schedule and the two seeded generators of a run, with checkpoint (de)serialisation."""

    def __init__(self, job: _Job, recipe: Recipe, device: torch.device):
        self.job, self.recipe, self.device = job, recipe, device
        self.optimizer = torch.optim.SGD(job.params, lr=recipe.lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(recipe.milestones),
                                                              gamma=recipe.gamma)
        self.data_rng = torch.Generator().manual_seed(recipe.seed)
        self.sampler = group_size_sampler(recipe)
        self.cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []

    def load(self, state: dict) -> tuple[list, int]:
        """Restore weights, optimiser, schedule and every generator; returns ``(history, epoch)``."""
        self.job.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.data_rng.set_state(state["data_rng"])
        self.sampler.set_state(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.cuda_devices and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return list(state["history"]), int(state["epoch"])

    def save(self, ckpt: Path, epoch: int, history: list) -> None:
        job = self.job
        atomic_save(seal({
            "format": _CHECKPOINT_FORMAT, "version": _CHECKPOINT_VERSION, "kind": job.kind,
            "name": job.name, "epoch": epoch, "recipe": _recipe_dict(self.recipe),
            "config": list(job.config) if job.config else None,
            "signature": _signature(job.model), "model": job.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "data_rng": self.data_rng.get_state(), "sampler_rng": self.sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.cuda_devices else None,
            "history": history,
        }, _CHECKPOINT_FORMAT), ckpt)


def _epochs(job: _Job, data: Dataset, recipe: Recipe, opt: _Optim, history: list, start: int, ckpt, every: int,
            progress, last_ckpt) -> None:
    """Epochs ``start + 1 .. recipe.epochs``: train, step the schedule, validate, checkpoint."""
    bar_disabled = None if progress is None else not progress  # None: tqdm shows bars on a terminal only
    with tqdm(range(start + 1, recipe.epochs + 1), initial=start, total=recipe.epochs, desc=job.name,
              disable=bar_disabled, unit="epoch") as bar:
        for epoch in bar:
            lr = opt.optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            loss, acc, seen, train_s = _run_epoch(job, recipe, data, opt.optimizer, opt.data_rng, opt.sampler,
                                                  opt.device, epoch, bar_disabled, last_ckpt)
            opt.scheduler.step()
            val = _validate(job, data, recipe, opt.device)
            row = _history_row(epoch, lr, loss, acc, val, history, time.perf_counter() - t0, seen, train_s)
            history.append(row)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.1f}", val=f"{val['val_acc']:.1f}",
                            img_s=f"{row['images_per_s']:.0f}")
            if ckpt is not None and (epoch == recipe.epochs or (every and epoch % every == 0)):
                opt.save(ckpt, epoch, history)
                last_ckpt = ckpt


def _fit(job: _Job, data: Dataset, recipe: Recipe, *, run_dir, resume, device, checkpoint_every,
         progress, channels_last) -> pd.DataFrame:
    _check_fit_inputs(data, recipe, run_dir, resume)
    every = recipe.checkpoint_every if checkpoint_every is None else int(checkpoint_every)
    device = resolve_device(device)
    job.channels_last = device.type == "cpu" if channels_last is None else bool(channels_last)
    ckpt = Path(run_dir) / f"{job.name}.pt" if run_dir is not None else None
    state = _resume_state(ckpt, job, recipe) if resume and ckpt.exists() else None

    job.model.to(device)
    data = data.to(device)
    initial_config = get_config(job.model) if job.sampler_layers else None
    opt = _Optim(job, recipe, device)
    history, start = [], 0
    with torch.random.fork_rng(devices=opt.cuda_devices):
        torch.manual_seed(recipe.seed)
        if state is not None:
            history, start = opt.load(state)
        try:
            _epochs(job, data, recipe, opt, history, start, ckpt, every, progress,
                    ckpt if state is not None else None)
        finally:
            if initial_config is not None:
                set_config(job.model, initial_config)
    job.model.eval()
    return pd.DataFrame(history)


# ----------------------------------------------------------------------------- public API
def train_base(model: nn.Module, data: Dataset, recipe: Recipe, *, run_dir=None, resume: bool = False,
               device=None, checkpoint_every: int | None = None, progress: bool | None = None,
               name: str | None = None, channels_last: bool | None = None) -> pd.DataFrame:
    """Train every parameter of ``model`` (base network training).

    Parameters
    ----------
    model : nn.Module
        Moved to ``device`` and trained in place; left in eval mode.
    data : gross.data.Dataset
        Training uses ``data.train``, per-epoch accuracy ``data.val`` (never test).
    recipe : Recipe
        E.g. ``RECIPES["four_layer_base"]`` or ``RECIPES["vgg16_base"]``.
    run_dir : path-like, optional
        Where ``<name>.pt`` checkpoints go (none when omitted).
    resume : bool
        Continue from ``run_dir/<name>.pt`` if it exists (start fresh otherwise).
    device : torch.device or str, optional
        Default: CUDA when available, else CPU.
    checkpoint_every : int, optional
        Overrides ``recipe.checkpoint_every`` (0: only at the end).
    progress : bool, optional
        Show tqdm bars; ``None`` shows them only on a terminal.
    name : str, optional
        Checkpoint stem (default ``recipe.name``).
    channels_last : bool, optional
        Train in ``torch.channels_last`` layout (weights and batches, for the epochs
        only). ``None``: on CPU, where the training step is 1.06-1.57x faster
        (``make bench``, group ``train_layout``); the default layout elsewhere. The
        result differs from the default layout's in the last bits only.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch, lr, train_loss, train_acc, val_acc, best_val_acc,
        seconds, images_per_s``. The model keeps the last epoch's weights.

    Raises
    ------
    TrainingDivergedError
        A NaN/inf loss (the last good checkpoint is kept).
    ValueError
        Bad recipe/data, or a checkpoint that is corrupt or does not match.
    """
    job = _Job("base", model, _set_trainable(model), bn_eval=False, name=name or recipe.name,
               sampler_layers=[], track=OrderedDict())
    return _fit(job, data, recipe, run_dir=run_dir, resume=resume, device=device,
                checkpoint_every=checkpoint_every, progress=progress, channels_last=channels_last)


def finetune_gross(model: nn.Module, data: Dataset, recipe: Recipe, *, run_dir=None, resume: bool = False,
                   device=None, checkpoint_every: int | None = None, progress: bool | None = None,
                   channels_last: bool | None = None, name: str | None = None, track_configs=None) -> pd.DataFrame:
    """GroSS fine-tuning: train all group sizes of a decomposed network simultaneously (Sec. 3.3, 4.4).

    Only the parameters of the GroSS layers are trained (every other parameter gets
    ``requires_grad=False``); batch norm stays in eval mode. Every iteration draws one
    group size per decomposed layer uniformly from a single seeded ``torch.Generator``
    whose state is checkpointed. The model's active configuration is restored at the end;
    the ``requires_grad`` flags stay as set (GroSS parameters only).

    Parameters
    ----------
    model : nn.Module
        A GroSS-decomposed model (:func:`gross.method.decomposition.decompose`).
    track_configs : list of configs or dict of label -> config, optional
        Configurations whose validation accuracy is recorded every epoch as
        ``val_acc_<label>`` (label = ``"1-4-16"`` for a list). Default: the smallest
        (``min``) and largest (``max``) uniform configurations.
    data, recipe, run_dir, resume, device, checkpoint_every, progress, name, channels_last
        As in :func:`train_base` (recipes ``four_layer_gross``, ``vgg16_gross``, ...).

    Returns
    -------
    pandas.DataFrame
        As :func:`train_base`, plus ``val_acc_<label>`` per tracked configuration;
        ``val_acc`` is their mean.
    """
    layers = gross_layers(model)
    if not layers:
        raise ValueError("finetune_gross needs a GroSS-decomposed model; call gross.method.decomposition.decompose first")
    track = _track_dict(model, track_configs)
    params = _set_trainable(model, list(layers))
    space = search_space(model)
    job = _Job("gross", model, params, bn_eval=True, name=name or recipe.name,
               sampler_layers=[(layers[n], tuple(space[n])) for n in space], track=track)
    return _fit(job, data, recipe, run_dir=run_dir, resume=resume, device=device,
                checkpoint_every=checkpoint_every, progress=progress, channels_last=channels_last)


def finetune_config(model: nn.Module, config, data: Dataset, recipe: Recipe, *, run_dir=None,
                    resume: bool = False, device=None, checkpoint_every: int | None = None,
                    progress: bool | None = None, name: str | None = None, channels_last: bool | None = None):
    """Conventional fine-tuning of one configuration (the "true" accuracy, Sec. 4.4).

    ``model`` (a freshly GroSS-decomposed network, i.e. the exact BTD at every size) is
    exported at ``config`` to a plain network with P/R/Q bottlenecks, which is trained:
    only the bottleneck convolutions when ``recipe.freeze`` (CIFAR; batch norm in eval
    mode), everything otherwise (ImageNet). ``model`` itself is not modified.

    Parameters
    ----------
    config : sequence of int or dict of layer name -> int
        One group size per decomposed layer (:func:`gross.method.decomposition.search_space` order).
    data, recipe, run_dir, resume, device, checkpoint_every, progress, channels_last
        As in :func:`train_base`.
    name : str, optional
        Checkpoint stem (default ``"<recipe.name>-<config>"``, e.g. ``four_layer_config-4-8-16``).

    Returns
    -------
    (nn.Module, pandas.DataFrame)
        The trained exported network and its history (columns as :func:`train_base`).
    """
    config = _check_config(model, config)
    layer_names = list(gross_layers(model))
    net = export(model, config)
    params = _set_trainable(net, layer_names if recipe.freeze else None)
    job = _Job("config", net, params, bn_eval=recipe.freeze, name=name or f"{recipe.name}-{config_str(config, sep='-')}",
               sampler_layers=[], track=OrderedDict(), config=config)
    history = _fit(job, data, recipe, run_dir=run_dir, resume=resume, device=device,
                   checkpoint_every=checkpoint_every, progress=progress, channels_last=channels_last)
    return net, history
