"""Notebook 02: GroSS fine-tuning (``<model>_gross_<r>.pt``) and individual fine-tunes ("true" accuracy).

The notebook runs one verb per cell and then the step with the verbs' results:

=============================  ==================================================  ===========================
verb                           what it returns                                     step
=============================  ==================================================  ===========================
:func:`search_space_table`     the decomposed layers and their group sizes         (shown only)
:func:`sampled_configs`        the configurations the fine-tune's sampler draws    (shown only)
:func:`schedules`              the SGD schedules at the profile's epochs           (shown only)
:func:`gross_histories`        per-epoch history of every GroSS fine-tune          :func:`finetune_gross_models`
:func:`finetuning_curves`      the mean curves (figure)                            :func:`finetune_gross_models`
:func:`uniform_accuracies`     uniform configurations before / after fine-tuning   :func:`uniform_before_after`
:func:`uniform_finetunes`      individual fine-tunes of the uniform baselines      :func:`individual_finetunes`
=============================  ==================================================  ===========================

GroSS fine-tunes are stored as ``runs/<profile>/<model>_gross_<repeat>.pt``; individual
fine-tunes per configuration under ``runs/<profile>/true/<model>/<kind>_<config>_r<repeat>.json``,
so notebooks 02, 03, 04 and 05 share them. Every verb loads what is stored and runs only
what is missing (as jobs on the profile's executor, :func:`gross.pipeline.common.fan_out`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from gross.method.decomposition import gross_layers, search_space
from gross.search.evaluation import accuracy, correct_images, paired_change
from gross.method.space import config_str
from gross.pipeline.common import (MODELS, NOTEBOOKS, check_models, eval_kwargs, evaluate, fan_out, n_repeats,
                                   networks_at_once, precision, prepare_data, recipe, resolve_device, true_repeats,
                                   uniform, uniform_configs)
from gross.pipeline.decomposition import gross_decompose, gross_payload, load_gross, tuned_path
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store
from gross.training.loop import draw_config, group_size_sampler

__all__ = ["search_space_table", "sampled_configs", "schedules", "finetune_gross",
           "gross_histories", "finetuning_curves", "finetune_gross_models", "uniform_accuracies",
           "uniform_before_after", "true_path", "true_accuracy", "true_accuracies", "make_individuals",
           "partial_is_prefix",
           "uniform_finetunes", "individual_finetunes"]

def _gross_recipe(cfg: Mapping, name: str, repeat: int):
    """The recipe of GroSS fine-tune ``repeat`` of ``name`` (seed ``seed + repeat``)."""
    return recipe(cfg, name, "gross", seed=int(cfg["seed"]) + int(repeat))


def search_space_table(cfg: Mapping, name: str = "four_layer", repeat: int = 0) -> pd.DataFrame:
    """The search space of GroSS decomposition ``repeat`` of ``name`` (notebook 01): one row per decomposed layer.

    Parameters
    ----------
    cfg : Profile
    name : str
        One of :data:`gross.pipeline.common.MODELS`.
    repeat : int
        Which stored decomposition (they all share one space).

    Returns
    -------
    DataFrame
        ``layer, in_channels, out_channels, width`` (the bottleneck width), ``group_sizes``
        (the candidate sizes, space separated) and ``n_sizes``. The number of configurations
        is the product of ``n_sizes`` (252 for the 4-layer network, Sec. 4.3).
    """
    rows = []
    for layer, module in gross_layers(gross_decompose(cfg, name, repeat, compute=False)).items():
        rows.append({"layer": layer, "in_channels": module.in_channels, "out_channels": module.out_channels,
                     "width": module.width, "group_sizes": config_str(module.group_sizes),
                     "n_sizes": len(module.group_sizes)})
    return pd.DataFrame(rows)


def sampled_configs(cfg: Mapping, name: str = "four_layer", repeat: int = 0, n: int = 8) -> pd.DataFrame:
    """The first ``n`` configurations GroSS fine-tune ``repeat`` of ``name`` trains, one per iteration.

    The fine-tune (:func:`gross.training.loop.finetune_gross`) draws one group size per
    decomposed layer, uniformly, at every iteration (Sec. 3.3) with
    :func:`gross.training.loop.draw_config` from the loop's own generator
    (:func:`gross.training.loop.group_size_sampler`); this replays those draws (nothing is trained). At most
    the fine-tune's number of iterations (epochs x batches per epoch) are returned.

    Returns
    -------
    DataFrame
        ``iteration`` (from 1), ``epoch``, one column per decomposed layer (its group size)
        and ``config`` (the sizes, space separated).
    """
    model = gross_decompose(cfg, name, repeat, compute=False)
    rec = _gross_recipe(cfg, name, repeat)
    per_epoch = math.ceil(len(prepare_data(cfg, name).train) / rec.batch_size)
    layers, space = gross_layers(model), search_space(model)
    pairs = [(layers[layer], tuple(sizes)) for layer, sizes in space.items()]
    sampler = group_size_sampler(rec)
    rows = []
    for i in range(1, min(int(n), per_epoch * rec.epochs) + 1):
        config = draw_config(pairs, sampler)
        rows.append({"iteration": i, "epoch": (i - 1) // per_epoch + 1, **dict(zip(space, config)),
                     "config": config_str(config)})
    return pd.DataFrame(rows, columns=["iteration", "epoch", *space, "config"])


def schedules(cfg: Mapping, kind: str = "gross", models: Sequence[str] = MODELS) -> pd.DataFrame:
    """The SGD schedule of each model's GroSS (``kind="gross"``) or individual (``"config"``) fine-tune.

    The paper's recipes (:data:`gross.training.loop.RECIPES`, Sec. 4.4) at the profile's
    epochs (``<model>.gross_epochs`` / ``<model>.config_epochs``; the learning-rate
    milestones scale with them, :func:`gross.pipeline.common.recipe`).

    Returns
    -------
    DataFrame
        ``model, kind, epochs, batch_size, lr, momentum, weight_decay, milestones`` (space
        separated), ``gamma`` and ``trains`` (which parameters are trained).
    """
    if kind not in ("gross", "config"):
        raise ValueError(f"kind must be 'gross' (GroSS fine-tune) or 'config' (individual fine-tune), got {kind!r}")
    rows = []
    for name in check_models(models):
        r = recipe(cfg, name, kind)
        trains = "decomposed layers" if kind == "gross" or r.freeze else "all layers"
        rows.append({"model": name, "kind": kind, "epochs": r.epochs, "batch_size": r.batch_size, "lr": r.lr,
                     "momentum": r.momentum, "weight_decay": r.weight_decay,
                     "milestones": config_str(r.milestones), "gamma": r.gamma, "trains": trains})
    return pd.DataFrame(rows)


def _finetune(cfg: Mapping, store: Store, name: str, r: int) -> dict:
    from gross.training.loop import finetune_gross as _train

    data = prepare_data(cfg, name)
    model = gross_decompose(cfg, name, r, compute=False)
    rec = _gross_recipe(cfg, name, r)
    space = search_space(model)
    history = _train(model, data, rec, run_dir=store.root / "checkpoints", resume=True,
                     device=resolve_device(cfg), name=f"{name}_gross_{r}_{store.fingerprint_so_far()}",
                     progress=False,
                     track_configs={"smallest": uniform(space, 1), "largest": tuple(max(s) for s in space.values())})
    model.cpu()
    return gross_payload(model, history=history.to_dict(orient="list"))


def finetune_gross(cfg: Mapping, name: str, repeat: int) -> pd.DataFrame:
    """GroSS fine-tune ``repeat`` of ``name`` (stored; checkpoints every epoch and resumes); its history."""
    store = Store(cfg)
    payload = store.make(tuned_path(name, repeat), lambda: _finetune(cfg, store, name, repeat),
                         NOTEBOOKS["finetuning"])
    return pd.DataFrame(payload["history"])


def _curves(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the mean curves: validation accuracy at the two uniform extremes, training loss."""
    mean = df.groupby(["model", "epoch"])[["val_acc_smallest", "val_acc_largest", "train_loss"]].mean()
    mean = mean.reset_index()
    long = []
    for which in ("smallest", "largest"):
        long.append(pd.DataFrame({"series": mean["model"] + f" {which}", "epoch": mean["epoch"],
                                  "val_acc": mean[f"val_acc_{which}"], "train_loss": np.nan}))
    long.append(pd.DataFrame({"series": mean["model"] + " (sampled configs)", "epoch": mean["epoch"],
                              "val_acc": np.nan, "train_loss": mean["train_loss"]}))
    return pd.concat(long, ignore_index=True)[["series", "epoch", "val_acc", "train_loss"]]


