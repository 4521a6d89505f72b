"""scripts/seed_spread.py: headline numbers of one run and their spread over runs (fake run folders)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest



def _fake_run(root: Path, seed: int, threads: int, base_test: float, found_acc: float) -> Path:
    d = root / f"s{seed}t{threads}" / "spread"
    d.mkdir(parents=True)
    pd.DataFrame({"model": ["four_layer"], "val_acc": [base_test - 1], "test_acc": [base_test]}).to_csv(
        d / "base.csv", index=False)
    pd.DataFrame({"error": [0.3, 0.5]}).to_csv(d / "btd_errors.csv", index=False)
    pd.DataFrame({"model": "four_layer", "repeat": [0, 0, 1, 1], "config": ["1 1", "2 2"] * 2,
                  "before": [60.0, 61.0, 60.0, 61.0], "after": [60.5, 60.9, 61.0, 61.2]}).to_csv(
        d / "uniform.csv", index=False)
    pd.DataFrame({"config": ["2 2", "1 1"], "no_finetune_val_acc": [61.0, 60.0], "val_acc": [61.5, 59.8]}).to_csv(
        d / "individual.csv", index=False)
    tidy = [("full", "full", "full", 100, base_test), ("a", "baseline", "2 2", 80, 65.0),
            ("a", "found", "1 2", 70, found_acc), ("depthwise", "depthwise", "1 1", 50, 64.0)]
    pd.DataFrame([{"group": g, "role": r, "config": c, "macs": m, "true_acc": a, "repeat": 0}
                  for g, r, c, m, a in tidy]).to_csv(d / "table2_tidy.csv", index=False)
    (d / "run.json").write_text(json.dumps({"seed": seed, "threads": threads, "wall_s": 1.0}))
    return d.parent


def test_headline_numbers_of_one_run(tmp_path, load_script):
    rows, configs = load_script("seed_spread").headline(_fake_run(tmp_path, 0, 1, 68.0, 65.4))
    values = {r["quantity"]: r["value"] for r in rows}
    assert values["base test acc"] == 68.0
    assert values["GroSS change, worst uniform config"] == pytest.approx(-0.1)
    assert values["uniform configs lowered by GroSS (count)"] == 1
    assert values["individual fine-tunes ending below start (count)"] == 1
    assert values["individual fine-tune change, worst (val)"] == pytest.approx(-0.2)
    assert values["ΔAcc found vs 2 2"] == pytest.approx(0.4)
    assert configs == [{"seed": 0, "threads": 1, "baseline": "2 2", "role": "found", "config": "1 2",
                        "delta_acc": pytest.approx(0.4), "delta_macs": -10}]


def test_summary_is_the_spread_over_runs(tmp_path, load_script):
    found = [65.4, 64.8, 65.9]
    roots = [_fake_run(tmp_path, s, t, 68.0 + s, a) for (s, t), a in zip([(0, 1), (1, 1), (2, 2)], found)]
    (tmp_path / "unfinished").mkdir()
    out = tmp_path / "out"
    load_script("seed_spread").summarise(roots + [tmp_path / "unfinished"], out)
    summary = pd.read_csv(out / "seed_spread_summary.csv").set_index("quantity")
    delta = np.array(found) - 65.0
    row = summary.loc["ΔAcc found vs 2 2"]
    assert row["runs"] == 3 and row["mean"] == pytest.approx(delta.mean(), abs=1e-4)
    assert row["std"] == pytest.approx(delta.std(ddof=1), abs=1e-4)
    assert row["range"] == pytest.approx(delta.max() - delta.min(), abs=1e-4)
    assert summary.loc["base test acc", "std"] == pytest.approx(1.0)
    meta = json.loads((out / "seed_spread_summary.meta.json").read_text())
    assert len(meta["inputs"]) == 4 and (out / "seed_spread_configs.md").exists()


def test_summarise_keeps_the_runs_of_an_earlier_summary(tmp_path, load_script):
    script = load_script("seed_spread")
    first = tmp_path / "first"
    script.summarise([_fake_run(tmp_path, 0, 1, 68.0, 65.4), _fake_run(tmp_path, 1, 1, 69.0, 64.8)], first)
    later = tmp_path / "later"
    # a new run (seed 2) and seed 1 again with other numbers: seed 1 is replaced, seed 0 kept
    again = _fake_run(tmp_path / "again", 1, 1, 70.0, 65.0)
    script.summarise([_fake_run(tmp_path, 2, 2, 71.0, 65.9), again], later, keep=first)
    long = pd.read_csv(later / "seed_spread.csv")
    base = long[long["quantity"] == "base test acc"].set_index(["seed", "threads"])["value"]
    assert base.to_dict() == {(0, 1): 68.0, (2, 2): 71.0, (1, 1): 70.0}
    found = pd.read_csv(later / "seed_spread_configs.csv")
    assert sorted(zip(found["seed"], found["delta_acc"].round(4))) == [(0, 0.4), (1, 0.0), (2, 0.9)]
    summary = pd.read_csv(later / "seed_spread_summary.csv").set_index("quantity")
    assert summary.loc["base test acc", "runs"] == 3 and summary.loc["base test acc", "mean"] == pytest.approx(69.6667, abs=1e-4)
    assert set(json.loads((later / "seed_spread.meta.json").read_text())["settings"]) == {"s0t1", "s1t1", "s2t2"}
    with pytest.raises(FileNotFoundError, match="no earlier summary"):
        script.summarise([again], tmp_path / "x", keep=tmp_path / "nowhere")
