"""gross.pipeline.claims: verdicts against measured noise, parsing of the search tables, the step."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gross.pipeline import claims
from gross.report.tables import search_table
from gross.runs import config
from gross.search import ap


def test_verdict_thresholds():
    assert claims.verdict(0.61, 0.3) == "supports"
    assert claims.verdict(0.59, 0.3) == "cannot tell"
    assert claims.verdict(-0.61, 0.3) == "contradicts"
    assert claims.verdict(-0.59, 0.3) == "cannot tell"
    assert claims.verdict(1.0, 0.3, z=4) == "cannot tell"


@pytest.mark.parametrize("noise", [0.0, -1.0, float("nan"), float("inf")])
def test_verdict_rejects_bad_noise(noise):
    with pytest.raises(ValueError, match="noise must be a positive finite number"):
        claims.verdict(1.0, noise)


def test_binomial_se_matches_direct_formula():
    for acc, n in [(68.44, 10000), (41.3, 2000), (99.9, 5000)]:
        p = acc / 100
        assert claims.binomial_se(acc, n) == pytest.approx(100 * math.sqrt(p * (1 - p) / n), rel=1e-12)
    with pytest.raises(ValueError, match="positive number of images"):
        claims.binomial_se(50.0, 0)


def test_parse_delta():
    assert claims.parse_delta("↑ 0.35") == pytest.approx(0.35)
    assert claims.parse_delta("↓ 4.25%") == pytest.approx(-4.25)
    assert claims.parse_delta("0.00") == 0.0
    with pytest.raises(ValueError, match="not a search table difference"):
        claims.parse_delta("-")


def _tidy() -> pd.DataFrame:
    rows = [("full", "full", None, 100, 50, 70.0), ("a", "baseline", (4, 4), 80, 40, 68.0),
            ("a", "found", (1, 8), 70, 30, 68.7), ("a", "vbmf", (2, 8), 75, 35, 67.0),
            ("b", "baseline", (2, 2), 60, 20, 67.0), ("b", "found", (1, 2), 65, 25, 66.0),
            ("depthwise", "depthwise", (1, 1), 50, 10, 65.0)]
    return pd.DataFrame([{"group": g, "role": r, "config": c, "macs": m, "gconv_macs": gm, "gross_acc": a - 1,
                          "true_acc": a, "repeat": 0} for g, r, c, m, gm, a in rows])


def test_search_pairs_inverts_the_paper_style_table():
    table = search_table(_tidy())
    pairs = claims.search_pairs(table)
    assert list(pairs["baseline"]) == ["4 4", "2 2"]
    assert list(pairs["config"]) == ["1 8", "1 2"]
    assert pairs["d_acc"].tolist() == pytest.approx([0.7, -1.0])
    assert pairs["d_macs_pct"].tolist() == pytest.approx([-12.5, 8.33], abs=0.01)


def test_search_pairs_rejects_a_found_row_without_baseline():
    table = pd.DataFrame({"Configuration": ["1 1"], "ΔAcc": ["↑ 1.00"], "ΔMACs Total": ["↓ 1%"]})
    with pytest.raises(ValueError, match="before any 'Baseline"):
        claims.search_pairs(table)
    with pytest.raises(ValueError, match="lacks columns"):
        claims.search_pairs(table.drop(columns="ΔAcc"))


def test_found_configs_flags_more_macs_and_uses_binomial_noise():
    rows = pd.DataFrame(claims.found_configs(search_table(_tidy()), "vgg16", 10000, 70.0))
    noise = math.sqrt(2) * claims.binomial_se(70.0, 10000)  # 0.648
    acc = rows[rows["instance"].str.endswith("ΔAcc")]
    assert acc["noise"].tolist() == pytest.approx([noise, noise])
    assert acc["verdict"].tolist() == ["cannot tell", "cannot tell"]  # +0.7 and -1.0 within 2 x 0.648
    macs = rows[rows["instance"].str.endswith("MACs")]
    assert macs["instance"].tolist() == ["1 2 vs 2 2: MACs"] and macs["verdict"].tolist() == ["contradicts"]


def test_found_configs_prefers_the_seed_spread():
    spread = pd.DataFrame({"quantity": ["ΔAcc found vs 4 4"], "runs": [6], "std": [0.1]})
    rows = claims.found_configs(search_table(_tidy()), "four_layer", 10000, 70.0, spread)
    first = [r for r in rows if r["instance"] == "1 8 vs 4 4: ΔAcc"][0]
    assert first["noise"] == 0.1 and first["verdict"] == "supports" and "seed" in first["noise_source"]
    few = spread.assign(runs=2)  # fewer than 3 runs is not a spread
    first = [r for r in claims.found_configs(search_table(_tidy()), "four_layer", 10000, 70.0, few)
             if r["instance"] == "1 8 vs 4 4: ΔAcc"][0]
    assert "binomial" in first["noise_source"]


def _uniform(changes) -> pd.DataFrame:
    return pd.DataFrame({"model": "four_layer", "repeat": 0, "config": [f"{i} {i}" for i in range(len(changes))],
                         "before": 60.0, "after": [60.0 + c for c in changes]})


def test_gross_keeps_mean_and_worst():
    one = math.sqrt(2) * claims.binomial_se(60.0, 5000)  # 0.98
    rows = claims.gross_keeps(_uniform([1.0] * 9 + [-0.5]), {"four_layer": 5000})
    mean, worst = rows
    assert mean["effect"] == pytest.approx(0.85) and mean["noise"] == pytest.approx(one / math.sqrt(10))
    assert mean["verdict"] == "supports"
    assert worst["effect"] == pytest.approx(-0.5) and worst["verdict"] == "supports"  # not measurably lowered
    rows = claims.gross_keeps(_uniform([1.0] * 9 + [-3.0]), {"four_layer": 5000})
    assert rows[1]["verdict"] == "contradicts"


def test_paired_se_is_the_standard_error_of_per_image_changes():
    rng = np.random.default_rng(0)
    before = rng.random(5000) < 0.7
    after = before.copy()
    flip = rng.choice(5000, 300, replace=False)
    after[flip] = ~after[flip]
    d = after.astype(np.float64) - before.astype(np.float64)  # independent: the per-image changes themselves
    expected = 100.0 * np.sqrt(np.mean(d ** 2) - np.mean(d) ** 2) / np.sqrt(len(d))
    lost, gained = int((before & ~after).sum()), int((~before & after).sum())
    assert claims.paired_se(lost, gained, 5000) == pytest.approx(expected, rel=1e-12)
    assert claims.paired_se(0, 0, 5000) == 0.0
    with pytest.raises(ValueError, match="lost"):
        claims.paired_se(3000, 2500, 5000)


def test_gross_keeps_worst_change_uses_the_paired_error_and_the_seed_spread():
    uniform = _uniform([1.0] * 9 + [-0.5]).assign(lost=[10] * 9 + [60], gained=[60] * 9 + [35], n_images=5000)
    worst = claims.gross_keeps(uniform, {"four_layer": 5000})[1]
    paired = claims.paired_se(60, 35, 5000)
    assert worst["noise"] == pytest.approx(paired) and "60 images lost, 35 gained" in worst["noise_source"]
    assert worst["verdict"] == "contradicts"  # -0.5 points is more than 2 paired errors (0.19)
    spread = pd.DataFrame({"quantity": ["GroSS change, worst uniform config"], "runs": [6], "std": [0.2]})
    worst = claims.gross_keeps(uniform, {"four_layer": 5000}, spread)[1]
    assert worst["noise"] == pytest.approx(math.hypot(paired, 0.2)) and worst["verdict"] == "supports"


def test_ranking_effect_is_the_table5_difference_and_bootstrap_is_seeded():
    rng = np.random.default_rng(1)
    true = rng.normal(60, 2, 30)
    est = pd.DataFrame({"true_acc": true, "gross": true + rng.normal(0, 0.2, 30),
                        "partial": true + rng.normal(0, 2, 30), "none": rng.normal(60, 2, 30)})
    rows = claims.ranking(est, drops=[0, 10], k=5, n_bootstrap=50)
    table = ap.ap_table(est["true_acc"], {s: est[s] for s in ("none", "partial", "gross")}, drops=[0, 10], k=5)
    assert rows[0]["effect"] == pytest.approx(table.loc["gross", "Mean"] - table.loc["none", "Mean"])
    assert rows[1]["effect"] == pytest.approx(table.loc["gross", "Mean"] - table.loc["partial", "Mean"])
    again = claims.ranking(est, drops=[0, 10], k=5, n_bootstrap=50)
    assert [r["noise"] for r in rows] == [r["noise"] for r in again]
    assert rows[0]["verdict"] == "supports"  # an exact ranking against a random one


def test_switching_needs_repeated_timings():
    timing = pd.DataFrame({"device": ["cpu"], "ratio": [4.0]})
    row, = claims.switching(timing, pd.DataFrame({"repeat_rel_diff": [0.05, 0.2]}))
    assert row["effect"] == 3.0 and row["noise"] == pytest.approx(0.8) and row["verdict"] == "supports"
    row, = claims.switching(timing, None)
    assert row["verdict"] == "not measured"


def test_summarise_rules():
    rows = pd.DataFrame({"claim": ["a", "a", "b", "b", "c", "d"],
                         "verdict": ["supports", "supports", "supports", "cannot tell", "contradicts", "not measured"]})
    out = claims.summarise(rows).set_index("claim")["verdict"].to_dict()
    assert out == {"a": "supports", "b": "cannot tell", "c": "contradicts", "d": "not measured"}


def test_claims_table_reads_this_profiles_results(tmp_path, monkeypatch):
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path))
    cfg = config.load("smoke")
    result = claims.claims_table(cfg)  # nothing written yet: every claim not measured
    assert set(result.tables["claims_summary"]["verdict"]) == {"not measured"}
    results = tmp_path / "results"
    _uniform([20.0] * 4).to_csv(results / "uniform_before_after.csv", index=False)
    search_table(_tidy()).to_csv(results / "table2_exhaustive_search.csv", index=False)
    result = claims.claims_table(cfg)
    summary = result.tables["claims_summary"].set_index("claim")["verdict"]
    assert summary[claims.CLAIM_KEEPS] == "supports"
    assert summary[f"{claims.CLAIM_FOUND}: four_layer"] == "contradicts"  # 1 2 has more MACs than 2 2
    assert (results / "claims.csv").exists() and (results / "claims_summary.md").exists()


def test_command_line_writes_the_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path))
    claims.main(["--profile", "smoke"])
    summary = pd.read_csv(tmp_path / "results" / "claims_summary.csv")
    assert list(summary.columns[:2]) == ["claim", "verdict"] and len(summary) == 5


def test_zero_or_missing_noise_is_not_an_error():
    rows = [claims._row("c", "i", e, n, "src", "rule") for e, n in [(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0),
                                                                    (1.0, float("nan")), (float("nan"), 1.0)]]
    assert [r["verdict"] for r in rows] == ["cannot tell", "supports", "contradicts", "not measured", "not measured"]
    assert "zero: judged by the sign" in rows[0]["noise_source"]
    same = pd.DataFrame({"true_acc": [50.0] * 12, "none": [50.0] * 12, "partial": [50.0] * 12, "gross": [50.0] * 12})
    assert {r["verdict"] for r in claims.ranking(same, drops=[0], k=5, n_bootstrap=20)} == {"cannot tell"}
