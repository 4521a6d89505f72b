"""Can a recipe setting stop GroSS fine-tuning lowering any uniform configuration at ``cpu`` (issue #28, item 1)?

With the BTD ridge (``scripts/probe_gross_spike.py``) the spike is gone, but a few of the
largest uniform configurations still end a little below where they started. This tries the
levers the issue names, each on the same decompositions, for every repeat (BTD and fine-tune
seed ``seed + repeat``) and torch thread count, over the ``cpu`` profile's whole GroSS schedule:

* ``A``: the paper's recipe as the profile runs it (uniform sampling, lr 1e-4, decay at 5 and 8);
* ``S``: "sandwich" sampling: every iteration also trains the largest configuration (its
  gradient is added to the sampled one's; twice the compute). Not in the paper;
* ``W``: a linear learning-rate warm-up over the first epoch;
* ``M`` / ``L``: learning rate 3e-4 / 1e-3 (the individual fine-tunes' rate);

and the individual fine-tunes (``config`` recipe, as the profile runs them) of the
``--configs`` largest uniform configurations. Each row has the validation accuracy before
and after and the images lost and gained, so a change can be set beside its paired error
(:func:`gross.pipeline.claims.paired_se`).

The variants need changes to the training step the library deliberately does not offer, so
this script trains with its own minimal copy of the plain loop (SGD, the same data order,
augmentation and group-size sampler as :func:`gross.training.loop.finetune_gross`; no
checkpoints, no channels-last layout): ``A`` is the control for the others.

    GROSS_RUNS=/tmp/probe/t1/runs python scripts/probe_gross_recipes.py run --threads 1 --out /tmp/probe/t1.csv
    python scripts/probe_gross_recipes.py summarise /tmp/probe/t1.csv /tmp/probe/t2.csv --to results/

The base network is read from ``$GROSS_RUNS/cpu/four_layer_base.pt`` (as in
``probe_gross_spike.py``); the decompositions are made there (or read when stored).
``summarise`` writes ``probe_gross_recipes`` (one row per variant: runs, configurations
lowered, worst change and its paired z), ``probe_gross_recipes_runs`` (one row per variant,
thread setting and repeat) and ``probe_gross_recipes_configs`` (every configuration's change,
images lost and gained, paired standard error and z), CSV + Markdown + ``.meta.json``.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from gross import utils
from gross.data.batching import batches
from gross.method.decomposition import export, gross_layers, search_space, set_config
from gross.method.space import config_str
from gross.pipeline.claims import paired_se
from gross.pipeline.common import eval_kwargs, prepare_data, recipe, setup, uniform_configs
from gross.pipeline.decomposition import gross_decompose
from gross.runs import config
from gross.search.evaluation import correct_images, paired_change
from gross.training.loop import draw_config, group_size_sampler

#: Variant -> (sandwich, warm-up epochs, learning rate or None for the recipe's).
VARIANTS = {"A": (False, 0.0, None), "S": (True, 0.0, None), "W": (False, 1.0, None), "M": (False, 0.0, 3e-4),
            "L": (False, 0.0, 1e-3)}


def tune(model, layer_names, data, rec, *, sandwich=False, warmup=0.0, sampler_layers=None, largest=None) -> None:
    """Train the parameters of ``layer_names`` with ``rec`` (plain SGD loop); a GroSS model samples sizes."""
    keep = {id(p) for n in layer_names for p in model.get_submodule(n).parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=rec.lr, momentum=rec.momentum,
                          weight_decay=rec.weight_decay)
    data_rng, sampler = torch.Generator().manual_seed(rec.seed), group_size_sampler(rec)
    torch.manual_seed(rec.seed)
    per_epoch = math.ceil(len(data.train) / rec.batch_size)
    dtype = next(model.parameters()).dtype  # float32 batches; float64 models (the tests) get float64 ones
    for epoch in range(1, rec.epochs + 1):
        lr_epoch = rec.lr * rec.gamma ** sum(m <= epoch - 1 for m in rec.milestones)
        model.train()
        for i, (x, y) in enumerate(batches(data.train, rec.batch_size, shuffle=True, augment=rec.augment,
                                           mean=rec.mean, std=rec.std, generator=data_rng, padding=rec.padding)):
            x = x.to(dtype)
            ramp = min(1.0, ((epoch - 1) * per_epoch + i + 1) / (warmup * per_epoch)) if warmup else 1.0
            for group in opt.param_groups:
                group["lr"] = lr_epoch * ramp
            if sampler_layers:
                draw_config(sampler_layers, sampler)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if sandwich:
                set_config(model, largest)
                F.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()


def _row(tag, kind, variant, c, before, after, seconds) -> dict:
    pair = paired_change(before, after)
    return {**tag, "kind": kind, "variant": variant, "config": config_str(c), **pair,
            "delta": pair["after"] - pair["before"], "seconds": seconds}


def probe(threads: int, repeat: int, variants, configs_variants, n_configs: int) -> list[dict]:
    """Every variant's GroSS fine-tune and the individual fine-tunes of one repeat; one row per configuration."""
    cfg = config.load("cpu", executor__name="serial", num_threads=threads)
    setup(cfg)
    data = prepare_data(cfg, "four_layer")
    hits = lambda m, c=None: correct_images(m, data, config=c, split="val", **eval_kwargs(cfg, data))  # noqa: E731
    model0 = gross_decompose(cfg, "four_layer", repeat)
    space, names = search_space(model0), list(gross_layers(model0))
    configs = uniform_configs(space)
    before = {c: hits(model0, c) for c in configs}
    tag, rows = {"threads": threads, "repeat": repeat}, []
    for v in variants:
        sandwich, warmup, lr = VARIANTS[v]
        model = copy.deepcopy(model0)
        rec = recipe(cfg, "four_layer", "gross", seed=int(cfg["seed"]) + repeat)
        rec = rec.replace(lr=lr) if lr is not None else rec
        layers = gross_layers(model)
        t0 = time.perf_counter()
        tune(model, names, data, rec, sandwich=sandwich, warmup=warmup, largest=configs[-1],
             sampler_layers=[(layers[n], tuple(space[n])) for n in space])
        s = time.perf_counter() - t0
        rows += [_row(tag, "gross", v, c, before[c], hits(model, c), s) for c in configs]
        d = [r["delta"] for r in rows if r["variant"] == v and r["kind"] == "gross"]
        print(f"threads {threads} repeat {repeat} GroSS {v}: worst {min(d):+.2f}, mean {sum(d) / len(d):+.2f}, "
              f"{sum(x < 0 for x in d)} lowered ({s:.0f} s)", flush=True)
    for v in configs_variants:
        sandwich, warmup, lr = VARIANTS[v]
        for c in configs[-n_configs:]:
            net = export(model0, c)
            rec = recipe(cfg, "four_layer", "config", seed=int(cfg["seed"]) + repeat)
            rec = rec.replace(lr=lr) if lr is not None else rec
            t0 = time.perf_counter()
            tune(net, names, data, rec, warmup=warmup)
            rows.append(_row(tag, "config", v, c, before[c], hits(net), time.perf_counter() - t0))
            print(f"threads {threads} repeat {repeat} individual {v} {config_str(c)}: {rows[-1]['delta']:+.2f}",
                  flush=True)
    return rows


