"""How much the ``cpu`` profile's 4-layer headline numbers move between seeds and thread settings (issue #28, item 2).

``run`` executes the 4-layer part of notebooks 01-03 (base training, BTD, GroSS fine-tuning,
uniform configurations before / after, the uniform individual fine-tunes, Table 2's exhaustive
search and its individual fine-tunes) with the library verbs the notebooks call, for one master
seed and one thread setting, in its own ``runs/`` and output folders (``<root>/runs``,
``<root>/outputs``: the committed ``results/`` are never touched). Thread settings:

* ``1``: the profile as committed: jobs (training, fine-tunes) in worker processes of 1 thread;
* ``2``: every job in one worker of 2 threads, the notebook process on 2 threads (another
  summation order in every convolution: the nearest thing to another machine here).

``summarise`` reads such roots and writes ``seed_spread`` (one row per run and headline number),
``seed_spread_summary`` (per headline number: mean, std, min, max over runs) and
``seed_spread_configs`` (the configurations each run found), CSV + Markdown + ``.meta.json``::

    GROSS_DATA=/path/cifar10-jpeg.tar.gz python scripts/seed_spread.py run --seed 1 --threads 2 --root /tmp/spread/s1t2
    python scripts/seed_spread.py summarise /tmp/spread/s* --to results/

``summarise --keep results/`` also keeps the runs already summarised there (their rows in
``seed_spread.csv`` / ``seed_spread_configs.csv`` and their settings in the ``.meta.json``),
so runs made at different times need not keep their folders; a run given again (same seed and
threads) replaces the kept one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

#: Thread settings: overrides of the cpu profile.
THREADS = {1: {}, 2: {"num_threads": 2, "executor__workers": 1, "executor__threads": 2}}
MODEL = "four_layer"


def run(seed: int, threads: int, root: Path) -> dict:
    """The 4-layer part of notebooks 01-03 for one seed and thread setting; returns the headline numbers."""
    os.environ["GROSS_RUNS"] = str(root / "runs")
    os.environ["GROSS_OUTPUTS"] = str(root / "outputs")
    from gross.pipeline import base, common, decomposition, finetune, table2
    from gross.runs import config

    cfg = config.load("cpu", seed=seed, **THREADS[threads])
    common.setup(cfg)
    t0 = time.perf_counter()
    base_table = base.base_models(cfg, models=[MODEL]).tables["base_models"]
    decompositions = decomposition.decompose_models(cfg, models=[MODEL])
    errors = decomposition.btd_errors(decompositions)
    finetune.finetune_gross_models(cfg, models=[MODEL])
    uniform = finetune.uniform_accuracies(cfg, models=[MODEL])
    individual = finetune.uniform_finetunes(cfg, models=[MODEL])
    search = table2.exhaustive_search(cfg)
    out = root / "spread"
    out.mkdir(parents=True, exist_ok=True)
    base_table.to_csv(out / "base.csv", index=False)
    errors.to_csv(out / "btd_errors.csv", index=False)
    uniform.to_csv(out / "uniform.csv", index=False)
    individual.to_csv(out / "individual.csv", index=False)
    search.tables["table2_tidy"].to_csv(out / "table2_tidy.csv", index=False)
    info = {"seed": seed, "threads": threads, "wall_s": time.perf_counter() - t0,
            "overrides": THREADS[threads], "commit": _commit()}
    (out / "run.json").write_text(json.dumps(info, indent=1))
    return info


def _commit() -> str:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def headline(root: Path) -> tuple[list[dict], list[dict]]:
    """One run's headline numbers (long rows) and its found configurations."""
    d = root / "spread"
    info = json.loads((d / "run.json").read_text())
    key = {"seed": info["seed"], "threads": info["threads"]}
    rows: list[dict] = []

    def add(name, value):
        rows.append({**key, "quantity": name, "value": float(value)})

    base = pd.read_csv(d / "base.csv").set_index("model").loc[MODEL]
    add("base val acc", base["val_acc"])
    add("base test acc", base["test_acc"])
    add("BTD mean relative error", pd.read_csv(d / "btd_errors.csv")["error"].mean())
    uni = pd.read_csv(d / "uniform.csv")
    change = uni["after"] - uni["before"]
    add("GroSS before (mean of uniform configs)", uni["before"].mean())
    add("GroSS after (mean of uniform configs)", uni["after"].mean())
    add("GroSS change, mean of uniform configs", change.mean())
    add("GroSS change, worst uniform config", change.min())
    add("uniform configs lowered by GroSS (count)", int((change < 0).sum()))
    ind = pd.read_csv(d / "individual.csv")
    ind_change = ind["val_acc"] - ind["no_finetune_val_acc"]
    add("individual fine-tune change, worst (val)", ind_change.min())
    add("individual fine-tunes ending below start (count)", int((ind_change < 0).sum()))
    tidy = pd.read_csv(d / "table2_tidy.csv")
    mean = tidy.groupby(["group", "role", "config"], sort=False)[["true_acc", "macs"]].mean().reset_index()
    configs = []
    for group, g in mean.groupby("group", sort=False):
        roles = dict(zip(g["role"], g.itertuples()))
        if "baseline" not in roles:
            continue
        bl = roles["baseline"]
        for role in ("found", "vbmf"):
            if role in roles:
                r = roles[role]
                label = f"{'VBMF' if role == 'vbmf' else 'found'} vs {bl.config}"
                configs.append({**key, "baseline": bl.config, "role": role, "config": r.config,
                                "delta_acc": r.true_acc - bl.true_acc, "delta_macs": r.macs - bl.macs})
                add(f"ΔAcc {label}", r.true_acc - bl.true_acc)
    return rows, configs


