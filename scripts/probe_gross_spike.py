"""Why GroSS fine-tuning of the 4-layer network can spike at the ``cpu`` settings (issue #28, item 1).

For each BTD ridge, repeat (BTD and fine-tune seed ``seed + repeat``) and torch thread count
this decomposes the stored ``cpu`` base network, measures the series terms of every layer
against the weight, fine-tunes the first epochs of the ``cpu`` GroSS schedule while recording
every iteration's gradient norm, and evaluates every uniform configuration before and after.

    GROSS_RUNS=/tmp/probe/runs python scripts/probe_gross_spike.py run --threads 1 \
        --ridge 0 1e-3 --repeats 0 1 2 --epochs 3 --out /tmp/probe/t1
    python scripts/probe_gross_spike.py summarise /tmp/probe/t1 /tmp/probe/t2 --to results/

The base network is read from ``$GROSS_RUNS/cpu/four_layer_base.pt`` (copy it from a ``cpu``
run: it is trained by notebook 01 and does not depend on the ridge). Writes ``<out>_terms.csv``
(one row per layer, group size and setting), ``<out>_iterations.csv`` (gradient norm and
configuration per iteration), ``<out>_epochs.csv`` (the fine-tune's history) and
``<out>_uniform.csv`` (uniform configurations before / after). ``summarise`` joins such outputs
into ``probe_gross_spike`` (one row per setting: largest series term and gradient norms, worst
uniform change, mean BTD error) and ``probe_gross_spike_epochs`` (the fine-tunes' histories),
each CSV + Markdown + ``.meta.json`` (commit, command, machine).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from gross.method.decomposition import gross_layers, search_space
from gross.method.space import config_str
from gross.pipeline.base import base_model
from gross.pipeline.common import evaluate, prepare_data, recipe, setup, uniform_configs
from gross.pipeline.decomposition import gross_decompose
from gross.runs import config
from gross.training.loop import finetune_gross
from gross import utils


def _dense(P: torch.Tensor, R: torch.Tensor, Q: torch.Tensor, groups: int) -> torch.Tensor:
    """The k x k kernel of Q . R . P (float64), shape (u, t, k, k)."""
    P, R, Q = P.double()[:, :, 0, 0], R.double(), Q.double()[:, :, 0, 0]
    width, s = R.shape[0], R.shape[1]
    block = torch.zeros(width, width, *R.shape[2:], dtype=torch.float64)
    for g in range(groups):
        rows = slice(g * (width // groups), (g + 1) * (width // groups))
        block[rows, g * s:(g + 1) * s] = R[rows]
    return torch.einsum("uw,wvhk,vt->uthk", Q, block, P)


def term_rows(model, base) -> list[dict]:
    """Per layer and group size: norms of P_s, R_s, Q_s and of the newest terms, error of the product."""
    rows = []
    for name, layer in gross_layers(model).items():
        W = dict(base.named_modules())[name].weight.detach().double()
        w = float(W.norm())
        for order, s in enumerate(layer.group_sizes, start=1):
            with torch.no_grad():
                P, R, Q = layer.weights(s)
                dense = _dense(P, R, Q, layer.width // s)
                newest = (layer.P1, layer.R1, layer.Q1) if order == 1 else (
                    layer.p[order - 2], layer.r[order - 2], layer.q[order - 2])
                newest = [t.detach() for t in newest]
            rows.append({"layer": name, "group_size": s, "W_norm": w,
                         "P_norm": float(P.norm()), "R_over_W": float(R.norm()) / w, "Q_norm": float(Q.norm()),
                         "PRQ_over_W": float(P.norm() * R.norm() * Q.norm()) / w,
                         "term_over_W": float(sum(t.double().norm() for t in newest)) / w,
                         "rel_error": float((dense - W).norm()) / w})
    return rows


class GradNorms:
    """Gradient norm of the GroSS parameters at every training iteration (tensor hooks; no loop change)."""

    def __init__(self, model):
        self.values: list[float] = []
        self._sq = 0.0
        self._model = model
        model.register_forward_pre_hook(self._start)
        for layer in gross_layers(model).values():
            for p in layer.parameters():
                p.register_hook(self._add)

    def _start(self, module, args):
        if module.training and torch.is_grad_enabled():
            self.flush()

    def _add(self, grad):
        self._sq += float(grad.double().pow(2).sum())

    def flush(self):
        if self._sq:
            self.values.append(math.sqrt(self._sq))
        self._sq = 0.0


def probe(ridge: float, repeat: int, threads: int, epochs: int, gross_epochs: int | None) -> dict:
    overrides = {"four_layer__btd_ridge": ridge, "executor__name": "serial", "num_threads": threads}
    if gross_epochs is not None:
        overrides["four_layer__gross_epochs"] = gross_epochs
    cfg = config.load("cpu", **overrides)
    device = setup(cfg)
    tag = {"ridge": ridge, "repeat": repeat, "threads": threads}
    t0 = time.perf_counter()
    model = gross_decompose(cfg, "four_layer", repeat)
    btd_s = time.perf_counter() - t0
    base = base_model(cfg, "four_layer", train=False)
    terms = [{**tag, **r} for r in term_rows(model, base)]
    data = prepare_data(cfg, "four_layer")
    space = search_space(model)
    configs = uniform_configs(space)
    before = {c: evaluate(cfg, model, data, "val", config=c) for c in configs}
    rec = recipe(cfg, "four_layer", "gross", seed=int(cfg["seed"]) + repeat)
    rec = rec.replace(epochs=min(epochs, rec.epochs))  # the first epochs of the profile's schedule
    norms = GradNorms(model)
    t0 = time.perf_counter()
    hist = finetune_gross(model, data, rec, device=device, progress=False)
    norms.flush()
    ft_s = time.perf_counter() - t0
    after = {c: evaluate(cfg, model, data, "val", config=c) for c in configs}
    per_epoch = math.ceil(len(data.train) / rec.batch_size)
    its = [{**tag, "iteration": i + 1, "epoch": i // per_epoch + 1, "grad_norm": g} for i, g in enumerate(norms.values)]
    epochs_df = [{**tag, **row} for row in hist.to_dict(orient="records")]
    uni = [{**tag, "config": config_str(c), "before": before[c], "after": after[c], "delta": after[c] - before[c]}
           for c in configs]
    print(f"ridge {ridge:g} repeat {repeat} threads {threads}: BTD {btd_s:.0f} s, fine-tune {ft_s:.0f} s, "
          f"max grad {max(norms.values):.3g}, worst delta {min(u['delta'] for u in uni):+.2f}", flush=True)
    return {"terms": terms, "iterations": its, "epochs": epochs_df, "uniform": uni}


KEYS = ["ridge", "threads", "repeat"]


def summarise(prefixes, to) -> pd.DataFrame:
    """One row per (ridge, threads, repeat) from the CSVs of ``run``; writes the tables to ``to``."""
    read = {k: pd.concat([pd.read_csv(f"{p}_{k}.csv") for p in prefixes], ignore_index=True)
            for k in ("terms", "iterations", "epochs", "uniform")}
    terms = read["terms"].groupby(KEYS).agg(max_R_over_W=("R_over_W", "max"), max_term_over_W=("term_over_W", "max"),
                                             mean_btd_error=("rel_error", "mean"))
    grads = read["iterations"].groupby(KEYS).grad_norm.agg(median_grad_norm="median", max_grad_norm="max")
    epochs = read["epochs"]
    loss = epochs.pivot_table(index=KEYS, columns="epoch", values="train_loss")
    loss.columns = [f"train_loss_ep{c}" for c in loss.columns]
    uni = read["uniform"].groupby(KEYS).delta.agg(worst_uniform_delta="min", mean_uniform_delta="mean",
                                                  uniform_lowered=lambda d: int((d < 0).sum()))
    table = terms.join(grads).join(loss).join(uni).reset_index().sort_values(KEYS).round(4)
    meta = utils.provenance("cpu", command=" ".join(sys.argv), inputs=[str(p) for p in prefixes],
                            notes=["4-layer network, cpu profile (base network of notebook 01); first epochs of the "
                                   "GroSS fine-tune schedule; uniform deltas are validation accuracy points"])
    utils.save_table(table, "probe_gross_spike", meta, directory=to)
    utils.save_table(epochs.sort_values(KEYS + ["epoch"]).round(4), "probe_gross_spike_epochs", meta, directory=to)
    return table


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="decompose, fine-tune and measure")
    run.add_argument("--ridge", type=float, nargs="+", default=[0.0, 1e-3])
    run.add_argument("--repeats", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--epochs", type=int, default=3, help="fine-tune epochs run (of the profile's schedule)")
    run.add_argument("--gross-epochs", type=int, default=None, help="schedule length (default: the profile's)")
    run.add_argument("--out", required=True, help="output prefix")
    summ = sub.add_parser("summarise", help="join the outputs of runs into the summary tables")
    summ.add_argument("prefixes", nargs="+", help="--out prefixes of earlier runs")
    summ.add_argument("--to", required=True, help="folder for probe_gross_spike.{csv,md,meta.json}")
    args = ap.parse_args(argv)
    if args.command == "summarise":
        summarise(args.prefixes, Path(args.to))
        return
    parts: dict[str, list] = {"terms": [], "iterations": [], "epochs": [], "uniform": []}
    for ridge in args.ridge:
        for repeat in args.repeats:
            for key, rows in probe(ridge, repeat, args.threads, args.epochs, args.gross_epochs).items():
                parts[key] += rows
            for key, rows in parts.items():  # write as we go: a long probe keeps what it measured
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_csv(f"{args.out}_{key}.csv", index=False)


if __name__ == "__main__":
    main()
