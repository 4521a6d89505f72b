"""The GPU device check of ``scripts/device_gpu.sh``, in two short calls; every row written as soon as it is measured.

``python -m gross.bench.device STAGE [options]`` runs one stage and appends its rows to
``<out>/device_rows.csv`` (and prints each one) the moment each is measured, so a call
stopped at its time limit keeps every row it finished.

Stages (``scripts/device_gpu.sh 1`` runs the first three, ``... 2`` the last two):

``preflight``
    CUDA, the GPU's compute mode (``nvidia-smi``; "Default" lets the pipeline's workers share
    it), free space of ``/dev/shm`` (worker processes exchange tensors there), the tensorly
    import (the one package the device image lacks, installed from the carried wheel) and the
    SHA-256 of the carried CIFAR-10 archive against ``data/device-prep.txt``.
``ksweep``
    Aggregate training throughput of the 4-layer network, K networks at once
    (:func:`gross.training.batched.train_stacked`) for each K of ``--networks`` (1 = one
    network, :func:`gross.training.loop.train_base`); ``ratio`` = aggregate / one network's.
``individual``
    ``--individual`` (45) individual fine-tunes of different configurations of one GroSS
    4-layer network trained at once (:func:`gross.training.batched.finetune_configs`), per-epoch
    seconds and the extrapolation to the paper's 100 epochs.
``paper``
    A few epochs (``--epochs``) of each stage of the ``paper`` profile: base training, GroSS
    fine-tune, individual fine-tunes K at once, for the 4-layer network (and VGG-16 with
    ``--models four_layer,vgg16``): per-epoch seconds and images/s.
``estimate``
    The full ``paper`` profile extrapolated from the ``paper`` rows (:func:`paper_estimate`):
    ``<out>/paper_gpu_estimate.{csv,md,meta.json}``.

Timing runs on synthetic CIFAR-shaped data (:func:`gross.data.synthetic`, ``--images``
training images): the time of an epoch does not depend on the pixels. Only torch, numpy
and pandas are imported at module level (the device image has them); everything else is
imported inside the stage that needs it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

__all__ = ["ROW_COLUMNS", "RowWriter", "preflight", "k_sweep", "individual_finetunes", "paper_stages",
           "paper_workload", "paper_estimate", "main"]

#: Columns of ``device_rows.csv``.
ROW_COLUMNS = ["stage", "case", "networks", "images", "epochs", "seconds", "images_per_s", "ratio", "target", "met",
               "device", "note"]


class RowWriter:
    """Appends rows to a CSV file (header first) and prints each, flushed at once."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, stage: str, case: str, **values) -> dict:
        unknown = sorted(set(values) - set(ROW_COLUMNS))
        if unknown:
            raise ValueError(f"unknown row columns {unknown}; valid columns are {ROW_COLUMNS}")
        row = {c: values.get(c, "") for c in ROW_COLUMNS}
        row.update(stage=stage, case=case)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=ROW_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())
        shown = ", ".join(f"{k}={v}" for k, v in row.items() if v not in ("", None) and k not in ("stage", "case"))
        print(f"[row] {stage} | {case} | {shown}", flush=True)
        return row


