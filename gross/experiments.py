"""The experiment pipeline behind notebooks 01-05: one function per notebook step.

Every step takes the resolved config of :func:`gross.config.load` and returns
DataFrames / Figures; steps that produce a paper table or figure also write it
(CSV + Markdown / PNG + PDF, each with a ``.meta.json``) to
:func:`gross.paths.results_dir` / :func:`gross.paths.figures_dir` of the profile.

Notebooks exchange models and evaluations through files under
``runs/<profile>/`` (:func:`gross.paths.run_dir`):

===============================================  ==========================  ===================
file                                             written by                  notebook
===============================================  ==========================  ===================
``<model>_base.pt``                              :func:`base_model`          01_decomposition
``<model>_gross_init_<repeat>.pt``               :func:`gross_decompose`     01_decomposition
``<model>_gross_<repeat>.pt``                    :func:`finetune_gross_models`  02_finetuning
``true/<model>/<kind>_<config>_r<repeat>_<hash>.json``  :func:`true_accuracy`  02, 03, 04, 05
``checkpoints/...``                              training checkpoints (resume)  all
===============================================  ==========================  ===================

``<model>`` is ``four_layer`` or ``vgg16``. Every stored file records the settings it
was made with; loading it with different settings raises a ``ValueError`` (delete
``runs/<profile>/`` or use another ``$GROSS_RUNS``). Individual fine-tunes are
memoised per configuration and schedule, so notebooks 02, 03 and 05 re-use each
other's results. A step whose predecessor has not run raises a
``FileNotFoundError`` naming the notebook to run first (:func:`require`).

Choices where the paper is silent (documented in the outputs too)
------------------------------------------------------------------
* Searches (exhaustive and breadth-first) and every model selection use the
  **validation** split. The GroSS and true accuracies printed in Tables 2 and 3 are
  **test** accuracies of the (GroSS or individually fine-tuned) model at the
  configuration; Table 5 / Fig. 5 compare **validation** accuracies (Sec. 5.2).
* Table 2's exhaustive search ranks configurations by their GroSS validation
  accuracy **averaged over the repeats** (independent decompositions + GroSS
  fine-tunes); the GroSS and true accuracies of each row are mean (std) over repeats.
* A fine-tuned model is the one after the last epoch of its schedule.
* The base networks are trained once ("Full" reports that single network).
* True repeat ``r`` fine-tunes the decomposition of GroSS repeat ``r mod repeats``
  with seed ``seed + r``.
* The VBMF row is grouped with the cheapest uniform baseline whose MACs are not
  below its own (as in Tables 2 and 3).
* Uniform baselines at a group size a layer does not have (reduced-width VGG-16)
  use the layer's largest size instead.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import config as _config
from . import paths, utils
from .decomposition import decompose, get_config, gross_layers, search_space, set_config
from .layers import GroSSConv2d

__all__ = [
    "MODELS",
    "NOTEBOOKS",
    "EXPECTED_OUTPUTS",
    "StepResult",
    "expected_paths",
    "require",
    "setup",
    "resolve_device",
    "prepare_data",
    "data_summary",
    "recipe",
    "build_model",
    "base_model",
    "base_models",
    "gross_decompose",
    "load_gross",
    "btd_error_table",
    "mac_table",
    "finetune_gross_models",
    "uniform_before_after",
    "true_accuracy",
    "individual_finetunes",
    "exhaustive_search",
    "bfs_vgg16",
    "imagenet_bfs",
    "ap_comparison",
    "inference_timing",
    "save_table",
    "save_figure",
]

#: The two CIFAR-10 networks of the paper, by pipeline name.
MODELS = ("four_layer", "vgg16")

#: Notebook (stem) of each step, used in "run ... first" messages.
NOTEBOOKS = {
    "decomposition": "01_decomposition",
    "finetuning": "02_finetuning",
    "exhaustive": "03_exhaustive_search",
    "bfs": "04_breadth_first_search",
    "ap": "05_ap_comparison",
}

_TABLE_EXT = (".csv", ".md", ".meta.json")
_FIGURE_EXT = (".png", ".pdf", ".meta.json")


def _tables(*names):
    return [n + e for n in names for e in _TABLE_EXT]


def _figures(*names):
    return [n + e for n in names for e in _FIGURE_EXT]


#: Files every notebook writes (relative to ``results_dir`` for tables and
#: ``figures_dir`` for figures, see :func:`expected_paths`). Table 4
#: (``table4_imagenet``) is written only when an ImageNet root is given.
EXPECTED_OUTPUTS: dict[str, list[str]] = {
    # notebook 00 (grouped convolutions, Psi expansion) is written by another module; listed for the notebook test
    "00_grouped_convolutions": _tables("grouped_conv_costs", "psi_expansion_check")
    + _figures("fig_grouped_conv_costs", "fig2_expansion"),
    "01_decomposition": _tables("btd_errors", "table_macs", "base_models") + _figures("fig_btd_error"),
    "02_finetuning": _tables("finetune_history", "uniform_before_after", "individual_finetunes")
    + _figures("fig_finetuning_curves"),
    "03_exhaustive_search": _tables("table2_exhaustive_search", "exhaustive_search_all")
    + _figures("fig3_exhaustive_search"),
    "04_breadth_first_search": _tables("table3_bfs_vgg16", "bfs_vgg16_trace") + _figures("fig4_bfs_vgg16"),
    "05_ap_comparison": _tables("table5_average_precision", "ap_configs", "inference_timing")
    + _figures("fig5_search_vs_true"),
    # notebook 06 (latency-aware search) is written by gross.latency_study (its OUTPUTS)
    "06_latency_aware_search": _tables("latency_predictor_validation", "latency_predictor_configs",
                                       "latency_all_configs", "table_latency_search")
    + _figures("fig_latency_vs_macs"),
}

# Per output: which config keys (dotted prefixes) can change it; the reductions
# vs the paper among these are written into the output.
_SCOPE = {
    "four_layer": ("seed", "data.", "four_layer."),
    "vgg16": ("seed", "data.", "vgg16."),
    "both": ("seed", "data.", "four_layer.", "vgg16."),
    "macs": ("vgg16.width_mult",),
    "ap": ("seed", "data.", "four_layer.", "ap."),
    "timing": ("seed", "data.", "four_layer.", "ap.", "timing."),
    "imagenet": ("seed", "imagenet."),
}


def expected_paths(profile: str) -> dict[str, list[Path]]:
    """:data:`EXPECTED_OUTPUTS` as absolute paths for ``profile`` (figures in ``figures_dir``)."""
    res, fig = paths.results_dir(profile), paths.figures_dir(profile)
    out = {}
    for nb, files in EXPECTED_OUTPUTS.items():
        out[nb] = [(fig if f.endswith((".png", ".pdf")) or f.startswith("fig") else res) / f for f in files]
    return out


@dataclasses.dataclass
class StepResult:
    """Tables and figures produced by one notebook step (already saved), by output name."""

    tables: dict = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------- plumbing


def require(path, notebook: str, profile: str | None = None) -> Path:
    """Return ``path`` if it exists, else raise a ``FileNotFoundError`` naming the notebook to run.

    Parameters
    ----------
    path : path-like
        A file a predecessor notebook writes.
    notebook : str
        Stem of that notebook, e.g. ``"02_finetuning"``.
    profile : str, optional
        Profile, quoted in the message.

    Raises
    ------
    FileNotFoundError
        ``"<path> is missing: run notebooks/02_finetuning.ipynb first (profile 'cpu')"``.
    """
    path = Path(path)
    if not path.exists():
        where = f" (profile {profile!r})" if profile is not None else ""
        raise FileNotFoundError(f"{path} is missing: run notebooks/{notebook}.ipynb first{where}")
    return path


def resolve_device(cfg: Mapping) -> torch.device:
    """``cfg["device"]`` as a torch device (``"auto"``: CUDA when available)."""
    name = cfg.get("device", "auto")
    if name == "auto":
        return utils.default_device()
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not valid: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return device


def setup(cfg: Mapping) -> torch.device:
    """Seed everything, set torch's CPU threads (``num_threads``) and return the device."""
    if cfg.get("num_threads", 0):
        torch.set_num_threads(int(cfg["num_threads"]))
    utils.seed_everything(int(cfg["seed"]))
    return resolve_device(cfg)