def gross_histories(cfg: Mapping, models: Sequence[str] = MODELS) -> pd.DataFrame:
    """Per-epoch history of every GroSS fine-tune (4-layer: all repeats; VGG-16: one), stored ones loaded.

    The missing fine-tunes run first as jobs on the profile's executor (one per model and
    repeat, :func:`finetune_gross`); the stored ones are only loaded.

    Returns
    -------
    DataFrame
        ``model, repeat, epoch`` then the loop's history columns (``lr, train_loss,
        train_acc, val_acc_smallest, val_acc_largest, val_acc, ...``): the validation
        accuracy of the smallest and largest uniform configurations, tracked every epoch.
    """
    names = check_models(models)
    fan_out(cfg, "02_finetuning", [(finetune_gross, (name, r), tuned_path(name, r))
                                   for name in names for r in range(n_repeats(cfg, name))])
    histories = []
    for name in names:
        for r in range(n_repeats(cfg, name)):
            histories.append(finetune_gross(cfg, name, r).assign(model=name, repeat=r))
    df = pd.concat(histories, ignore_index=True)
    front = ["model", "repeat", "epoch"]
    return df[front + [c for c in df.columns if c not in front]]


def finetuning_curves(history: pd.DataFrame, ax=None):
    """Figure of the GroSS fine-tuning curves: the :func:`gross_histories` table averaged over repeats.

    Validation accuracy of the smallest and largest uniform configurations, and the training
    loss of the sampled configurations, per epoch and model (:func:`gross.report.plots.finetuning_curves`;
    ``ax``: two Axes, accuracy and loss, or None for a new figure).
    """
    from gross.report import plots

    return plots.finetuning_curves(_curves(history), ax=ax)


