"""Run the 4-layer part of a profile (default ``paper``) step by step, e.g. on a GPU.

The notebooks run both CIFAR networks; this script runs only the 4-layer network's
steps, in notebook order, with the same library calls (:mod:`gross.experiments`), so
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

from gross import config, experiments as E, paths, utils

STEPS = {
    "base": lambda cfg: E.base_models(cfg, models=("four_layer",)),
    "btd": lambda cfg: E.btd_error_table(cfg, models=("four_layer",)),
    "gross": lambda cfg: E.finetune_gross_models(cfg, models=("four_layer",)),
    "uniform": lambda cfg: E.uniform_before_after(cfg, models=("four_layer",)),
    "individual": lambda cfg: E.individual_finetunes(cfg, models=("four_layer",)),
    "search": E.exhaustive_search,
    "ap": E.ap_comparison,
    "timing": E.inference_timing,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper", help="profile in configs/ (default: paper)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. four_layer__true_repeats=1 (TOML value syntax)")
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s) {unknown}: choose from {list(STEPS)}")
    cfg = config.load(args.profile, **config.parse_overrides(args.set))
    device = E.setup(cfg)
    log = paths.results_dir(cfg["profile"]) / "steps.jsonl"
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