def _run_dir(cfg) -> Path:
    return paths.run_dir(cfg["profile"])


def _label(config) -> str:
    return "-".join(str(int(s)) for s in config)


def config_str(config) -> str:
    """A configuration as the paper prints it: ``"8 16 64"``."""
    return " ".join(str(int(s)) for s in config)


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _settings(cfg: Mapping, name: str, stage: str) -> dict:
    """The config values a stored artefact of ``stage`` depends on (to detect stale files)."""
    data = {k: v for k, v in cfg["data"].items() if k not in ("path", "eval_batch_size")}
    sec = cfg[name]
    out = {"seed": cfg["seed"], "data": data, "model": name}
    if name == "vgg16":
        out.update(width_mult=sec["width_mult"], n_train=sec["n_train"], n_val=sec["n_val"])
    out["base_epochs"] = sec["base_epochs"]
    if stage == "base":
        return out
    out.update(btd_tol=sec["btd_tol"], btd_max_iter=sec["btd_max_iter"], btd_method=sec["btd_method"])
    if sec["btd_ridge"]:  # listed only when used, so files made before the option existed stay valid
        out["btd_ridge"] = sec["btd_ridge"]
    if name == "vgg16":
        out["group_sizes"] = list(sec["group_sizes"])
    if stage == "init":
        return out
    if stage == "gross":
        out["gross_epochs"] = sec["gross_epochs"]
        return out
    raise ValueError(f"unknown stage {stage!r}")


def _check_settings(stored: dict, expected: dict, path: Path, cfg) -> None:
    if stored != expected:
        diff = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        raise ValueError(
            f"{path} was made with different settings (differing: {diff}); delete "
            f"{paths.run_dir(cfg['profile'])} (or set $GROSS_RUNS elsewhere) and re-run the notebooks"
        )


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _reductions(cfg, scope: str) -> list[str]:
    prefixes = _SCOPE[scope]
    return [r for r in _config.reductions(cfg) if r.startswith(prefixes)]


def _meta(cfg, scope: str, wall_time_s: float | None, notes=()) -> dict:
    return utils.provenance(
        cfg["profile"], cfg, resolve_device(cfg), wall_time_s=wall_time_s,
        reductions_vs_paper=_reductions(cfg, scope), notes=list(notes),
    )


def save_table(cfg: Mapping, df: pd.DataFrame, name: str, scope: str, wall_time_s: float | None = None,
               notes: Sequence[str] = ()) -> Path:
    """Write a table of this profile (CSV, Markdown, ``.meta.json``).

    The Markdown starts with the profile and the reductions vs the paper that affect
    the table (:func:`gross.config.reductions` restricted to ``scope``) and ``notes``;
    the ``.meta.json`` holds them with the provenance (:func:`gross.utils.provenance`).
    """
    directory = paths.results_dir(cfg["profile"])
    meta = _meta(cfg, scope, wall_time_s, notes)
    csv = utils.save_table(df, name, meta, directory=directory)
    md = directory / f"{name}.md"
    reds = meta["reductions_vs_paper"]
    head = f"Profile `{cfg['profile']}`: " + (
        "reduced vs the paper: " + "; ".join(reds) if reds else "the paper's settings") + "."
    lines = [head] + [f"Note: {n}" for n in notes]
    utils.atomic_write_text("\n\n".join(lines) + "\n\n" + md.read_text(), md)
    return csv


def save_figure(cfg: Mapping, fig, name: str, scope: str, wall_time_s: float | None = None,
                notes: Sequence[str] = ()) -> Path:
    """Write a figure of this profile (PNG, PDF, ``.meta.json`` with the reductions)."""
    return utils.save_figure(fig, name, _meta(cfg, scope, wall_time_s, notes),
                             directory=paths.figures_dir(cfg["profile"]))


# ----------------------------------------------------------------------------- data and recipes

_DATA_CACHE: dict = {}