@step("02_finetuning", tables=("finetune_history",), figures=("fig_finetuning_curves",))
def finetune_gross_models(cfg: Mapping, models: Sequence[str] = MODELS, history: pd.DataFrame | None = None,
                          figure=None) -> StepResult:
    """GroSS fine-tuning of every decomposition (4-layer: all repeats; VGG-16: one).

    The validation accuracy of the smallest and largest uniform configurations is
    tracked every epoch. Writes table ``finetune_history`` (:func:`gross_histories`, or
    ``history`` when given) and figure ``fig_finetuning_curves`` (:func:`finetuning_curves`
    of it, or ``figure``). ``models`` restricts the step to some of :data:`MODELS`.
    """
    history = gross_histories(cfg, models) if history is None else history
    figure = finetuning_curves(history) if figure is None else figure
    return StepResult(tables={"finetune_history": history}, figures={"fig_finetuning_curves": figure})


def uniform_accuracies(cfg: Mapping, models: Sequence[str] = MODELS) -> pd.DataFrame:
    """GroSS validation accuracy of every uniform configuration before and after GroSS fine-tuning.

    Evaluates the stored decompositions (notebook 01) and fine-tunes (:func:`gross_histories`)
    image by image (:func:`gross.search.evaluation.correct_images`), so the change is also
    given as a paired comparison: the validation images the fine-tune lost and gained.
    Trains nothing.

    Returns
    -------
    DataFrame
        ``model, repeat, config, before, after, improved`` (``after >= before``), ``lost``
        (images right before and wrong after), ``gained`` (wrong before, right after) and
        ``n_images``; ``after - before = 100 * (gained - lost) / n_images``.
    """
    rows = []
    for name in check_models(models):
        data = prepare_data(cfg, name)
        for r in range(n_repeats(cfg, name)):
            init, tuned = load_gross(cfg, name, r, tuned=False), load_gross(cfg, name, r)
            for c in uniform_configs(search_space(init)):
                pair = paired_change(*(correct_images(m, data, config=c, split="val", **eval_kwargs(cfg, data))
                                       for m in (init, tuned)))
                rows.append({"model": name, "repeat": r, "config": config_str(c), "before": pair["before"],
                             "after": pair["after"], "improved": pair["after"] >= pair["before"], "lost": pair["lost"],
                             "gained": pair["gained"], "n_images": pair["n_images"]})
    return pd.DataFrame(rows)


