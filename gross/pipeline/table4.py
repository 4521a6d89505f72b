"""Notebook 04, last part: Table 4 and Fig. 4's ImageNet panels (VGG-16, ResNet-18), only with ``imagenet.root``.

Steps below :func:`imagenet_bfs` (each a function of the resolved config ``cfg``, section ``[imagenet]``):

1. :func:`pretrained` -- torchvision weights, offline (:func:`gross.data.imagenet.load_pretrained`).
2. :func:`decomposed` -- GroSS decomposition of the 12 VGG-16 / 16 ResNet-18 convolutions at
   ``group_sizes`` (1, 4, 16, 32), one job per (layer, group size) BTD on the ``[executor]``.
3. :func:`gross_finetuned` -- GroSS fine-tuning (paper schedules; ``nproc > 1`` launches
   ``torchrun``, :mod:`gross.training.distributed`).
4. :func:`search` -- incremental breadth-first search against the uniform ``baselines``
   (4s and 16s) on the held-out training images.
5. :func:`imagenet_true_accuracy` -- individual fine-tune of a configuration (all layers train).
6. :func:`wang_rows` -- Table 4's "[26]" rows (VGG-16 with the decomposition structure of Wang et al.
   [26], :data:`gross.method.structures.WANG_ET_AL`, only with ``imagenet.wang_et_al``): decomposition
   with the structure's asymmetric widths and series, GroSS fine-tune of all weights (the authors'
   schedule), BFS within the structure under the original configuration's (correctly counted) MACs,
   individual fine-tunes of the original and the found configuration.
7. :func:`imagenet_bfs` -- the step: Table 4 in the paper's layout plus Fig. 4's panels,
   written by :func:`gross.pipeline.outputs.step` as ``table4_imagenet``,
   ``bfs_imagenet_trace`` and ``fig4_bfs_imagenet_<model>``.

Every rank of ``torchrun --nproc-per-node N -m gross.pipeline.table4`` runs every step:
fine-tunes are DDP, evaluations are sharded, rank 0 writes artefacts and outputs.
Artefacts live in ``runs/<profile>/imagenet-<hash>/`` where the hash covers every
setting they depend on (not the machine-only keys of :data:`MACHINE_KEYS`), so
changed settings never reuse stale files while another ``N`` or worker count resumes
the same run. Reported accuracies are 1-crop top-1 on the official validation folder
(the ``test`` split); the search and model selection use the held-out training images
(``val`` split).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from gross.training import described
from gross.training import distributed as ddp
from gross.data import imagenet as inet
from gross.runs.config import IMAGENET_MACHINE_KEYS
from gross.method.decomposition import decomposable_layers, export, search_space
from gross.runs.btd_jobs import decompose_jobs
from gross.method.macs import count_macs
from gross.method.space import config_str
from gross.training.loop import RECIPES, Recipe
from gross.pipeline.common import executor, uniform
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.rows import search_table
from gross.runs.store import fingerprint
from gross.report.plots import figure_builder, panel_axes

__all__ = ["MACHINE_KEYS", "TITLES", "settings", "dataset", "arch", "pretrained", "decomposed", "gross_finetuned",
           "search", "imagenet_true_accuracy", "rows", "wang_layout", "wang_rows", "imagenet_bfs", "main"]

#: ``format`` of the sealed model caches (:func:`_cached`).
_MODEL_FORMAT = "gross-described-model"
#: ``format`` of the sealed true accuracies (:func:`imagenet_true_accuracy`).
_TRUE_FORMAT = "gross-imagenet-true-accuracy"

#: Model blocks of Table 4.
TITLES = {"vgg16": "VGG-16", "resnet18": "ResNet-18"}
#: ``[imagenet]`` keys that change where and how fast Table 4 runs, never its numbers (kept in gross.runs.config).
MACHINE_KEYS = IMAGENET_MACHINE_KEYS
_NOTE_26 = ("[26] rows: VGG-16 with the decomposition structure of Wang et al. [26] (asymmetric bottleneck widths, "
            "from the authors' public configuration; gross.method.structures.WANG_ET_AL), the authors' schedules; "
            "MACs counted correctly (groups = bottleneck width / group size): the paper's 1.16B comes from the "
            "authors' counter (groups = input channels / group size), see results/table_macs; the search budget is "
            "the correctly counted MACs of the original configuration. Individual fine-tunes keep their best epoch "
            "by accuracy on the held-out training images (imagenet.wang_keep_best), as the authors' early stopping")
_NOTE_26_OFF = "the [26] rows are left out (imagenet.wang_et_al = false)"
#: Group label of the [26] block and the structure's name in its artefacts.
_WANG = "wang"


def _ctx(cfg) -> "ddp.Context":
    """This process's rank (one process, or every rank when run under ``torchrun``)."""
    return ddp.init(str(cfg["device"]).split(":")[0])


