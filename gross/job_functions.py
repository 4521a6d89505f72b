"""Job functions of the pipeline steps, for :class:`gross.jobs.Job` (one call per step to wire).

Every function is module-level (picklable), takes JSON-like keyword arguments plus
input artefact paths, trains on :func:`gross.utils.default_device` (in a ``local``
worker: its one GPU), checkpoints to ``checkpoint_dir`` through :mod:`gross.train`'s
resume mechanism, and returns a dict that :func:`gross.jobs.execute` stores.

=====================  ===========================================  ======================
job function           inputs (paths)                               result keys
=====================  ===========================================  ======================
base_training          --                                           model, model_kwargs,
                                                                    state_dict, history,
                                                                    val_acc, test_acc
btd_layer              base (base_training output)                  layer, group_size, P,
                                                                    R, Q, error, errors
gross_finetune         init (a GroSS file, :func:`gross_init`)      as base_training + space
individual_finetune    init (a GroSS file)                          config, state_dict, ...
individual_finetunes   init (a GroSS file)                          runs (one per seed)
=====================  ===========================================  ======================

Specs: ``data`` is ``{"kind": "synthetic", ...synthetic() args}`` or
``{"kind": "cifar10", "root": ..., "val_size": ..., "seed": ..., "n_train": ...,
"n_val": ..., "n_test": ...}``; ``recipe`` is a dict of :class:`gross.train.Recipe`
fields. Keep in mind that a job's kwargs are its fingerprint: equal specs share outputs.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from .data import Dataset, cifar10, subset, synthetic
from .decomposition import gross_layers, search_space
from .layers import GroSSConv2d
from .models import build
from .utils import atomic_save, default_device

__all__ = [
    "load_data",
    "make_recipe",
    "read_artefact",
    "base_training",
    "btd_layer",
    "gross_init",
    "save_gross_init",
    "load_gross_model",
    "gross_finetune",
    "individual_finetune",
    "individual_finetunes",
]

_DATA_KINDS = ("synthetic", "cifar10")


def load_data(spec: Mapping) -> Dataset:
    """The dataset described by ``spec`` (see the module docstring)."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind == "synthetic":
        return synthetic(**spec)
    if kind == "cifar10":
        sizes = {k: spec.pop(k, None) for k in ("n_train", "n_val", "n_test")}
        data = cifar10(**spec)
        return subset(data, **sizes, seed=int(spec.get("seed", 0))) if any(v is not None for v in sizes.values()) \
            else data
    raise ValueError(f"data spec kind must be one of {_DATA_KINDS}, got {kind!r}")


def make_recipe(spec: Mapping, **changes):
    """A :class:`gross.train.Recipe` from a dict of its fields (plus ``changes``)."""
    from .train import Recipe

    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise ValueError(f"unknown recipe fields {unknown}; valid fields are {sorted(fields)}")
    return Recipe(**{**dict(spec), **changes})


def read_artefact(path) -> dict:
    """A job output (checked, :func:`gross.jobs.load_output`) or a plain ``torch.save`` dict."""
    from .jobs import _OUTPUT_FORMAT, load_output

    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and payload.get("format") == _OUTPUT_FORMAT:
        return load_output(path)
    return payload


def _state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _accuracies(model, data, recipe) -> dict:
    from .train import evaluate

    kw = {"mean": recipe.mean, "std": recipe.std}
    return {"val_acc": evaluate(model, data, split="val", **kw), "test_acc": evaluate(model, data, split="test", **kw)}


def _history(df) -> dict:
    return {k: [float(v) for v in df[k]] for k in df.columns}


def base_training(*, model: str, data: Mapping, recipe: Mapping, seed: int = 0, model_kwargs: Mapping | None = None,
                  checkpoint_dir=None) -> dict:
    """Train base network ``model`` (:func:`gross.models.build` name) from scratch with ``recipe``."""
    from .train import train_base

    torch.manual_seed(seed)  # weight initialisation
    net = build(model, **dict(model_kwargs or {}))
    ds = load_data(data)
    rec = make_recipe(recipe, seed=int(seed))
    history = train_base(net, ds, rec, run_dir=checkpoint_dir, resume=checkpoint_dir is not None,
                         device=default_device(), progress=False, name="base")
    return {"model": model, "model_kwargs": dict(model_kwargs or {}), "state_dict": _state(net),
            "history": _history(history), **_accuracies(net, ds, rec)}


def _base_net(base: Mapping) -> nn.Module:
    net = build(base["model"], **dict(base.get("model_kwargs", {})))
    net.load_state_dict(base["state_dict"])
    return net.eval()


def btd_layer(*, base, layer: str, group_size: int, width: int | None = None, tol: float = 1e-6,
              max_iter: int = 500_000, method: str = "als", ridge: float = 0.0, seed: int = 0,
              n_init: int = 1) -> dict:
    """BTD (:func:`gross.btd.btd`) of one layer of the base network at one group size."""
    from .btd import btd

    conv = _base_net(read_artefact(base)).get_submodule(layer)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"layer {layer!r} of the base network is a {type(conv).__name__}, not an nn.Conv2d")
    res = btd(conv.weight.detach(), int(group_size), width=width, tol=tol, max_iter=max_iter, seed=seed,
              method=method, ridge=ridge, n_init=n_init)
    errors = [float(e) for e in res.errors]
    return {"layer": layer, "group_size": int(group_size), "P": res.P, "R": res.R, "Q": res.Q,
            "error": errors[-1] if errors else float("nan"), "errors": errors}


