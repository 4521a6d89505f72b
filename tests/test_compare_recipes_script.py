"""scripts/compare_recipes.py: the summary of the recipe comparison (issue #25), on hand-made runs."""

import pandas as pd
import pytest


def test_summary_gives_mean_sample_std_and_paired_differences(load_script):
    runs = pd.DataFrame([
        # seed, stage, recipe, val, test
        (0, "base", "paper", 60.0, 59.0), (1, "base", "paper", 62.0, 61.0), (2, "base", "paper", 64.0, 60.0),
        (0, "base", "code", 61.0, 59.5), (1, "base", "code", 62.5, 62.0), (2, "base", "code", 66.0, 60.0),
        (0, "config", "paper", 50.0, 49.0), (1, "config", "paper", 52.0, 51.0),
        (1, "config", "code", 53.0, 50.0), (0, "config", "code", 50.5, 49.0),  # seed order differs: pairing by seed
    ], columns=["seed", "stage", "recipe", "val_acc", "test_acc"])
    table = load_script("compare_recipes").summary(runs).set_index(["stage", "recipe"])
    base_code, base_paper = table.loc[("base", "code")], table.loc[("base", "paper")]
    assert base_paper["val_acc_mean"] == pytest.approx(62.0) and base_paper["val_acc_std"] == pytest.approx(2.0)
    assert base_paper["n_seeds"] == 3 and pd.isna(base_paper["val_acc_diff_mean"])
    # code - paper per seed: val 1.0, 0.5, 2.0 -> mean 7/6, sample std of (1, .5, 2)
    assert base_code["val_acc_diff_mean"] == pytest.approx(3.5 / 3)
    d = pd.Series([1.0, 0.5, 2.0])
    assert base_code["val_acc_diff_std"] == pytest.approx((((d - d.mean()) ** 2).sum() / 2) ** 0.5)
    assert base_code["test_acc_diff_mean"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    cfg_code = table.loc[("config", "code")]
    assert cfg_code["val_acc_diff_mean"] == pytest.approx((0.5 + 1.0) / 2)  # paired by seed, not by row order
    assert cfg_code["test_acc_diff_mean"] == pytest.approx((0.0 - 1.0) / 2)
