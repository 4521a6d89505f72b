"""Notebook 05: Table 5 and Fig. 5, GroSS vs no / partial fine-tuning as search spaces (Sec. 5.2)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from gross.method.decomposition import search_space
from gross.method.space import config_str
from gross.pipeline.common import eval_kwargs, prepare_data
from gross.pipeline.decomposition import load_gross
from gross.pipeline.finetune import true_accuracies
from gross.pipeline.outputs import StepResult, step

__all__ = ["ap_configs", "ap_comparison"]


def ap_configs(cfg: Mapping, space: Mapping) -> list[tuple]:
    """The ``ap.n_configs`` random configurations of Sec. 5.2 (seed ``ap.seed``)."""
    from gross.method.space import SearchSpace

    return [tuple(c) for c in SearchSpace(space).random(cfg["ap"]["n_configs"], seed=cfg["ap"]["seed"])]


@step("05_ap_comparison", tables=("ap_configs", "table5_average_precision"), figures=("fig5_search_vs_true",))
def ap_comparison(cfg: Mapping) -> StepResult:
    """Table 5 and Fig. 5: GroSS vs no / partial fine-tuning as search spaces (Sec. 5.2).

    ``ap.n_configs`` random configurations of the 4-layer network (GroSS repeat
    ``ap.repeat``); validation accuracy of: the individual fine-tune (true), the
    exported network straight after decomposition (no fine-tuning), a partial
    individual fine-tune (``ap.partial_epochs`` epochs) and the GroSS model at the
    configuration. Top-``ap.k`` average precision after dropping the top ``ap.drops``.
    """
    from gross.report import plots
    from gross.search.ap import ap_table
    from gross.search.costs import model_mac_lookup
    from gross.search.evaluation import evaluate_configs

    name, r = "four_layer", int(cfg["ap"]["repeat"])
    data = prepare_data(cfg, name)
    init, tuned = load_gross(cfg, name, r, tuned=False), load_gross(cfg, name, r)
    configs = ap_configs(cfg, search_space(init))
    lookup = model_mac_lookup(init)
    none = evaluate_configs(init, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"]
    gross = evaluate_configs(tuned, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"]
    true_runs = true_accuracies(cfg, name, configs, [r], kind="config")  # independent jobs (gross.runs.jobs)
    partial_runs = true_accuracies(cfg, name, configs, [r], kind="partial")
    true = [true_runs[(tuple(c), r)]["val_acc"] for c in configs]
    partial = [partial_runs[(tuple(c), r)]["val_acc"] for c in configs]
    df = pd.DataFrame({"config": [config_str(c) for c in configs], "macs": [lookup(c).total for c in configs],
                       "true_acc": true, "none": list(none), "partial": partial, "gross": list(gross)})
    table5 = ap_table(df["true_acc"], {"No Fine-tuning": df["none"], "Partial Fine-tuning": df["partial"],
                                       "GroSS": df["gross"]},
                      drops=cfg["ap"]["drops"], k=cfg["ap"]["k"]).round(1).reset_index()
    table5 = table5.rename(columns={"space": "Fine-tune Strategy"})
    notes = [f"{len(configs)} random configurations, validation accuracy ({len(data.val)} images), "
             f"top-{cfg['ap']['k']} average precision"]
    fig = plots.fig5_search_vs_true(df[["config", "true_acc", "none", "partial", "gross"]])
    return StepResult(tables={"ap_configs": df, "table5_average_precision": table5},
                      figures={"fig5_search_vs_true": fig}, notes=notes)