def settings(cfg: Mapping) -> Mapping:
    """The ``[imagenet]`` section (reads are recorded key by key); raises if ``root`` is empty or a model is unknown."""
    s = cfg["imagenet"]
    if not s["root"]:
        raise ValueError("imagenet.root is empty: set it to a folder with train/<class>/ and val/<class>/ images")
    for name in s["models"]:
        inet.arch_name(name)
    return s


def _work_dir(cfg, *parts) -> Path:
    from gross.utils import paths

    settings(cfg)
    # the folder's identity: every setting but the machine-only ones (not recorded as the step's reads:
    # the keys a step reads are those its computations use, see tests/test_table4.py)
    keys = {k: v for k, v in cfg.to_dict()["imagenet"].items() if k not in MACHINE_KEYS}
    keys["seed"] = cfg["seed"]
    d = paths.run_dir(cfg["profile"]) / f"imagenet-{fingerprint(keys)[:10]}"
    d.mkdir(parents=True, exist_ok=True)
    return d.joinpath(*parts)


def _data_kwargs(cfg) -> dict:
    s = settings(cfg)
    return dict(root=s["root"], resize=s["resize"], crop=s["crop"], held_out=s["held_out"], split_seed=cfg["seed"])


_DATA_CACHE: dict = {}


def dataset(cfg: Mapping):
    """:func:`gross.data.imagenet.imagenet` with the settings (held-out ``val``, official ``test``).

    The folder is listed once per process and settings (as ``common._base_data`` does for
    CIFAR-10): the table's steps ask for it once per fine-tune and evaluation.
    """
    kwargs = _data_kwargs(cfg)
    key = tuple(sorted(kwargs.items()))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = inet.imagenet(**kwargs)
    return _DATA_CACHE[key]


def arch(cfg: Mapping, name: str, num_classes: int) -> dict:
    """Keyword arguments of :func:`gross.data.imagenet.build` for ``name`` under this profile."""
    s = settings(cfg)
    kw = {"name": name, "num_classes": num_classes, "width_mult": s["width_mult"]}
    if name == "vgg16":
        kw["hidden"] = s["vgg16_hidden"]
    return kw


def pretrained(cfg: Mapping, name: str, num_classes: int) -> nn.Module:
    """The pretrained network ``name`` from ``imagenet.<name>_weights`` or torchvision's cache."""
    kw = arch(cfg, name, num_classes)
    return inet.load_pretrained(kw.pop("name"), settings(cfg)[f"{name}_weights"], **kw)


def _cached(cfg, path: Path, make, arch_kw: dict, collective: bool = False) -> nn.Module:
    """Load ``path``, else make it: on rank 0 only, or on every rank (``collective``: training).

    The file holds the model as plain data (:func:`gross.training.described.describe_model`)
    in a sealed file (:mod:`gross.utils.sealed`: read with ``torch.load(weights_only=True)`` and
    checked against its SHA-256): a file in a shared run folder can neither run code nor
    change a number unnoticed.
    """
    from gross.utils import atomic_save
    from gross.utils.sealed import load_sealed, seal

    ctx = _ctx(cfg)
    if not path.exists():
        if collective or ctx.rank == 0:
            model = make()
            if ctx.rank == 0:
                atomic_save(seal(described.describe_model(model, arch_kw), _MODEL_FORMAT), path)
        ddp.barrier(ctx)
    return described.build_described(load_sealed(path, _MODEL_FORMAT, "cached model", "delete it to make it again"))