# ----------------------------------------------------------------------------- preflight
def _compute_mode() -> str:
    if shutil.which("nvidia-smi") is None:
        return "unknown (no nvidia-smi)"
    done = subprocess.run(["nvidia-smi", "--query-gpu=compute_mode", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30)
    return done.stdout.strip() or f"unknown ({done.stderr.strip()[:80]})"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def preflight(writer: RowWriter, device: str, data: Path, prep: Path, require_cuda: bool = True) -> bool:
    """Rows ``preflight``: CUDA, compute mode, /dev/shm, tensorly, data checksum; True when all pass."""
    ok = True
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "none"
    met = cuda or not require_cuda
    writer.write("preflight", "cuda", met=met, device=device,
                 note=f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    ok &= met
    mode = _compute_mode()
    met = (not cuda) or mode.split("\n")[0].strip() == "Default"
    writer.write("preflight", "compute mode", met=met, target="Default (several processes may share the GPU)",
                 note=mode.replace("\n", " / "))
    ok &= met
    shm = Path("/dev/shm")
    free = shutil.disk_usage(shm).free if shm.exists() else 0
    met = free >= 1 << 30
    writer.write("preflight", "/dev/shm free", met=met, target=">= 1 GiB (worker processes share tensors there)",
                 note=f"{free / 2**30:.1f} GiB")
    ok &= met
    try:
        import tensorly

        writer.write("preflight", "tensorly import", met=True, note=f"tensorly {tensorly.__version__}")
    except ImportError as exc:
        writer.write("preflight", "tensorly import", met=False, note=f"{exc}: carry .whl (make device-prep)")
        ok = False
    ok &= _data_row(writer, data, prep)
    return bool(ok)


def _data_row(writer: RowWriter, data: Path, prep: Path) -> bool:
    if not data.exists():
        writer.write("preflight", "data checksum", met=False, note=f"no {data}: run make device-prep, carry data")
        return False
    expected = ""
    if prep.exists():
        for line in prep.read_text().splitlines():
            if line.startswith("sha256="):
                expected = line.split("=", 1)[1].strip().split()[0]
    got = _sha256(data)
    met = bool(expected) and got == expected
    writer.write("preflight", "data checksum", met=met,
                 note=f"{data.name} sha256 {got[:16]}..., {prep.name}: {expected[:16] or 'no sha256= line'}...")
    return met


# ----------------------------------------------------------------------------- timing helpers
def _synthetic(images: int, device, seed: int = 0):
    from gross.data import synthetic

    return synthetic(n_train=images, n_val=min(1000, max(images // 4, 16)), n_test=16, seed=seed).to(device)


def _epoch_rates(history: pd.DataFrame) -> tuple[float, float]:
    """(seconds per epoch, training images/s) of the epochs after the first (warm-up), or of the only one."""
    h = history if len(history) < 2 else history.iloc[1:]
    return float(h["seconds"].mean()), float(h["images_per_s"].mean())


def _gross_net(name: str, seed: int, width_mult: float = 1.0):
    from gross.method.decomposition import decompose
    from gross.models import four_layer_net, vgg16_cifar

    torch.manual_seed(seed)
    net = four_layer_net() if name == "four_layer" else vgg16_cifar(width_mult=width_mult)
    sizes = None if name == "four_layer" else (1, 4, 16, 32)
    kwargs = {} if sizes is None else {"group_sizes": sizes}
    return decompose(net, max_iter=2, seed=seed, **kwargs)  # timing does not depend on the BTD's quality


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


# ----------------------------------------------------------------------------- call 1
def k_sweep(writer: RowWriter, device, networks=(1, 8, 32, 64), images: int = 40_000, epochs: int = 2,
            deadline: float = math.inf) -> None:
    """Rows ``ksweep``: aggregate 4-layer training throughput of K networks at once, for each K."""
    from gross.models import four_layer_net
    from gross.training.batched import train_stacked
    from gross.training.loop import RECIPES, train_base

    data = _synthetic(images, device)
    recipe = RECIPES["four_layer_base"].scaled(epochs).replace(checkpoint_every=0)
    one_rate, last = None, None
    for k in networks:
        if last is not None and _left(deadline) < last[1] * k / last[0] * 1.2:
            writer.write("ksweep", f"four_layer base training, {k} at once", networks=k, images=images,
                         epochs=epochs, note=f"skipped: {_left(deadline):.0f} s left, K={last[0]} took {last[1]:.0f} s")
            continue
        t0 = time.monotonic()
        nets = []
        for i in range(k):
            torch.manual_seed(i)
            nets.append(four_layer_net())
        if k == 1:
            hist = train_base(nets[0], data, recipe, device=device, progress=False, channels_last=False)
            seconds, rate = _epoch_rates(hist)
        else:
            hists = train_stacked(nets, data, [recipe.replace(seed=i) for i in range(k)], device=device)
            seconds, rate = _epoch_rates(hists[0])
        aggregate = k * rate
        one_rate = one_rate or (aggregate if k == 1 else None)
        ratio = aggregate / one_rate if one_rate else math.nan
        writer.write("ksweep", f"four_layer base training, {k} at once", networks=k, images=images, epochs=epochs,
                     seconds=round(seconds, 3), images_per_s=round(aggregate), ratio=round(ratio, 2),
                     target=">= 20x one network's throughput" if k > 1 else "",
                     met=(ratio >= 20) if k > 1 and one_rate else "", device=str(device),
                     note="aggregate training images/s (validation excluded), epochs after the first; "
                          f"seconds = one epoch incl. validation; {'vmap' if k > 1 else 'gross.training.loop'}")
        last = (k, time.monotonic() - t0)
        del nets
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def individual_finetunes(writer: RowWriter, device, n: int = 45, images: int = 40_000, epochs: int = 2,
                         paper_epochs: int = 100, seed: int = 0) -> None:
    """Row ``individual``: ``n`` different configurations fine-tuned at once; seconds for ``paper_epochs`` epochs."""
    from gross.method.decomposition import search_space
    from gross.method.space import random_configs
    from gross.training.batched import finetune_configs
    from gross.training.loop import RECIPES

    data = _synthetic(images, device, seed)
    gross = _gross_net("four_layer", seed)
    configs = random_configs(search_space(gross), n, seed=seed)
    recipe = RECIPES["four_layer_config"].scaled(epochs).replace(checkpoint_every=0)
    _, hists = finetune_configs(gross, configs, data, [recipe.replace(seed=i) for i in range(n)], method="vmap",
                                device=device)
    seconds, rate = _epoch_rates(hists[0])
    total = seconds * paper_epochs
    writer.write("individual", f"{n} four_layer individual fine-tunes at once", networks=n, images=images,
                 epochs=epochs, seconds=round(total, 1), images_per_s=round(n * rate),
                 target=f"{n} x {paper_epochs} epochs <= 180 s", met=total <= 180, device=str(device),
                 note=f"seconds = {paper_epochs} x {seconds:.3f} s per epoch (incl. validation), measured over "
                      f"{epochs} epochs (after the first); different random configurations, packed")


# ----------------------------------------------------------------------------- call 2
def paper_stages(writer: RowWriter, device, models=("four_layer",), images: int = 40_000, epochs: int = 2,
                 networks: int = 64, vgg_width: float = 1.0, deadline: float = math.inf) -> None:
    """Rows ``paper``: per-epoch seconds and images/s of base training, GroSS fine-tune and K individual fine-tunes."""
    from gross.method.decomposition import search_space
    from gross.method.space import random_configs
    from gross.models import four_layer_net, vgg16_cifar
    from gross.training.batched import finetune_configs
    from gross.training.loop import RECIPES, finetune_gross, train_base

    data = _synthetic(images, device)
    for name in models:
        counts = {"four_layer": networks, "vgg16": min(networks, 10)}
        for stage in ("base", "gross", "config"):
            case = f"{name} {stage}"
            if _left(deadline) < 20:
                writer.write("paper", case, images=images, epochs=epochs, note=f"skipped: {_left(deadline):.0f} s left")
                continue
            recipe = RECIPES[f"{name}_{stage}"].scaled(epochs).replace(checkpoint_every=0)
            k = 1
            if stage == "base":
                torch.manual_seed(0)
                net = four_layer_net() if name == "four_layer" else vgg16_cifar(width_mult=vgg_width)
                hist = train_base(net, data, recipe, device=device, progress=False, channels_last=False)
            elif stage == "gross":
                hist = finetune_gross(_gross_net(name, 0, vgg_width), data, recipe, device=device, progress=False,
                                      channels_last=False)
            else:
                gross = _gross_net(name, 0, vgg_width)
                k = counts[name]
                configs = random_configs(search_space(gross), k, seed=0)
                _, hists = finetune_configs(gross, configs, data, [recipe.replace(seed=i) for i in range(k)],
                                            method="vmap", device=device)
                hist = hists[0]
            seconds, rate = _epoch_rates(hist)
            writer.write("paper", case, networks=k, images=images, epochs=epochs, seconds=round(seconds, 3),
                         images_per_s=round(k * rate), device=str(device),
                         note="seconds per epoch incl. validation (after the first); images/s aggregate over "
                              f"the {k} network(s), training only" + (f"; VGG-16 width {vgg_width}"
                                                                     if name == "vgg16" else ""))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def paper_workload(cfg=None) -> pd.DataFrame:
    """Trainings of the CIFAR-10 ``paper`` profile: ``model, stage, runs, epochs, basis``.

    Counted from the profile (``cfg``, default :func:`gross.runs.config.load` of ``paper``).
    Individual fine-tunes: the uniform baselines and the all-1s configuration
    (``true_repeats`` each), one found configuration per baseline search (``true_repeats``
    each; VGG-16: the breadth-first and the seeded search) and, for the 4-layer network,
    Table 5's ``ap.n_configs`` (the partial fine-tunes are read from their histories).
    Searches and evaluations are not counted (minutes on a GPU, see ``results/benchmarks*.csv``).
    """
    from gross.runs.config import load

    cfg = load("paper") if cfg is None else cfg
    four, vgg = cfg["four_layer"], cfg["vgg16"]
    n4 = (len(four["baselines"]) + 1 + len(four["baselines"])) * four["true_repeats"] + cfg["ap"]["n_configs"]
    nv = (len(vgg["baselines"]) + 1 + 2 * len(vgg["baselines"])) * vgg["true_repeats"]
    rows = [
        ("four_layer", "base", 1, four["base_epochs"], "one base network"),
        ("four_layer", "gross", four["repeats"], four["gross_epochs"], "four_layer.repeats GroSS fine-tunes"),
        ("four_layer", "config", n4, four["config_epochs"],
         "(baselines + 1s + one found per baseline) x true_repeats + ap.n_configs"),
        ("vgg16", "base", 1, vgg["base_epochs"], "one base network"),
        ("vgg16", "gross", 1, vgg["gross_epochs"], "one GroSS fine-tune"),
        ("vgg16", "config", nv, vgg["config_epochs"], "(baselines + 1s + 2 searches x baselines) x true_repeats"),
    ]
    return pd.DataFrame(rows, columns=["model", "stage", "runs", "epochs", "basis"])


def paper_estimate(rows: pd.DataFrame, workload: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``paper`` profile's training time extrapolated from measured per-epoch seconds (``paper`` rows).

    Per stage: ``runs`` trainings of ``epochs`` epochs; GroSS fine-tunes and base networks
    one after the other, individual fine-tunes in chunks of the measured K
    (``ceil(runs / K)`` K-runs, each taking the measured K-run's seconds per epoch).
    Stages without a measured row get no estimate (NaN) and say so.
    """
    workload = paper_workload() if workload is None else workload
    measured = rows[rows["stage"] == "paper"].copy()
    measured["seconds"] = pd.to_numeric(measured["seconds"], errors="coerce")
    measured["networks"] = pd.to_numeric(measured["networks"], errors="coerce")
    out = []
    for w in workload.itertuples(index=False):
        m = measured[(measured["case"] == f"{w.model} {w.stage}") & measured["seconds"].notna()]
        if m.empty:
            out.append({**w._asdict(), "networks_at_once": math.nan, "s_per_epoch": math.nan, "sequential_runs": math.nan,
                        "estimate_s": math.nan, "note": "not measured"})
            continue
        k = int(m["networks"].iloc[-1]) if w.stage == "config" else 1
        seq = math.ceil(w.runs / k)
        s = float(m["seconds"].iloc[-1])
        out.append({**w._asdict(), "networks_at_once": k, "s_per_epoch": s, "sequential_runs": seq,
                    "estimate_s": seq * w.epochs * s,
                    "note": f"{seq} run(s) x {w.epochs} epochs x {s:.3f} s/epoch"})
    table = pd.DataFrame(out)
    total = {"model": "all", "stage": "total", "runs": int(table["runs"].sum()), "epochs": math.nan,
             "basis": "sum of the measured stages", "networks_at_once": math.nan, "s_per_epoch": math.nan,
             "sequential_runs": math.nan, "estimate_s": float(table["estimate_s"].sum(min_count=1)),
             "note": "missing stages: " + (", ".join(f"{r.model} {r.stage}" for r in table.itertuples()
                                                    if math.isnan(r.estimate_s)) or "none")}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    table["estimate_min"] = table["estimate_s"] / 60
    return table


# ----------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gross.bench.device", description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=["preflight", "ksweep", "individual", "paper", "estimate"])
    p.add_argument("--out", type=Path, required=True, help="folder of device_rows.csv (and the estimate table)")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (DRY_RUN)")
    p.add_argument("--networks", default="1,8,32,64", help="K of the sweep (comma separated)")
    p.add_argument("--individual", type=int, default=45, help="individual fine-tunes at once (stage individual)")
    p.add_argument("--paper-networks", type=int, default=64, help="K of the paper stage's individual fine-tunes")
    p.add_argument("--images", type=int, default=40_000, help="training images per epoch")
    p.add_argument("--epochs", type=int, default=2, help="epochs per measurement (the first is warm-up)")
    p.add_argument("--models", default="four_layer", help="paper stage: four_layer[,vgg16]")
    p.add_argument("--vgg-width", type=float, default=1.0, help="paper stage: VGG-16 channel multiplier")
    p.add_argument("--budget-s", type=float, default=math.inf, help="stop starting new measurements after this")
    p.add_argument("--data", type=Path, default=None, help="carried CIFAR-10 archive (preflight)")
    p.add_argument("--allow-cpu", action="store_true", help="preflight: no CUDA is not a failure (DRY_RUN)")
    return p


def main(argv=None) -> int:
    """Run one stage (see the module docstring); exit status 0 when it passed."""
    args = _parser().parse_args(argv)
    from gross.utils import paths

    for key in ("images", "epochs", "individual", "paper_networks"):
        if getattr(args, key) < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    writer = RowWriter(args.out / "device_rows.csv")
    deadline = time.monotonic() + args.budget_s
    device = torch.device(args.device)
    if args.stage == "preflight":
        data = args.data or Path(os.environ.get("GROSS_DATA", paths.DATA / "cifar10-jpeg.tar.gz"))
        return 0 if preflight(writer, str(device), data, paths.DATA / "device-prep.txt",
                              require_cuda=not args.allow_cpu) else 1
    if args.stage == "ksweep":
        k_sweep(writer, device, [int(k) for k in args.networks.split(",")], args.images, args.epochs, deadline)
    elif args.stage == "individual":
        individual_finetunes(writer, device, args.individual, args.images, args.epochs)
    elif args.stage == "paper":
        paper_stages(writer, device, tuple(args.models.split(",")), args.images, args.epochs, args.paper_networks,
                     args.vgg_width, deadline)
    else:
        from gross import utils

        table = paper_estimate(pd.read_csv(writer.path))
        meta = utils.provenance(profile="paper", device=device,
                                command=" ".join(["python -m gross.bench.device", *(argv or sys.argv[1:])]),
                                rows=str(writer.path), basis="per-epoch seconds measured on synthetic CIFAR-shaped "
                                "data; workload of configs/paper.toml (gross.bench.device.paper_workload)")
        utils.save_table(table, "paper_gpu_estimate", json.loads(json.dumps(meta, default=str)), directory=args.out)
        print(table.to_string(index=False), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    sys.exit(main())