def kept_runs(folder: Path) -> tuple[list[dict], list[dict], dict]:
    """The runs summarised earlier in ``folder``: long rows, found configurations, settings per run."""
    long, found = folder / "seed_spread.csv", folder / "seed_spread_configs.csv"
    meta = folder / "seed_spread.meta.json"
    missing = [p.name for p in (long, found, meta) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"--keep {folder}: no earlier summary there (missing {', '.join(missing)}); "
                                "give the folder that holds seed_spread.csv, seed_spread_configs.csv and "
                                "seed_spread.meta.json")
    settings = json.loads(meta.read_text()).get("settings") or {}
    return (pd.read_csv(long).to_dict("records"), pd.read_csv(found).to_dict("records"), dict(settings))


def summarise(roots: list[Path], to: Path, keep: Path | None = None) -> None:
    """Join runs into the ``seed_spread*`` tables under ``to`` (plus the runs kept in ``keep``)."""
    from gross import utils

    rows, configs, infos = [], [], []
    inputs = [str(r) for r in roots]
    kept_settings: dict = {}
    if keep is not None:
        rows, configs, kept_settings = kept_runs(keep)
        inputs = [f"{keep / 'seed_spread.csv'} (kept runs {', '.join(kept_settings) or 'none'})"] + inputs
    for root in roots:
        if not (root / "spread" / "run.json").exists():
            print(f"skipping {root}: no finished run", file=sys.stderr)
            continue
        r, c = headline(root)
        info = json.loads((root / "spread" / "run.json").read_text())
        same = (info["seed"], info["threads"])  # a run given again replaces the kept one
        rows = [x for x in rows if (x["seed"], x["threads"]) != same] + r
        configs = [x for x in configs if (x["seed"], x["threads"]) != same] + c
        kept_settings.pop(f"s{info['seed']}t{info['threads']}", None)
        infos.append(info)
    long = pd.DataFrame(rows)
    summary = (long.groupby("quantity", sort=False)["value"]
               .agg(runs="count", mean="mean", std="std", min="min", max="max").reset_index())
    summary["range"] = summary["max"] - summary["min"]
    found = pd.DataFrame(configs)
    meta = utils.provenance("cpu", command=" ".join(sys.argv), inputs=inputs,
                            settings={**kept_settings, **{f"s{r['seed']}t{r['threads']}": r for r in infos}},
                            notes=["4-layer part of notebooks 01-03 of the cpu profile per seed and thread setting "
                                   "(scripts/seed_spread.py); threads 1: jobs in workers of 1 thread (the profile), "
                                   "threads 2: one worker of 2 threads"])
    utils.save_table(long.round(4), "seed_spread", meta, directory=to)
    utils.save_table(summary.round(4), "seed_spread_summary", meta, directory=to)
    utils.save_table(found.round(4), "seed_spread_configs", meta, directory=to)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--threads", type=int, choices=sorted(THREADS), required=True)
    r.add_argument("--root", type=Path, required=True)
    s = sub.add_parser("summarise")
    s.add_argument("roots", type=Path, nargs="+")
    s.add_argument("--to", type=Path, required=True)
    s.add_argument("--keep", type=Path, default=None,
                   help="folder with an earlier seed_spread summary whose runs are kept (e.g. results/)")
    a = p.parse_args(argv)
    if a.cmd == "run":
        print(json.dumps(run(a.seed, a.threads, a.root)))
    else:
        summarise(a.roots, a.to, a.keep)


if __name__ == "__main__":
    main()
