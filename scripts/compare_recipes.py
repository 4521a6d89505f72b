"""The paper's text vs the authors' code as training recipes, 4-layer network on CIFAR-10 (issue #25, item 3).

For each seed this trains the 4-layer base network under both recipes at the same reduced budget
(``gross.pipeline.common.recipe`` of ``load(profile)`` and ``load(profile, base="paper_code")``:
the paper's text pads by 2; the authors' code pads by 4, weight decay 1e-3 as ours for the base),
decomposes the paper recipe's base at one uniform group size (BTD settings of the profile) and
fine-tunes that configuration individually from this same starting network under both recipes
(paper text: weight decay 0, pad 2; authors' code: weight decay 1e-3, pad 4), so each recipe's
effect is a paired difference per seed. Everything else (seed, data order, learning rate,
schedule, sizes) is equal; selection and reporting stay on our validation split and the test
set, never the other way round.

    GROSS_DATA=/work/shared/data/cifar10-jpeg.tar.gz nice -n 19 python scripts/compare_recipes.py run \\
        --seeds 0 1 --n-train 10000 --base-epochs 10 --config-epochs 4 --out /tmp/recipes/a
    python scripts/compare_recipes.py summarise /tmp/recipes/a /tmp/recipes/b --to results/

``run`` writes ``<out>_runs.csv`` (one row per seed, stage and recipe, written as it goes) and
``<out>_epochs.csv`` (each training's history). ``summarise`` joins them into
``compare_recipes`` (mean, sample std and n per stage and recipe, and the paired difference
code - paper with its std over seeds) and ``compare_recipes_runs`` (every run), each
CSV + Markdown + ``.meta.json`` (commit, command, machine, both configurations' reductions).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from gross import utils
from gross.method.decomposition import decompose
from gross.pipeline.common import build_model, evaluate, prepare_data, recipe, setup
from gross.runs import config
from gross.training.loop import finetune_config, train_base

RECIPE_BASES = {"paper": None, "code": "paper_code"}  # recipe label -> profile merged under --profile
KEYS = ["stage", "recipe"]


def load(profile: str, label: str, seed: int, args) -> config.Profile:
    """The configuration of recipe ``label`` reduced by ``profile``, with this comparison's budget."""
    return config.load(profile, base=RECIPE_BASES[label], seed=seed, num_threads=args.threads,
                       executor__name="serial", four_layer__base_epochs=args.base_epochs,
                       four_layer__config_epochs=args.config_epochs,
                       **({"data__n_train": args.n_train} if args.n_train else {}))


def _accuracies(cfg, net, data) -> dict:
    return {"val_acc": evaluate(cfg, net, data, "val"), "test_acc": evaluate(cfg, net, data, "test")}


def _describe(rec) -> dict:
    return {"epochs": rec.epochs, "padding": rec.padding, "weight_decay": rec.weight_decay, "lr": rec.lr,
            "milestones": " ".join(map(str, rec.milestones))}


