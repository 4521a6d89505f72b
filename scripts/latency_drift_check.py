"""Drift check of the latency predictor: every table network and the validation networks timed in ONE
round-robin (``gross.search.measure.measure_rounds``), so no drift between measurement passes enters.

Notebook 06 times a table and its validation in separate passes; this script shows how much of the
predictor's error is that drift rather than the additive model. Usage (1 thread, process clock, min)::

    OMP_NUM_THREADS=1 python scripts/latency_drift_check.py vgg 64     # CIFAR VGG-16 x0.5, batch 64
    OMP_NUM_THREADS=1 python scripts/latency_drift_check.py four 1     # 4-layer net, batch 1
    OMP_NUM_THREADS=1 python scripts/latency_drift_check.py vgg 64 --isolated-only

Prints one JSON line: per predictor variant the median relative error and Spearman against each of two
independent measurements of 30 random configurations (and against their mean), plus the noise ceiling
(``spearman_repeat``, ``repeat_rel_diff``) and the latency spread (p90 - p10 over the median).
"""
import sys, time, json
import numpy as np, torch
torch.set_num_threads(1)
from gross.search import latency as L
from gross.search.latency import _calibration, _fit_fixed, context_shapes
from gross.method.decomposition import random_gross
from gross.method.decomposition import export, gross_layers, search_space
from gross.models import four_layer_net, vgg16_cifar
from gross.method.space import random_configs

which, b = sys.argv[1], int(sys.argv[2]); R = 5
torch.manual_seed(0)
model = (random_gross(four_layer_net(), seed=0) if which == "four" else
         random_gross(vgg16_cifar(width_mult=0.5), (1, 4, 16, 32), seed=0)).eval()
space = search_space(model); sizes = [tuple(v) for v in space.values()]
g = torch.Generator().manual_seed(0)
x = torch.randn(b, 3, 32, 32, generator=g)
shapes = context_shapes(model)
jobs, keys = [], []
def add(key, module, inp): keys.append(key); jobs.append((module.eval(), inp))
for i, (name, layer) in enumerate(gross_layers(model).items()):
    xi = torch.randn(b, *shapes[name], generator=g)
    for s in sizes[i]: add(("iso", i, s), layer.to_bottleneck(s), xi)
cal = _calibration(space)
for c in cal: add(("net", c), export(model, c), x)
refs = ({} if "--isolated-only" in sys.argv else
        {"mid": tuple(s[len(s) // 2] for s in sizes), "min": tuple(s[0] for s in sizes)})
for r in refs.values():
    for i, allowed in enumerate(sizes):
        for s in allowed:
            c = r[:i] + (s,) + r[i + 1:]
            if ("net", c) not in keys: add(("net", c), export(model, c), x)
configs = random_configs(space, 30, 0)
for rep in (0, 1):
    for c in configs: add(("val", rep, c), export(model, c), x)
timer = lambda m, inp: L.measure_forward(m, inp, 2, 2, 0.01, "min", "process")
t0 = time.time()
T = dict(zip(keys, L.measure_rounds(jobs, timer, R, "min")))
out = {"model": which, "batch": b, "jobs": len(jobs), "took_s": round(time.time() - t0, 1)}
m1 = np.array([T[("val", 0, c)] for c in configs]); m2 = np.array([T[("val", 1, c)] for c in configs])
out["spearman_repeat"] = round(L.spearman(m1, m2), 3); out["repeat_rel_diff"] = round(float(np.median(np.abs(m2 - m1) / m1)), 4)
out["spread"] = round(float((np.percentile(m1, 90) - np.percentile(m1, 10)) / np.median(m1)), 4)
iso = [{s: T[("iso", i, s)] for s in sizes[i]} for i in range(len(sizes))]
tabs = {}
for fit in ("offset", "affine"):
    e, f, _, _ = _fit_fixed(iso, cal, [T[("net", c)] for c in cal], fit)
    tabs[f"isolated {fit}"] = lambda c, e=e, f=f: f + sum(ei[s] for ei, s in zip(e, c))
for name, r in refs.items():
    base = T[("net", r)]
    ent = [{s: T[("net", r[:i] + (s,) + r[i + 1:])] - base for s in allowed} for i, allowed in enumerate(sizes)]
    tabs[f"in_context {name}"] = lambda c, ent=ent, base=base: base + sum(ei[s] for ei, s in zip(ent, c))
for k, f in tabs.items():
    p = np.array([f(c) for c in configs])
    out[k] = {"err": [round(float(np.median(np.abs(p - m) / m)), 4) for m in (m1, m2)],
              "bias": round(float(np.median((p - m1) / m1)), 4),
              "rho": [round(L.spearman(p, m), 3) for m in (m1, m2)], "rho_mean2": round(L.spearman(p, (m1 + m2) / 2), 3)}
print(json.dumps(out))
