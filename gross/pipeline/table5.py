"""Notebook 05: Table 5 and Fig. 5, GroSS vs no / partial fine-tuning as search spaces (Sec. 5.2).

The step :func:`ap_comparison` is the composition of the verbs below, one per notebook cell:

1. :func:`load_ap_models`: the GroSS decomposition of repeat ``ap.repeat`` before and after
   GroSS fine-tuning (notebooks 01 and 02);
2. :func:`ap_configs` / :func:`config_table`: ``ap.n_configs`` random configurations (seed
   ``ap.seed``) and their MACs;
3. :func:`search_accuracies`: validation accuracy of a GroSS model at each configuration
   (no fine-tuning: the decomposition; GroSS: the fine-tuned one);
4. :func:`individual_accuracies`: validation accuracy of each configuration fine-tuned on
   its own, with the full individual schedule (true) or the partial one;
5. :func:`estimates_table`: the four accuracies side by side (table ``ap_configs``);
6. :func:`table5_average_precision`, :func:`ap_slices`, :func:`precision_at_ranks`: the
   top-``ap.k`` average precision of each search space (Table 5) and how it is computed
   (:mod:`gross.search.ap`);
7. :func:`fig5`: search-space vs true accuracy (Fig. 5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from gross.method.decomposition import search_space
from gross.method.space import SearchSpace, config_str
from gross.pipeline.common import eval_kwargs, prepare_data
from gross.pipeline.decomposition import load_gross
from gross.pipeline.finetune import true_accuracies
from gross.pipeline.outputs import StepResult, step
from gross.search import ap

__all__ = ["MODEL", "SPACES", "ap_configs", "load_ap_models", "config_table", "search_accuracies",
           "individual_accuracies", "estimates_table", "table5_average_precision", "ap_slices",
           "precision_at_ranks", "fig5", "ap_comparison"]

#: The network of Sec. 5.2.
MODEL = "four_layer"

#: The search spaces compared in Table 5: column of :func:`estimates_table` -> row label of the table.
SPACES = {"none": "No Fine-tuning", "partial": "Partial Fine-tuning", "gross": "GroSS"}


def ap_configs(cfg: Mapping, space: Mapping) -> list[tuple]:
    """The ``ap.n_configs`` random configurations of Sec. 5.2 (seed ``ap.seed``).

    Parameters
    ----------
    cfg : Profile
    space : mapping of str to sequence of int
        The search space (:func:`gross.method.decomposition.search_space`).

    Returns
    -------
    list of tuple of int
        Distinct configurations in drawing order; draws are nested (the first ``m`` of a
        larger draw are the ``m``-draw, :meth:`gross.method.space.SearchSpace.random`).
    """
    return [tuple(c) for c in SearchSpace(space).random(cfg["ap"]["n_configs"], seed=cfg["ap"]["seed"])]


def load_ap_models(cfg: Mapping) -> tuple[nn.Module, nn.Module]:
    """The GroSS 4-layer network of repeat ``ap.repeat``, before and after GroSS fine-tuning.

    Parameters
    ----------
    cfg : Profile

    Returns
    -------
    (nn.Module, nn.Module)
        The decomposition straight after BTD (notebook 01: the "No Fine-tuning" search
        space) and the GroSS fine-tuned model (notebook 02: the "GroSS" search space),
        both in eval mode.
    """
    r = int(cfg["ap"]["repeat"])
    return load_gross(cfg, MODEL, r, tuned=False), load_gross(cfg, MODEL, r)


def config_table(model: nn.Module, configs: Sequence[tuple]) -> pd.DataFrame:
    """The configurations as the paper prints them, with their MACs.

    Parameters
    ----------
    model : nn.Module
        A GroSS model of the 4-layer network (its MACs at each configuration are counted).
    configs : sequence of tuple of int

    Returns
    -------
    pandas.DataFrame
        Columns ``config`` (``"8 16 64"``) and ``macs``, one row per configuration, in order.
    """
    from gross.search.costs import model_mac_lookup

    lookup = model_mac_lookup(model)
    return pd.DataFrame({"config": [config_str(c) for c in configs], "macs": [lookup(c).total for c in configs]})


def search_accuracies(cfg: Mapping, model: nn.Module, configs: Sequence[tuple]) -> list[float]:
    """Validation accuracy (%) of a GroSS model at each configuration (a search space's estimates).

    Parameters
    ----------
    cfg : Profile
    model : nn.Module
        The GroSS decomposition (no fine-tuning) or the GroSS fine-tuned model.
    configs : sequence of tuple of int

    Returns
    -------
    list of float
        One accuracy per configuration, in order (:func:`gross.search.evaluation.evaluate_configs`
        on the validation split).
    """
    from gross.search.evaluation import evaluate_configs

    data = prepare_data(cfg, MODEL)
    return list(evaluate_configs(model, configs, data, split="val", **eval_kwargs(cfg, data))["accuracy"])


def individual_accuracies(cfg: Mapping, configs: Sequence[tuple], kind: str = "config") -> list[float]:
    """Validation accuracy (%) of each configuration fine-tuned on its own.

    Parameters
    ----------
    cfg : Profile
    configs : sequence of tuple of int
    kind : {"config", "partial"}
        ``"config"``: the individual schedule (``four_layer.config_epochs``), the paper's
        *true* accuracy; ``"partial"``: the shortened one (``ap.partial_epochs``), read from
        the individual fine-tune's history where it is its start
        (:func:`gross.pipeline.finetune.partial_is_prefix`).

    Returns
    -------
    list of float
        One accuracy per configuration, in order. The fine-tunes are stored artefacts
        (:func:`gross.pipeline.finetune.true_accuracies`; missing ones run as jobs on the
        profile's executor), decomposition repeat ``ap.repeat``.
    """
    r = int(cfg["ap"]["repeat"])
    runs = true_accuracies(cfg, MODEL, configs, [r], kind=kind)
    return [runs[(tuple(int(s) for s in c), r)]["val_acc"] for c in configs]


def estimates_table(configs: pd.DataFrame, true_acc: Sequence[float], none: Sequence[float],
                    partial: Sequence[float], gross: Sequence[float]) -> pd.DataFrame:
    """The true accuracy of every configuration beside the three search-space estimates (``ap_configs``).

    Parameters
    ----------
    configs : pandas.DataFrame
        :func:`config_table` of the configurations.
    true_acc, none, partial, gross : sequence of float
        Validation accuracies, aligned with ``configs``: individual fine-tune, no
        fine-tuning, partial fine-tune, GroSS.

    Returns
    -------
    pandas.DataFrame
        Columns ``config, macs, true_acc, none, partial, gross``.
    """
    columns = {"true_acc": true_acc, "none": none, "partial": partial, "gross": gross}
    for name, values in columns.items():
        if len(values) != len(configs):
            raise ValueError(f"{name} has {len(values)} values for {len(configs)} configurations")
    return configs[["config", "macs"]].assign(**{k: list(v) for k, v in columns.items()})


def table5_average_precision(cfg: Mapping, estimates: pd.DataFrame) -> pd.DataFrame:
    """Table 5: top-``ap.k`` average precision of each search space after dropping the top ``ap.drops``.

    Parameters
    ----------
    cfg : Profile
    estimates : pandas.DataFrame
        :func:`estimates_table`.

    Returns
    -------
    pandas.DataFrame
        Column ``Fine-tune Strategy`` (the rows of :data:`SPACES`), one column per drop
        (``All``, ``"10 ↓"``, ...) and ``Mean``; AP in percent, rounded to 0.1
        (:func:`gross.search.ap.ap_table`).
    """
    spaces = {label: estimates[col] for col, label in SPACES.items()}
    table = ap.ap_table(estimates["true_acc"], spaces, drops=cfg["ap"]["drops"], k=cfg["ap"]["k"])
    return table.round(1).reset_index().rename(columns={"space": "Fine-tune Strategy"})


def ap_slices(cfg: Mapping, estimates: pd.DataFrame) -> pd.DataFrame:
    """Each slice of Table 5 spelled out: what is kept, which configurations are positive, the AP.

    For every drop X of ``ap.drops`` the X configurations of highest true accuracy are
    removed; among the rest, the positives are those whose true accuracy is at least the
    ``ap.k``-th largest (:func:`gross.search.ap.positives`), and each space's AP is that of
    its ordering (:func:`gross.search.ap.average_precision`).

    Parameters
    ----------
    cfg : Profile
    estimates : pandas.DataFrame
        :func:`estimates_table`.

    Returns
    -------
    pandas.DataFrame
        One row per (drop, space): ``slice`` (``All``, ``"X ↓"``), ``space`` (Table 5's
        row label), ``n_configs`` kept, ``n_positives``, ``kth_true_acc`` (the lowest true
        accuracy that is positive), ``positives`` (their configurations) and ``ap``
        (percent, unrounded: the entries of :func:`table5_average_precision` before rounding).
    """
    k = int(cfg["ap"]["k"])
    true = estimates["true_acc"].to_numpy(dtype=float)
    order = np.argsort(-true, kind="stable")  # the drop rule of gross.search.ap.ap_table
    rows = []
    for drop in (int(d) for d in cfg["ap"]["drops"]):
        keep = np.sort(order[drop:])
        pos = ap.positives(true[keep], k)
        for col, label in SPACES.items():
            search = estimates[col].to_numpy(dtype=float)[keep]
            rows.append({"slice": ap.drop_label(drop), "space": label, "n_configs": len(keep),
                         "n_positives": int(pos.sum()), "kth_true_acc": float(true[keep][pos].min()),
                         "positives": ", ".join(estimates["config"].to_numpy()[keep][pos]),
                         "ap": 100.0 * ap.average_precision(true[keep], search, k=k)})
    return pd.DataFrame(rows)


def precision_at_ranks(cfg: Mapping, estimates: pd.DataFrame, space: str = "gross", drop: int = 0) -> pd.DataFrame:
    """The ordering one search space gives, with precision at each rank (how AP is computed).

    Parameters
    ----------
    cfg : Profile
    estimates : pandas.DataFrame
        :func:`estimates_table`.
    space : {"none", "partial", "gross"}
        The search space (a column of ``estimates``).
    drop : int, default 0
        Configurations of highest true accuracy removed first (a slice of Table 5).

    Returns
    -------
    pandas.DataFrame
        The kept configurations ordered by the space's accuracy, best first (ties in input
        order): ``rank``, ``config``, ``search_acc``, ``true_acc``, ``positive`` (top-``ap.k``
        true accuracy), ``hits`` (positives so far) and ``precision`` (``hits / rank``).
        Without tied search accuracies the AP is the mean ``precision`` over the positive
        rows; :func:`gross.search.ap.average_precision` averages over the orders of tied
        configurations instead of using this one.
    """
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}: expected one of {list(SPACES)}")
    true = estimates["true_acc"].to_numpy(dtype=float)
    keep = np.sort(np.argsort(-true, kind="stable")[int(drop):])
    kept = estimates.iloc[keep]
    df = pd.DataFrame({"config": kept["config"].to_numpy(), "search_acc": kept[space].to_numpy(dtype=float),
                       "true_acc": kept["true_acc"].to_numpy(dtype=float),
                       "positive": ap.positives(true[keep], int(cfg["ap"]["k"]))})
    df = df.iloc[np.argsort(-df["search_acc"].to_numpy(), kind="stable")].reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    df["hits"] = df["positive"].cumsum()
    df["precision"] = df["hits"] / df["rank"]
    return df


def fig5(estimates: pd.DataFrame, ax=None) -> Figure:
    """Fig. 5: each search space's accuracy against the true accuracy, one panel per space.

    Parameters
    ----------
    estimates : pandas.DataFrame
        :func:`estimates_table`.
    ax : sequence of matplotlib.axes.Axes, optional
        One Axes per space (:func:`gross.report.plots.fig5_search_vs_true`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from gross.report import plots

    return plots.fig5_search_vs_true(estimates[["config", "true_acc", *SPACES]], ax=ax)


def _estimates(cfg: Mapping) -> pd.DataFrame:
    init, tuned = load_ap_models(cfg)
    configs = ap_configs(cfg, search_space(init))
    none = search_accuracies(cfg, init, configs)
    gross = search_accuracies(cfg, tuned, configs)
    true = individual_accuracies(cfg, configs, "config")  # independent jobs (gross.runs.jobs)
    partial = individual_accuracies(cfg, configs, "partial")
    return estimates_table(config_table(init, configs), true_acc=true, none=none, partial=partial, gross=gross)


@step("05_ap_comparison", tables=("ap_configs", "table5_average_precision"), figures=("fig5_search_vs_true",))
def ap_comparison(cfg: Mapping, estimates: pd.DataFrame | None = None, table: pd.DataFrame | None = None,
                  figure: Figure | None = None) -> StepResult:
    """Table 5 and Fig. 5: GroSS vs no / partial fine-tuning as search spaces (Sec. 5.2).

    ``ap.n_configs`` random configurations of the 4-layer network (GroSS repeat
    ``ap.repeat``); validation accuracy of: the individual fine-tune (true), the
    exported network straight after decomposition (no fine-tuning), a partial
    individual fine-tune (``ap.partial_epochs`` epochs) and the GroSS model at the
    configuration. Top-``ap.k`` average precision after dropping the top ``ap.drops``.

    Parameters
    ----------
    cfg : Profile
    estimates : pandas.DataFrame, optional
        :func:`estimates_table` of the random configurations (None: computed with the verbs
        of this module).
    table : pandas.DataFrame, optional
        :func:`table5_average_precision` of ``estimates`` (None: computed).
    figure : matplotlib.figure.Figure, optional
        :func:`fig5` of ``estimates`` (None: drawn).

    Returns
    -------
    StepResult
        Tables ``ap_configs`` (``estimates``) and ``table5_average_precision``, figure
        ``fig5_search_vs_true``.
    """
    estimates = _estimates(cfg) if estimates is None else estimates
    table = table5_average_precision(cfg, estimates) if table is None else table
    figure = fig5(estimates) if figure is None else figure
    n_val = len(prepare_data(cfg, MODEL).val)
    notes = [f"{len(estimates)} random configurations, validation accuracy ({n_val} images), "
             f"top-{cfg['ap']['k']} average precision"]
    return StepResult(tables={"ap_configs": estimates, "table5_average_precision": table},
                      figures={"fig5_search_vs_true": figure}, notes=notes)
