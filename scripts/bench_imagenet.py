"""Benchmark for Table 4's cost (README, "Table 4 on ImageNet"): decoding, GroSS training, prefix tree.

Run from the repository root (CPU; prints one JSON object)::

    OMP_NUM_THREADS=1 python scripts/bench_imagenet.py --input 224 --batch 4 --steps 3

Measures, in one run so that the numbers are comparable as ratios:

* ``decode_img_s_per_worker``: paper preprocessing (JPEG decode, shorter side 256, random 224
  crop, flip) of generated 500 x 375 JPEGs (ImageNet's typical size) in one process;
* ``train_img_s[model][world]``: GroSS fine-tuning steps (forward + backward of the full-size
  decomposed network, random configuration per step, SGD) with 1 and with 2 gloo processes
  (global batch ``--batch``), images per second of the whole group;
* ``forward_img_s[model]``: evaluation forward passes at one configuration;
* ``tree_ratio[model]``: time of evaluating a breadth-first-search step (all neighbours of a
  configuration) one by one divided by the prefix-tree time (``gross.search.evaluation.count_correct``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gross.training import distributed as D  # noqa: E402
from gross.data import imagenet as inet  # noqa: E402
from gross.method.decomposition import search_space  # noqa: E402
from gross.search.evaluation import count_correct  # noqa: E402
from gross.training.loop import draw_config  # noqa: E402


def model_for(name, args):
    torch.manual_seed(0)
    m = inet.build(name, num_classes=1000)
    return inet.decompose_imagenet(m, (1, 4, 16, 32), tol=1e-2, max_iter=1)


def train_steps(model, args, ctx):
    pairs = [(layer, tuple(layer.group_sizes)) for layer in D.gross_layers(model).values()]
    params = D._trainable(model, "gross")
    net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if ctx.distributed else model
    D._train_mode(net)
    opt = torch.optim.SGD(params, lr=1e-5, momentum=0.9)
    b = D.check_batch(args.batch, ctx.world)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, 3, args.input, args.input)
    y = torch.randint(0, 1000, (b,))
    times = []
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        draw_config(pairs, gen)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return args.batch / (sum(times[1:]) / args.steps)


def worker(args):
    ctx = D.init("cpu")
    out = {name: train_steps(model_for(name, args), args, ctx) for name in args.models}
    if ctx.rank == 0:
        print("RESULT " + json.dumps(out))


def decode(args, tmp):
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    (tmp / "train" / "a").mkdir(parents=True)
    for i in range(24):
        arr = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp / "train" / "a" / f"{i}.JPEG", quality=90)
    split = inet.ImageFolderSplit([(str(p), 0) for p in sorted((tmp / "train" / "a").glob("*"))], 256, 224, True)
    t0 = time.perf_counter()
    for i in range(len(split)):
        split[(i, i)]
    return len(split) / (time.perf_counter() - t0)


def tree_ratio(model, args):
    space = list(search_space(model).values())
    base = tuple(4 if 4 in s else s[0] for s in space)
    configs = [base[:j] + (s,) + base[j + 1:] for j, sizes in enumerate(space) for s in sizes if s != base[j]]
    x = torch.randn(args.batch, 3, args.input, args.input)
    y = torch.randint(0, 1000, (args.batch,))
    model.eval()
    t = {}
    for tree in (False, True):
        t0 = time.perf_counter()
        count_correct(model, configs, lambda: iter([(x, y)]), tree=tree)
        t[tree] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return t[False] / t[True], args.batch / (time.perf_counter() - t0), len(configs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--models", nargs="+", default=["resnet18", "vgg16"])
    p.add_argument("--worker", action="store_true")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    torch.set_num_threads(1)
    res = {"input": args.input, "batch": args.batch, "steps": args.steps, "threads_per_process": 1}
    with tempfile.TemporaryDirectory() as tmp:
        res["decode_img_s_per_worker"] = decode(args, Path(tmp))
    res["train_img_s"] = {m: {} for m in args.models}
    for world in (1, 2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world),
               str(Path(__file__).resolve()), "--worker", "--input", str(args.input), "--batch", str(args.batch),
               "--steps", str(args.steps), "--models", *args.models]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        got = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
        for m, v in got.items():
            res["train_img_s"][m][world] = v
    res["tree_ratio"], res["forward_img_s"], res["bfs_step_configs"] = {}, {}, {}
    for m in args.models:
        r, f, n = tree_ratio(model_for(m, args), args)
        res["tree_ratio"][m], res["forward_img_s"][m], res["bfs_step_configs"][m] = r, f, n
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
