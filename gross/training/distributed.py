"""GroSS fine-tuning and configuration evaluation on several processes (PyTorch DDP, ``torchrun``).

One process per GPU (NCCL) or several CPU processes (gloo)::

    torchrun --standalone --nproc-per-node 8 -m gross.training.distributed finetune --job runs/paper/imagenet/vgg16_gross.job

The job file (:func:`write_job`) holds plain data only -- the model as a description
(:func:`gross.training.described.describe_model`: architecture keywords, search space,
configuration, state dict),
the data settings and the recipe -- and is read with ``torch.load(weights_only=True)``, so a
crafted job file cannot run code; :func:`gross.pipeline.table4.gross_finetuned` writes it and launches ``torchrun``
(:func:`launch`) or trains in-process with one rank.

Equivalence with one process
----------------------------
The *global* batch is the recipe's (the paper's 128 / 512) whatever the number of
ranks ``N``; each rank takes ``global / N`` images of it (:class:`ShardSampler`; not
divisible: an error). Every epoch's order is a permutation seeded by ``(seed, epoch)``
and every image's crop/flip is seeded by ``(seed, epoch, index)``, so the images of a
global step, and their augmentation, are the same for every ``N``. The group sizes of
a step are drawn from one ``torch.Generator`` with the same seed and the same number
of draws on every rank, so all ranks train the same configuration. DDP averages the
ranks' gradients of the per-rank mean loss, i.e. the gradient of the global-batch mean:
the weights equal those of one process up to the order of floating-point sums.
Frozen layers (everything but the GroSS weights during GroSS fine-tuning) run in eval
mode: batch norm uses its running statistics (as in the paper) and dropout is off, so
no per-rank random state enters the result.

Checkpoints and resume
----------------------
Rank 0 writes ``<run_dir>/<name>.pt`` atomically (:func:`gross.utils.atomic_save`) every
``checkpoint_every_steps`` global steps and at the end of every epoch. The state is
global (model, optimizer, scheduler, group-size generator, epoch, step, partial loss
sums, the configurations drawn so far); nothing in it depends on ``N``, so a run can
resume under DDP after a crash or with another number of processes.

Evaluation
----------
:func:`evaluate` splits the images into ``N`` contiguous shards, counts correct
predictions per configuration on each rank (:func:`gross.search.evaluation.count_correct`, the
package's one evaluation engine with its prefix tree over VGG layers and ResNet blocks)
and all-reduces the integer counts, so the accuracy is the single-process one.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from gross.data import imagenet as inet
from gross.method.decomposition import gross_layers, search_space, set_config
from gross.search.evaluation import count_correct
from gross.training.described import build_described, describe_model
from gross.training.loop import Recipe, _recipe_dict, draw_config, group_size_sampler
from gross.utils import atomic_save
from gross.utils.sealed import load_sealed, seal

__all__ = [
    "Context",
    "init",
    "check_batch",
    "ShardSampler",
    "finetune",
    "evaluate",
    "evaluate_plain",
    "evaluator",
    "barrier",
    "read_job",
    "read_checkpoint",
    "kept_weights",
    "write_job",
    "launch",
    "main",
]

_FORMAT = "gross-ddp-checkpoint"
_JOB_FORMAT = "gross-ddp-job"
_FAIL_ENV = "GROSS_FAIL_AT"  # "rank:global_step" -> that rank SIGKILLs itself (fault-injection for tests)


@dataclass(frozen=True)
class Context:
    """Where this process sits: ``rank`` of ``world`` processes, its ``device``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init(device: str = "auto", backend: str | None = None) -> Context:
    """Join the process group ``torchrun`` set up (environment ``RANK``, ``WORLD_SIZE``...).

    Without those variables: one process, no group. ``device="auto"``: one GPU per
    process (``cuda:LOCAL_RANK``, NCCL) when CUDA is available, else CPU (gloo).

    Raises
    ------
    ValueError
        More processes per node than GPUs, or ``device="cuda"`` without CUDA.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if local_world > n_gpus:
            raise ValueError(
                f"--nproc-per-node {local_world} is larger than the {n_gpus} GPU(s) on this machine: use "
                f"--nproc-per-node {n_gpus} or fewer (one process per GPU), or device='cpu' to run gloo "
                "processes on the CPU")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    return Context(rank, world, local_rank, dev)


def check_batch(global_batch: int, world: int) -> int:
    """Per-rank batch ``global_batch / world``; raises if not a whole number."""
    if global_batch % world:
        ok = [n for n in range(1, global_batch + 1) if global_batch % n == 0 and n <= max(world, 8)]
        raise ValueError(
            f"the global batch {global_batch} (the paper's) is not divisible by the {world} processes; "
            f"use a number of processes that divides it, e.g. {ok[-4:]}")
    return global_batch // world


class ShardSampler(torch.utils.data.Sampler):
    """This rank's part of every global batch of an epoch (a batch sampler).

    The epoch's order is ``randperm(n)`` seeded by ``(seed, epoch)``; global step ``i``
    takes positions ``[i B, (i + 1) B)``, rank ``r`` the slice ``[r b, (r + 1) b)`` of it
    (``b = B / world``). The last incomplete global batch is dropped. Keys are
    ``(index, seed)`` pairs (:class:`gross.data.imagenet.ImageFolderSplit`), the seed from
    :func:`gross.data.imagenet.sample_seed`.

    Parameters
    ----------
    n : int
        Images in the split.
    global_batch, world, rank, seed, epoch : int
    start_step : int, default 0
        Skip the first global steps (resuming mid-epoch).
    max_steps : int, optional
        Stop after this many global steps per epoch.
    """

    def __init__(self, n: int, global_batch: int, world: int = 1, rank: int = 0, seed: int = 0, epoch: int = 0,
                 start_step: int = 0, max_steps: int | None = None):
        self.local = check_batch(int(global_batch), int(world))
        self.n, self.global_batch, self.rank = int(n), int(global_batch), int(rank)
        self.seed, self.epoch, self.start_step = int(seed), int(epoch), int(start_step)
        steps = self.n // self.global_batch
        self.steps = steps if max_steps is None else min(steps, int(max_steps))
        if self.steps < 1:
            raise ValueError(f"the split has {n} images, fewer than one global batch of {global_batch}")

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)

    def __iter__(self):
        gen = torch.Generator().manual_seed(inet.sample_seed(self.seed, self.epoch, -1))
        perm = torch.randperm(self.n, generator=gen).tolist()
        for step in range(self.start_step, self.steps):
            a = step * self.global_batch + self.rank * self.local
            yield [(i, inet.sample_seed(self.seed, self.epoch, i)) for i in perm[a:a + self.local]]


# ----------------------------------------------------------------------------- training
def _trainable(model: nn.Module, trainable: str) -> list[nn.Parameter]:
    if trainable in ("gross", "gross_all"):
        layers = gross_layers(model)
        if not layers:
            raise ValueError("GroSS fine-tuning needs a decomposed model (gross.data.imagenet.decompose_imagenet)")
        keep = {id(p) for layer in layers.values() for p in layer.parameters()}
        if trainable == "gross_all":  # GroSS fine-tune of every weight (Table 4's [26] rows, the authors' schedule)
            keep = {id(p) for p in model.parameters()}
    elif trainable == "all":
        keep = {id(p) for p in model.parameters()}
    else:
        raise ValueError(f"trainable must be 'gross', 'gross_all' or 'all', got {trainable!r}")
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def _train_mode(model: nn.Module) -> None:
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()


def _maybe_fail(ctx: "Context", step: int) -> None:
    spec = os.environ.get(_FAIL_ENV, "")
    if spec and spec.endswith(f":{step}"):
        # Every rank first finishes the steps before (rank 0: its checkpoint written), so the
        # injected fault always lands after the same checkpoint, whatever the processes' timing.
        barrier(ctx)
        if spec == f"{ctx.rank}:{step}":
            os.kill(os.getpid(), signal.SIGKILL)


def read_checkpoint(path) -> dict:
    """A checkpoint of :func:`finetune` (sealed: plain data, checksum verified; :mod:`gross.utils.sealed`)."""
    return load_sealed(path, _FORMAT, "checkpoint", "delete it to start afresh")


def _load_state(ckpt: Path, model: nn.Module, recipe: Recipe, trainable: str) -> dict:
    state = read_checkpoint(ckpt)
    if state.get("recipe") != _recipe_dict(recipe) or state.get("trainable") != trainable:
        raise ValueError(
            f"checkpoint {ckpt} belongs to another run (recipe {state.get('recipe')}, trainable "
            f"{state.get('trainable')!r}); this run uses {_recipe_dict(recipe)}, {trainable!r}. Use another "
            "run_dir/name or delete the checkpoint")
    model.load_state_dict(state["model"])
    return state


def _allreduce(values: list[float], ctx: Context) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(t)
    return t.tolist()


@dataclass
class _Run:
    """Mutable training state that goes into a checkpoint."""

    epoch: int = 0          # epochs completed
    step: int = 0           # global steps completed in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0   # over the current epoch, all ranks
    seen: float = 0.0
    history: list = dataclasses.field(default_factory=list)
    configs: list = dataclasses.field(default_factory=list)


def finetune(model: nn.Module, split, recipe: Recipe, *, run_dir, name: str | None = None,
             trainable: str = "gross", ctx: Context | None = None, resume: bool = True,
             checkpoint_every_steps: int = 0, max_steps_per_epoch: int | None = None, workers: int = 8,
             pin_memory: bool = True, persistent_workers: bool = True, select=None,
             select_batch_size: int = 256) -> pd.DataFrame:
    """Fine-tune ``model`` on ``split`` with the recipe's schedule, on every rank of ``ctx``.

    Parameters
    ----------
    model : nn.Module
        GroSS-decomposed (``trainable="gross"``: only the GroSS weights train, a random
        configuration per step; ``"gross_all"``: the same with every weight training, the
        [26] rows of Table 4) or exported (``"all"``: every weight trains, the
        individual fine-tune of a configuration).
    split : gross.data.imagenet.ImageFolderSplit
        Training images (random crop + flip).
    recipe : gross.training.loop.Recipe
        ``epochs``, global ``batch_size``, ``lr``, ``momentum``, ``weight_decay``,
        ``milestones`` (epochs), ``gamma``, ``mean``/``std``, ``seed``.
    run_dir : path-like
        Where ``<name>.pt`` (checkpoint, final weights, history) goes.
    ctx : Context, optional
        Default :func:`init` (one process without ``torchrun``).
    resume : bool, default True
        Continue from ``<name>.pt`` if it exists.
    checkpoint_every_steps : int, default 0
        Also checkpoint every this many global steps (0: at epoch ends only).
    max_steps_per_epoch : int, optional
        Shorter epochs (reduced profiles).
    workers, pin_memory, persistent_workers
        DataLoader settings (:func:`gross.data.imagenet.loader`).
    select : gross.data.imagenet.ImageFolderSplit, optional
        Keep the best epoch (early stopping, as the authors' [26] individual fine-tunes):
        after each epoch the network's top-1 accuracy on ``select`` (images held out from
        training, never the test split) is measured, the weights of the best epoch so far
        (the first, on ties) are kept in the checkpoint (``best``), and ``model`` ends with
        them. Plain networks only (``trainable="all"``). Training itself is unchanged: the
        evaluation runs with the random number generators' state saved and restored.
    select_batch_size : int, default 256
        Evaluation batch per rank for ``select``.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch, lr, train_loss, images, seconds, images_per_s`` (with
        ``select``: also ``select_accuracy`` and ``kept``, the epoch the model ends with); the
        configurations drawn are in the checkpoint (``configs``).
    """
    ctx = ctx or init()
    check_batch(recipe.batch_size, ctx.world)
    if select is not None and trainable != "all":
        raise ValueError(f"select (keep the best epoch) needs a plain network, trainable='all'; got {trainable!r}: "
                         "a GroSS model has no single accuracy to select by")
    name = name or recipe.name
    ckpt = Path(run_dir) / f"{name}.pt"
    params = _trainable(model, trainable)
    model.to(ctx.device)
    dtype = next(model.parameters()).dtype
    layers = list(gross_layers(model).values()) if trainable in ("gross", "gross_all") else []
    space = [tuple(s) for s in search_space(model).values()] if layers else []
    run, best = _Run(), None
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.milestones), recipe.gamma)
    sampler = group_size_sampler(recipe)
    if resume and ckpt.exists():
        state = _load_state(ckpt, model, recipe, trainable)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.set_state(state["sampler_rng"])
        run, best = _Run(**state["run"]), state.get("best")
    net = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=bool(layers))

    def save():
        if ctx.rank == 0:
            atomic_save(seal({"recipe": _recipe_dict(recipe), "trainable": trainable,
                              "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict(), "sampler_rng": sampler.get_state(),
                              "run": dataclasses.asdict(run), "world": ctx.world,
                              **({"best": best} if best is not None else {})}, _FORMAT), ckpt)

    while run.epoch < recipe.epochs:
        t0, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        shard = ShardSampler(len(split), recipe.batch_size, ctx.world, ctx.rank, recipe.seed, run.epoch,
                             start_step=run.step, max_steps=max_steps_per_epoch)
        data = inet.loader(split, shard, workers, pin_memory, persistent_workers and len(shard) > 1)
        _train_mode(net)
        seen0 = run.seen
        for x, y in data:
            _maybe_fail(ctx, run.global_step)
            x = inet.normalise(x, ctx.device, dtype, recipe.mean, recipe.std)
            y = y.to(ctx.device, non_blocking=True)
            if layers:
                run.configs.append(list(draw_config(list(zip(layers, space)), sampler)))
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = _allreduce([float(loss.detach()) * len(y), float(len(y))], ctx)
            if not math.isfinite(total):
                raise FloatingPointError(f"{name}: loss became {total} at epoch {run.epoch + 1}, step "
                                         f"{run.step + 1}; lower the learning rate")
            run.loss_sum += total
            run.seen += count
            run.step += 1
            run.global_step += 1
            if checkpoint_every_steps and run.global_step % int(checkpoint_every_steps) == 0:
                save()
        seconds = time.perf_counter() - t0
        row = {"epoch": run.epoch + 1, "lr": lr, "train_loss": run.loss_sum / max(run.seen, 1),
               "images": run.seen, "seconds": seconds,
               "images_per_s": (run.seen - seen0) / seconds if seconds > 0 else float("nan")}
        if select is not None:
            acc = _select_accuracy(model, select, ctx, select_batch_size, workers, pin_memory, recipe)
            if best is None or acc > best["accuracy"]:
                best = {"epoch": run.epoch + 1, "accuracy": acc,
                        "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
            row.update(select_accuracy=acc, kept=best["epoch"])
        run.history.append(row)
        scheduler.step()
        run.epoch, run.step, run.loss_sum, run.seen = run.epoch + 1, 0, 0.0, 0.0
        save()
    if ctx.distributed:
        dist.barrier()
    if layers:
        set_config(model, tuple(max(s) for s in space))
    if select is not None and best is not None:  # end with the kept epoch's weights
        model.load_state_dict(best["model"])
    model.eval()
    return pd.DataFrame(run.history)


def _select_accuracy(model: nn.Module, split, ctx: Context, batch_size: int, workers: int, pin_memory: bool,
                     recipe: Recipe) -> float:
    """Top-1 accuracy on ``split`` between epochs, leaving every random number generator as it was."""
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return evaluate_plain(model, split, ctx=ctx, batch_size=batch_size, workers=workers, pin_memory=pin_memory,
                              mean=recipe.mean, std=recipe.std)


def kept_weights(state: Mapping) -> dict:
    """The weights a :func:`finetune` checkpoint ends with: the best epoch's (``select``) or else the last."""
    return state["best"]["model"] if state.get("best") else state["model"]