def wang_layout(cfg: Mapping, model: nn.Module) -> dict:
    """:func:`gross.method.structures.layout` of Wang et al. [26] for ``model`` under this profile's ``width_mult``.

    Scaling rule (:func:`gross.method.structures.scaled`): the [26] widths and group sizes are kept at full
    size on a narrowed network (a bottleneck may be wider than the layer it replaces), so every group size
    still divides its width.
    """
    from gross.method.structures import WANG_ET_AL, layout, scaled

    return layout(model, scaled(WANG_ET_AL, settings(cfg)["width_mult"]))


def decomposed(cfg: Mapping, name: str, num_classes: int, structure: str | None = None) -> nn.Module:
    """GroSS decomposition of the pretrained ``name`` (cached).

    Every (layer, group size) BTD is an independent job on the profile's executor
    (:func:`gross.runs.btd_jobs.decompose_jobs`, ``[executor]``: serial, a local pool,
    Slurm) with its fingerprinted output in ``<run folder>/btd/<name>/``; a re-run
    finishes only the missing ones. Rank 0 runs them (the other ranks wait).
    ``structure="wang"``: VGG-16 with the widths and series of Wang et al. [26]
    (:func:`wang_layout`) instead of ``imagenet.group_sizes`` at full width.
    """
    s = settings(cfg)
    tag = name if structure is None else f"{name}_{structure}"

    def make():
        model = pretrained(cfg, name, num_classes)
        if structure is None:
            sizes, width = s["group_sizes"], None
        else:
            lay = wang_layout(cfg, model)
            sizes, width = lay["group_sizes"], lay["width"]
        return decompose_jobs(model, _work_dir(cfg, "btd", tag), executor(cfg), group_sizes=sizes,
                              layers=decomposable_layers(model), width=width, tol=s["btd_tol"],
                              max_iter=s["btd_max_iter"], seed=int(cfg["seed"]))
    return _cached(cfg, _work_dir(cfg, f"{tag}_init.pt"), make, arch(cfg, name, num_classes))


def _recipe(cfg, name: str, kind: str, n_train: int) -> tuple[Recipe, int | None]:
    """The schedule of ``kind`` (``gross``, ``config``; ``wang_gross``, ``wang_config``: the [26] rows' own)."""
    s = settings(cfg)
    if kind.startswith(f"{_WANG}_"):  # the authors' [26] schedules; batch size shared with the other VGG-16 rows
        epochs = s[f"{kind}_epochs"]
        changes = {"batch_size": s[f"{name}_batch_size"], "seed": int(cfg["seed"])}
    else:
        epochs = s[f"{name}_gross_epochs"] if kind == "gross" else s[f"{name}_config_epochs"]
        changes = {"batch_size": s[f"{name}_batch_size"], "seed": int(cfg["seed"])}
        if kind == "gross":
            changes["lr"] = s[f"{name}_lr"]
    recipe = RECIPES[f"{name}_imagenet_{kind}"].replace(**changes).scaled(epochs)
    steps = n_train // recipe.batch_size
    max_steps = None if s["epoch_fraction"] >= 1 else max(1, int(steps * s["epoch_fraction"]))
    return recipe, max_steps