def _base_data(cfg):
    from . import data as gdata

    d = cfg["data"]
    key = _hash({k: v for k, v in d.items() if k != "eval_batch_size"})
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
    from . import data as gdata
    from .train import RECIPES

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


def _check_models(models: Sequence[str]) -> tuple[str, ...]:
    """Validate a ``models`` argument (a non-empty subset of :data:`MODELS`)."""
    models = (models,) if isinstance(models, str) else tuple(models)
    if not models:
        raise ValueError(f"models must name at least one of {MODELS}")
    for name in models:
        _check_name(name)
    return models


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {MODELS}")


_EPOCH_KEYS = {"base": "base_epochs", "gross": "gross_epochs", "config": "config_epochs",
               "partial": "partial_epochs"}


def recipe(cfg: Mapping, name: str, kind: str, seed: int | None = None):
    """The paper's recipe (:data:`gross.train.RECIPES`) for ``name`` and ``kind`` at the profile's epochs.

    ``kind`` is ``"base"``, ``"gross"``, ``"config"`` or ``"partial"`` (4-layer only;
    the VGG-16 partial schedule uses the configuration recipe). Milestones scale
    with the epochs (:meth:`gross.train.Recipe.scaled`).
    """
    from .train import RECIPES

    _check_name(name)
    if kind not in _EPOCH_KEYS:
        raise ValueError(f"unknown recipe kind {kind!r}: expected one of {tuple(_EPOCH_KEYS)}")
    sec = cfg[name] if kind != "partial" or name == "vgg16" else cfg["four_layer"]
    epochs = sec.get(_EPOCH_KEYS[kind]) if kind != "partial" else cfg["four_layer"]["partial_epochs"]
    key = f"{name}_{kind}" if f"{name}_{kind}" in RECIPES else f"{name}_config"
    base = RECIPES[key]
    r = base.scaled(epochs) if epochs != base.epochs else base
    return r.replace(seed=int(cfg["seed"] if seed is None else seed))


def build_model(cfg: Mapping, name: str) -> nn.Module:
    """A freshly initialised (seeded) base network."""
    from .models import four_layer_net, vgg16_cifar

    _check_name(name)
    torch.manual_seed(int(cfg["seed"]))
    if name == "four_layer":
        return four_layer_net()
    return vgg16_cifar(width_mult=cfg["vgg16"]["width_mult"])


def _eval_kwargs(cfg, data):
    return dict(batch_size=cfg["data"]["eval_batch_size"], device=resolve_device(cfg), mean=data.mean,
                std=data.std)


def _evaluate(cfg, model, data, split, config=None) -> float:
    from .train import evaluate

    return evaluate(model, data, config=config, split=split, **_eval_kwargs(cfg, data))


# ----------------------------------------------------------------------------- 01: base networks, decomposition


def _base_path(cfg, name) -> Path:
    return _run_dir(cfg) / f"{name}_base.pt"


def base_model(cfg: Mapping, name: str, train: bool = True) -> nn.Module:
    """The trained base network ``name``: loaded from ``runs/<profile>/<name>_base.pt`` or trained.

    Training checkpoints every epoch under ``runs/<profile>/checkpoints`` and resumes
    from there. With ``train=False`` a missing file raises ``FileNotFoundError``
    naming notebook 01.
    """
    from .train import train_base

    path = _base_path(cfg, name)
    model = build_model(cfg, name)
    settings = _settings(cfg, name, "base")
    if path.exists():
        state = _load(path)
        _check_settings(state["settings"], settings, path, cfg)
        model.load_state_dict(state["state_dict"])
        model.eval()
        return model
    if not train:
        require(path, NOTEBOOKS["decomposition"], cfg["profile"])
    data = prepare_data(cfg, name)
    t0 = time.perf_counter()
    history = train_base(model, data, recipe(cfg, name, "base"), run_dir=_run_dir(cfg) / "checkpoints",
                         resume=True, device=resolve_device(cfg), name=f"{name}_base", progress=False)
    model.cpu().eval()
    state = {
        "settings": settings, "state_dict": model.state_dict(),
        "history": history.to_dict(orient="list"),
        "val_acc": _evaluate(cfg, model, data, "val"), "test_acc": _evaluate(cfg, model, data, "test"),
        "wall_time_s": time.perf_counter() - t0,
    }
    model.cpu()
    utils.atomic_save(state, path)
    return model


