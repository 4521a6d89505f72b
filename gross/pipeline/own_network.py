"""Notebook 07 (beyond the paper): GroSS on your own network, a CIFAR-10 ResNet-18 with batch norm.

The README's "Apply GroSS to your own model" as a pipeline: a network that is none of the
paper's (:func:`gross.models.resnet18_cifar`: residual blocks, batch norm after every
convolution, no conv biases) goes through every stage of the method with the library's
public verbs. Settings come from the ``[own_network]`` section (``configs/paper.toml``);
latency tables use the timing settings of ``[latency]`` (:func:`gross.pipeline.latency.settings`).

1. **Base network** (:func:`base_network`): loaded from a state dict (``own_network.weights``,
   ``torch.load(weights_only=True)``) or trained from scratch (:data:`BASE_RECIPE`, cached).
   GroSS starts from a *trained* network: fine-tuning the decomposition of a random one
   stays at chance, because BTD reproduces its random function.
2. **Decomposition** (:func:`decompose`): :func:`gross.method.decomposition.decompose` with its
   default layer choice (every ungrouped k×k convolution but the first: the 16 3x3
   convolutions of the blocks; the stem and the 1x1 downsamples stay), group sizes
   ``own_network.group_sizes`` (those dividing each layer's width).
3. **GroSS fine-tuning** (:func:`finetune`): :func:`gross.training.loop.finetune_gross`
   with :data:`GROSS_RECIPE`; every other parameter is frozen and batch norm stays in
   eval mode (its statistics are those of the base network).
4. **Search** (:func:`search`): under a MAC budget and under a predicted-latency budget
   (the uniform baselines' costs), exhaustively when the space has at most
   ``own_network.max_exhaustive`` configurations, else breadth-first.
5. **Export** (:func:`onnx_check`): the chosen configuration as a plain network
   (:func:`gross.method.decomposition.export`), written to ONNX and run with onnxruntime
   (:mod:`gross.method.deploy`).

Artefacts (``runs/<profile>/own_network/``; names carry the network width and a digest of
the weights they start from, so a different ``weights`` file, or a GPU run at another
width, never reuses them): ``<tag>_base.pt`` (trained base), ``<tag>_gross_init.pt``,
``<tag>_gross.pt`` (fine-tuned), ``acc/*.json`` (evaluations), ``search-*.json``,
``confirm-*.json``, ``onnx-*.json`` and the ``.onnx`` files; latency tables under
``runs/<profile>/latency/`` (:func:`gross.pipeline.latency.tables`).

Batch norm
----------
:func:`gross.method.macs.count_macs` counts two MACs per output element of a batch norm
(scale and shift, as ``thop`` does); the base table lists that share (``batchnorm_macs``).
Decomposition handles conv + batch norm networks as they are: a GroSS layer replaces the
convolution only, so the batch norm after it stays (and stays frozen during GroSS
fine-tuning) and the exported network keeps it after the ``Q`` convolution (``bias=False``
as the original). Deployment could fold each batch norm into the preceding ``Q``
convolution (saving those MACs); :func:`gross.method.decomposition.export` does not.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from gross import data as gdata
from gross.method import deploy
from gross.method.decomposition import (decomposable_layers, export, gross_layers, planned_space, search_space,
                                        skeleton)
from gross.method.decomposition import decompose as _decompose
from gross.method.macs import mac_table
from gross.method.space import SearchSpace, config_str, parse_config
from gross.models import resnet18_cifar
from gross.pipeline import latency as latency_steps
from gross.pipeline.common import eval_kwargs, evaluate, prepare_data, resolve_device, uniform, uniform_configs
from gross.report.plots import figure_builder
from gross.pipeline.decomposition import gross_payload
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store
from gross.search import latency as L
from gross.search.algorithms import bfs_search, exhaustive_search
from gross.search.costs import LatencyCost, model_mac_lookup
from gross.search.evaluation import ConfigEvaluator, evaluate_configs
from gross.training.loop import finetune_gross, train_base
from gross.training.recipes import Recipe
from gross.utils import paths
from gross.utils.hashing import bytes_digest, digest

__all__ = [
    "NOTEBOOK",
    "MODEL",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "BASE_RECIPE",
    "GROSS_RECIPE",
    "width",
    "load_data",
    "build",
    "base_recipe",
    "gross_recipe",
    "weights_path",
    "base_network",
    "base_history",
    "base_summary",
    "layer_table",
    "decompose",
    "btd_errors",
    "btd_error_figure",
    "finetune",
    "uniform_accuracies",
    "latency_table",
    "search_method",
    "search",
    "confirm",
    "search_figure",
    "chosen_config",
    "onnx_check",
    "own_base_network",
    "own_decomposition",
    "own_finetuning",
    "own_search",
    "own_export",
]

#: Stem of the notebook these steps belong to.
NOTEBOOK = "07_gross_on_your_network"
#: Registry name of the network (:data:`gross.models.MODELS`).
MODEL = "resnet18_cifar"
#: Per-channel statistics of CIFAR-10's training images: the usual normalisation of CIFAR ResNets
#: (weights given in ``own_network.weights`` must have been trained on inputs normalised so).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

#: Base training from scratch: the usual CIFAR ResNet schedule (SGD, momentum 0.9, weight decay 5e-4,
#: batch 128, lr 0.1 decayed x0.1 at 50 % and 75 % of the epochs; pad/crop/flip augmentation).
#: Epochs and learning rate: ``own_network.base_epochs`` / ``base_lr``.
BASE_RECIPE = Recipe(200, 128, 0.1, weight_decay=5e-4, milestones=(100, 150), mean=CIFAR10_MEAN, std=CIFAR10_STD,
                     name="resnet18_cifar_base")
#: GroSS fine-tuning: the paper's CIFAR VGG-16 schedule (Sec. 4.4: batch 256, lr 1e-4, decay at 50 % and
#: 75 %). Epochs and learning rate: ``own_network.gross_epochs`` / ``gross_lr``.
GROSS_RECIPE = Recipe(200, 256, 1e-4, milestones=(100, 150), mean=CIFAR10_MEAN, std=CIFAR10_STD,
                      name="resnet18_cifar_gross")

_FOLDER = "own_network"


# ----------------------------------------------------------------------------- settings and data


def width(cfg: Mapping) -> float:
    """The channel multiplier of the network: ``own_network.width_mult``, or "auto" when it is 0.

    Auto is full width (1.0) where the run's ``device`` is an accelerator and
    ``own_network.cpu_width_mult`` on a CPU (only then is that key read, so it appears in
    an output's settings only when it was used).
    """
    on = cfg["own_network"]
    if on["width_mult"] > 0:
        return float(on["width_mult"])
    return 1.0 if resolve_device(cfg).type != "cpu" else float(on["cpu_width_mult"])


def load_data(cfg: Mapping):
    """The CIFAR-10 (or synthetic) splits of the profile, subsampled and normalised for the ResNet.

    The profile's data (``data.*``, as every notebook) with at most
    ``own_network.n_train`` training, ``n_val`` validation and ``n_test`` test images (0 =
    all; stratified, seeded by ``data.split_seed``), normalised with
    :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`.
    """
    ds = prepare_data(cfg, "four_layer")  # the profile's splits (data.*); normalisation replaced below
    on = cfg["own_network"]
    sizes = {f"n_{split}": on[f"n_{split}"] if 0 < on[f"n_{split}"] < len(getattr(ds, split)) else None
             for split in ("train", "val", "test")}
    if any(v is not None for v in sizes.values()):
        ds = gdata.subset(ds, seed=int(cfg["data"]["split_seed"]) + 11, **sizes)
    return ds.with_normalization(CIFAR10_MEAN, CIFAR10_STD)


def build(cfg: Mapping) -> nn.Module:
    """A freshly initialised (seeded with ``seed``) ResNet-18 at :func:`width`."""
    torch.manual_seed(int(cfg["seed"]))
    return resnet18_cifar(width_mult=width(cfg))


def base_recipe(cfg: Mapping) -> Recipe:
    """:data:`BASE_RECIPE` with ``own_network.base_epochs`` (milestones scaled) and ``base_lr``, seed ``seed``."""
    on = cfg["own_network"]
    return BASE_RECIPE.scaled(on["base_epochs"]).replace(lr=float(on["base_lr"]), seed=int(cfg["seed"]))


def gross_recipe(cfg: Mapping) -> Recipe:
    """:data:`GROSS_RECIPE` with ``own_network.gross_epochs`` (milestones scaled) and ``gross_lr``, seed ``seed``."""
    on = cfg["own_network"]
    return GROSS_RECIPE.scaled(on["gross_epochs"]).replace(lr=float(on["gross_lr"]), seed=int(cfg["seed"]))


def _digest(model: nn.Module) -> str:
    """Short SHA-256 of a model's state dict (names, shapes, values): names the artefacts made from it."""
    blob = b"".join(k.encode() + str(tuple(v.shape)).encode() + v.detach().cpu().contiguous().numpy().tobytes()
                    for k, v in model.state_dict().items())
    return bytes_digest(blob, 10)


def _tag(cfg: Mapping) -> str:
    return f"{_FOLDER}/{MODEL}-w{width(cfg):g}"


def _on_meta(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the meta device: MAC counting propagates shapes without arithmetic."""
    return copy.deepcopy(model).to(torch.device("meta"))


_LOOKUPS: dict = {}


def _mac_lookup(model: nn.Module):
    """MACs of every configuration of the GroSS ``model`` (a :class:`gross.search.costs.MacLookup`).

    Built once per architecture and search space on a meta-device copy
    (:func:`gross.search.costs.model_mac_lookup` without a forward pass of real tensors).
    """
    structure = re.sub(r"group_size=\d+", "", repr(model))  # the architecture, whatever the active sizes
    key = (structure, tuple((n, tuple(s)) for n, s in search_space(model).items()))
    if key not in _LOOKUPS:
        _LOOKUPS[key] = model_mac_lookup(_on_meta(model))
    return _LOOKUPS[key]


# ----------------------------------------------------------------------------- 1. the base network


def weights_path(cfg: Mapping) -> Path | None:
    """``own_network.weights`` as a path (relative: to the repository root), or ``None`` when empty.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    """
    text = cfg["own_network"]["weights"]
    if not text:
        return None
    path = Path(text).expanduser()
    path = path if path.is_absolute() else paths.ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"own_network.weights = {text!r}: no file at {path} (give a state dict saved with "
                                "torch.save(model.state_dict(), path), or '' to train the network here)")
    return path


def _load_weights(cfg: Mapping, path: Path) -> nn.Module:
    model = build(cfg)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        state = state.get("state_dict", state.get("model", state))  # a checkpoint holding the state dict
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{path} does not fit resnet18_cifar(width_mult={width(cfg):g}): {err}. Set "
                         "own_network.width_mult to the width the weights were trained at") from err
    return model.eval()


def _train(cfg: Mapping, store: Store) -> dict:
    model, data, rec = build(cfg), load_data(cfg), base_recipe(cfg)
    history = train_base(model, data, rec, run_dir=store.root / "checkpoints", resume=True,
                         device=resolve_device(cfg), name=f"{MODEL}_w{width(cfg):g}_base_{store.fingerprint_so_far()}",
                         progress=False)
    model.cpu().eval()
    return {"state_dict": model.state_dict(), "history": history.to_dict(orient="list")}


def _base_payload(cfg: Mapping) -> dict:
    store = Store(cfg)
    return store.make(f"{_tag(cfg)}_base.pt", lambda: _train(cfg, store), NOTEBOOK)


def base_network(cfg: Mapping) -> nn.Module:
    """The trained network GroSS starts from (eval mode, on the CPU).

    With ``own_network.weights`` set: that state dict, loaded with
    ``torch.load(weights_only=True)`` into :func:`build` (a checkpoint dict holding it
    under ``"state_dict"`` or ``"model"`` is accepted too). Otherwise trained from scratch
    with :func:`base_recipe` on :func:`load_data` and stored as
    ``runs/<profile>/own_network/<tag>_base.pt`` (checkpoints every epoch, resumes).

    Raises
    ------
    FileNotFoundError, ValueError
        A missing weights file, or one that does not fit the network at :func:`width`.
    """
    path = weights_path(cfg)
    if path is not None:
        return _load_weights(cfg, path)
    model = build(cfg)
    model.load_state_dict(_base_payload(cfg)["state_dict"])
    return model.eval()


def base_history(cfg: Mapping) -> pd.DataFrame:
    """The base training's history (one row per epoch; :func:`gross.training.loop.train_base`).

    Empty when the network was loaded from ``own_network.weights``.
    """
    if weights_path(cfg) is not None:
        return pd.DataFrame()
    return pd.DataFrame(_base_payload(cfg)["history"])


def _accuracies(cfg: Mapping, model: nn.Module, configs: Sequence | None, split: str) -> list[float]:
    """Accuracy (%) on ``split`` of ``model`` (plain: ``configs=None``) or of each configuration; cached."""
    key = digest(None if configs is None else [list(c) for c in configs], 8)
    name = f"{_FOLDER}/acc/{_digest(model)}-{split}-{key}.json"

    def compute() -> dict:
        data = load_data(cfg)
        if configs is None:
            return {"accuracy": [evaluate(cfg, model, data, split)]}
        df = evaluate_configs(model, configs, data, split=split, **eval_kwargs(cfg, data))
        return {"accuracy": df["accuracy"].tolist()}

    return list(Store(cfg).make(name, compute, NOTEBOOK)["accuracy"])


def base_summary(cfg: Mapping, model: nn.Module) -> pd.DataFrame:
    """One row on the base network: where it comes from, size, MACs (batch-norm share), accuracy.

    Columns ``model, width_mult, source, parameters, macs, batchnorm_macs,
    decomposable_layers, epochs, val_acc, test_acc, train_time_s`` (the last two of
    training are empty for loaded weights). MACs per image, batch norm counted as two
    MACs per output element (:func:`gross.method.macs.count_macs`). Accuracies are cached.
    """
    macs = mac_table(_on_meta(model), (3, 32, 32))
    path = weights_path(cfg)
    trained = path is None
    seconds = float(_base_payload(cfg)["wall_time_s"]) if trained else float("nan")
    return pd.DataFrame([{
        "model": MODEL, "width_mult": width(cfg), "source": "trained here" if trained else str(path),
        "parameters": sum(p.numel() for p in model.parameters()), "macs": int(macs["macs"].sum()),
        "batchnorm_macs": int(macs.loc[macs["kind"] == "batchnorm", "macs"].sum()),
        "decomposable_layers": len(decomposable_layers(model)),
        "epochs": cfg["own_network"]["base_epochs"] if trained else pd.NA,
        "val_acc": _accuracies(cfg, model, None, "val")[0], "test_acc": _accuracies(cfg, model, None, "test")[0],
        "train_time_s": seconds,
    }])


@step(NOTEBOOK, tables=("own_network_base",))
def own_base_network(cfg: Mapping, model: nn.Module | None = None, summary: pd.DataFrame | None = None
                     ) -> StepResult:
    """Table ``own_network_base``: the base network (:func:`base_network`, :func:`base_summary`)."""
    if summary is None:
        summary = base_summary(cfg, base_network(cfg) if model is None else model)
    notes = ["MACs per 32x32 image; batch norm counted as 2 MACs per output element (as thop; "
             "gross.method.macs); accuracies on the validation and test splits of the profile's data"]
    return StepResult(tables={"own_network_base": summary}, notes=notes)


# ----------------------------------------------------------------------------- 2. decomposition


def layer_table(cfg: Mapping, model: nn.Module) -> pd.DataFrame:
    """The convolutions GroSS will decompose and their candidate group sizes (nothing is run).

    One row per layer of :func:`gross.method.decomposition.decomposable_layers` (every
    3x3 convolution but the stem): ``layer, in_channels, out_channels, stride,
    followed_by`` (the module after it in its block: batch norm in this network),
    ``group_sizes`` (those of ``own_network.group_sizes`` dividing the layer's width) and
    the layer's MACs: ``macs`` as it is, ``macs_largest`` / ``macs_smallest`` as a P/R/Q
    bottleneck at its largest / smallest group size (:func:`gross.method.macs.mac_table`
    counts a plain network *as if* decomposed).
    """
    space = planned_space(model, group_sizes=list(cfg["own_network"]["group_sizes"]))
    modules = dict(model.named_modules())
    meta = _on_meta(model)
    plain = mac_table(meta, (3, 32, 32)).set_index("layer")["macs"]
    as_if = {which: mac_table(meta, (3, 32, 32), config=tuple(pick(s) for s in space.values()))
             for which, pick in (("largest", max), ("smallest", min))}
    rows = []
    for name, sizes in space.items():
        conv = modules[name]
        parent, _, child = name.rpartition(".")
        siblings = [n for n, _ in modules[parent].named_children()]
        after = siblings[siblings.index(child) + 1] if siblings.index(child) + 1 < len(siblings) else ""
        row = {"layer": name, "in_channels": conv.in_channels, "out_channels": conv.out_channels,
               "stride": conv.stride[0], "followed_by": type(modules[f"{parent}.{after}"]).__name__ if after else "",
               "group_sizes": " ".join(map(str, sizes)), "macs": int(plain[name])}
        for which, df in as_if.items():
            row[f"macs_{which}"] = int(df.loc[df["layer"].str.startswith(name + "."), "macs"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _rebuild(cfg: Mapping, payload: Mapping) -> nn.Module:
    model = skeleton(build(cfg), payload["space"])
    model.load_state_dict(payload["state_dict"])
    for name, layer in gross_layers(model).items():
        layer.btd_errors = {int(s): e for s, e in payload["btd_errors"].get(name, {}).items()}
        layer.clear_cache()
    return model.eval()


def decompose(cfg: Mapping, model: nn.Module) -> nn.Module:
    """The GroSS decomposition of ``model`` (a copy; cached as ``<tag>-<digest>-s<sizes>_gross_init.pt``).

    :func:`gross.method.decomposition.decompose` with group sizes ``own_network.group_sizes``,
    BTD options ``own_network.btd_tol``, ``btd_max_iter``, ``btd_ridge`` and seed ``seed``.
    """
    def compute() -> dict:
        on = cfg["own_network"]
        net = _decompose(copy.deepcopy(model).cpu().eval(), group_sizes=list(on["group_sizes"]), tol=on["btd_tol"],
                         max_iter=on["btd_max_iter"], ridge=on["btd_ridge"], seed=int(cfg["seed"]), progress=False)
        return gross_payload(net)

    sizes = "-".join(str(int(g)) for g in sorted(cfg["own_network"]["group_sizes"]))
    payload = Store(cfg).make(f"{_tag(cfg)}-{_digest(model)}-s{sizes}_gross_init.pt", compute, NOTEBOOK)
    return _rebuild(cfg, payload)


def btd_errors(model: nn.Module) -> pd.DataFrame:
    """Relative BTD error per decomposed layer and group size (``layer, group_size, error``)."""
    return pd.DataFrame([{"layer": name, "group_size": s, "error": e}
                         for name, layer in gross_layers(model).items() for s, e in sorted(layer.btd_errors.items())])


@figure_builder
def btd_error_figure(errors: pd.DataFrame, ax=None):
    """Relative BTD error against group size, one line per layer.

    :func:`gross.report.plots.btd_error_figure` on a wider notebook figure; more layers than
    :data:`gross.report.plots.PALETTE` has colours (16 here) are coloured by depth with a colour bar,
    fewer get a legend in two columns to the right of the plot.

    Parameters
    ----------
    errors : pandas.DataFrame
        :func:`btd_errors`'s table.
    ax : matplotlib Axes, optional
        Default: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from gross.report import plots

    if ax is None:
        _, axes = plots.panel_axes(1, 1, figsize=(8.0, 3.8))
        ax = axes[0, 0]
    fig = plots.btd_error_figure(errors, ax=ax)
    if ax.get_legend() is not None:
        ax.legend(title="layer", ncol=2, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


@step(NOTEBOOK, tables=("own_network_layers", "own_network_btd_errors"), figures=("fig_own_network_btd_error",))
def own_decomposition(cfg: Mapping, model: nn.Module | None = None, gross: nn.Module | None = None,
                      layers: pd.DataFrame | None = None, errors: pd.DataFrame | None = None) -> StepResult:
    """Tables ``own_network_layers`` (:func:`layer_table`), ``own_network_btd_errors`` (:func:`btd_errors`), figure.

    ``model`` is the base network (:func:`base_network`), ``gross`` its decomposition
    (:func:`decompose`); ``layers`` and ``errors`` the verbs' tables.
    """
    if layers is None or errors is None:
        model = base_network(cfg) if model is None else model
        layers = layer_table(cfg, model) if layers is None else layers
        errors = btd_errors(decompose(cfg, model) if gross is None else gross) if errors is None else errors
    return StepResult(tables={"own_network_layers": layers, "own_network_btd_errors": errors},
                      figures={"fig_own_network_btd_error": btd_error_figure(errors)})


# ----------------------------------------------------------------------------- 3. GroSS fine-tuning


def _largest(space: Mapping) -> tuple:
    return tuple(max(s) for s in space.values())


def finetune(cfg: Mapping, gross: nn.Module) -> tuple[nn.Module, pd.DataFrame]:
    """GroSS fine-tuning of the decomposition ``gross`` (a copy; cached as ``<tag>-<digest>_gross.pt``).

    :func:`gross.training.loop.finetune_gross` with :func:`gross_recipe` on
    :func:`load_data`: only the GroSS layers train (a group size per layer drawn at every
    iteration), everything else, batch norm included, is frozen. The validation accuracy
    of the smallest and largest uniform configurations is tracked every epoch.

    Returns
    -------
    (nn.Module, pandas.DataFrame)
        The fine-tuned GroSS model (eval mode) and the history (one row per epoch).
    """
    store, start = Store(cfg), _digest(gross)

    def compute() -> dict:
        net, space = copy.deepcopy(gross), search_space(gross)
        data, recipe = load_data(cfg), gross_recipe(cfg)
        history = finetune_gross(net, data, recipe, run_dir=store.root / "checkpoints", resume=True,
                                 device=resolve_device(cfg), progress=False,
                                 name=f"{MODEL}_gross_{start}_{store.fingerprint_so_far()}",  # checkpoints: per start
                                 track_configs={"smallest": uniform(space, 1), "largest": _largest(space)})
        return gross_payload(net.cpu(), history=history.to_dict(orient="list"))

    payload = store.make(f"{_tag(cfg)}-{start}_gross.pt", compute, NOTEBOOK)
    return _rebuild(cfg, payload), pd.DataFrame(payload["history"])


def uniform_accuracies(cfg: Mapping, before: nn.Module, after: nn.Module) -> pd.DataFrame:
    """Validation accuracy of every uniform configuration straight after BTD and after GroSS fine-tuning.

    Columns ``config, macs, before, after`` (cached evaluations): fine-tuning must recover
    what the decomposition lost, at every group size at once.
    """
    configs = uniform_configs(search_space(before))
    macs = _mac_lookup(before)
    return pd.DataFrame({"config": [config_str(c) for c in configs], "macs": [macs(c).total for c in configs],
                         "before": _accuracies(cfg, before, configs, "val"),
                         "after": _accuracies(cfg, after, configs, "val")})


@step(NOTEBOOK, tables=("own_network_finetune_history", "own_network_uniform"),
      figures=("fig_own_network_finetuning",))
def own_finetuning(cfg: Mapping, init: nn.Module | None = None, tuned: nn.Module | None = None,
                   history: pd.DataFrame | None = None, uniform_acc: pd.DataFrame | None = None) -> StepResult:
    """Tables ``own_network_finetune_history``, ``own_network_uniform`` and the fine-tuning curves.

    ``init`` is the decomposition (:func:`decompose`), ``tuned`` and ``history`` what
    :func:`finetune` returned, ``uniform_acc`` :func:`uniform_accuracies`'s table.
    """
    from gross.report import plots

    if history is None or uniform_acc is None:
        init = decompose(cfg, base_network(cfg)) if init is None else init
        if tuned is None or history is None:
            tuned, history = finetune(cfg, init)
        uniform_acc = uniform_accuracies(cfg, init, tuned) if uniform_acc is None else uniform_acc
    return StepResult(tables={"own_network_finetune_history": history, "own_network_uniform": uniform_acc},
                      figures={"fig_own_network_finetuning": plots.finetuning_curves(history)},
                      notes=["only the GroSS layers train; batch norm frozen in eval mode (statistics of the base "
                             "network); val_acc_smallest / val_acc_largest: the uniform extremes, every epoch"])


# ----------------------------------------------------------------------------- 4. search


def latency_table(cfg: Mapping, model: nn.Module):
    """The :class:`gross.search.latency.LatencyTable` of ``model`` at batch ``own_network.latency_batch_size``.

    Measured on the run's ``device`` with the timing settings of ``[latency]``
    (:func:`gross.pipeline.latency.tables`: a store artefact under ``runs/<profile>/latency/``,
    one per architecture and device fingerprint).
    """
    b = int(cfg["own_network"]["latency_batch_size"])
    lat = dict(latency_steps.settings(cfg), batch_sizes=[b])
    return latency_steps.tables(cfg, model, lat)[b]


def search_method(cfg: Mapping, space: Mapping) -> str:
    """``"exhaustive"`` when ``space`` has at most ``own_network.max_exhaustive`` configurations, else ``"bfs"``."""
    return "exhaustive" if SearchSpace(space).num_configs <= cfg["own_network"]["max_exhaustive"] else "bfs"


def _table_digest(table) -> str:
    return bytes_digest(table.to_json().encode(), 10)


def _search(cfg: Mapping, model: nn.Module, table) -> dict:
    on, data = cfg["own_network"], load_data(cfg)
    space = search_space(model)
    method = search_method(cfg, space)
    evaluate_fn = ConfigEvaluator(model, data, split="val", **eval_kwargs(cfg, data))
    costs = {"MACs": _mac_lookup(model), "latency": LatencyCost(table)}
    cache: dict = {}
    rows = []
    for s in on["baselines"]:
        baseline = uniform(space, int(s))
        for kind, cost in costs.items():
            if method == "exhaustive":
                best, _ = exhaustive_search(space, evaluate_fn, cost, baseline, cache=cache)
            else:
                best, _ = bfs_search(space, evaluate_fn, cost, baseline, runs=int(on["bfs_runs"]),
                                     max_steps=int(on["bfs_max_steps"]), seed=int(cfg["seed"]), cache=cache)
            rows.append({"uniform": int(s), "baseline": config_str(baseline), "budget_kind": kind, "method": method,
                         "budget": int(best["budget"]), "config": config_str(best["config"]),
                         "gross_val_acc": best["accuracy"], "baseline_val_acc": best["baseline_accuracy"],
                         "evaluated": len(cache)})
    return {"found": rows, "evaluated": [[list(c), a] for c, a in cache.items()]}


def search(cfg: Mapping, model: nn.Module, table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Search the fine-tuned GroSS ``model`` under a MAC and under a latency budget per baseline (cached).

    For every uniform baseline of ``own_network.baselines`` (a size a layer lacks: its
    nearest smaller one) two budgets: the baseline's MACs and its predicted latency
    (``table``, integer nanoseconds: :class:`gross.search.costs.LatencyCost`). The search
    is :func:`gross.search.algorithms.exhaustive_search` or, when the space is larger than
    ``own_network.max_exhaustive`` configurations, :func:`gross.search.algorithms.bfs_search`
    (``own_network.bfs_runs`` runs of at most ``bfs_max_steps`` steps, seed ``seed``), on GroSS
    validation accuracy (:class:`gross.search.evaluation.ConfigEvaluator`); evaluations are
    shared by all searches.

    Returns
    -------
    found : pandas.DataFrame
        One row per baseline and budget: ``uniform`` (its group size), ``baseline, budget_kind, method, budget, config,
        gross_val_acc, baseline_val_acc, evaluated`` (distinct configurations evaluated so
        far), then ``macs, baseline_macs, predicted_ms, baseline_predicted_ms``.
    evaluated : pandas.DataFrame
        Every configuration evaluated: ``config, accuracy, macs, predicted_ms``.
    """
    name = f"{_FOLDER}/search-{_digest(model)}-{_table_digest(table)}.json"
    payload = Store(cfg).make(name, lambda: _search(cfg, model, table), NOTEBOOK)
    macs = _mac_lookup(model)
    found = pd.DataFrame(payload["found"])
    for col, source in (("", "config"), ("baseline_", "baseline")):
        configs = [parse_config(c) for c in found[source]]
        found[f"{col}macs"] = [macs(c).total for c in configs]
        found[f"{col}predicted_ms"] = [table.predict(c) * 1e3 for c in configs]
    configs = [tuple(c) for c, _ in payload["evaluated"]]
    evaluated = pd.DataFrame({"config": [config_str(c) for c in configs],
                              "accuracy": [a for _, a in payload["evaluated"]],
                              "macs": [macs(c).total for c in configs],
                              "predicted_ms": [table.predict(c) * 1e3 for c in configs]})
    return found, evaluated


def confirm(cfg: Mapping, model: nn.Module, found: pd.DataFrame) -> pd.DataFrame:
    """``found`` with the GroSS test accuracy and the measured latency of each found configuration (cached).

    Adds ``gross_test_acc, baseline_test_acc`` and ``measured_ms, baseline_measured_ms,
    speedup_vs_baseline`` (the exported networks timed round-robin with the ``[latency]``
    settings at ``own_network.latency_batch_size`` on the run's ``device``).
    """
    configs = list(dict.fromkeys([parse_config(c) for c in list(found["baseline"]) + list(found["config"])]))
    lat, batch = latency_steps.settings(cfg), int(cfg["own_network"]["latency_batch_size"])
    where = L.device_fingerprint(lat["device"], batch, lat["threads"])  # measurements of another machine: not reused
    key = digest([[list(c) for c in configs], where], 10)

    def compute() -> dict:
        lat = latency_steps.settings(cfg)  # read again inside: the artefact's settings are the timing keys
        times = L.measure_configs(model, configs, batch_size=int(cfg["own_network"]["latency_batch_size"]),
                                  device=lat["device"], num_threads=lat["threads"], seed=int(cfg["seed"]),
                                  **{k: lat[k] for k in ("warmup", "repeats", "min_time", "statistic", "clock",
                                                         "rounds")})
        return {"configs": [list(c) for c in configs], "seconds": times}

    timing = Store(cfg).make(f"{_FOLDER}/confirm-{_digest(model)}-{key}.json", compute, NOTEBOOK)
    seconds = {config_str(c): t for c, t in zip(timing["configs"], timing["seconds"])}
    test = dict(zip([config_str(c) for c in configs], _accuracies(cfg, model, configs, "test")))
    out = found.copy()
    out["gross_test_acc"] = [test[c] for c in out["config"]]
    out["baseline_test_acc"] = [test[c] for c in out["baseline"]]
    out["measured_ms"] = [seconds[c] * 1e3 for c in out["config"]]
    out["baseline_measured_ms"] = [seconds[c] * 1e3 for c in out["baseline"]]
    out["speedup_vs_baseline"] = out["baseline_measured_ms"] / out["measured_ms"]
    return out


@figure_builder
def search_figure(found: pd.DataFrame, evaluated: pd.DataFrame, ax=None):
    """GroSS validation accuracy of every evaluated configuration against MACs and predicted latency.

    Two panels (x: MACs, then predicted latency); grey dots are the evaluated
    configurations, and per baseline (one colour each): the baseline (circle), its
    budget (dotted line) and the configuration found under that budget (star).

    Parameters
    ----------
    found, evaluated : pandas.DataFrame
        As returned by :func:`search` (or :func:`confirm`).
    ax : sequence of two matplotlib Axes, optional
        Default: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from gross.report import plots

    if ax is None:
        fig, axes = plots.panel_axes(1, 2, sharey=True)
        axes = list(np.ravel(axes))
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != 2:
            raise ValueError(f"search_figure draws 2 panels: ax must be 2 Axes, got {len(axes)}")
        fig = axes[0].get_figure(root=True)
    acc = dict(zip(evaluated["config"], evaluated["accuracy"]))
    for a, kind, x, unit, scale in ((axes[0], "MACs", "macs", "MACs (millions)", 1e-6),
                                    (axes[1], "latency", "predicted_ms", "predicted latency (ms)", 1.0)):
        a.scatter(evaluated[x] * scale, evaluated["accuracy"], s=8, color=plots.OTHER, label="evaluated")
        part = found[found["budget_kind"] == kind]
        for i, (_, row) in enumerate(part.iterrows()):
            color = plots.PALETTE[i % len(plots.PALETTE)]
            a.axvline(row[f"baseline_{x}"] * scale, color=color, linestyle=":", linewidth=1.0)
            if not pd.isna(row["baseline_val_acc"]):
                a.scatter([row[f"baseline_{x}"] * scale], [row["baseline_val_acc"]], s=60, marker="o", color=color,
                          edgecolors="black", zorder=4, label=f"uniform {row['uniform']}")
            a.scatter([row[x] * scale], [acc.get(row["config"], row["gross_val_acc"])], s=150, marker="*",
                      color=color, edgecolors="black", zorder=5, label="found within budget" if i == 0 else None)
        a.set_xlabel(unit)
        a.set_title(f"{kind} budget")
    for i, a in enumerate(axes):
        if i == 0 or a.get_subplotspec() is None or a.get_subplotspec().is_first_col():
            a.set_ylabel("GroSS validation accuracy (%)")
    axes[0].legend(loc="best")
    return fig


@step(NOTEBOOK, tables=("own_network_search", "own_network_evaluated"), figures=("fig_own_network_search",))
def own_search(cfg: Mapping, tuned: nn.Module | None = None, table=None, found: pd.DataFrame | None = None,
               evaluated: pd.DataFrame | None = None) -> StepResult:
    """Tables ``own_network_search`` (:func:`confirm` of :func:`search`), ``own_network_evaluated``, the figure.

    ``tuned`` is the fine-tuned GroSS model (:func:`finetune`), ``table`` its latency
    table (:func:`latency_table`), ``found`` and ``evaluated`` what :func:`search` (and
    :func:`confirm`) returned.
    """
    if tuned is None:
        tuned, _ = finetune(cfg, decompose(cfg, base_network(cfg)))
    if found is None or evaluated is None:
        table = latency_table(cfg, tuned) if table is None else table
        found, evaluated = search(cfg, tuned, table)
    if "measured_ms" not in found.columns:
        found = confirm(cfg, tuned, found)
    notes = [f"search on GroSS validation accuracy; budgets: each baseline's MACs or its predicted latency "
             f"(latency table at batch {cfg['own_network']['latency_batch_size']}); measured latency of the exported "
             "networks with the [latency] timing settings; test accuracies of the GroSS model at each configuration"]
    return StepResult(tables={"own_network_search": found, "own_network_evaluated": evaluated},
                      figures={"fig_own_network_search": search_figure(found, evaluated)}, notes=notes)


# ----------------------------------------------------------------------------- 5. export


def chosen_config(cfg: Mapping, found: pd.DataFrame) -> tuple[int, ...]:
    """The configuration to deploy: ``own_network.export_config`` (``"4 16 ..."``), else the MAC-budget winner.

    The default is the configuration found under the MAC budget of the first baseline of
    ``own_network.baselines``.
    """
    text = cfg["own_network"]["export_config"]
    if text:
        return parse_config(text)
    row = found[found["budget_kind"] == "MACs"].iloc[0]
    return parse_config(row["config"])


def onnx_check(cfg: Mapping, model: nn.Module, config) -> pd.DataFrame:
    """Export ``model`` at ``config``, write it to ONNX, run it with onnxruntime and compare (cached).

    :func:`gross.method.decomposition.export` gives the plain network (1x1 ``P`` → grouped
    3x3 ``R`` → 1x1 ``Q``, then the original batch norm); :func:`gross.method.deploy.export_onnx`
    writes it to ``runs/<profile>/own_network/<digest>-<config>.onnx`` and
    :func:`gross.method.deploy.check_onnx` runs it on random inputs (batches 1 and 4).

    Returns
    -------
    pandas.DataFrame
        One row: ``config, macs, gconv_macs, batchnorm_macs, grouped_convs, groups_match,
        max_abs_diff, max_abs_output, onnx_kb, file, gross_test_acc, exported_test_acc``
        (the exported network's accuracy must equal the GroSS model's at ``config``).
    """
    config = SearchSpace.from_model(model).validate(config)
    store = Store(cfg)
    stem = f"{_FOLDER}/onnx-{_digest(model)}-{config_str(config, sep='-')}"
    onnx_path, name = store.path(stem + ".onnx"), stem + ".json"
    if not onnx_path.exists() and store.path(name).exists():
        store.path(name).unlink()  # the check's file is gone: export again

    def compute() -> dict:
        plain = export(model, config).eval()
        deploy.export_onnx(plain, None, onnx_path, input_size=(3, 32, 32))
        check = deploy.check_onnx(plain, None, onnx_path, input_size=(3, 32, 32), batch_sizes=(1, 4),
                                  seed=int(cfg["seed"]))
        return {"check": check.to_dict(orient="list"),
                "exported_test_acc": evaluate(cfg, plain, load_data(cfg), "test")}

    payload = store.make(name, compute, NOTEBOOK)
    check = pd.DataFrame(payload["check"])
    plain = export(model, config)
    macs = mac_table(_on_meta(plain), (3, 32, 32))
    return pd.DataFrame([{
        "config": config_str(config), "macs": int(macs["macs"].sum()),
        "gconv_macs": int(macs.loc[macs["gconv"], "macs"].sum()),
        "batchnorm_macs": int(macs.loc[macs["kind"] == "batchnorm", "macs"].sum()),
        "grouped_convs": sum(isinstance(m, nn.Conv2d) and m.groups > 1 for m in plain.modules()),
        "groups_match": bool(check["groups_match"].all()), "max_abs_diff": float(check["max_abs_diff"].max()),
        "max_abs_output": float(check["max_abs_output"].max()), "onnx_kb": onnx_path.stat().st_size / 1024,
        "file": str(onnx_path.relative_to(store.root)), "gross_test_acc": _accuracies(cfg, model, [config], "test")[0],
        "exported_test_acc": payload["exported_test_acc"]}])


@step(NOTEBOOK, tables=("own_network_export",))
def own_export(cfg: Mapping, tuned: nn.Module | None = None, config=None, exported: pd.DataFrame | None = None
               ) -> StepResult:
    """Table ``own_network_export``: the chosen configuration (:func:`chosen_config`) checked through ONNX.

    ``tuned`` is the fine-tuned GroSS model, ``config`` the configuration to export
    (default :func:`chosen_config` of :func:`search`), ``exported`` :func:`onnx_check`'s table.
    """
    if exported is None:
        if tuned is None:
            tuned, _ = finetune(cfg, decompose(cfg, base_network(cfg)))
        if config is None:
            config = chosen_config(cfg, search(cfg, tuned, latency_table(cfg, tuned))[0])
        exported = onnx_check(cfg, tuned, config)
    return StepResult(tables={"own_network_export": exported},
                      notes=["ONNX file written by torch.onnx.export (dynamo), run with onnxruntime (CPU) on random "
                             "inputs at batch 1 and 4; batch norm kept after each Q convolution (not folded)"])