def _train(cfg, model: nn.Module, name: str, kind: str, run_name: str, arch_kw: dict, space=None,
           config=None) -> nn.Module:
    """Fine-tune in this process (``nproc == 1`` or under torchrun) or launch ``torchrun``; returns the model.

    ``arch_kw``, ``space`` and ``config`` describe ``model`` for the job file (:func:`gross.training.distributed.write_job`).
    """
    s = settings(cfg)
    data = dataset(cfg)
    recipe, max_steps = _recipe(cfg, name, kind, len(data.train))
    run_dir = _work_dir(cfg)
    options = dict(checkpoint_every_steps=s["checkpoint_every_steps"], max_steps_per_epoch=max_steps,
                   workers=s["workers"], pin_memory=s["pin_memory"], persistent_workers=s["persistent_workers"])
    # [26]: every weight trains, also in the GroSS fine-tune (configurations still sampled per step)
    trainable = {"gross": "gross", f"{_WANG}_gross": "gross_all"}.get(kind, "all")
    # [26] individual fine-tunes keep their best epoch on the held-out images (the authors' early stopping)
    keep_best = kind == f"{_WANG}_config" and bool(s["wang_keep_best"])
    ctx = _ctx(cfg)
    if s["nproc"] > 1 and not ctx.distributed:
        job = ddp.write_job(run_dir / f"{run_name}.job", model, _data_kwargs(cfg), recipe, run_dir, arch=arch_kw,
                            space=space, config=config, name=run_name, trainable=trainable, keep_best=keep_best,
                            select_batch_size=s["eval_batch_size"], **options)
        ddp.launch(job, s["nproc"], device=str(cfg["device"]).split(":")[0])
    else:
        ddp.finetune(model, data.train, recipe, run_dir=run_dir, name=run_name, trainable=trainable, ctx=ctx,
                     select=data.val if keep_best else None, select_batch_size=s["eval_batch_size"], **options)
    state = ddp.read_checkpoint(run_dir / f"{run_name}.pt")
    model.load_state_dict(ddp.kept_weights(state))
    return model.eval()


def gross_finetuned(cfg: Mapping, name: str, num_classes: int) -> nn.Module:
    """GroSS fine-tuned ``name`` (cached; resumes an interrupted run)."""
    path = _work_dir(cfg, f"{name}_gross_model.pt")
    arch_kw = arch(cfg, name, num_classes)
    return _cached(cfg, path, lambda: _train(cfg, decomposed(cfg, name, num_classes), name, "gross", f"{name}_gross",
                                             arch_kw), arch_kw, collective=True)


def _eval_kw(cfg) -> dict:
    s = settings(cfg)
    return {"batch_size": s["eval_batch_size"], "workers": s["workers"], "pin_memory": s["pin_memory"],
            "ctx": _ctx(cfg)}


