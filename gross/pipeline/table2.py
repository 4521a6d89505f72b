"""Notebook 03: Table 2 and Fig. 3, the exhaustive search of the 4-layer GroSS network."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from gross.method.decomposition import enumerate_configs, search_space
from gross.method.space import config_str
from gross.pipeline.base import base_model
from gross.pipeline.common import eval_kwargs, n_repeats, prepare_data, resolve_device, true_repeats, uniform
from gross.pipeline.decomposition import load_gross
from gross.pipeline.finetune import true_accuracies
from gross.pipeline.outputs import StepResult, step
from gross.pipeline.rows import search_entries, search_rows, search_table, tidy_for_csv

__all__ = ["evaluate_all", "exhaustive_search"]


def evaluate_all(cfg: Mapping, models: list, configs: list, data, lookup) -> tuple[pd.DataFrame, list]:
    """Validation accuracy of every configuration for each GroSS model, their mean, and MACs.

    Returns the table (``config, macs, gconv_macs, accuracy, val_acc_r<r>..., val_acc_std``)
    and the evaluation seconds per model.
    """
    import time

    from gross.search.evaluation import evaluate_configs

    per_repeat, eval_s = [], []
    for model in models:
        t1 = time.perf_counter()
        per_repeat.append(evaluate_configs(model, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"])
        eval_s.append(time.perf_counter() - t1)
    acc = np.vstack([np.asarray(a, dtype=float) for a in per_repeat])
    cost = [lookup(c) for c in configs]
    table = pd.DataFrame({"config": configs, "macs": [m.total for m in cost], "gconv_macs": [m.gconv for m in cost],
                          "accuracy": acc.mean(0)})
    for r in range(len(models)):
        table[f"val_acc_r{r}"] = acc[r]
    table["val_acc_std"] = acc.std(0, ddof=1) if len(models) > 1 else 0.0
    return table, eval_s


@step("03_exhaustive_search", tables=("table2_exhaustive_search", "exhaustive_search_all"),
      figures=("fig3_exhaustive_search",))
def exhaustive_search(cfg: Mapping) -> StepResult:
    """Table 2 and Fig. 3: exhaustive search of the 4-layer GroSS network.

    Every configuration (252 in the paper) is evaluated on the validation split for
    each GroSS repeat; configurations are ranked by the mean over repeats. For each
    uniform baseline (``four_layer.baselines``) the most accurate configuration with
    MACs not above the baseline's is found. Rows: Full, baseline and found per
    baseline, VBMF and depthwise (``four_layer.depthwise``); GroSS and true
    (individually fine-tuned) test accuracy, mean (std) over repeats.
    """
    from gross.report import plots
    from gross.search.costs import model_mac_lookup
    from gross.search.algorithms import exhaustive_search as _exhaustive
    from gross.method.vbmf import select_config

    name = "four_layer"
    data = prepare_data(cfg, name)
    models = [load_gross(cfg, name, r) for r in range(n_repeats(cfg, name))]
    space = search_space(models[0])
    configs = enumerate_configs(space)
    lookup = model_mac_lookup(models[0])
    table, eval_s = evaluate_all(cfg, models, configs, data, lookup)
    baselines = [uniform(space, s) for s in cfg[name]["baselines"]]
    found = [tuple(_exhaustive(space, None, lookup, b, table=table)[0]["config"]) for b in baselines]
    base = base_model(cfg, name, train=False)
    vbmf = tuple(select_config(base, sizes=dict(space)))
    entries = search_entries(list(zip(baselines, found)), vbmf, uniform(space, cfg[name]["depthwise"]), lookup)
    true_accuracies(cfg, name, [e["config"] for e in entries if e["config"] is not None],
                    range(true_repeats(cfg, name)))  # individual fine-tunes as independent jobs
    tidy = search_rows(cfg, name, models, base, data, entries)
    notes = [
        f"search on the mean GroSS validation accuracy over {len(models)} repeat(s); GroSS/True columns are test "
        f"accuracy, mean (std) over {len(models)} GroSS and {true_repeats(cfg, name)} individual repeat(s)",
        f"evaluating all {len(configs)} configurations took {np.mean(eval_s):.1f} s per repeat on "
        f"{len(data.val)} validation images ({resolve_device(cfg)})",
    ]
    out_all = table.assign(config=[config_str(c) for c in configs])
    return StepResult(
        tables={"table2_exhaustive_search": search_table(tidy, "4-Layer Network Configuration"),
                "exhaustive_search_all": out_all, "table2_tidy": tidy_for_csv(tidy)},
        figures={"fig3_exhaustive_search": plots.fig3_exhaustive_search(table, baselines, found)},
        notes=notes, output_notes={"exhaustive_search_all": notes[1:], "fig3_exhaustive_search": notes[:1]})
