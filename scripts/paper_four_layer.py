"""Run the 4-layer part of a profile (default ``paper``) step by step, e.g. on a GPU.

The notebooks run both CIFAR networks; this script runs only the 4-layer network's
steps, in notebook order, with the same library calls (:mod:`gross.pipeline`), so
the paper's 4-layer schedules can be run where a GPU is available for a limited time.
Every step resumes from ``runs/<profile>/`` (training checkpoints every epoch), so the
script can be re-run after an interruption. Each step's wall time is printed and
appended to ``<outputs>/results/steps.jsonl``.

Examples
--------
::

    GROSS_OUTPUTS=runs/paper_gpu python scripts/paper_four_layer.py --set four_layer__true_repeats=1
    python scripts/paper_four_layer.py --steps base,btd,gross --profile cpu
"""

from __future__ import annotations

import argparse
import json
import time

from gross import utils
from gross.runs import config
from gross.utils import paths
from gross.pipeline import base, common, decomposition, finetune, table2, table5, timing
from gross.runs import store

STEPS = {
    "base": lambda cfg: base.base_models(cfg, models=("four_layer",)),
    "btd": lambda cfg: decomposition.btd_error_table(cfg, models=("four_layer",)),
    "gross": lambda cfg: finetune.finetune_gross_models(cfg, models=("four_layer",)),
    "uniform": lambda cfg: finetune.uniform_before_after(cfg, models=("four_layer",)),
    "individual": lambda cfg: finetune.individual_finetunes(cfg, models=("four_layer",)),
    "search": table2.exhaustive_search,
    "ap": table5.ap_comparison,
    "timing": timing.inference_timing,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper", help="profile in configs/ (default: paper)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. four_layer__true_repeats=1 (TOML value syntax)")
    parser.add_argument("--wait", action="store_true", help="wait for another run on the same runs/ folder")
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s) {unknown}: choose from {list(STEPS)}")
    cfg = config.load(args.profile, **config.parse_overrides(args.set))
    device = common.setup(cfg)
    log = paths.results_dir(cfg["profile"]) / "steps.jsonl"
    with store.lock(cfg["profile"], wait=args.wait):
        _run(cfg, steps, args, device, log)


def _run(cfg, steps, args, device, log) -> None:
    for step in steps:
        t0 = time.perf_counter()
        STEPS[step](cfg)
        record = {"step": step, "wall_time_s": round(time.perf_counter() - t0, 1), "device": str(device),
                  "profile": cfg["profile"], "overrides": args.set, "git": utils.provenance()["git"]}
        print(json.dumps(record), flush=True)
        with open(log, "a") as fh:
            fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