def summarise(paths, to) -> pd.DataFrame:
    """Per variant over every run, and per run; writes both tables to ``to``."""
    rows = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    rows["paired_se"] = [paired_se(r.lost, r.gained, r.n_images) for r in rows.itertuples()]
    rows["z"] = rows["delta"] / rows["paired_se"].where(rows["paired_se"] > 0)
    keys = ["kind", "variant"]
    run = keys + ["threads", "repeat"]
    # a GroSS row carries its whole fine-tune's time (one fine-tune, every configuration); an individual row its own
    rows["seconds"] = rows["seconds"].where(rows["kind"] == "config",
                                            rows["seconds"] / rows.groupby(run)["seconds"].transform("size"))
    per_run = rows.groupby(run, sort=False).agg(
        configs=("delta", "size"), lowered=("delta", lambda d: int((d < 0).sum())), worst=("delta", "min"),
        mean=("delta", "mean"), most_negative_z=("z", "min"), seconds=("seconds", "sum")).reset_index()
    table = per_run.groupby(keys, sort=False).agg(
        runs=("configs", "size"), configs=("configs", "sum"), lowered=("lowered", "sum"), worst=("worst", "min"),
        mean=("mean", "mean"), most_negative_z=("most_negative_z", "min")).reset_index()
    meta = utils.provenance("cpu", command=" ".join(sys.argv), inputs=[str(p) for p in paths],
                            notes=["4-layer network, cpu profile: one base network (notebook 01), decompositions "
                                   "seed + repeat, the whole 10-epoch GroSS schedule (kind gross, 7 uniform "
                                   "configurations) and 3-epoch individual fine-tunes (kind config); changes are "
                                   "validation accuracy points on 5000 images; z = change / paired standard error"])
    utils.save_table(table.round(4), "probe_gross_recipes", meta, directory=to)
    utils.save_table(per_run.round(4), "probe_gross_recipes_runs", meta, directory=to)
    utils.save_table(rows.round(4), "probe_gross_recipes_configs", meta, directory=to)
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="decompose, fine-tune every variant and measure")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--repeats", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--variants", nargs="+", default=["A", "S", "W"], choices=sorted(VARIANTS))
    run.add_argument("--config-variants", nargs="*", default=["A"], choices=sorted(VARIANTS))
    run.add_argument("--configs", type=int, default=3, help="individual fine-tunes of this many largest uniform "
                                                             "configurations")
    run.add_argument("--out", required=True, help="output CSV (written after each repeat)")
    summ = sub.add_parser("summarise", help="join the outputs of runs into the summary tables")
    summ.add_argument("paths", nargs="+", help="--out CSVs of earlier runs")
    summ.add_argument("--to", required=True, help="folder for probe_gross_recipes*.{csv,md,meta.json}")
    args = ap.parse_args(argv)
    if args.command == "summarise":
        summarise(args.paths, Path(args.to))
        return
    rows: list[dict] = []
    for repeat in args.repeats:
        rows += probe(args.threads, repeat, args.variants, args.config_variants, args.configs)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)  # write as we go: a long probe keeps what it measured


if __name__ == "__main__":
    main()
