"""Notebook 02: GroSS fine-tuning (``<model>_gross_<r>.pt``) and individual fine-tunes ("true" accuracy).

Individual fine-tunes are stored per configuration under
``runs/<profile>/true/<model>/<kind>_<config>_r<repeat>.json``, so notebooks 02, 03,
04 and 05 share them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gross.method.decomposition import search_space
from gross.search.evaluation import accuracy
from gross.method.space import config_str
from gross.pipeline.common import (MODELS, NOTEBOOKS, check_models, eval_kwargs, evaluate, fan_out, n_repeats, prepare_data,
                     recipe, resolve_device, true_repeats, uniform, uniform_configs)
from gross.pipeline.decomposition import gross_decompose, gross_payload, load_gross, tuned_path
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store

__all__ = ["finetune_gross", "finetune_gross_models", "uniform_before_after", "true_path", "true_accuracy",
           "true_accuracies", "partial_is_prefix", "individual_finetunes"]


def _finetune(cfg: Mapping, store: Store, name: str, r: int) -> dict:
    from gross.training.loop import finetune_gross as _train

    data = prepare_data(cfg, name)
    model = gross_decompose(cfg, name, r, compute=False)
    rec = recipe(cfg, name, "gross", seed=int(cfg["seed"]) + r)
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


@step("02_finetuning", tables=("finetune_history",), figures=("fig_finetuning_curves",))
def finetune_gross_models(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """GroSS fine-tuning of every decomposition (4-layer: all repeats; VGG-16: one).

    The validation accuracy of the smallest and largest uniform configurations is
    tracked every epoch. Writes table ``finetune_history`` and figure
    ``fig_finetuning_curves``. ``models`` restricts the step to some of :data:`MODELS`.
    """
    from gross.report import plots

    names = check_models(models)
    fan_out(cfg, "02_finetuning", [(finetune_gross, (name, r), tuned_path(name, r))
                                   for name in names for r in range(n_repeats(cfg, name))])
    histories = []
    for name in names:
        for r in range(n_repeats(cfg, name)):
            histories.append(finetune_gross(cfg, name, r).assign(model=name, repeat=r))
    df = pd.concat(histories, ignore_index=True)
    front = ["model", "repeat", "epoch"]
    df = df[front + [c for c in df.columns if c not in front]]
    fig = plots.finetuning_curves(_curves(df))
    return StepResult(tables={"finetune_history": df}, figures={"fig_finetuning_curves": fig})


@step("02_finetuning", tables=("uniform_before_after",))
def uniform_before_after(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """GroSS validation accuracy of every uniform configuration straight after decomposition and after fine-tuning.

    Writes table ``uniform_before_after`` (``model, repeat, config, before, after,
    improved``): the check that fine-tuning does not lose accuracy.
    """
    from gross.search.evaluation import evaluate_configs

    rows = []
    for name in check_models(models):
        data = prepare_data(cfg, name)
        for r in range(n_repeats(cfg, name)):
            init, tuned = load_gross(cfg, name, r, tuned=False), load_gross(cfg, name, r)
            configs = uniform_configs(search_space(init))
            before = evaluate_configs(init, configs, data, split="val", **eval_kwargs(cfg, data))
            after = evaluate_configs(tuned, configs, data, split="val", **eval_kwargs(cfg, data))
            for c, b, a in zip(configs, before["accuracy"], after["accuracy"]):
                rows.append({"model": name, "repeat": r, "config": config_str(c), "before": b, "after": a,
                             "improved": a >= b})
    return StepResult(tables={"uniform_before_after": pd.DataFrame(rows)})


def _individual(cfg: Mapping, store: Store, name: str, config: tuple, repeat: int, kind: str) -> dict:
    from gross.training.loop import finetune_config

    rec = recipe(cfg, name, kind, seed=int(cfg["seed"]) + int(repeat))
    init = gross_decompose(cfg, name, int(repeat) % n_repeats(cfg, name), compute=False)
    data = prepare_data(cfg, name)
    no_ft = evaluate(cfg, init, data, "val", config=config)
    label = "-".join(map(str, config))
    net, history = finetune_config(init, config, data, rec, run_dir=store.root / "checkpoints" / "true",
                                   resume=True, device=resolve_device(cfg),
                                   name=f"{name}_{kind}_{label}_r{repeat}_{store.fingerprint_so_far()}",
                                   progress=False)
    return {"model": name, "config": list(config), "repeat": int(repeat), "kind": kind, "epochs": rec.epochs,
            "val_acc": evaluate(cfg, net, data, "val"), "test_acc": evaluate(cfg, net, data, "test"),
            "no_finetune_val_acc": no_ft, "history_val_acc": [float(v) for v in history["val_acc"]]}


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
    the executor. Partial fine-tunes that are the start of individual ones
    (:func:`partial_is_prefix`) run as those. Returns ``{(config, repeat): result}``.
    """
    pairs = list(dict.fromkeys((tuple(int(s) for s in c), int(r)) for c in configs for r in repeats))
    job = "config" if kind == "partial" and partial_is_prefix(cfg, name) else kind
    fan_out(cfg, "true", [(true_accuracy, (name, list(c), r, job), true_path(name, c, r, job)) for c, r in pairs])
    return {(c, r): true_accuracy(cfg, name, c, r, kind) for c, r in pairs}


@step("02_finetuning", tables=("individual_finetunes",))
def individual_finetunes(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """Individual fine-tunes of the uniform baseline configurations of both networks (and 1s).

    These are the "true" accuracies of the baselines of Tables 2 and 3 (re-used by
    notebooks 03 and 04). Writes table ``individual_finetunes``.
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
                             "test_acc": res["test_acc"], "train_time_s": res["wall_time_s"]})
    return StepResult(tables={"individual_finetunes": pd.DataFrame(rows)})