@step("02_finetuning", tables=("uniform_before_after",))
def uniform_before_after(cfg: Mapping, models: Sequence[str] = MODELS,
                         accuracies: pd.DataFrame | None = None) -> StepResult:
    """GroSS validation accuracy of every uniform configuration straight after decomposition and after fine-tuning.

    Writes table ``uniform_before_after`` (:func:`uniform_accuracies`, or ``accuracies``
    when given: ``model, repeat, config, before, after, improved, lost, gained, n_images``):
    the check that fine-tuning does not lose accuracy.
    """
    accuracies = uniform_accuracies(cfg, models) if accuracies is None else accuracies
    return StepResult(tables={"uniform_before_after": accuracies})


def _individual_inputs(cfg: Mapping, name: str, config: tuple, repeat: int, kind: str):
    """Recipe, GroSS model, data and pre-fine-tune accuracy of one individual fine-tune."""
    rec = recipe(cfg, name, kind, seed=int(cfg["seed"]) + int(repeat))
    init = gross_decompose(cfg, name, int(repeat) % n_repeats(cfg, name), compute=False)
    data = prepare_data(cfg, name)
    no_ft = correct_images(init, data, config=config, split="val", **eval_kwargs(cfg, data))
    return rec, init, data, no_ft


def _individual_payload(cfg: Mapping, name: str, config: tuple, repeat: int, kind: str, rec, data, net, history,
                        no_ft: torch.Tensor) -> dict:
    """The stored result of one individual fine-tune; ``no_ft``: its validation images right before training."""
    pair = paired_change(no_ft, correct_images(net, data, split="val", **eval_kwargs(cfg, data)))
    return {"model": name, "config": list(config), "repeat": int(repeat), "kind": kind, "epochs": rec.epochs,
            "val_acc": pair["after"], "test_acc": evaluate(cfg, net, data, "test"),
            "no_finetune_val_acc": pair["before"], "val_lost": pair["lost"], "val_gained": pair["gained"],
            "history_val_acc": [float(v) for v in history["val_acc"]]}


def _individual(cfg: Mapping, store: Store, name: str, config: tuple, repeat: int, kind: str) -> dict:
    from gross.training.loop import finetune_config

    rec, init, data, no_ft = _individual_inputs(cfg, name, config, repeat, kind)
    label = "-".join(map(str, config))
    with precision(cfg):
        net, history = finetune_config(init, config, data, rec, run_dir=store.root / "checkpoints" / "true",
                                       resume=True, device=resolve_device(cfg),
                                       name=f"{name}_{kind}_{label}_r{repeat}_{store.fingerprint_so_far()}",
                                       progress=False)
    return _individual_payload(cfg, name, config, repeat, kind, rec, data, net, history, no_ft)


def _label(name: str, config: tuple, repeat: int, kind: str) -> str:
    return f"{name} {kind} {'-'.join(map(str, config))} repeat {repeat}"


