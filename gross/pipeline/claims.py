"""The paper's claims, each checked against this run's measured noise (notebook 06, last part).

One run's signs are not findings: a ΔAcc of +0.2 points says nothing when another seed moves
the same number by 0.5. :func:`claims_table` reads the tables this profile's notebooks wrote
(``results/`` for cpu / paper) and, for every claim of the paper that they measure, sets the
effect beside a measured noise and gives a verdict:

* **supports**: the effect is in the claimed direction by more than ``Z`` noise units;
* **contradicts**: it is against the claim by more than ``Z`` noise units;
* **cannot tell**: it lies within ``Z`` noise units of no effect;
* **not measured**: the table the claim needs was not written by this run.

Noise sources, best first: the spread of the same quantity over seeds and thread settings
(``seed_spread_summary``, written by ``scripts/seed_spread.py`` for the 4-layer network);
a bootstrap over the configurations (Table 5's average precision); repeated timings
(``latency_predictor_validation``'s repeat disagreement); the paired error of a change measured
on the same images before and after (:func:`paired_se`, from the images lost and gained); the
binomial standard error of an accuracy on the images it was measured on (a lower bound: it
ignores training noise).
Each row names its source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gross.pipeline.outputs import StepResult, step
from gross.search import ap
from gross.utils import paths

__all__ = ["Z", "VERDICTS", "verdict", "binomial_se", "paired_se", "read_table", "gross_keeps", "parse_delta", "search_pairs",
           "found_configs",
           "ranking", "switching", "summarise", "claims_table", "main"]

#: Noise units an effect must exceed to count (about a two-sided 95 % interval).
Z = 2.0

VERDICTS = ("supports", "contradicts", "cannot tell", "not measured")

#: Bootstrap resamples of Table 5's configurations, and their seed.
N_BOOTSTRAP, BOOTSTRAP_SEED = 400, 0


def verdict(effect: float, noise: float, z: float = Z) -> str:
    """``supports`` if ``effect > z * noise``, ``contradicts`` if ``effect < -z * noise``, else ``cannot tell``.

    Parameters
    ----------
    effect : float
        The measured effect, signed so that positive is what the claim says.
    noise : float
        Standard deviation of the effect under repetition (> 0).
    z : float
        Noise units the effect must exceed.

    Examples
    --------
    >>> verdict(1.0, 0.3), verdict(-1.0, 0.3), verdict(0.5, 0.3)
    ('supports', 'contradicts', 'cannot tell')
    """
    if not (math.isfinite(noise) and noise > 0):
        raise ValueError(f"noise must be a positive finite number, got {noise!r}")
    if not math.isfinite(effect):
        raise ValueError(f"effect must be finite, got {effect!r}")
    if effect > z * noise:
        return "supports"
    if effect < -z * noise:
        return "contradicts"
    return "cannot tell"


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error (points) of an accuracy in percent measured on ``n`` images.

    >>> round(binomial_se(50.0, 10000), 3)
    0.5
    """
    if n <= 0:
        raise ValueError(f"n must be a positive number of images, got {n}")
    p = min(max(accuracy / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(max(p * (1 - p), 1e-12) / n)


def paired_se(lost: int, gained: int, n: int) -> float:
    """Standard error (points) of the change of an accuracy measured twice on the same ``n`` images.

    A fine-tune that lost ``lost`` images (right before, wrong after) and gained ``gained``
    changes the accuracy by ``100 (gained - lost) / n``; per image the change is -1, 0 or +1,
    so its standard error is that of a mean of ``n`` such values. Far smaller than two
    independent accuracies' (:func:`binomial_se`) when the two networks disagree on few images.

    >>> round(paired_se(50, 50, 5000), 3)
    0.2
    """
    lost, gained, n = int(lost), int(gained), int(n)
    if n <= 0 or lost < 0 or gained < 0 or lost + gained > n:
        raise ValueError(f"paired_se needs n > 0 images and 0 <= lost + gained <= n, got lost={lost}, "
                         f"gained={gained}, n={n}")
    moved, net = (lost + gained) / n, (gained - lost) / n
    return 100.0 * math.sqrt(max(moved - net * net, 0.0) / n)


def read_table(cfg: Mapping, name: str) -> pd.DataFrame | None:
    """Table ``name`` of this profile as written by its step (``None`` when the run did not write it)."""
    path = paths.results_dir(cfg["profile"]) / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def _spread_std(spread: pd.DataFrame | None, quantity: str) -> float | None:
    if spread is None:
        return None
    row = spread[spread["quantity"] == quantity]
    if row.empty or int(row["runs"].iloc[0]) < 3 or not np.isfinite(row["std"].iloc[0]) or row["std"].iloc[0] <= 0:
        return None
    return float(row["std"].iloc[0])


def _row(claim: str, instance: str, effect: float, noise: float | None, source: str, rule: str) -> dict:
    """One claim instance; no noise or a non-finite effect is "not measured", a zero noise judges the sign."""
    row = {"claim": claim, "instance": instance, "effect": effect, "noise": float("nan") if noise is None else noise,
           "noise_source": source, "rule": rule}
    if noise is None or not math.isfinite(noise) or not math.isfinite(effect):
        return {**row, "verdict": "not measured"}
    if noise == 0:  # e.g. a bootstrap whose resamples all agree: the effect is what it is
        row["noise_source"] = f"{source} (zero: judged by the sign)"
        return {**row, "verdict": "supports" if effect > 0 else "contradicts" if effect < 0 else "cannot tell"}
    return {**row, "verdict": verdict(effect, noise)}


def _missing(claim: str, table: str) -> list[dict]:
    return [{"claim": claim, "instance": "-", "effect": float("nan"), "noise": float("nan"),
             "noise_source": f"table {table} was not written by this run", "rule": "-", "verdict": "not measured"}]


CLAIM_KEEPS = "GroSS fine-tuning keeps every uniform configuration's accuracy (Sec. 4.3)"
CLAIM_FOUND = "found configurations: no more MACs than their baseline, higher true accuracy (Tables 2, 3)"
CLAIM_RANKING = "GroSS ranks configurations better than no or partial fine-tuning (Table 5)"
CLAIM_SWITCH = "switching a GroSS network is faster than rebuilding one network per configuration (Sec. 5.2)"


def gross_keeps(uniform: pd.DataFrame | None, n_val: Mapping[str, int],
                spread: pd.DataFrame | None = None) -> list[dict]:
    """Claim: GroSS fine-tuning does not lower any uniform configuration (``uniform_before_after``).

    Two instances per network: the mean change over its uniform configurations and repeats
    (supported when measurably positive; noise: the spread over seeds when ``spread`` has it,
    else the binomial error of a difference of two accuracies on ``n_val[model]`` images), and
    the worst change (contradicted when measurably negative). The worst change's noise is that
    of one configuration's change: measured on the same images before and after, so its
    paired error (:func:`paired_se`, from the table's ``lost`` / ``gained``) combined with
    the training noise, the spread of the worst change over seeds when ``spread`` has it.
    Tables without ``lost`` / ``gained`` fall back to the larger of two independent
    accuracies' binomial error and that spread.
    """
    if uniform is None:
        return _missing(CLAIM_KEEPS, "uniform_before_after")
    rows = []
    for model, df in uniform.groupby("model", sort=False):
        change = (df["after"] - df["before"]).to_numpy()
        n = int(n_val[model])
        one = math.sqrt(2) * binomial_se(float(df["before"].mean()), n)
        src_one = f"binomial: difference of two accuracies on {n} validation images"
        mean_noise, mean_src = one / math.sqrt(len(df)), f"{src_one}, over {len(df)} configurations"
        s_mean = _spread_std(spread, "GroSS change, mean of uniform configs") if model == "four_layer" else None
        s_worst = _spread_std(spread, "GroSS change, worst uniform config") if model == "four_layer" else None
        if s_mean is not None:
            mean_noise, mean_src = s_mean, "std over seeds x thread settings (seed_spread)"
        worst_row = df.iloc[int(np.argmin(change))]
        if {"lost", "gained", "n_images"} <= set(df.columns) and pd.notna(worst_row["lost"]):
            paired = paired_se(worst_row["lost"], worst_row["gained"], worst_row["n_images"])
            worst_src = (f"paired: {int(worst_row['lost'])} images lost, {int(worst_row['gained'])} gained of "
                         f"{int(worst_row['n_images'])} ({paired:.2f})")
            worst_noise = math.hypot(paired, s_worst or 0.0)
            if s_worst is not None:
                worst_src += f", with the std of the worst change over seeds x thread settings ({s_worst:.2f})"
        elif s_worst is not None and s_worst > one:
            worst_noise, worst_src = s_worst, "std over seeds x thread settings (seed_spread)"
        else:
            worst_noise, worst_src = one, src_one
            if s_worst is not None:
                worst_src += f" (larger than the seed spread of the worst change, {s_worst:.2f})"
        rows.append(_row(CLAIM_KEEPS, f"{model}: mean change", float(change.mean()), mean_noise, mean_src,
                         "supports if > Z noise"))
        worst = _row(CLAIM_KEEPS, f"{model}: worst change ({worst_row['config']})", float(change.min()),
                     worst_noise, worst_src,
                     "contradicts if < -Z noise, else supports (no configuration measurably lowered)")
        if worst["verdict"] == "cannot tell":  # "keeps" is refuted only by a measurable drop
            worst["verdict"] = "supports"
        rows.append(worst)
    return rows


def parse_delta(text) -> float:
    """A signed number from a search table cell (``"↑ 0.35"`` → 0.35, ``"↓ 4.25%"`` → -4.25, ``"0.00"`` → 0).

    >>> parse_delta("↓ 2.08"), parse_delta("↑ 0.16"), parse_delta("0.00%")
    (-2.08, 0.16, 0.0)
    """
    t = str(text).strip().rstrip("%").strip()
    sign = -1.0 if t.startswith("↓") else 1.0
    t = t.lstrip("↑↓ ").strip()
    try:
        return sign * float(t)
    except ValueError:
        raise ValueError(f"not a search table difference: {text!r} (expected e.g. '↑ 0.35', '↓ 4.25%', '0.00')")


def search_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """The (baseline, found) pairs of a paper-style Table 2 / 3 (:func:`gross.report.tables.search_table`).

    Rows labelled ``Baseline: <config>`` open a group; the rows after it that are neither
    ``VBMF: ...``, ``Depthwise: ...`` nor ``Full`` are that baseline's found configurations.

    Returns
    -------
    pandas.DataFrame
        ``baseline, config, d_acc`` (points) and ``d_macs_pct`` (percent of the baseline's MACs,
        negative = cheaper), one row per found configuration.
    """
    label_col = table.columns[0]
    missing = [c for c in ("ΔAcc", "ΔMACs Total") if c not in table.columns]
    if missing:
        raise ValueError(f"search table lacks columns {missing}; has {list(table.columns)}")
    rows, baseline = [], None
    for _, r in table.iterrows():
        label = str(r[label_col]).strip()
        if label.startswith("Baseline:"):
            baseline = label.split(":", 1)[1].strip()
        elif label == "Full" or label.startswith(("VBMF:", "Depthwise:")):
            continue
        elif baseline is None:
            raise ValueError(f"search table row {label!r} comes before any 'Baseline: ...' row")
        else:
            rows.append({"baseline": baseline, "config": label, "d_acc": parse_delta(r["ΔAcc"]),
                         "d_macs_pct": parse_delta(r["ΔMACs Total"])})
    return pd.DataFrame(rows, columns=["baseline", "config", "d_acc", "d_macs_pct"])


def found_configs(table: pd.DataFrame | None, model: str, n_test: int, accuracy: float,
                  spread: pd.DataFrame | None = None) -> list[dict]:
    """Claim: each found configuration has no more MACs than its baseline and a higher true accuracy.

    ``table``: a paper-style Table 2 / 3 (:func:`search_pairs`). MACs are exact: a found
    configuration with more MACs contradicts. Accuracy: ΔAcc (true accuracy of the found
    configuration minus its baseline's); noise: the spread of that ΔAcc over seeds (4-layer
    network, ``seed_spread``) or the binomial error of a difference of two test accuracies of
    about ``accuracy`` percent on ``n_test`` images.
    """
    claim = f"{CLAIM_FOUND}: {model}"
    if table is None:
        return _missing(claim, f"{model} search table")
    rows = []
    for p in search_pairs(table).itertuples():
        instance = f"{p.config} vs {p.baseline}"
        if p.d_macs_pct > 0:
            rows.append({"claim": claim, "instance": f"{instance}: MACs", "effect": -float(p.d_macs_pct),
                         "noise": 0.0, "noise_source": "exact count", "rule": "contradicts if more MACs",
                         "verdict": "contradicts"})
        noise = _spread_std(spread, f"ΔAcc found vs {p.baseline}") if model == "four_layer" else None
        source = "std over seeds x thread settings (seed_spread)"
        if noise is None:
            noise = math.sqrt(2) * binomial_se(accuracy, n_test)
            source = f"binomial: difference of two accuracies on {n_test} test images"
        rows.append(_row(claim, f"{instance}: ΔAcc", float(p.d_acc), noise, source,
                         "supports if > Z noise, contradicts if < -Z noise"))
    return rows


def _mean_ap(estimates: pd.DataFrame, spaces: Sequence[str], drops, k: int) -> pd.Series:
    table = ap.ap_table(estimates["true_acc"], {s: estimates[s] for s in spaces}, drops=drops, k=k)
    return table["Mean"]


def ranking(estimates: pd.DataFrame | None, drops: Sequence[int], k: int,
            n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> list[dict]:
    """Claim: GroSS's ranking has a higher mean AP than no and partial fine-tuning (``ap_configs``).

    Effect: mean AP (Table 5's ``Mean``, percent) of GroSS minus each other strategy; noise:
    the standard deviation of that difference over ``n_bootstrap`` resamples (with
    replacement, seeded) of the configurations.
    """
    if estimates is None:
        return _missing(CLAIM_RANKING, "ap_configs")
    spaces = ["none", "partial", "gross"]
    drops = [d for d in drops if len(estimates) - d > k]
    point = _mean_ap(estimates, spaces, drops, k)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        sample = estimates.iloc[rng.integers(0, len(estimates), len(estimates))].reset_index(drop=True)
        boot.append(_mean_ap(sample, spaces, drops, k))
    boot = pd.DataFrame(boot)
    rows = []
    for other in ("none", "partial"):
        diff = boot["gross"] - boot[other]
        rows.append(_row(CLAIM_RANKING, f"GroSS - {other}: mean AP (points)",
                         float(point["gross"] - point[other]), float(diff.std()),
                         f"bootstrap over the {len(estimates)} configurations ({n_bootstrap} resamples)",
                         "supports if > Z noise, contradicts if < -Z noise"))
    return rows


def switching(timing: pd.DataFrame | None, repeats: pd.DataFrame | None) -> list[dict]:
    """Claim: switching is faster than rebuilding (``inference_timing``).

    Effect: ``ratio - 1`` (rebuild time over switching time, minus one); noise: the largest
    relative disagreement of two repeated timings on this machine
    (``latency_predictor_validation.repeat_rel_diff``), times the ratio.
    """
    if timing is None:
        return _missing(CLAIM_SWITCH, "inference_timing")
    if repeats is None or "repeat_rel_diff" not in repeats:
        return [_row(CLAIM_SWITCH, "rebuild / switching - 1", float(timing["ratio"].iloc[0] - 1), None,
                     "no repeated timings (latency_predictor_validation) in this run", "supports if > Z noise")]
    rel = float(repeats["repeat_rel_diff"].max())
    ratio = float(timing["ratio"].iloc[0])
    return [_row(CLAIM_SWITCH, f"rebuild / switching - 1 ({timing['device'].iloc[0]})", ratio - 1, max(rel, 1e-6) * ratio,
                 "largest disagreement of two repeated timings (latency_predictor_validation)",
                 "supports if > Z noise")]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One verdict per claim: contradicts if any instance does; supports if all do; else cannot tell.

    An instance marked ``not measured`` makes the claim ``not measured`` only when nothing else
    was measured. Counts of each verdict are kept beside it.
    """
    out = []
    for claim, g in rows.groupby("claim", sort=False):
        v = g["verdict"]
        measured = v[v != "not measured"]
        if measured.empty:
            final = "not measured"
        elif (measured == "contradicts").any():
            final = "contradicts"
        elif (measured == "supports").all():
            final = "supports"
        else:
            final = "cannot tell"
        out.append({"claim": claim, "verdict": final, **{c: int((v == c).sum()) for c in VERDICTS}})
    return pd.DataFrame(out)


@step("06_latency_aware_search", tables=("claims", "claims_summary"))
def claims_table(cfg: Mapping) -> StepResult:
    """The paper's claims against this run's measured noise (tables ``claims``, ``claims_summary``).

    Reads the tables this profile's notebooks wrote (``uniform_before_after``, ``base_models``,
    ``table2_exhaustive_search``, ``table3_bfs_vgg16``, ``ap_configs``, ``inference_timing``,
    ``latency_predictor_validation``) and, when present, ``seed_spread_summary``
    (``scripts/seed_spread.py``). Trains and evaluates nothing.

    Returns
    -------
    StepResult
        ``claims``: one row per claim instance (``claim, instance, effect, noise,
        noise_source, rule, verdict``); ``claims_summary``: one row per claim.
    """
    spread = read_table(cfg, "seed_spread_summary")
    n_test = int(cfg["data"]["n_test"])
    n_val = {name: int(cfg[name].get("n_val") or cfg["data"]["n_val"]) for name in ("four_layer", "vgg16")}
    rows = gross_keeps(read_table(cfg, "uniform_before_after"), n_val, spread)
    base = read_table(cfg, "base_models")
    acc = {} if base is None else dict(zip(base["model"], base["test_acc"]))
    rows += found_configs(read_table(cfg, "table2_exhaustive_search"), "four_layer", n_test,
                          acc.get("four_layer", 50.0), spread)
    rows += found_configs(read_table(cfg, "table3_bfs_vgg16"), "vgg16", n_test, acc.get("vgg16", 50.0))
    rows += ranking(read_table(cfg, "ap_configs"), cfg["ap"]["drops"], int(cfg["ap"]["k"]))
    rows += switching(read_table(cfg, "inference_timing"), read_table(cfg, "latency_predictor_validation"))
    table = pd.DataFrame(rows).round({"effect": 3, "noise": 3})
    notes = [f"verdicts at Z = {Z:g} noise units; noise source per row; seed spread "
             + ("from seed_spread_summary" if spread is not None else "not available (binomial lower bounds)")]
    return StepResult(tables={"claims": table, "claims_summary": summarise(table)}, notes=notes)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gross.pipeline.claims --profile cpu``: the claims tables from a profile's written results."""
    import argparse

    from gross.runs import config

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--profile", default="cpu", help="profile whose results/ are read and written (default: cpu)")
    args = parser.parse_args(argv)
    claims_table(config.load(args.profile))


if __name__ == "__main__":
    main()
