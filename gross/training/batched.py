"""Train K networks of one architecture at once (``torch.func`` + ``vmap``), for GPUs.

A small network (the paper's 4-layer net: ~10 MFLOPs per image) uses a tiny fraction
of a GPU; most of a step is kernel-launch and Python overhead. Stacking the
parameters of K networks (:func:`torch.func.stack_module_state`) and running one
``vmap``-ed ``functional_call`` + ``grad`` per step turns K small launches into one
batched launch (convolutions become grouped convolutions over the K networks) with the
same arithmetic.

Each network is trained exactly as :mod:`gross.training.loop` would train it alone:

- its own data order and augmentation: a ``torch.Generator`` seeded with its
  recipe's seed feeds :func:`gross.data.batches`, as in ``gross.training.loop``;
- its own dropout masks, drawn from a generator seeded with its recipe's seed, in the
  same order and with the same ``bernoulli_`` call as ``nn.Dropout`` on the global
  generator that ``gross.training.loop`` seeds (bitwise the same masks on CPU; on CUDA
  ``F.dropout`` uses a fused Philox kernel, so masks differ from a lone CUDA run but
  have the same distribution);
- SGD with momentum and weight decay written out as ``torch.optim.SGD`` computes it
  (``d = g + wd·p``; ``b = d`` at the first step, then ``b = m·b + d``; ``p -= lr·b``),
  and the ``MultiStepLR`` schedule per epoch.

Networks of *different* configurations of one GroSS model are packed into one
architecture (:func:`finetune_configs`): each grouped ``R`` becomes a dense convolution
whose off-block weights are zero and get no gradient (a 0/1 gradient mask), so the
values are those of the grouped network; the dense ``R`` does ``width / s`` times the
grouped arithmetic, which the launch-bound small networks on a GPU should hide (not yet
measured). Batching packs the K networks' convolutions into grouped convolutions inside
``vmap`` already, so a hand-written grouped-convolution packing would compute the same.

Tested (CPU, float64, same data order): the weights equal those of training each
network alone with :mod:`gross.training.loop` in the default memory layout (``channels_last=False``;
its CPU default, channels-last, differs in the last bits only) within 1e-10. What differs: the loss is checked
for NaN/inf once per epoch (no per-step host synchronisation), and models with batch
norm must keep it in eval mode (``bn_eval=True``, as the CIFAR fine-tunes do).

The pipeline trains its individual fine-tunes K at a time through :func:`finetune_many`
(``[training] networks_at_once``, :func:`networks_at_once`; :func:`gross.pipeline.finetune.make_individuals`),
with ``on_nonfinite="isolate"``: a network whose loss goes NaN is reported by name after the
others finished. Each step feeds all K networks from one gather and one crop/flip
(:func:`gross.data.stacked_batches`), the epoch's random draws of every network copied to the
device once.

Which path is used (``method="auto"``): ``vmap`` on CUDA, ``sequential`` (plain
:mod:`gross.training.loop`, one network after the other) on CPU, where ``vmap`` over 8
networks measured ~4x slower than sequential training on this project's 2-core
machine. The GPU speed-up has not been measured yet (no GPU in the session that wrote
this module); the benchmark groups ``batched`` and ``packed`` (:mod:`gross.bench.jobs`, run with
``python -m gross.bench --only batched,packed``) measure it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import time
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap
from tqdm import tqdm

from gross.data import Dataset, batches, stacked_batches
from gross.training.loop import (TrainingDivergedError, _apply_train_mode, _check_config, _history_row, _recipe_dict,
                    _set_trainable, evaluate, finetune_config, train_base)
from gross.utils import atomic_save, resolve_device
from gross.utils.sealed import load_sealed, seal

__all__ = ["METHODS", "AUTO_NETWORKS", "NetworksDivergedError", "choose_method", "networks_at_once",
           "network_bytes", "largest_k_that_fits", "precision", "train_stacked", "train_bases", "finetune_configs",
           "finetune_many", "read_checkpoint"]

#: Values of ``method``.
METHODS = ("auto", "vmap", "sequential")
_CKPT_FORMAT = "gross-batched-checkpoint"
#: Networks trained at once on CUDA when the setting is ``"auto"`` (before the memory cap of
#: :func:`largest_k_that_fits`); the K-sweep of ``scripts/device_gpu.sh`` measures 1/8/32/64.
AUTO_NETWORKS = 64


class NetworksDivergedError(TrainingDivergedError):
    """Some of the K networks trained together reached a NaN/inf loss; the others finished.

    ``indices`` are the diverged networks' positions, ``epochs`` the epoch each one
    diverged in, ``histories`` every network's history (those of the diverged ones end
    in NaN). The models are trained in place, so the finished ones can be kept.
    """

    def __init__(self, message: str, indices: list, epochs: list, histories: list):
        super().__init__(message)
        self.indices, self.epochs, self.histories = list(indices), list(epochs), list(histories)


def choose_method(method: str, device) -> str:
    """``"vmap"`` or ``"sequential"``: ``auto`` is ``vmap`` on CUDA and ``sequential`` on CPU."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are {METHODS}")
    if method != "auto":
        return method
    return "vmap" if torch.device(device).type == "cuda" else "sequential"