def _individuals_at_once(cfg: Mapping, store: Store, name: str, items: Sequence[tuple], kind: str) -> dict:
    """Train the individual fine-tunes ``items`` (``(config, repeat)``) at once; ``{artefact: payload}``.

    :func:`gross.training.batched.finetune_many` trains them as :func:`_individual` trains
    each alone (own seed, data order, dropout, schedule); one checkpoint holds them all
    (``checkpoints/true/<name>_<kind>_x<K>_<hash>_<fingerprint>.pt``, resumed). A network whose
    loss goes NaN/inf is named in a :class:`gross.training.loop.TrainingDivergedError` after
    the others are returned (:class:`gross.runs.store.PartialResults`). Trained under the
    profile's precision (:func:`gross.pipeline.common.precision`), as :func:`_individual`.
    """
    from gross.runs.store import PartialResults
    from gross.training.batched import NetworksDivergedError, finetune_many
    from gross.training.loop import TrainingDivergedError
    from gross.utils.hashing import digest

    inputs = [_individual_inputs(cfg, name, c, r, kind) for c, r in items]
    recipes, models, data = [i[0] for i in inputs], [i[1] for i in inputs], inputs[0][2]
    tag = digest([[list(c), int(r)] for c, r in items], 10)
    diverged = None
    try:
        with precision(cfg):
            nets, histories = finetune_many(models, [c for c, _ in items], data, recipes,
                                            device=resolve_device(cfg),
                                            run_dir=store.root / "checkpoints" / "true", resume=True,
                                            name=f"{name}_{kind}_x{len(items)}_{tag}_{store.fingerprint_so_far()}",
                                            on_nonfinite="isolate")
    except NetworksDivergedError as exc:
        nets, histories, diverged = exc.nets, exc.histories, exc
    bad = set(diverged.indices) if diverged is not None else set()
    payloads = {true_path(name, c, r, kind): _individual_payload(cfg, name, c, r, kind, inputs[i][0], data, nets[i],
                                                                 histories[i], inputs[i][3])
                for i, (c, r) in enumerate(items) if i not in bad}
    if diverged is not None:
        which = ", ".join(f"{_label(name, *items[i], kind)} (epoch {e})" for i, e in zip(diverged.indices,
                                                                                      diverged.epochs))
        raise PartialResults(payloads, TrainingDivergedError(
            f"individual fine-tunes diverged (training loss NaN/inf): {which}; they were trained {len(items)} at "
            f"once and the other {len(items) - len(bad)} finished and were stored. Lower the learning rate or "
            "check the decomposition, then run the step again"))
    return payloads


def _memory_cap(cfg: Mapping, name: str, items: Sequence[tuple], kind: str) -> int:
    """Most networks of ``items`` trained at once in the free memory of the profile's GPU (all of them on CPU)."""
    device = resolve_device(cfg)
    if device.type != "cuda":
        return len(items)
    from gross.method.decomposition import export
    from gross.training.batched import largest_k_that_fits

    model = gross_decompose(cfg, name, int(items[0][1]) % n_repeats(cfg, name), compute=False)
    dense = tuple(max(s) for s in search_space(model).values())  # packed networks hold dense R's
    net = export(model, dense).to(device)
    free = torch.cuda.mem_get_info(device)[0]
    return min(len(items), largest_k_that_fits(net, recipe(cfg, name, kind).batch_size, free))


def make_individuals(cfg: Mapping, name: str, configs: Sequence, repeats: Sequence[int],
                     kind: str = "config") -> list[dict]:
    """Individual fine-tunes of ``configs[i]`` at ``repeats[i]``, trained several at once, stored.

    Each artefact is :func:`true_path` with the payload and settings :func:`true_accuracy`
    writes alone (:meth:`gross.runs.store.Store.make_many`); stored ones are loaded. On a
    GPU the networks are split into chunks that fit its free memory
    (:func:`gross.training.batched.largest_k_that_fits`), and a chunk that still runs out of
    memory is halved and retried; finished chunks are stored first, so nothing finished is
    lost. Returns the payloads in order.
    """
    from gross.pipeline.common import _check_name

    _check_name(name)
    items = [(tuple(int(s) for s in c), int(r)) for c, r in zip(configs, repeats)]
    if len(items) != len(configs) or len(items) != len(repeats) or not items:
        raise ValueError(f"make_individuals needs one repeat per configuration and at least one, got "
                         f"{len(configs)} configurations and {len(repeats)} repeats")
    store = Store(cfg)
    cap = _memory_cap(cfg, name, items, kind)
    chunks = [items[i:i + cap] for i in range(0, len(items), cap)]
    results = {}
    while chunks:
        chunk = chunks.pop(0)
        paths = [true_path(name, c, r, kind) for c, r in chunk]
        by_path = dict(zip(paths, chunk))
        try:
            payloads = store.make_many(paths, lambda missing: _individuals_at_once(
                cfg, store, name, [by_path[p] for p in missing], kind), NOTEBOOKS["finetuning"])
        except torch.OutOfMemoryError:
            if len(chunk) == 1:
                raise RuntimeError(f"{_label(name, *chunk[0], kind)}: one network alone does not fit in the free "
                                   "memory of the GPU; free memory (fewer workers_per_gpu) or use a larger GPU")                     from None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = (len(chunk) + 1) // 2
            chunks[:0] = [chunk[:half], chunk[half:]]
            continue
        results.update(zip(paths, payloads))
    return [results[true_path(name, c, r, kind)] for c, r in items]