def one_seed(seed: int, args) -> tuple[list[dict], list[dict]]:
    """Base, BTD and individual fine-tunes of one seed under both recipes."""
    rows, epochs = [], []
    config_ = (args.group_size,) * 3
    for label in RECIPE_BASES:
        cfg = load(args.profile, label, seed, args)
        device = setup(cfg)
        data = prepare_data(cfg, "four_layer")
        rec = recipe(cfg, "four_layer", "base")
        model = build_model(cfg, "four_layer")
        t0 = time.perf_counter()
        hist = train_base(model, data, rec, device=device, progress=False)
        tag = {"seed": seed, "stage": "base", "recipe": label}
        rows.append({**tag, **_describe(rec), **_accuracies(cfg, model, data), "seconds": time.perf_counter() - t0})
        epochs += [{**tag, **r} for r in hist.to_dict(orient="records")]
        print(f"seed {seed} {label}: base val {rows[-1]['val_acc']:.2f} ({rows[-1]['seconds']:.0f} s)", flush=True)
        if label == "paper":
            sec = cfg["four_layer"]
            init = decompose(copy.deepcopy(model).cpu(), group_sizes=(args.group_size,), tol=sec["btd_tol"],
                             max_iter=sec["btd_max_iter"], method=sec["btd_method"], ridge=sec["btd_ridge"],
                             seed=seed, progress=False)
    for label in RECIPE_BASES:  # both fine-tunes start from the paper recipe's decomposition
        stage = "config"
        cfg = load(args.profile, label, seed, args)
        device = setup(cfg)
        data = prepare_data(cfg, "four_layer")
        rec = recipe(cfg, "four_layer", "config")
        no_ft = evaluate(cfg, init, data, "val", config=config_)
        t0 = time.perf_counter()
        net, hist = finetune_config(init, config_, data, rec, device=device, progress=False)
        tag = {"seed": seed, "stage": stage, "recipe": label}
        rows.append({**tag, **_describe(rec), **_accuracies(cfg, net, data), "no_finetune_val_acc": no_ft,
                     "seconds": time.perf_counter() - t0})
        epochs += [{**tag, **r} for r in hist.to_dict(orient="records")]
        print(f"seed {seed} {stage} {label}: val {rows[-1]['val_acc']:.2f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    return rows, epochs


def _paired(runs: pd.DataFrame, stage: str, metric: str) -> pd.Series:
    """code - paper per seed for ``stage``."""
    a = runs[(runs.stage == stage) & (runs.recipe == "code")].set_index("seed")[metric]
    b = runs[(runs.stage == stage) & (runs.recipe == "paper")].set_index("seed")[metric]
    return (a - b).dropna()


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and n per (stage, recipe); paired code - paper difference on the code rows."""
    rows = []
    for (stage, label), g in runs.groupby(KEYS, sort=False):
        row = {"stage": stage, "recipe": label, "n_seeds": len(g)}
        for metric in ("val_acc", "test_acc"):
            row[f"{metric}_mean"] = g[metric].mean()
            row[f"{metric}_std"] = g[metric].std(ddof=1) if len(g) > 1 else float("nan")
        if label == "code":
            for metric in ("val_acc", "test_acc"):
                d = _paired(runs, stage, metric)
                row[f"{metric}_diff_mean"] = d.mean()
                row[f"{metric}_diff_std"] = d.std(ddof=1) if len(d) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(prefixes, to, profile: str = "cpu") -> pd.DataFrame:
    """Join the CSVs of ``run`` and write ``compare_recipes`` and ``compare_recipes_runs`` to ``to``."""
    runs = pd.concat([pd.read_csv(f"{p}_runs.csv") for p in prefixes], ignore_index=True)
    runs = runs.sort_values(["stage", "recipe", "seed"], kind="stable").reset_index(drop=True)
    table = summary(runs).round(3)
    notes = ["4-layer network, real CIFAR-10 (JPEG archive), sizes of the profile below; base epochs and "
             "individual fine-tune epochs as in the runs table (reduced, equal for both recipes)",
             "paper = the paper's text and our defaults (pad 2; fine-tune weight decay 0); code = the authors' code "
             "(pad 4; weight decay 1e-3 everywhere; configs/paper_code.toml); base weight decay 1e-3 in both",
             "config: individual fine-tune of the uniform configuration, under each recipe from the same network "
             "(the paper recipe's base of that seed, decomposed at the profile's BTD settings)",
             "accuracies in %; val = our validation split (selection), test = CIFAR-10 test set; "
             "std = sample std over seeds; diff = code - paper, paired by seed"]
    meta = utils.provenance(profile, command=" ".join(sys.argv), inputs=[str(p) for p in prefixes], notes=notes,
                            reductions={label: config.reductions(config.load(profile, base=base))
                                        for label, base in RECIPE_BASES.items()})
    utils.save_table(table, "compare_recipes", meta, directory=to)
    utils.save_table(runs.round(3), "compare_recipes_runs", meta, directory=to)
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train, decompose and fine-tune under both recipes")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--profile", default="cpu", help="profile whose sizes and BTD settings are used")
    run.add_argument("--n-train", type=int, default=0, help="training images (0: the profile's)")
    run.add_argument("--base-epochs", type=int, default=20)
    run.add_argument("--config-epochs", type=int, default=6)
    run.add_argument("--group-size", type=int, default=16, help="uniform configuration fine-tuned")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--out", required=True, help="output prefix")
    summ = sub.add_parser("summarise", help="join the outputs of runs into the summary tables")
    summ.add_argument("prefixes", nargs="+", help="--out prefixes of earlier runs")
    summ.add_argument("--profile", default="cpu")
    summ.add_argument("--to", required=True, help="folder for compare_recipes.{csv,md,meta.json}")
    args = ap.parse_args(argv)
    if args.command == "summarise":
        summarise(args.prefixes, Path(args.to), args.profile)
        return
    torch.set_num_threads(args.threads)
    rows, epochs = [], []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        r, e = one_seed(seed, args)
        rows += r
        epochs += e
        pd.DataFrame(rows).to_csv(f"{args.out}_runs.csv", index=False)  # write as we go
        pd.DataFrame(epochs).to_csv(f"{args.out}_epochs.csv", index=False)


if __name__ == "__main__":
    main()