def search(cfg: Mapping, name: str, model: nn.Module, data, baselines=None) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Incremental BFS against the uniform ``baselines`` on the held-out images (at most ``n_val`` if > 0).

    ``baselines``: explicit baseline configurations instead (the [26] rows: the original configuration).
    """
    from gross.search.costs import model_mac_lookup
    from gross.search.algorithms import bfs_incremental_search

    s = settings(cfg)
    val = data.val if not s["n_val"] else data.val.subset(range(min(s["n_val"], len(data.val))))
    space = search_space(model)
    lookup = model_mac_lookup(model, (3, s["crop"], s["crop"]))
    if baselines is None:
        baselines = [uniform(space, b) for b in s["baselines"]]
    baselines = sorted(dict.fromkeys(tuple(b) for b in baselines), key=lambda b: lookup(b).total)
    evaluate = ddp.evaluator(model, val, **_eval_kw(cfg))
    best, trace = bfs_incremental_search(space, evaluate, lookup, baselines, runs=s["bfs_runs"],
                                         max_steps=s["bfs_max_steps"], seeded_runs=s["bfs_seeded_runs"],
                                         seed=int(cfg["seed"]))
    return best, trace, baselines


def imagenet_true_accuracy(cfg: Mapping, name: str, config, num_classes: int, structure: str | None = None) -> float:
    """Test accuracy of ``config`` decomposed alone (GroSS initialisation exported) and fine-tuned (all layers).

    ``structure="wang"``: a configuration of the [26] structure, with the authors' schedule for it.
    """
    from gross.utils import atomic_save
    from gross.utils.sealed import load_sealed, seal

    label = config_str(config, "-")
    tag = name if structure is None else f"{name}_{structure}"
    path = _work_dir(cfg, f"{tag}_true_{label}.pt")
    if not path.exists():
        init = decomposed(cfg, name, num_classes, structure)
        net = export(init, tuple(config))
        kind = "config" if structure is None else f"{structure}_config"
        net = _train(cfg, net, name, kind, f"{tag}_config_{label}", arch(cfg, name, num_classes),
                     space=search_space(init), config=config)
        acc = ddp.evaluate_plain(net, dataset(cfg).test, **_eval_kw(cfg))
        if _ctx(cfg).rank == 0:
            atomic_save(seal({"config": list(config), "test_acc": float(acc)}, _TRUE_FORMAT), path)
        ddp.barrier(_ctx(cfg))
    return load_sealed(path, _TRUE_FORMAT, "true accuracy", "delete it to fine-tune that configuration again")["test_acc"]


def _entries(model, baselines, found, size) -> list[tuple]:
    """``(group, role, config)`` rows of one block: full, then baseline/found by MACs descending, then 1s."""
    entries = [("full", "full", None)]
    for b, f in sorted(zip(baselines, found), key=lambda t: -count_macs(model, size, config=t[0]).total):
        entries += [(config_str(b), "baseline", b), (config_str(b), "found", f)]
    return entries + [("depthwise", "depthwise", uniform(search_space(model), 1))]


def rows(cfg: Mapping, name: str) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    """Tidy rows of one model's block (full, baseline/found per baseline, 1s) plus the search trace."""
    data = dataset(cfg)
    nc = len(data.classes)
    size = (3, settings(cfg)["crop"], settings(cfg)["crop"])
    full = pretrained(cfg, name, nc)
    model = gross_finetuned(cfg, name, nc)
    best, trace, baselines = search(cfg, name, model, data)
    found = [tuple(int(x) for x in c) for c in best["config"]]
    entries = _entries(model, baselines, found, size)
    configs = [c for _, _, c in entries if c is not None]
    gross = dict(zip(configs, ddp.evaluate(model, configs, data.test, **_eval_kw(cfg))["accuracy"]))
    out = []
    for group, role, c in entries:
        m = count_macs(full, size) if c is None else count_macs(model, size, config=c)
        true = ddp.evaluate_plain(full, data.test, **_eval_kw(cfg)) if c is None else \
            imagenet_true_accuracy(cfg, name, c, nc)
        out.append({"group": group, "role": role, "config": c, "macs": m.total, "gconv_macs": m.gconv,
                    "gross_acc": float("nan") if c is None else gross[c], "true_acc": true, "repeat": 0,
                    **({"label": f"{TITLES[name]} (Full)"} if c is None else {})})
    return pd.DataFrame(out), trace.assign(model=name), baselines, found