_HISTORY_EVAL_BATCH = inspect.signature(accuracy).parameters["batch_size"].default


def partial_is_prefix(cfg: Mapping, name: str = "four_layer") -> bool:
    """Whether Table 5's partial fine-tune is the first epochs of the individual one.

    True when the partial recipe is the configuration recipe cut short (same batch,
    learning rate, momentum, normalisation, seed) and ends at or before its first
    learning-rate milestone: training is then seeded and scheduled identically
    (:func:`gross.training.loop.finetune_config`), so the partial network *is* the individual
    fine-tune after ``ap.partial_epochs`` epochs, and its validation accuracy is the
    one recorded in that run's history. The paper's settings (5 of 100 epochs, decay
    at 80) and the ``cpu`` profile's qualify. The history is evaluated in batches of
    1000, so with another ``data.eval_batch_size`` (unless both batches hold the whole
    validation split) the partial network is trained.
    """
    part, full = recipe(cfg, name, "partial"), recipe(cfg, name, "config")
    same = dataclasses.replace(part, epochs=full.epochs, milestones=full.milestones, name=full.name) == full
    # the history's validation runs at gross.search.evaluation.accuracy's default batch (last bits may depend on it)
    batch, n_val = int(cfg["data"]["eval_batch_size"]), int(cfg["data"]["n_val"])
    same = same and not part.milestones and (batch == _HISTORY_EVAL_BATCH or min(batch, _HISTORY_EVAL_BATCH) >= n_val)
    return same and part.epochs <= min(full.milestones + (full.epochs,))


def _partial_from_config(cfg: Mapping, name: str, config: tuple, repeat: int) -> dict:
    """The partial fine-tune read from the individual one's history (:func:`partial_is_prefix`)."""
    full = true_accuracy(cfg, name, config, repeat, "config")
    p = recipe(cfg, name, "partial").epochs
    return {"model": name, "config": list(config), "repeat": int(repeat), "kind": "partial", "epochs": p,
            "val_acc": full["history_val_acc"][p - 1], "test_acc": None,
            "no_finetune_val_acc": full["no_finetune_val_acc"], "history_val_acc": full["history_val_acc"][:p],
            "derived_from": true_path(name, config, repeat, "config")}


def _make_individual(cfg: Mapping, store: Store, name: str, config: tuple, repeat: int, kind: str) -> dict:
    if kind == "partial" and partial_is_prefix(cfg, name):
        return _partial_from_config(cfg, name, config, repeat)
    return _individual(cfg, store, name, config, repeat, kind)


def true_accuracy(cfg: Mapping, name: str, config, repeat: int = 0, kind: str = "config") -> dict:
    """Individual fine-tune of one configuration (the paper's *true* accuracy), stored.

    The decomposition of GroSS repeat ``repeat mod repeats`` (notebook 01) is exported
    at ``config`` and fine-tuned with the individual schedule (``kind="config"``) or
    the partial one of Table 5 (``kind="partial"``, ``ap.partial_epochs``), seed
    ``seed + repeat``. Where the partial fine-tune is the start of the individual one
    (:func:`partial_is_prefix`), it is not trained again: its result is read from the
    individual fine-tune's per-epoch validation accuracy (``test_acc`` is then None and
    ``derived_from`` names that artefact).

    Returns
    -------
    dict
        ``config`` (list), ``repeat``, ``kind``, ``epochs``, ``val_acc``, ``test_acc``,
        ``no_finetune_val_acc`` (the exported network before training), ``wall_time_s``.
    """
    from gross.pipeline.common import _check_name

    _check_name(name)
    config = tuple(int(s) for s in config)
    store = Store(cfg)
    path = true_path(name, config, repeat, kind)
    return store.make(path, lambda: _make_individual(cfg, store, name, config, repeat, kind), NOTEBOOKS["finetuning"])