# ----------------------------------------------------------------------------- evaluation
def _shard(n: int, ctx: Context) -> range:
    per = -(-n // ctx.world)
    return range(min(ctx.rank * per, n), min((ctx.rank + 1) * per, n))


def _sharded_counts(model: nn.Module, configs, split, ctx: Context, batch_size: int, workers: int,
                    pin_memory: bool, mean, std, tree: bool) -> torch.Tensor:
    """:func:`gross.search.evaluation.count_correct` on this rank's shard, summed over all ranks (last entry: images)."""
    idx = list(_shard(len(split), ctx))
    chunks = [idx[i:i + int(batch_size)] for i in range(0, len(idx), int(batch_size))]
    data = inet.loader(split, chunks, workers, pin_memory, persistent_workers=False) if chunks else []
    dtype = next(model.parameters()).dtype
    model.to(ctx.device)

    def batches():
        return ((inet.normalise(x, ctx.device, dtype, mean, std), y.to(ctx.device)) for x, y in data)

    correct, n = count_correct(model, configs, batches, device=ctx.device, tree=tree)
    counts = torch.tensor([*correct, n], dtype=torch.int64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(counts)
    counts = counts.cpu()
    if int(counts[-1]) == 0:
        raise ValueError("the evaluation split is empty")
    return counts


def evaluate(model: nn.Module, configs: Sequence, split, *, ctx: Context | None = None, batch_size: int = 256,
             workers: int = 8, pin_memory: bool = True, mean=inet.IMAGENET_MEAN, std=inet.IMAGENET_STD,
             tree: bool = True) -> pd.DataFrame:
    """Top-1 accuracy of GroSS configurations on ``split``, images sharded over the ranks.

    Every rank returns the same DataFrame (``config``, ``accuracy`` in percent, ``images``).
    Each rank counts its contiguous shard with :func:`gross.search.evaluation.count_correct`
    (the package's one evaluation engine, prefix tree included) and the integer counts
    are summed (all-reduce), so the accuracy is the single-process one.
    """
    counts = _sharded_counts(model, configs, split, ctx or init(), batch_size, workers, pin_memory, mean, std, tree)
    return pd.DataFrame({"config": [tuple(int(s) for s in c) for c in configs],
                         "accuracy": (100.0 * counts[:-1].double() / counts[-1]).tolist(),
                         "images": int(counts[-1])})


def evaluate_plain(net: nn.Module, split, *, ctx: Context | None = None, batch_size: int = 256, workers: int = 8,
                   pin_memory: bool = True, mean=inet.IMAGENET_MEAN, std=inet.IMAGENET_STD) -> float:
    """Top-1 accuracy (percent) of a network as it is (e.g. an ordinary one): :func:`evaluate`'s plain case."""
    counts = _sharded_counts(net, None, split, ctx or init(), batch_size, workers, pin_memory, mean, std, False)
    return 100.0 * float(counts[0]) / float(counts[-1])


def barrier(ctx: Context) -> None:
    """Wait for every rank (no-op with one process)."""
    if ctx.distributed:
        dist.barrier()


def evaluator(model: nn.Module, split, **kwargs):
    """``configs -> list of accuracies`` over :func:`evaluate` (for :func:`gross.search.algorithms.bfs_incremental_search`)."""
    def run(configs):
        return evaluate(model, list(configs), split, **kwargs)["accuracy"].tolist()
    return run


# ----------------------------------------------------------------------------- job files and CLI
def write_job(path, model: nn.Module, data: dict, recipe: Recipe, run_dir, *, arch: dict, space=None,
              config=None, name: str | None = None, trainable: str = "gross", **options) -> Path:
    """Write what ``python -m gross.training.distributed finetune --job PATH`` needs (atomically), as plain data.

    ``arch``, ``space`` and ``config`` describe ``model`` (:func:`gross.training.described.describe_model`); ``data``
    holds the keyword arguments of :func:`gross.data.imagenet.imagenet` (``root``,
    ``resize``, ``crop``, ``held_out``, ``split_seed``); ``options`` those of :func:`finetune`
    (``checkpoint_every_steps``, ``max_steps_per_epoch``, ``workers``, ``pin_memory``,
    ``persistent_workers``, ``select_batch_size`` and ``device``), plus ``keep_best`` (select by
    the dataset's held-out ``val`` split).
    """
    job = {"model": describe_model(model, arch, space, config), "data": dict(data),
           "recipe": dataclasses.asdict(recipe), "run_dir": str(run_dir), "name": name or recipe.name,
           "trainable": trainable, "options": options}
    return atomic_save(seal(job, _JOB_FORMAT), path)


def read_job(path) -> dict:
    """A job file of :func:`write_job`: sealed plain data (``torch.load(weights_only=True)``, SHA-256 checked; no code runs).

    Raises
    ------
    ValueError
        A file that is not such a job (unreadable, or holding anything but plain data).
    """
    return load_sealed(path, _JOB_FORMAT, "job file", "a job file is written by "
                       "gross.training.distributed.write_job: write it again")


def launch(job_path, nproc: int, device: str = "auto", timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc-per-node nproc -m gross.training.distributed finetune --job job_path``.

    Raises
    ------
    ValueError
        ``nproc`` larger than the GPUs present (when training on GPUs).
    subprocess.CalledProcessError
        A rank failed (the checkpoint of the last completed step range is kept; call again to resume).
    """
    nproc = int(nproc)
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        n = torch.cuda.device_count()
        if nproc > n:
            raise ValueError(f"--nproc-per-node {nproc} is larger than the {n} GPU(s) present; use at most {n}, "
                             "or device='cpu' for gloo processes")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "gross.training.distributed", "finetune", "--job", str(job_path), "--device", device]
    return subprocess.run(cmd, check=True, timeout=timeout, capture_output=True, text=True)


def _finetune_job(args) -> None:
    job = read_job(args.job)
    options = dict(job["options"])
    device = options.pop("device", args.device)
    ctx = init(args.device if args.device != "auto" else device)
    data = inet.imagenet(**job["data"])
    select = data.val if options.pop("keep_best", False) else None  # the held-out images, never the test split
    finetune(build_described(job["model"]), data.train, Recipe(**job["recipe"]), run_dir=job["run_dir"],
             name=job["name"], trainable=job["trainable"], ctx=ctx, select=select, **options)
    if ctx.distributed:
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m gross.training.distributed finetune --job JOB [--device auto|cpu|cuda]``."""
    parser = argparse.ArgumentParser(prog="python -m gross.training.distributed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ft = sub.add_parser("finetune", help="fine-tune the model of a job file (see gross.training.distributed.write_job)")
    ft.add_argument("--job", required=True, help="job file written by gross.training.distributed.write_job")
    ft.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    if args.command == "finetune":
        _finetune_job(args)


if __name__ == "__main__":
    main()