def wang_rows(cfg: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy rows of Table 4's [26] block (original configuration, found configuration) plus the search trace.

    Decomposition with the structure of Wang et al. [26] (:func:`decomposed` with ``structure="wang"``), GroSS
    fine-tune of all weights with the authors' schedule (``imagenet.wang_gross_epochs``), BFS within the
    structure under the MACs of the original configuration (counted correctly, so the search may find another
    configuration than the paper's), individual fine-tunes (``imagenet.wang_config_epochs``) of both.
    """
    data = dataset(cfg)
    nc = len(data.classes)
    size = (3, settings(cfg)["crop"], settings(cfg)["crop"])
    arch_kw = arch(cfg, "vgg16", nc)
    path = _work_dir(cfg, f"vgg16_{_WANG}_gross_model.pt")
    model = _cached(cfg, path, lambda: _train(cfg, decomposed(cfg, "vgg16", nc, _WANG), "vgg16", f"{_WANG}_gross",
                                              f"vgg16_{_WANG}_gross", arch_kw), arch_kw, collective=True)
    original = tuple(wang_layout(cfg, pretrained(cfg, "vgg16", nc))["configs"]["original"])  # the plain network's layers
    best, trace, baselines = search(cfg, "vgg16", model, data, baselines=[original])
    found = tuple(int(x) for x in best["config"][0])
    gross = dict(zip([original, found], ddp.evaluate(model, [original, found], data.test,
                                                     **_eval_kw(cfg))["accuracy"]))
    out = []
    for role, c in (("baseline", original), ("found", found)):
        m = count_macs(model, size, config=c)
        label = f"[26]: {config_str(c)}*" if role == "baseline" else f"Found: {config_str(c)}*"
        out.append({"group": "[26]", "role": role, "config": c, "macs": m.total, "gconv_macs": m.gconv,
                    "gross_acc": gross[c], "true_acc": imagenet_true_accuracy(cfg, "vgg16", c, nc, _WANG),
                    "repeat": 0, "label": label})
    return pd.DataFrame(out), trace.assign(model="vgg16 [26]")


@figure_builder
def _left_out_figure(name: str):
    """Fig. 4 panel of a model not in ``imagenet.models``: a figure saying so."""
    fig, axes = panel_axes(1, 1, figsize=(4, 1), panel_aspect=0.25)
    ax = axes[0, 0]
    ax.axis("off")
    ax.text(0.5, 0.5, f"{TITLES[name]}: not run (not in imagenet.models)", ha="center", va="center")
    return fig


@step("04_breadth_first_search", tables=("table4_imagenet", "bfs_imagenet_trace"),
      figures=tuple(f"fig4_bfs_imagenet_{n}" for n in TITLES), optional=True)
def imagenet_bfs(cfg: Mapping) -> StepResult | None:
    """Table 4 (both models' blocks), the search trace and Fig. 4's ImageNet panels.

    Returns ``None`` when ``imagenet.root`` is empty (Table 4 is skipped, the default),
    and on ranks other than 0 under ``torchrun`` (rank 0 writes the outputs).
    """
    from gross.report import plots

    if not cfg["imagenet"]["root"]:
        return None
    models = settings(cfg)["models"]
    blocks, traces, figures = [], [], {}
    for name in models:
        tidy, trace, baselines, found = rows(cfg, name)
        blocks.append(search_table(tidy, "ImageNet Configuration"))
        traces.append(trace)
        figures[f"fig4_bfs_imagenet_{name}"] = plots.fig4_bfs(trace.drop(columns="model"), baselines, found)
    wang = "vgg16" in models and settings(cfg)["wang_et_al"]
    if wang:
        tidy, trace = wang_rows(cfg)
        blocks.append(search_table(tidy, "ImageNet Configuration"))
        traces.append(trace)
    for name in TITLES:
        figures.setdefault(f"fig4_bfs_imagenet_{name}", _left_out_figure(name))
    data = dataset(cfg)
    notes = [f"GroSS/True: 1-crop top-1 accuracy on the official validation folder ({len(data.test)} images); the "
             f"search used {len(data.val)} images held out from the training set", _NOTE_26 if wang else _NOTE_26_OFF]
    trace = pd.concat(traces, ignore_index=True)
    trace = trace.assign(config=[config_str(c) for c in trace["config"]],
                         baseline=[b if isinstance(b, str) else config_str(b) for b in trace["baseline"]])
    if _ctx(cfg).rank != 0:
        return None
    return StepResult(tables={"table4_imagenet": pd.concat(blocks, ignore_index=True), "bfs_imagenet_trace": trace},
                      figures=figures, notes=notes, output_notes={"bfs_imagenet_trace": notes[:1]})


def main(argv=None) -> None:
    """``[torchrun --nproc-per-node N] python -m gross.pipeline.table4 --profile paper imagenet__root=...``.

    Every rank runs every step: fine-tunes are DDP, evaluations are sharded, rank 0 writes.
    """
    import argparse

    from gross.runs import config
    from gross.pipeline.common import setup

    parser = argparse.ArgumentParser(prog="python -m gross.pipeline.table4", description="Table 4 (ImageNet)")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE settings, e.g. imagenet__root=/data/imagenet")
    args = parser.parse_args(argv)
    cfg = config.load(args.profile, **config.parse_overrides(args.overrides))
    if not cfg["imagenet"]["root"]:
        parser.error("set imagenet__root=/path/to/imagenet (train/ and val/ class folders)")
    setup(cfg)
    imagenet_bfs(cfg)


if __name__ == "__main__":
    main()