def true_path(name: str, config, repeat: int = 0, kind: str = "config") -> str:
    """Store artefact of the individual fine-tune :func:`true_accuracy` makes."""
    return f"true/{name}/{kind}_{'-'.join(str(int(s)) for s in config)}_r{int(repeat)}.json"


def true_accuracies(cfg: Mapping, name: str, configs, repeats, kind: str = "config") -> dict:
    """:func:`true_accuracy` of every configuration and repeat, the missing ones run as jobs.

    The individual fine-tunes are independent, so they fan out on the profile's
    executor (:func:`gross.pipeline.common.fan_out`); each result is the same whatever
    the executor. With ``training.networks_at_once`` K > 1 (``"auto"``: on a GPU) the
    missing ones are trained K at a time (:func:`make_individuals`, one job per K), with
    the results one at a time gives. Partial fine-tunes that are the start of individual ones
    (:func:`partial_is_prefix`) run as those. Returns ``{(config, repeat): result}``.
    """
    pairs = list(dict.fromkeys((tuple(int(s) for s in c), int(r)) for c in configs for r in repeats))
    job = "config" if kind == "partial" and partial_is_prefix(cfg, name) else kind
    k = networks_at_once(cfg)
    if k > 1:  # K at a time (gross.training.batched), each K-chunk one job
        store = Store(cfg)
        todo = [(c, r) for c, r in pairs if not store.is_fresh(true_path(name, c, r, job))]
        chunks = [todo[i:i + k] for i in range(0, len(todo), k)]
        fan_out(cfg, "true", [(make_individuals, (name, [list(c) for c, _ in ch], [r for _, r in ch], job),
                               true_path(name, *ch[0], job)) for ch in chunks if len(ch) > 1])
    fan_out(cfg, "true", [(true_accuracy, (name, list(c), r, job), true_path(name, c, r, job)) for c, r in pairs])
    return {(c, r): true_accuracy(cfg, name, c, r, kind) for c, r in pairs}


def uniform_finetunes(cfg: Mapping, models: Sequence[str] = MODELS) -> pd.DataFrame:
    """Individual fine-tunes of the uniform baseline configurations of each network (and of size 1).

    The configurations are ``uniform(space, s)`` for ``s`` in ``<model>.baselines`` and 1,
    each fine-tuned ``<model>.true_repeats`` times (:func:`true_accuracies`: the missing
    ones run as jobs, the stored ones are loaded).

    Returns
    -------
    DataFrame
        ``model, config, repeat, epochs, no_finetune_val_acc, val_acc, test_acc, val_lost, val_gained``
        (validation images the fine-tune lost / gained; empty for results stored before these
        were recorded) and ``train_time_s``.
    """
    rows = []
    for name in check_models(models):
        space = search_space(load_gross(cfg, name, 0, tuned=False))
        sizes = list(cfg[name]["baselines"]) + [1]
        configs = list(dict.fromkeys(uniform(space, s) for s in sizes))
        results = true_accuracies(cfg, name, configs, range(true_repeats(cfg, name)))
        for c in configs:
            for r in range(true_repeats(cfg, name)):
                res = results[(c, r)]
                rows.append({"model": name, "config": config_str(c), "repeat": r, "epochs": res["epochs"],
                             "no_finetune_val_acc": res["no_finetune_val_acc"], "val_acc": res["val_acc"],
                             "test_acc": res["test_acc"], "val_lost": res.get("val_lost"),
                             "val_gained": res.get("val_gained"), "train_time_s": res["wall_time_s"]})
    return pd.DataFrame(rows)


@step("02_finetuning", tables=("individual_finetunes",))
def individual_finetunes(cfg: Mapping, models: Sequence[str] = MODELS,
                         finetunes: pd.DataFrame | None = None) -> StepResult:
    """Individual fine-tunes of the uniform baseline configurations of both networks (and 1s).

    These are the "true" accuracies of the baselines of Tables 2 and 3 (re-used by
    notebooks 03 and 04). Writes table ``individual_finetunes`` (:func:`uniform_finetunes`,
    or ``finetunes`` when given).
    """
    finetunes = uniform_finetunes(cfg, models) if finetunes is None else finetunes
    return StepResult(tables={"individual_finetunes": finetunes})