def gross_init(base: Mapping, btd_results: Sequence[Mapping]) -> nn.Module:
    """Assemble the GroSS-decomposed network from a base result and its :func:`btd_layer` results."""
    net = _base_net(base)
    factors: "OrderedDict[str, dict]" = OrderedDict()
    for r in btd_results:
        factors.setdefault(r["layer"], {})[int(r["group_size"])] = (r["P"], r["R"], r["Q"], float(r["error"]))
    for name, per_size in factors.items():
        layer = GroSSConv2d.from_factors(net.get_submodule(name), {s: f[:3] for s, f in per_size.items()})
        layer.btd_errors = {s: f[3] for s, f in per_size.items()}
        layer.name = name
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, child, layer)
    return net.eval()


def save_gross_init(model: nn.Module, base: Mapping, path) -> Path:
    """Write a GroSS network as the ``init`` input of the fine-tune jobs (atomically)."""
    state = {"model": base["model"], "model_kwargs": dict(base.get("model_kwargs", {})),
             "space": {n: list(s) for n, s in search_space(model).items()}, "state_dict": _state(model),
             "btd_errors": {n: {str(s): float(e) for s, e in layer.btd_errors.items()}
                            for n, layer in gross_layers(model).items()}}
    return atomic_save(state, path)


def load_gross_model(init) -> nn.Module:
    """The GroSS network stored by :func:`save_gross_init` (or a GroSS fine-tune job output)."""
    state = read_artefact(init)
    net = build(state["model"], **dict(state.get("model_kwargs", {})))
    for name, sizes in state["space"].items():
        conv = net.get_submodule(name)
        layer = GroSSConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, sizes, stride=conv.stride,
                            padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None)
        layer.name = name
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, child, layer)
    net.load_state_dict(state["state_dict"])
    for layer in gross_layers(net).values():
        layer.clear_cache()
    return net.eval()


def gross_finetune(*, init, data: Mapping, recipe: Mapping, seed: int = 0, checkpoint_dir=None) -> dict:
    """GroSS fine-tuning (:func:`gross.train.finetune_gross`) of the network in ``init``."""
    from .train import finetune_gross

    net = load_gross_model(init)
    ds = load_data(data)
    rec = make_recipe(recipe, seed=int(seed))
    history = finetune_gross(net, ds, rec, run_dir=checkpoint_dir, resume=checkpoint_dir is not None,
                             device=default_device(), progress=False, name="gross")
    state = read_artefact(init)
    return {"model": state["model"], "model_kwargs": state.get("model_kwargs", {}), "space": state["space"],
            "state_dict": _state(net), "history": _history(history), "btd_errors": state.get("btd_errors", {})}


def individual_finetune(*, init, config: Sequence[int], data: Mapping, recipe: Mapping, seed: int = 0,
                        checkpoint_dir=None) -> dict:
    """Individual fine-tune (:func:`gross.train.finetune_config`) of one configuration of ``init``."""
    from .train import evaluate, finetune_config

    gross = load_gross_model(init)
    ds = load_data(data)
    rec = make_recipe(recipe, seed=int(seed))
    config = [int(s) for s in config]
    no_ft = evaluate(gross, ds, config=config, split="val", mean=rec.mean, std=rec.std)
    net, history = finetune_config(gross, config, ds, rec, run_dir=checkpoint_dir, resume=checkpoint_dir is not None,
                                   device=default_device(), progress=False, name="config")
    return {"config": config, "seed": int(seed), "state_dict": _state(net), "history": _history(history),
            "no_finetune_val_acc": no_ft, **_accuracies(net, ds, rec)}


def individual_finetunes(*, init, configs: Sequence, seeds: Sequence[int], data: Mapping, recipe: Mapping,
                         method: str = "auto", checkpoint_dir=None) -> dict:
    """Several individual fine-tunes in one job, trained at once on a GPU (:mod:`gross.batched`).

    ``configs`` is one configuration for every seed, or one per seed (packed). On CUDA
    the networks are trained together (``vmap``), on CPU one after the other
    (``method="auto"``); run ``i`` equals :func:`individual_finetune` with ``configs[i]``
    and ``seeds[i]`` (bitwise on the sequential path; up to floating-point reassociation
    batched: tested within 1e-10 in float64).
    """
    from .batched import _as_configs, finetune_configs
    from .train import evaluate

    gross = load_gross_model(init)
    ds = load_data(data)
    recipes = [make_recipe(recipe, seed=int(s)) for s in seeds]
    configs = _as_configs(gross, configs, len(recipes))
    no_ft = [evaluate(gross, ds, config=c, split="val", mean=r.mean, std=r.std) for c, r in zip(configs, recipes)]
    nets, histories = finetune_configs(gross, configs, ds, recipes, method=method, device=default_device(),
                                       run_dir=checkpoint_dir, resume=checkpoint_dir is not None)
    runs = [{"config": list(c), "seed": int(s), "state_dict": _state(n), "history": _history(h),
             "no_finetune_val_acc": nf, **_accuracies(n, ds, r)}
            for c, s, n, h, r, nf in zip(configs, seeds, nets, histories, recipes, no_ft)]
    return {"runs": runs}