def networks_at_once(setting, device) -> int:
    """How many networks to train at once: ``setting`` (``"auto"`` or a positive int) on ``device``.

    ``"auto"`` is :data:`AUTO_NETWORKS` on CUDA and 1 (one network after the other,
    :mod:`gross.training.loop`) on CPU, where ``vmap`` measured ~4x slower than training
    the networks one by one. An int is used as given (``> 1`` forces the K-at-once path,
    also on CPU: the tests do).

    Raises
    ------
    ValueError
        Anything but ``"auto"`` or a positive integer.
    """
    if setting == "auto":
        return AUTO_NETWORKS if torch.device(device).type == "cuda" else 1
    if isinstance(setting, bool) or not isinstance(setting, numbers.Integral) or setting < 1:
        raise ValueError(f"networks_at_once must be 'auto' or a positive integer (1 = one at a time), "
                         f"got {setting!r}")
    return int(setting)


def network_bytes(model: nn.Module, batch_size: int, image_shape=(3, 32, 32)) -> int:
    """Estimated device memory (bytes) one network of ``model``'s architecture needs in :func:`train_stacked`.

    Parameters, gradients, momentum and a gradient mask (4 copies of the weights), plus
    every module's output for a batch of ``batch_size`` images three times (the saved
    activations, their gradients and the workspace of the batched convolutions), in the
    model's dtype. An estimate for choosing K (:func:`largest_k_that_fits`), not a bound.
    """
    dtype = next(iter(model.parameters())).dtype
    size = torch.empty((), dtype=dtype).element_size()
    outputs = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel()))
             for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            p = next(iter(model.parameters()))
            model(torch.zeros((1, *image_shape), dtype=dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    weights = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return int((4 * weights + 3 * sum(outputs) * batch_size) * size)


def largest_k_that_fits(model: nn.Module, batch_size: int, free_bytes: int, fraction: float = 0.8,
                        image_shape=(3, 32, 32)) -> int:
    """The most networks of ``model``'s architecture that :func:`train_stacked` fits in ``fraction * free_bytes``.

    Raises
    ------
    ValueError
        Not even one network fits (names the estimate and the free memory).
    """
    need = network_bytes(model, batch_size, image_shape)
    k = int(fraction * free_bytes) // max(need, 1)
    if k < 1:
        raise ValueError(f"one network needs about {need / 2**20:.1f} MiB (batch {batch_size}) but only "
                         f"{fraction * free_bytes / 2**20:.1f} MiB of device memory is usable; free memory or "
                         "lower the batch size")
    return k


@contextlib.contextmanager
def precision(device, tf32: bool = False, bf16: bool = False):
    """CUDA reduced precision for the block: TF32 matmuls/convolutions and/or bf16 autocast.

    Both are off by default (the paper's float32) and change results in the last bits (TF32)
    or more (bf16), so they are settings (``[training] tf32`` / ``bf16``) whose accuracy
    effect must be measured before a profile turns them on. On a CPU device they do
    nothing (CUDA only). The previous TF32 flags are restored afterwards.
    """
    for key, value in (("tf32", tf32), ("bf16", bf16)):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}")
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class _FedDropout(nn.Module):
    """Stands in for ``nn.Dropout`` in the stacked model: multiplies by a given mask."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.mask = None
        self.shape = None

    def forward(self, x):
        if self.mask is None:  # shape probe / evaluation
            self.shape = tuple(x.shape[1:])
            return x
        return x * self.mask


def _skeleton(model: nn.Module, device) -> tuple[nn.Module, list]:
    skel = copy.deepcopy(model).to(device)
    drops = []
    for name, m in list(skel.named_modules()):
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError(f"batched training needs batch norm in eval mode (module {name!r}); "
                             "pass bn_eval=True or use method='sequential'")
        if isinstance(m, nn.Dropout):
            fed = _FedDropout(m.p)
            parent, _, child = name.rpartition(".")
            setattr(skel.get_submodule(parent) if parent else skel, child, fed)
            drops.append(fed)
        elif isinstance(m, (nn.AlphaDropout, nn.Dropout2d, nn.Dropout3d, nn.Dropout1d, nn.FeatureAlphaDropout)):
            raise ValueError(f"batched training supports nn.Dropout only, got {type(m).__name__} at {name!r}")
    return skel, drops


def _check_inputs(models, recipes):
    if len(models) < 1 or len(models) != len(recipes):
        raise ValueError(f"need one recipe per model and at least one model, got {len(models)} models and "
                         f"{len(recipes)} recipes")
    sig = [(k, tuple(v.shape), v.dtype) for k, v in models[0].state_dict().items()]
    for i, m in enumerate(models[1:], start=1):
        if [(k, tuple(v.shape), v.dtype) for k, v in m.state_dict().items()] != sig:
            raise ValueError(f"model {i} differs in parameters/shapes/dtypes from model 0; batched training "
                             "needs K networks of one architecture")
    shared = _recipe_dict(recipes[0].replace(seed=0, name=""))
    for i, r in enumerate(recipes):
        if _recipe_dict(r.replace(seed=0, name="")) != shared:
            raise ValueError(f"recipe {i} differs from recipe 0 in more than seed/name ({r} vs {recipes[0]}); "
                             "batch networks that share a schedule")


class _Stack:
    """The K networks' stacked state, per-network generators and SGD momentum buffers."""

    def __init__(self, models, recipes, device, trainable):
        self.K = len(models)
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.train = {k: v.detach() for k, v in params.items() if k in trainable}
        self.frozen = {k: v.detach() for k, v in params.items() if k not in trainable}
        self.buffers = buffers
        self.momentum = {k: None for k in self.train}
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        self.data_rngs = [torch.Generator().manual_seed(r.seed) for r in recipes]
        self.drop_rngs = [torch.Generator(device=gen_device).manual_seed(r.seed) for r in recipes]

    def state(self) -> dict:
        return {"train": self.train, "frozen": self.frozen, "buffers": self.buffers, "momentum": self.momentum,
                "data_rngs": [g.get_state() for g in self.data_rngs],
                "drop_rngs": [g.get_state() for g in self.drop_rngs]}

    def load(self, state: dict, device) -> None:
        def to(d):
            return {k: (v.to(device) if v is not None else None) for k, v in d.items()}

        self.train, self.frozen, self.buffers = to(state["train"]), to(state["frozen"]), to(state["buffers"])
        self.momentum = to(state["momentum"])
        for g, s in zip(self.data_rngs, state["data_rngs"]):
            g.set_state(s)
        for g, s in zip(self.drop_rngs, state["drop_rngs"]):
            g.set_state(s)

    def write_back(self, models) -> None:
        with torch.no_grad():
            for i, m in enumerate(models):
                named = dict(m.named_parameters())
                named.update(dict(m.named_buffers()))
                for src in (self.train, self.frozen, self.buffers):
                    for k, v in src.items():
                        named[k].copy_(v[i])


def _sgd(stack: _Stack, grads: dict, lr: float, momentum: float, weight_decay: float, masks: dict) -> None:
    """``torch.optim.SGD`` (single-tensor path, no dampening/nesterov) on the stacked parameters.

    ``masks`` (0/1 per entry) zero the gradient of packed entries that must stay zero.
    """
    for k, p in stack.train.items():
        d = grads[k] if k not in masks else grads[k] * masks[k]
        if weight_decay != 0:
            d = d.add(p, alpha=weight_decay)
        if momentum != 0:
            buf = stack.momentum[k]
            if buf is None:
                buf = stack.momentum[k] = torch.clone(d).detach()
            else:
                buf.mul_(momentum).add_(d)
            d = buf
        p.add_(d, alpha=-lr)


def _step_fn(skel: nn.Module, drops: list):
    def loss(train, frozen, buffers, x, y, masks):
        for fed, mask in zip(drops, masks):
            fed.mask = mask
        try:
            logits = functional_call(skel, ({**train, **frozen}, buffers), (x,))
        finally:
            for fed in drops:
                fed.mask = None
        value = F.cross_entropy(logits, y)
        return value, (value.detach(), (logits.argmax(1) == y).sum())

    return vmap(grad(loss, has_aux=True))


def _dropout_masks(stack: _Stack, drops: list, b: int, dtype, device) -> list:
    """Per-dropout-layer ``K x b x ...`` masks, each network from its own generator (as ``nn.Dropout``)."""
    out = []
    for fed in drops:
        per = [torch.empty((b, *fed.shape), dtype=dtype, device=device).bernoulli_(1 - fed.p, generator=g)
               .div_(1 - fed.p) for g in stack.drop_rngs]
        out.append(torch.stack(per))
    return out


def _epoch(stack, step, drops, data, recipe, lr, device, dtype, grad_masks):
    # the K networks' batches in one gather + one crop/flip per step (gross.data.stacked_batches), each network's
    # draws those gross.training.loop makes with its generator
    its = stacked_batches(data.train, recipe.batch_size, stack.data_rngs, shuffle=True, augment=recipe.augment,
                          mean=recipe.mean, std=recipe.std, device=device, padding=recipe.padding)
    total = torch.zeros(stack.K, dtype=torch.float64, device=device)
    correct = torch.zeros(stack.K, dtype=torch.int64, device=device)
    seen = 0
    for x, y in its:
        x = x.to(dtype)  # float64 models get float64 batches, as in gross.training.loop
        b = y.shape[1]
        drop_masks = _dropout_masks(stack, drops, b, dtype, device)
        grads, (losses, right) = step(stack.train, stack.frozen, stack.buffers, x, y, drop_masks)
        _sgd(stack, grads, lr, recipe.momentum, recipe.weight_decay, grad_masks)
        total += losses.double() * b
        correct += right
        seen += b
    return total / max(seen, 1), 100.0 * correct.double() / max(seen, 1), seen


def read_checkpoint(path) -> dict:
    """A :func:`train_stacked` checkpoint (sealed: plain data, checksum verified; :mod:`gross.utils.sealed`)."""
    return load_sealed(path, _CKPT_FORMAT, "batched checkpoint", "delete it or pass resume=False")


def _resume(stack: _Stack, ckpt: Path, recipes, device):
    """Load a :func:`train_stacked` checkpoint into ``stack``; returns (histories, epoch, lr)."""
    state = read_checkpoint(ckpt)  # generator states stay on the CPU
    if state.get("recipes") != [_recipe_dict(r) for r in recipes]:
        raise ValueError(f"{ckpt} is not a batched checkpoint of these recipes; delete it or pass resume=False")
    stack.load(state["stack"], device)
    return state["histories"], state["epoch"], state["lr"]


def _grad_masks(grad_masks: dict | None, stack: _Stack, device, dtype) -> dict:
    """``grad_masks`` on the device, checked to name trainable parameters only."""
    masks = {k: v.to(device=device, dtype=dtype) for k, v in (grad_masks or {}).items()}
    unknown = sorted(set(masks) - set(stack.train))
    if unknown:
        raise ValueError(f"grad_masks name {unknown}, which are not trainable parameters of the models")
    return masks


def _check_finite(losses: torch.Tensor, epoch: int, name: str, lr: float) -> None:
    """Raise :class:`gross.training.loop.TrainingDivergedError` naming the networks whose epoch loss is NaN/inf."""
    if not torch.isfinite(losses).all():
        bad = [i for i, v in enumerate(losses.tolist()) if not math.isfinite(v)]
        raise TrainingDivergedError(f"training loss of networks {bad} became non-finite in epoch {epoch} "
                                    f"({name}, lr {lr:g}); lower the learning rate or check the data/model")


def train_stacked(models: Sequence[nn.Module], data: Dataset, recipes: Sequence, *, bn_eval: bool = False,
                  device=None, run_dir=None, resume: bool = False, name: str = "batched",
                  progress: bool | None = None, grad_masks: dict | None = None,
                  on_nonfinite: str = "raise") -> list[pd.DataFrame]:
    """Train ``models`` (one architecture) together with ``vmap``; each as ``gross.training.loop`` would alone.

    Parameters
    ----------
    models : sequence of nn.Module
        Trained in place (their parameters with ``requires_grad=True``; the others stay
        fixed); left in eval mode.
    data : gross.data.Dataset
    recipes : sequence of gross.training.loop.Recipe
        One per model, equal except ``seed`` (and ``name``).
    bn_eval : bool
        Batch norm in eval mode during training (required when the models have any).
    device : torch.device or str, optional
        Default: CUDA when available.
    run_dir : path-like, optional
        Checkpoint ``<run_dir>/<name>.pt`` every ``recipes[0].checkpoint_every`` epochs.
    resume : bool
        Continue from that checkpoint when it exists.
    progress : bool, optional
        tqdm bar over epochs (``None``: only on a terminal).
    grad_masks : dict of str to Tensor, optional
        Per parameter name, a ``K x shape`` 0/1 mask multiplied into the gradient
        (entries that must stay zero, e.g. packed grouped convolutions).
    on_nonfinite : {"raise", "isolate"}
        A NaN/inf epoch loss: ``"raise"`` stops at once (:class:`TrainingDivergedError`
        naming the networks); ``"isolate"`` trains the others to the end (each network's
        arithmetic is its own, so a diverged one cannot touch them) and then raises
        :class:`NetworksDivergedError` with the diverged networks' indices.

    Returns
    -------
    list of pandas.DataFrame
        Per model, one row per epoch with the columns of :func:`gross.training.loop.train_base`.
    """
    models, recipes = list(models), list(recipes)
    _check_inputs(models, recipes)
    if on_nonfinite not in ("raise", "isolate"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'isolate', got {on_nonfinite!r}")
    recipe = recipes[0]
    device = resolve_device(device)
    trainable = {k for k, p in models[0].named_parameters() if p.requires_grad}
    if not trainable:
        raise ValueError("no parameter of the models requires grad; nothing to train")
    for m in models:
        _apply_train_mode(m, bn_eval)
    skel, drops = _skeleton(models[0], device)
    data = data.to(device)
    dtype = next(iter(models[0].parameters())).dtype
    with torch.no_grad():  # probe the dropout input shapes
        skel(next(batches(data.train, 1, mean=recipe.mean, std=recipe.std, device=device))[0].to(dtype))
    stack = _Stack(models, recipes, device, trainable)
    masks = _grad_masks(grad_masks, stack, device, dtype)
    step = _step_fn(skel, drops)
    ckpt = Path(run_dir) / f"{name}.pt" if run_dir is not None else None
    histories: list[list[dict]] = [[] for _ in models]
    start, lr = 0, recipe.lr
    if resume and ckpt is not None and ckpt.exists():
        histories, start, lr = _resume(stack, ckpt, recipes, device)
    diverged = {i: int(h[-1]["epoch"]) for i, h in enumerate(histories)
                if h and not math.isfinite(h[-1]["train_loss"])}
    every = recipe.checkpoint_every
    disable = None if progress is None else not progress
    for epoch in tqdm(range(start + 1, recipe.epochs + 1), initial=start, total=recipe.epochs, desc=name,
                      disable=disable, unit="epoch"):
        t0 = time.perf_counter()
        losses, accs, seen = _epoch(stack, step, drops, data, recipe, lr, device, dtype, masks)
        train_s = time.perf_counter() - t0
        if on_nonfinite == "raise":
            _check_finite(losses, epoch, name, lr)
        else:
            for i, v in enumerate(losses.tolist()):
                if not math.isfinite(v):
                    diverged.setdefault(i, epoch)
        stack.write_back(models)
        for i, m in enumerate(models):
            val = evaluate(m, data, split="val", device=device, mean=recipe.mean, std=recipe.std)
            histories[i].append(_history_row(epoch, lr, float(losses[i]), float(accs[i]), {"val_acc": val},
                                             histories[i], time.perf_counter() - t0, seen, train_s))
            _apply_train_mode(m, bn_eval)
        if epoch in recipe.milestones:
            lr = lr * recipe.gamma
        if ckpt is not None and (epoch == recipe.epochs or (every and epoch % every == 0)):
            atomic_save(seal({"recipes": [_recipe_dict(r) for r in recipes], "stack": stack.state(),
                              "histories": histories, "epoch": epoch, "lr": lr}, _CKPT_FORMAT), ckpt)
    stack.write_back(models)  # also when resumed from a finished run's checkpoint (no epoch ran)
    for m in models:
        m.eval()
    frames = [pd.DataFrame(h) for h in histories]
    if diverged:
        bad = sorted(diverged)
        raise NetworksDivergedError(
            f"training loss of networks {bad} of {len(models)} became non-finite (epochs "
            f"{[diverged[i] for i in bad]}; {name}); the other {len(models) - len(bad)} finished. Lower the "
            "learning rate or check the data/model", bad, [diverged[i] for i in bad], frames)
    return frames


def train_bases(models: Sequence[nn.Module], data: Dataset, recipes: Sequence, *, method: str = "auto",
                device=None, run_dir=None, resume: bool = False,
                channels_last: bool | None = None) -> list[pd.DataFrame]:
    """Base training of K networks of one architecture (:func:`gross.training.loop.train_base` each).

    ``method``: ``"vmap"`` (:func:`train_stacked`), ``"sequential"`` or ``"auto"``
    (:func:`choose_method`). ``channels_last`` is passed to :func:`gross.training.loop.train_base`
    on the sequential path (``None``: its default, channels-last on CPU); the ``vmap``
    path trains in the default layout, which is what ``channels_last=False`` computes.
    Returns the histories; the models are trained in place.
    """
    device = resolve_device(device)
    for m in models:
        _set_trainable(m)
    if choose_method(method, device) == "vmap":
        return train_stacked(models, data, recipes, device=device, run_dir=run_dir, resume=resume, name="bases")
    return [train_base(m, data, r, device=device, run_dir=run_dir, resume=resume, name=f"base-{i}", progress=False,
                       channels_last=channels_last) for i, (m, r) in enumerate(zip(models, recipes))]


def _block_mask(width: int, s: int, kernel, dtype, device) -> torch.Tensor:
    idx = torch.arange(width, device=device)
    block = (idx[:, None] // s == idx[None, :] // s).to(dtype)
    return block[:, :, None, None].expand(width, width, *kernel).clone()


def _densify(net: nn.Module, names) -> dict:
    """Replace each bottleneck's grouped ``R`` by a dense conv holding the same block-diagonal weight.

    Returns the 0/1 gradient masks (by parameter name) that keep the off-block entries zero.
    """
    masks = {}
    for n in names:
        r = net.get_submodule(f"{n}.R")
        if r.out_channels != r.in_channels:
            raise ValueError(f"layer {n!r} has an asymmetric bottleneck (R: {r.in_channels} -> {r.out_channels} "
                             f"channels): batched fine-tuning supports symmetric widths only; fine-tune it alone")
        width, s = r.in_channels, r.in_channels // r.groups
        mask = _block_mask(width, s, r.kernel_size, r.weight.dtype, r.weight.device)
        dense = nn.Conv2d(width, width, r.kernel_size, stride=r.stride, padding=r.padding, dilation=r.dilation,
                          bias=r.bias is not None, device=r.weight.device, dtype=r.weight.dtype)
        with torch.no_grad():
            cols = torch.arange(width, device=r.weight.device) % s
            dense.weight.copy_(r.weight[:, cols] * mask)
            if r.bias is not None:
                dense.bias.copy_(r.bias)
        dense.weight.requires_grad_(r.weight.requires_grad)
        setattr(net.get_submodule(n), "R", dense)
        masks[f"{n}.R.weight"] = mask
    return masks


def _regroup(dense: nn.Module, grouped: nn.Module, names) -> None:
    """Copy the trained packed network ``dense`` back into the grouped network ``grouped``."""
    state = dense.state_dict()
    with torch.no_grad():
        for n in names:
            r = grouped.get_submodule(f"{n}.R")
            width, s = r.in_channels, r.in_channels // r.groups
            o = torch.arange(width, device=r.weight.device)
            cols = (o // s * s)[:, None] + torch.arange(s, device=r.weight.device)[None, :]
            index = cols[:, :, None, None].expand(width, s, *r.kernel_size)
            state[f"{n}.R.weight"] = torch.gather(state[f"{n}.R.weight"], 1, index)
    grouped.load_state_dict(state)


def _as_configs(model, configs, n: int) -> list:
    single = isinstance(configs, Mapping) or (len(configs) > 0 and isinstance(configs[0], (int, numbers.Integral)))
    configs = [configs] * n if single else list(configs)
    if len(configs) != n:
        raise ValueError(f"got {len(configs)} configurations for {n} recipes; give one config or one per recipe")
    return [_check_config(model, c) for c in configs]


def finetune_configs(model: nn.Module, configs, data: Dataset, recipes: Sequence, *, method: str = "auto",
                     device=None, run_dir=None, resume: bool = False, channels_last: bool | None = None):
    """Individual fine-tunes of configurations of a GroSS model, one per recipe (seed).

    Equals :func:`gross.training.loop.finetune_config` for each (configuration, recipe):
    ``method="sequential"`` calls it, ``"vmap"`` trains all together (``"auto"``:
    :func:`choose_method`). Networks of different configurations are packed into one
    architecture: every grouped ``R`` becomes a dense convolution whose off-block
    weights are zero and receive no gradient (equal values; the dense ``R`` costs
    ``width / s`` times the grouped one's arithmetic, which small networks on a GPU
    do not notice).

    Parameters
    ----------
    configs : config or sequence of configs
        One configuration for all recipes, or one per recipe.
    channels_last : bool, optional
        Passed to :func:`gross.training.loop.finetune_config` on the sequential path (``None``:
        its default, channels-last on CPU); ``vmap`` trains in the default layout, as
        ``channels_last=False`` does.

    Returns
    -------
    (list of nn.Module, list of pandas.DataFrame)
        The trained exported (grouped) networks and their histories.
    """
    from gross.method.decomposition import export, gross_layers

    device = resolve_device(device)
    recipes = list(recipes)
    configs = _as_configs(model, configs, len(recipes))
    if choose_method(method, device) == "sequential":
        out = [finetune_config(model, c, data, r, device=device, run_dir=run_dir, resume=resume,
                               name=f"config-{i}", progress=False, channels_last=channels_last)
               for i, (c, r) in enumerate(zip(configs, recipes))]
        return [n for n, _ in out], [h for _, h in out]
    return finetune_many([model] * len(recipes), configs, data, recipes, device=device, run_dir=run_dir,
                         resume=resume, name="configs")


def finetune_many(models: Sequence[nn.Module], configs: Sequence, data: Dataset, recipes: Sequence, *,
                  device=None, run_dir=None, resume: bool = False, name: str = "configs",
                  on_nonfinite: str = "raise", progress: bool | None = False):
    """Individual fine-tunes of K (GroSS model, configuration, recipe) triples, all trained at once.

    The ``vmap`` path of :func:`finetune_configs` with one GroSS model per network (e.g.
    the decompositions of different repeats, all of one architecture): network ``i`` is
    ``models[i]`` exported at ``configs[i]`` and trained as
    :func:`gross.training.loop.finetune_config` would train it with ``recipes[i]``.
    Different configurations are packed (dense ``R`` with a 0/1 gradient mask). The
    checkpoint is ``<run_dir>/<name>.pt`` (every network's state, one file).

    Parameters
    ----------
    on_nonfinite : {"raise", "isolate"}
        As in :func:`train_stacked`; with ``"isolate"`` a :class:`NetworksDivergedError`
        comes after the others finished, and ``error.nets`` holds all K exported networks.

    Returns
    -------
    (list of nn.Module, list of pandas.DataFrame)
        The trained exported (grouped) networks and their histories.
    """
    from gross.method.decomposition import export, gross_layers

    device = resolve_device(device)
    models, recipes = list(models), list(recipes)
    if len(models) != len(recipes) or len(configs) != len(recipes):
        raise ValueError(f"need one model, one config and one recipe per network, got {len(models)}, "
                         f"{len(configs)} and {len(recipes)}")
    configs = [_check_config(m, c) for m, c in zip(models, configs)]
    names = list(gross_layers(models[0]))
    nets = [export(m, c) for m, c in zip(models, configs)]
    for net in nets:
        _set_trainable(net, names if recipes[0].freeze else None)  # as gross.training.loop.finetune_config freezes
    packed, masks = nets, None
    if len(set(configs)) > 1:
        packed = [copy.deepcopy(n) for n in nets]
        per_net = [_densify(n, names) for n in packed]
        masks = {k: torch.stack([m[k] for m in per_net]) for k in per_net[0]}

    def regroup():
        if masks is not None:
            for dense, net in zip(packed, nets):
                _regroup(dense, net.to(device), names)
                net.eval()

    try:
        histories = train_stacked(packed, data, recipes, bn_eval=recipes[0].freeze, device=device, run_dir=run_dir,
                                  resume=resume, name=name, grad_masks=masks, on_nonfinite=on_nonfinite,
                                  progress=progress)
    except NetworksDivergedError as exc:
        regroup()
        exc.nets = nets
        raise
    regroup()
    return nets, histories