def base_models(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """Train (or load) both base networks; table ``base_models`` (accuracy, MACs, epochs, time).

    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    from .macs import count_macs

    t0 = time.perf_counter()
    rows = []
    for name in _check_models(models):
        model = base_model(cfg, name)
        state = _load(_base_path(cfg, name))
        rows.append({
            "model": name, "macs": count_macs(model).total, "epochs": cfg[name]["base_epochs"],
            "val_acc": state["val_acc"], "test_acc": state["test_acc"],
            "train_time_s": state["wall_time_s"],
        })
    df = pd.DataFrame(rows)
    save_table(cfg, df, "base_models", "both", time.perf_counter() - t0)
    return StepResult(tables={"base_models": df})


def _init_path(cfg, name, repeat) -> Path:
    return _run_dir(cfg) / f"{name}_gross_init_{repeat}.pt"


def _tuned_path(cfg, name, repeat) -> Path:
    return _run_dir(cfg) / f"{name}_gross_{repeat}.pt"


def _group_sizes(cfg, name):
    return None if name == "four_layer" else list(cfg["vgg16"]["group_sizes"])


def _n_repeats(cfg, name) -> int:
    return int(cfg["four_layer"]["repeats"]) if name == "four_layer" else 1


def gross_decompose(cfg: Mapping, name: str, repeat: int = 0, compute: bool = True) -> nn.Module:
    """GroSS decomposition ``repeat`` of base network ``name`` (BTD seed ``seed + repeat``).

    Saved to ``runs/<profile>/<name>_gross_init_<repeat>.pt`` with the per-layer BTD
    errors and the decomposition time; loaded from there when present. With
    ``compute=False`` a missing file raises ``FileNotFoundError`` naming notebook 01.
    """
    path = _init_path(cfg, name, repeat)
    settings = _settings(cfg, name, "init")
    if path.exists():
        return _load_gross_file(cfg, name, path, settings)
    if not compute:
        require(path, NOTEBOOKS["decomposition"], cfg["profile"])
    sec = cfg[name]
    model = base_model(cfg, name, train=False)
    t0 = time.perf_counter()
    decompose(model, group_sizes=_group_sizes(cfg, name), tol=sec["btd_tol"], max_iter=sec["btd_max_iter"],
              method=sec["btd_method"], ridge=sec["btd_ridge"], seed=int(cfg["seed"]) + int(repeat))
    wall = time.perf_counter() - t0
    _save_gross_file(model, path, settings, wall_time_s=wall)
    model.eval()
    return model


def _save_gross_file(model, path, settings, **extra) -> None:
    layers = gross_layers(model)
    state = {
        "settings": settings,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "space": {n: list(s) for n, s in search_space(model).items()},
        "btd_errors": {n: {str(s): float(e) for s, e in layer.btd_errors.items()} for n, layer in layers.items()},
        **extra,
    }
    utils.atomic_save(state, path)


def _gross_skeleton(cfg, name, space: Mapping) -> nn.Module:
    """The base architecture with GroSS layers of the given sizes (random weights)."""
    model = build_model(cfg, name)
    for layer_name, sizes in space.items():
        conv = model.get_submodule(layer_name)
        layer = GroSSConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, sizes,
                            stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                            bias=conv.bias is not None)
        layer.name = layer_name
        parent, _, child = layer_name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    return model


def _load_gross_file(cfg, name, path, settings) -> nn.Module:
    state = _load(path)
    _check_settings(state["settings"], settings, path, cfg)
    model = _gross_skeleton(cfg, name, state["space"])
    model.load_state_dict(state["state_dict"])
    for layer_name, layer in gross_layers(model).items():
        layer.btd_errors = {int(s): e for s, e in state["btd_errors"].get(layer_name, {}).items()}
        layer.clear_cache()
    model.eval()
    return model


def load_gross(cfg: Mapping, name: str, repeat: int = 0, tuned: bool = True) -> nn.Module:
    """A GroSS model from ``runs/<profile>``: fine-tuned (notebook 02) or freshly decomposed (01)."""
    if not tuned:
        return gross_decompose(cfg, name, repeat, compute=False)
    path = require(_tuned_path(cfg, name, repeat), NOTEBOOKS["finetuning"], cfg["profile"])
    return _load_gross_file(cfg, name, path, _settings(cfg, name, "gross"))


def btd_error_table(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """Decompose both networks (all repeats) and tabulate the BTD error per layer and group size.

    Writes table ``btd_errors`` (columns ``model, repeat, layer, group_size, error,
    decomposition_s``) and figure ``fig_btd_error`` (one panel per model).

    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    from . import plots

    names = list(_check_models(models))
    t0 = time.perf_counter()
    rows = []
    for name in names:
        for r in range(_n_repeats(cfg, name)):
            gross_decompose(cfg, name, r)
            state = _load(_init_path(cfg, name, r))
            for layer, errs in state["btd_errors"].items():
                for s, e in errs.items():
                    rows.append({"model": name, "repeat": r, "layer": layer, "group_size": int(s), "error": e,
                                 "decomposition_s": state.get("wall_time_s", float("nan"))})
    df = pd.DataFrame(rows)
    wall = time.perf_counter() - t0
    save_table(cfg, df, "btd_errors", "both", wall)
    fig = _panels([plots.btd_error_figure(df[df["model"] == n]) for n in names], names)
    save_figure(cfg, fig, "fig_btd_error", "both", wall)
    return StepResult(tables={"btd_errors": df}, figures={"fig_btd_error": fig})


def _panels(figs, titles):
    """Combine single-panel figures side by side (re-drawn as images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Figure(figsize=(5.2 * len(figs), 3.8))
    axes = out.subplots(1, len(figs))
    for ax, f, title in zip(np.atleast_1d(axes), figs, titles):
        f.set_dpi(150)
        canvas = FigureCanvasAgg(f)
        canvas.draw()
        ax.imshow(np.asarray(canvas.buffer_rgba()))
        ax.set_axis_off()
        ax.set_title(title)
    out.tight_layout()
    return out


# Paper values (Tables 2 and 3) checked by the MAC table: (model, config or None, total, G.Conv delta).
_PAPER_MACS = [
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


def mac_table(cfg: Mapping) -> StepResult:
    """MACs of the full and decomposed configurations printed in Tables 2-3, checked against the paper.

    Rows for the paper's networks (VGG-16 at full width) with the paper's printed
    value and whether ours formats identically; when the profile uses a reduced
    VGG-16 width, the uniform configurations of that network are added (no paper
    value). Writes table ``table_macs``.
    """
    from .macs import count_macs, format_macs
    from .models import four_layer_net, vgg16_cifar

    t0 = time.perf_counter()
    nets = {"four_layer": four_layer_net(), "vgg16": vgg16_cifar()}
    rows = []
    for name, config, printed in _PAPER_MACS:
        m = count_macs(nets[name], config=config)
        rows.append({"model": name, "width_mult": 1.0, "config": "full" if config is None else config_str(config),
                     "macs": m.total, "gconv_macs": m.gconv, "formatted": format_macs(m.total),
                     "paper": printed, "matches_paper": format_macs(m.total) == printed})
    wm = cfg["vgg16"]["width_mult"]
    if wm != 1.0:
        net = vgg16_cifar(width_mult=wm)
        space = _plain_space(cfg, net, "vgg16")
        for config in [None] + [_uniform(space, s) for s in sorted(cfg["vgg16"]["baselines"], reverse=True)] \
                + [_uniform(space, 1)]:
            m = count_macs(net, config=config)
            rows.append({"model": "vgg16", "width_mult": wm, "config": "full" if config is None else config_str(config),
                         "macs": m.total, "gconv_macs": m.gconv, "formatted": format_macs(m.total),
                         "paper": "", "matches_paper": pd.NA})
    df = pd.DataFrame(rows)
    save_table(cfg, df, "table_macs", "macs", time.perf_counter() - t0)
    return StepResult(tables={"table_macs": df})


def _plain_space(cfg, model, name) -> "OrderedDict[str, tuple]":
    """Group sizes per decomposable layer of a plain model, as :func:`decompose` would choose them."""
    from .decomposition import _resolve_sizes, decomposable_layers

    sizes = _group_sizes(cfg, name)
    return OrderedDict((n, _resolve_sizes(n, model.get_submodule(n).in_channels, sizes))
                       for n in decomposable_layers(model))


def _uniform(space: Mapping, s: int) -> tuple:
    """Uniform configuration ``s`` (capped at each layer's largest size, if it lacks ``s``)."""
    out = []
    for sizes in space.values():
        out.append(s if s in sizes else max(x for x in sizes if x <= s) if min(sizes) <= s else min(sizes))
    return tuple(out)


# ----------------------------------------------------------------------------- 02: fine-tuning


def finetune_gross_models(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """GroSS fine-tuning of every decomposition (4-layer: all repeats; VGG-16: one).

    Saves ``runs/<profile>/<name>_gross_<repeat>.pt``; training checkpoints every
    epoch and resumes. The validation accuracy of the smallest and largest uniform
    configurations is tracked every epoch. Writes table ``finetune_history`` and
    figure ``fig_finetuning_curves``.

    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    from . import plots
    from .train import finetune_gross

    t0 = time.perf_counter()
    histories = []
    device = resolve_device(cfg)
    for name in _check_models(models):
        data = prepare_data(cfg, name)
        for r in range(_n_repeats(cfg, name)):
            path = _tuned_path(cfg, name, r)
            settings = _settings(cfg, name, "gross")
            if path.exists():
                state = _load(path)
                _check_settings(state["settings"], settings, path, cfg)
                history = pd.DataFrame(state["history"])
            else:
                model = gross_decompose(cfg, name, r, compute=False)
                t1 = time.perf_counter()
                history = finetune_gross(
                    model, data, recipe(cfg, name, "gross", seed=int(cfg["seed"]) + r),
                    run_dir=_run_dir(cfg) / "checkpoints", resume=True, device=device,
                    name=f"{name}_gross_{r}", progress=False,
                    track_configs={"smallest": _uniform(search_space(model), 1),
                                   "largest": tuple(max(s) for s in search_space(model).values())},
                )
                model.cpu()
                _save_gross_file(model, path, settings, history=history.to_dict(orient="list"),
                                 wall_time_s=time.perf_counter() - t1)
            history = history.assign(model=name, repeat=r)
            histories.append(history)
    df = pd.concat(histories, ignore_index=True)
    front = ["model", "repeat", "epoch"]
    df = df[front + [c for c in df.columns if c not in front]]
    wall = time.perf_counter() - t0
    save_table(cfg, df, "finetune_history", "both", wall)
    mean = df.groupby(["model", "epoch"])[["val_acc_smallest", "val_acc_largest", "train_loss"]].mean()
    mean = mean.reset_index()
    long = []
    for which in ("smallest", "largest"):  # validation accuracy at the two uniform extremes
        long.append(pd.DataFrame({"series": mean["model"] + f" {which}", "epoch": mean["epoch"],
                                  "val_acc": mean[f"val_acc_{which}"], "train_loss": np.nan}))
    long.append(pd.DataFrame({"series": mean["model"] + " (sampled configs)", "epoch": mean["epoch"],
                              "val_acc": np.nan, "train_loss": mean["train_loss"]}))
    long = pd.concat(long, ignore_index=True)
    fig = plots.finetuning_curves(long[["series", "epoch", "val_acc", "train_loss"]])
    save_figure(cfg, fig, "fig_finetuning_curves", "both", wall)
    return StepResult(tables={"finetune_history": df}, figures={"fig_finetuning_curves": fig})


def _uniform_configs(space: Mapping) -> list[tuple]:
    sizes = sorted({s for ss in space.values() for s in ss})
    return list(dict.fromkeys(_uniform(space, s) for s in sizes))


def uniform_before_after(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """GroSS validation accuracy of every uniform configuration straight after decomposition and after fine-tuning.

    Writes table ``uniform_before_after`` (``model, repeat, config, before, after,
    improved``), the check of issue 7 that fine-tuning does not lose accuracy.

    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    from .search import evaluate_configs

    t0 = time.perf_counter()
    rows = []
    for name in _check_models(models):
        data = prepare_data(cfg, name)
        for r in range(_n_repeats(cfg, name)):
            init, tuned = load_gross(cfg, name, r, tuned=False), load_gross(cfg, name, r)
            configs = _uniform_configs(search_space(init))
            before = evaluate_configs(init, configs, data, split="val", **_eval_kwargs(cfg, data))
            after = evaluate_configs(tuned, configs, data, split="val", **_eval_kwargs(cfg, data))
            for c, b, a in zip(configs, before["accuracy"], after["accuracy"]):
                rows.append({"model": name, "repeat": r, "config": config_str(c), "before": b, "after": a,
                             "improved": a >= b})
    df = pd.DataFrame(rows)
    save_table(cfg, df, "uniform_before_after", "both", time.perf_counter() - t0)
    return StepResult(tables={"uniform_before_after": df})


def _true_dir(cfg, name) -> Path:
    d = _run_dir(cfg) / "true" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def true_accuracy(cfg: Mapping, name: str, config, repeat: int = 0, kind: str = "config") -> dict:
    """Individual fine-tune of one configuration (the paper's *true* accuracy), memoised.

    The decomposition of GroSS repeat ``repeat mod repeats`` (notebook 01) is exported
    at ``config`` and fine-tuned with the individual schedule (``kind="config"``) or
    the partial one (``kind="partial"``, Sec. 5.2), seed ``seed + repeat``. The result
    is stored in ``runs/<profile>/true/<name>/`` keyed by kind, configuration, repeat
    and the settings, so notebooks 02, 03, 04 and 05 share it.

    Returns
    -------
    dict
        ``config`` (list), ``repeat``, ``kind``, ``epochs``, ``val_acc``, ``test_acc``,
        ``no_finetune_val_acc`` (the exported network before training), ``wall_time_s``.
    """
    from .train import finetune_config

    _check_name(name)
    config = tuple(int(s) for s in config)
    rec = recipe(cfg, name, kind, seed=int(cfg["seed"]) + int(repeat))
    init_repeat = int(repeat) % _n_repeats(cfg, name)
    settings = {**_settings(cfg, name, "init"), "init_repeat": init_repeat, "recipe": dataclasses.asdict(rec)}
    path = _true_dir(cfg, name) / f"{kind}_{_label(config)}_r{repeat}_{_hash(settings)}.json"
    if path.exists():
        return json.loads(path.read_text())
    init = gross_decompose(cfg, name, init_repeat, compute=False)
    data = prepare_data(cfg, name)
    t0 = time.perf_counter()
    no_ft = _evaluate(cfg, init, data, "val", config=config)
    net, history = finetune_config(init, config, data, rec, run_dir=_run_dir(cfg) / "checkpoints" / "true",
                                   resume=True, device=resolve_device(cfg),
                                   name=f"{name}_{kind}_{_label(config)}_r{repeat}_{_hash(settings)}",
                                   progress=False)
    result = {
        "model": name, "config": list(config), "repeat": int(repeat), "kind": kind, "epochs": rec.epochs,
        "val_acc": _evaluate(cfg, net, data, "val"), "test_acc": _evaluate(cfg, net, data, "test"),
        "no_finetune_val_acc": no_ft, "wall_time_s": time.perf_counter() - t0,
        "history_val_acc": [float(v) for v in history["val_acc"]],
    }
    utils.atomic_write_text(json.dumps(result, indent=1) + "\n", path)
    return result


def _true_repeats(cfg, name) -> int:
    return int(cfg[name]["true_repeats"])


def individual_finetunes(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """Individual fine-tunes of the uniform baseline configurations of both networks (and 1s).

    These are the "true" accuracies of the baselines of Tables 2 and 3 (re-used by
    notebooks 03 and 04). Writes table ``individual_finetunes``.

    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    t0 = time.perf_counter()
    rows = []
    for name in _check_models(models):
        space = search_space(load_gross(cfg, name, 0, tuned=False))
        sizes = list(cfg[name]["baselines"]) + [1]
        for c in dict.fromkeys(_uniform(space, s) for s in sizes):
            for r in range(_true_repeats(cfg, name)):
                res = true_accuracy(cfg, name, c, r)
                rows.append({"model": name, "config": config_str(c), "repeat": r, "epochs": res["epochs"],
                             "no_finetune_val_acc": res["no_finetune_val_acc"], "val_acc": res["val_acc"],
                             "test_acc": res["test_acc"], "train_time_s": res["wall_time_s"]})
    df = pd.DataFrame(rows)
    save_table(cfg, df, "individual_finetunes", "both", time.perf_counter() - t0)
    return StepResult(tables={"individual_finetunes": df})


# ----------------------------------------------------------------------------- search tables


def _search_rows(cfg, name, models: list, plain, data, entries) -> pd.DataFrame:
    """Tidy rows of a search table.

    ``entries``: list of dicts with ``group``, ``role``, ``config`` (None for full).
    GroSS test accuracy per GroSS repeat; true test accuracy per true repeat.
    """
    from .macs import count_macs
    from .search import evaluate_configs

    configs = [e["config"] for e in entries if e["config"] is not None]
    gross_acc = []
    for model in models:
        df = evaluate_configs(model, list(dict.fromkeys(configs)), data, split="test", **_eval_kwargs(cfg, data))
        gross_acc.append(dict(zip(df["config"], df["accuracy"])))
    base_state = _load(_base_path(cfg, name))
    rows = []
    for e in entries:
        c = e["config"]
        m = count_macs(plain, config=c)
        if c is None:
            n = 1
            gross = [float("nan")]
            true = [base_state["test_acc"]]
        else:
            n = max(len(models), _true_repeats(cfg, name))
            gross = [g[c] for g in gross_acc]
            true = [true_accuracy(cfg, name, c, r)["test_acc"] for r in range(_true_repeats(cfg, name))]
        for r in range(n):
            rows.append({
                "group": e["group"], "role": e["role"], "config": c,
                "macs": m.total, "gconv_macs": m.gconv,
                "gross_acc": gross[r] if r < len(gross) else float("nan"),
                "true_acc": true[r] if r < len(true) else float("nan"), "repeat": r,
            })
    return pd.DataFrame(rows)


def _search_table(tidy: pd.DataFrame, title: str) -> pd.DataFrame:
    """Paper-style Table 2/3 (:func:`gross.tables.search_table`) with the first column titled ``title``."""
    from .tables import search_table

    return search_table(tidy).rename(columns={"Configuration": title})


def _vbmf_group(vbmf_macs: int, baselines: dict) -> str:
    """The cheapest baseline whose MACs are not below ``vbmf_macs`` (else the most expensive)."""
    ok = [(m, g) for g, m in baselines.items() if m >= vbmf_macs]
    return min(ok)[1] if ok else max((m, g) for g, m in baselines.items())[1]


# ----------------------------------------------------------------------------- 03: exhaustive search


def exhaustive_search(cfg: Mapping) -> StepResult:
    """Table 2 and Fig. 3: exhaustive search of the 4-layer GroSS network.

    Every configuration (252 in the paper) is evaluated on the validation split for
    each GroSS repeat; configurations are ranked by the mean over repeats. For each
    uniform baseline the most accurate configuration with MACs not above the
    baseline's is found. Rows: Full, baseline and found per baseline, VBMF and
    depthwise; GroSS and true (individually fine-tuned) test accuracy, mean (std)
    over repeats. Writes ``exhaustive_search_all`` (every configuration),
    ``table2_exhaustive_search`` and ``fig3_exhaustive_search``.
    """
    from . import plots
    from .search import evaluate_configs, exhaustive_search as _exhaustive, model_mac_lookup
    from .decomposition import enumerate_configs
    from .vbmf import select_config

    name = "four_layer"
    t0 = time.perf_counter()
    data = prepare_data(cfg, name)
    models = [load_gross(cfg, name, r) for r in range(_n_repeats(cfg, name))]
    space = search_space(models[0])
    configs = enumerate_configs(space)
    lookup = model_mac_lookup(models[0])
    per_repeat, eval_s = [], []
    for model in models:
        t1 = time.perf_counter()
        per_repeat.append(evaluate_configs(model, configs, data, split="val", **_eval_kwargs(cfg, data))["accuracy"])
        eval_s.append(time.perf_counter() - t1)
    acc = np.vstack([np.asarray(a, dtype=float) for a in per_repeat])
    cost = [lookup(c) for c in configs]
    table = pd.DataFrame({"config": configs, "macs": [m.total for m in cost], "gconv_macs": [m.gconv for m in cost],
                          "accuracy": acc.mean(0)})
    for r in range(len(models)):
        table[f"val_acc_r{r}"] = acc[r]
    table["val_acc_std"] = acc.std(0, ddof=1) if len(models) > 1 else 0.0

    baselines = [_uniform(space, s) for s in cfg[name]["baselines"]]
    found = []
    for b in baselines:
        best, _ = _exhaustive(space, None, lookup, b, table=table)
        found.append(tuple(best["config"]))
    base = base_model(cfg, name, train=False)
    vbmf = tuple(select_config(base, sizes=dict(space)))
    depth = _uniform(space, cfg[name]["depthwise"])

    entries = [{"group": "full", "role": "full", "config": None}]
    labels = {}
    for b, f in zip(baselines, found):
        g = f"{config_str(b)}"
        labels[g] = lookup(b).total
        entries += [{"group": g, "role": "baseline", "config": b}, {"group": g, "role": "found", "config": f}]
    vg = _vbmf_group(lookup(vbmf).total, labels)
    idx = max(i for i, e in enumerate(entries) if e["group"] == vg)
    entries.insert(idx, {"group": vg, "role": "vbmf", "config": vbmf})
    entries.append({"group": "depthwise", "role": "depthwise", "config": depth})
    plain = base_model(cfg, name, train=False)
    tidy = _search_rows(cfg, name, models, plain, data, entries)
    table2 = _search_table(tidy, "4-Layer Network Configuration")
    wall = time.perf_counter() - t0
    notes = [
        f"search on the mean GroSS validation accuracy over {len(models)} repeat(s); GroSS/True columns are test "
        f"accuracy, mean (std) over {len(models)} GroSS and {_true_repeats(cfg, name)} individual repeat(s)",
        f"evaluating all {len(configs)} configurations took {np.mean(eval_s):.1f} s per repeat on "
        f"{len(data.val)} validation images ({resolve_device(cfg)})",
    ]
    out_all = table.assign(config=[config_str(c) for c in configs])
    save_table(cfg, out_all, "exhaustive_search_all", "four_layer", wall, notes[1:])
    save_table(cfg, table2, "table2_exhaustive_search", "four_layer", wall, notes)
    tidy_out = tidy.assign(config=["full" if c is None else config_str(c) for c in tidy["config"]])
    fig = plots.fig3_exhaustive_search(table, baselines, found)
    save_figure(cfg, fig, "fig3_exhaustive_search", "four_layer", wall, notes[:1])
    return StepResult(tables={"table2_exhaustive_search": table2, "exhaustive_search_all": out_all,
                              "table2_tidy": tidy_out}, figures={"fig3_exhaustive_search": fig}, notes=notes)


# ----------------------------------------------------------------------------- 04: breadth-first search


def bfs_vgg16(cfg: Mapping) -> StepResult:
    """Table 3 and Fig. 4: incremental breadth-first search of the CIFAR VGG-16 GroSS network.

    Searches against the uniform baselines (``vgg16.baselines``) in ascending MAC
    order (Sec. 3.4: ``bfs_runs`` runs of at most ``bfs_max_steps`` steps, the first
    ``bfs_seeded_runs`` runs of each search seeded by the best results of the
    previous one) on the validation split. Rows: Full, baseline and found per
    baseline, VBMF, 1s. Writes ``bfs_vgg16_trace``, ``table3_bfs_vgg16``, ``fig4_bfs_vgg16``.
    """
    from . import plots
    from .search import bfs_incremental, model_mac_lookup
    from .vbmf import select_config

    name = "vgg16"
    sec = cfg[name]
    t0 = time.perf_counter()
    data = prepare_data(cfg, name)
    model = load_gross(cfg, name, 0)
    space = search_space(model)
    lookup = model_mac_lookup(model)
    baselines = list(dict.fromkeys(_uniform(space, s) for s in sec["baselines"]))
    baselines.sort(key=lambda b: lookup(b).total)
    best, trace = bfs_incremental(model, data, baselines, runs=sec["bfs_runs"], max_steps=sec["bfs_max_steps"],
                                  seeded_runs=sec["bfs_seeded_runs"], seed=int(cfg["seed"]), split="val",
                                  **_eval_kwargs(cfg, data))
    found = [tuple(c) for c in best["config"]]
    base = base_model(cfg, name, train=False)
    vbmf = tuple(select_config(base, sizes=dict(space)))
    ones = _uniform(space, 1)
    entries = [{"group": "full", "role": "full", "config": None}]
    labels = {}
    for b, f in sorted(zip(baselines, found), key=lambda t: -lookup(t[0]).total):
        g = config_str(b)
        labels[g] = lookup(b).total
        entries += [{"group": g, "role": "baseline", "config": b}, {"group": g, "role": "found", "config": f}]
    vg = _vbmf_group(lookup(vbmf).total, labels)
    idx = max(i for i, e in enumerate(entries) if e["group"] == vg)
    entries.insert(idx, {"group": vg, "role": "vbmf", "config": vbmf})
    entries.append({"group": "depthwise", "role": "depthwise", "config": ones})
    tidy = _search_rows(cfg, name, [model], base, data, entries)
    table3 = _search_table(tidy, "VGG-16 (CIFAR) Configuration")
    wall = time.perf_counter() - t0
    notes = [f"breadth-first search on {len(data.val)} validation images; GroSS/True columns are test accuracy",
             f"{trace['config'].nunique()} distinct configurations evaluated"]
    trace_out = trace.assign(config=[config_str(c) for c in trace["config"]],
                             baseline=[config_str(b) if not isinstance(b, str) else b for b in trace["baseline"]])
    save_table(cfg, trace_out, "bfs_vgg16_trace", "vgg16", wall, notes[1:])
    save_table(cfg, table3, "table3_bfs_vgg16", "vgg16", wall, notes)
    fig = plots.fig4_bfs(trace, baselines, found)
    save_figure(cfg, fig, "fig4_bfs_vgg16", "vgg16", wall)
    tidy_out = tidy.assign(config=["full" if c is None else config_str(c) for c in tidy["config"]])
    return StepResult(tables={"table3_bfs_vgg16": table3, "bfs_vgg16_trace": trace_out, "table3_tidy": tidy_out},
                      figures={"fig4_bfs_vgg16": fig}, notes=notes)


def imagenet_bfs(cfg: Mapping) -> StepResult | None:
    """Table 4 (ImageNet). Returns ``None`` when ``imagenet.root`` is empty (the default).

    Raises
    ------
    NotImplementedError
        When a root is given: the ImageNet pipeline (pretrained torchvision weights,
        decomposition, 4/8-epoch GroSS fine-tunes, search) is not part of this
        release's notebooks.
    """
    if not cfg["imagenet"]["root"]:
        return None
    raise NotImplementedError(
        "Table 4 needs pretrained ImageNet VGG-16/ResNet-18 weights and GPU-scale fine-tuning; the ImageNet "
        f"pipeline is not implemented in gross.experiments yet (imagenet.root={cfg['imagenet']['root']!r}). "
        "Leave imagenet_root empty to skip Table 4."
    )


# ----------------------------------------------------------------------------- 05: AP comparison and timing


def _ap_configs(cfg, space) -> list[tuple]:
    from .search import random_configs

    return [tuple(c) for c in random_configs(space, cfg["ap"]["n_configs"], seed=cfg["ap"]["seed"])]


def ap_comparison(cfg: Mapping) -> StepResult:
    """Table 5 and Fig. 5: GroSS vs no / partial fine-tuning as search spaces (Sec. 5.2).

    ``ap.n_configs`` random configurations of the 4-layer network (GroSS repeat
    ``ap.repeat``); validation accuracy of: the individual fine-tune (true), the
    exported network straight after decomposition (no fine-tuning), a partial
    individual fine-tune (``four_layer.partial_epochs``) and the GroSS model at the
    configuration. Top-``ap.k`` average precision at ``ap.drops``. Writes
    ``ap_configs``, ``table5_average_precision`` and ``fig5_search_vs_true``.
    """
    from . import plots
    from .metrics import ap_table
    from .search import evaluate_configs, model_mac_lookup

    name, r = "four_layer", int(cfg["ap"]["repeat"])
    t0 = time.perf_counter()
    data = prepare_data(cfg, name)
    init, tuned = load_gross(cfg, name, r, tuned=False), load_gross(cfg, name, r)
    space = search_space(init)
    configs = _ap_configs(cfg, space)
    lookup = model_mac_lookup(init)
    none = evaluate_configs(init, configs, data, split="val", **_eval_kwargs(cfg, data))["accuracy"]
    gross = evaluate_configs(tuned, configs, data, split="val", **_eval_kwargs(cfg, data))["accuracy"]
    true = [true_accuracy(cfg, name, c, r, kind="config")["val_acc"] for c in configs]
    partial = [true_accuracy(cfg, name, c, r, kind="partial")["val_acc"] for c in configs]
    df = pd.DataFrame({"config": [config_str(c) for c in configs], "macs": [lookup(c).total for c in configs],
                       "true_acc": true, "none": list(none), "partial": partial, "gross": list(gross)})
    table5 = ap_table(df["true_acc"], {"No Fine-tuning": df["none"], "Partial Fine-tuning": df["partial"],
                                       "GroSS": df["gross"]},
                      drops=cfg["ap"]["drops"], k=cfg["ap"]["k"]).round(1).reset_index()
    table5 = table5.rename(columns={"space": "Fine-tune Strategy"})
    wall = time.perf_counter() - t0
    notes = [f"{len(configs)} random configurations, validation accuracy ({len(data.val)} images), "
             f"top-{cfg['ap']['k']} average precision"]
    save_table(cfg, df, "ap_configs", "ap", wall, notes)
    save_table(cfg, table5, "table5_average_precision", "ap", wall, notes)
    fig = plots.fig5_search_vs_true(df[["config", "true_acc", "none", "partial", "gross"]])
    save_figure(cfg, fig, "fig5_search_vs_true", "ap", wall, notes)
    return StepResult(tables={"ap_configs": df, "table5_average_precision": table5},
                      figures={"fig5_search_vs_true": fig}, notes=notes)


def inference_timing(cfg: Mapping) -> StepResult:
    """Inference over the Sec. 5.2 configurations: switching GroSS group sizes vs rebuilding a network each.

    The first ``timing.n_configs`` of the random configurations of :func:`ap_comparison`
    on the first ``timing.n_images`` validation images. Writes ``inference_timing``.
    """
    from .search import time_switching_vs_rebuild

    name, r = "four_layer", int(cfg["ap"]["repeat"])
    t0 = time.perf_counter()
    data = prepare_data(cfg, name)
    tuned = load_gross(cfg, name, r)
    n = min(int(cfg["timing"]["n_configs"]), int(cfg["ap"]["n_configs"]))
    configs = _ap_configs(cfg, search_space(tuned))[:n]
    m = min(int(cfg["timing"]["n_images"]), len(data.val))
    split = data.val[torch.arange(m)]
    kw = _eval_kwargs(cfg, data)
    df = time_switching_vs_rebuild(tuned, configs, split, **kw)
    df = df.assign(n_images=m)
    save_table(cfg, df, "inference_timing", "timing", time.perf_counter() - t0,
               [f"{len(configs)} configurations x {m} validation images"])
    return StepResult(tables={"inference_timing": df})
