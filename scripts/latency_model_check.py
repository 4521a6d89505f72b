"""Why the additive latency table misses: isolated entries vs in-network (regression) vs neighbour pairs (context).

Everything one (model, batch) needs is timed in ONE round-robin (``gross.search.measure.measure_rounds``):
every layer's bottleneck alone at every size and the table's calibration networks (the ``additive``
predictor), ``n_fit`` random fit configurations (the ``regression`` and ``context`` predictors,
:mod:`gross.search.predictors`), and 30 disjoint validation configurations three times (twice in draw
order: the repeat ceiling; once in reversed order: a measurement-order check). So drift between passes
cannot enter, and the three predictors' held-out errors separate the causes:

* additive >> regression ~ context: isolated entries do not transfer into the network (cache, input layout);
* regression >> context: neighbouring layers' sizes interact;
* all three ~ the repeat difference: the timings' own noise.

Usage (1 thread, process CPU clock, min over rounds; reduced sizes)::

    OMP_NUM_THREADS=1 nice -n 19 python scripts/latency_model_check.py four 1 [--out DIR]
    OMP_NUM_THREADS=1 nice -n 19 python scripts/latency_model_check.py vgg 1 --width 0.5

Prints one JSON line per predictor; with ``--out DIR`` appends the rows to ``DIR/latency_model_check.csv``.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gross.method.decomposition import export, gross_layers, random_gross, search_space
from gross.models import four_layer_net, vgg16_cifar
from gross.search import latency as L
from gross.search import predictors as P
from gross.search.latency import _calibration, _fit_fixed, context_shapes

ap = argparse.ArgumentParser()
ap.add_argument("model", choices=["four", "vgg"])
ap.add_argument("batch", type=int)
ap.add_argument("--width", type=float, default=0.5)
ap.add_argument("--n-fit", type=int, default=0, help="0: 1.5 x the context predictor's coefficients")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--out", default=None)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
model = (random_gross(four_layer_net(), seed=0) if a.model == "four" else
         random_gross(vgg16_cifar(width_mult=a.width), (1, 4, 16, 32), seed=0)).eval()
space = search_space(model)
sizes = [tuple(v) for v in space.values()]
n_fit = a.n_fit or int(1.5 * P.n_features(space, "context"))
val, fit = P.split_configs(space, 30, n_fit, seed=0)
g = torch.Generator().manual_seed(0)
x = torch.randn(a.batch, 3, 32, 32, generator=g)
shapes = context_shapes(model)
keys, jobs = [], []


def add(key, module, inp):
    keys.append(key)
    jobs.append((module.eval(), inp))


for i, (name, layer) in enumerate(gross_layers(model).items()):
    xi = torch.randn(a.batch, *shapes[name], generator=g)
    for s in sizes[i]:
        add(("iso", i, s), layer.to_bottleneck(s), xi)
cal = _calibration(space)
for c in cal:
    add(("cal", c), export(model, c), x)
for c in fit:
    add(("fit", c), export(model, c), x)
for rep, order in ((0, val), (1, val), (2, val[::-1])):
    for c in order:
        add(("val", rep, c), export(model, c), x)
timer = lambda m, inp: L.measure_forward(m, inp, 1, 2, 0.005, "min", "process")
t0 = time.time()
T = dict(zip(keys, L.measure_rounds(jobs, timer, a.rounds, "min")))
took = time.time() - t0
m = [np.array([T[("val", r, c)] for c in val]) for r in range(3)]
iso = [{s: T[("iso", i, s)] for s in sizes[i]} for i in range(len(sizes))]
entries, fixed, _, _ = _fit_fixed(iso, cal, [T[("cal", c)] for c in cal], "offset")
pred = {"additive": np.array([fixed + sum(e[s] for e, s in zip(entries, c)) for c in val])}
for name in ("regression", "context"):
    pred[name] = P.fit_predictor(name, fit, [T[("fit", c)] for c in fit], space).predict_many(val)
common = {"model": "four_layer" if a.model == "four" else f"vgg16 x{a.width:g}", "batch_size": a.batch,
          "n_validation": len(val), "n_fit": n_fit, "rounds": a.rounds, "jobs": len(jobs), "took_s": round(took, 1),
          "load_1min": round(os.getloadavg()[0], 2),
          "spearman_repeat": L.spearman(m[0], m[1]), "repeat_rel_diff": float(np.median(np.abs(m[1] - m[0]) / m[0])),
          "reversed_order_rel_diff": float(np.median(np.abs(m[2] - m[0]) / m[0])),
          "spread": float((np.percentile(m[0], 90) - np.percentile(m[0], 10)) / np.median(m[0]))}
rows = []
for name, p in pred.items():
    row = {**common, "predictor": name, "median_abs_rel_error": float(np.median(np.abs(p - m[0]) / m[0])),
           "median_signed_rel_error": float(np.median((p - m[0]) / m[0])), "spearman": L.spearman(p, m[0])}
    row["holds"] = P.holds(row)
    rows.append(row)
    print(json.dumps(row), flush=True)
if a.out:
    path = Path(a.out) / "latency_model_check.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, mode="a", header=not path.exists(), index=False)
