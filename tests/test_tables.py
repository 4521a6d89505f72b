"""Tests for gross.report.tables: the paper's Table 2 layout from hand-computed MACs."""

import numpy as np
import pandas as pd
import pytest

from gross.report.tables import format_ap_table, search_table, search_table_numeric


def four_layer_macs(s2, s3, s4):
    """MACs of the GroSS 4-layer net by hand (conv MACs + conv biases; linear biases not counted).

    conv1 3->32 at 32x32: 884,736 + 32,768 bias. Each decomposed layer: P (t->t, 1x1) +
    R (t -> t, 3x3, group size s) + Q (t->u, 1x1) + bias. conv2 at 16x16: 262,144 + 73,728 s
    + 262,144 + 8,192; conv3 at 8x8: 65,536 + 18,432 s + 131,072 + 4,096; conv4 at 4x4:
    65,536 + 9,216 s + 65,536 + 1,024; fc1 65,536; fc2 2,560.
    """
    gconv = 73_728 * s2 + 18_432 * s3 + 9_216 * s4
    constant = 917_504 + 532_480 + 200_704 + 132_096 + 65_536 + 2_560
    return constant + gconv, gconv


def table2_results():
    """The paper's Table 2 (two repeats per row, chosen to give the printed means)."""
    rows = []

    def add(group, role, config, gross, true):
        macs, gconv = (5_127_680, 0) if config is None else four_layer_macs(*config)
        for r, (g, t) in enumerate(zip(gross, true)):
            rows.append(dict(group=group, role=role, config=config, macs=macs, gconv_macs=gconv,
                             gross_acc=g, true_acc=t, repeat=r))

    add("full", "full", None, [np.nan, np.nan], [83.99, 83.99])
    add("32", "baseline", (32, 32, 32), [82.50, 82.60], [83.65, 83.75])
    add("32", "found", (32, 16, 64), [82.80, 82.94], [84.00, 84.10])
    add("16", "baseline", (16, 16, 16), [82.22, 82.22], [82.94, 82.94])
    add("16", "vbmf", (16, 8, 16), [81.76, 81.76], [82.83, 82.83])
    add("16", "found", (8, 16, 64), [82.66, 82.66], [83.88, 83.88])
    add("8", "baseline", (8, 8, 8), [81.44, 81.44], [82.86, 82.86])
    add("8", "found", (2, 16, 32), [82.12, 82.12], [83.50, 83.50])
    add("4", "baseline", (4, 4, 4), [80.66, 80.66], [82.37, 82.37])
    add("4", "found", (1, 8, 16), [81.32, 81.32], [82.45, 82.45])
    add("dw", "depthwise", (1, 1, 1), [79.34], [81.70])
    return pd.DataFrame(rows)


def test_table2_layout_and_paper_percentages():
    table = search_table(table2_results())
    assert list(table.columns) == ["Configuration", "MACs", "GroSS", "True", "ΔAcc", "ΔMACs Total", "ΔMACs G.Conv"]
    rows = table.set_index("Configuration")
    assert list(rows.index) == ["Full", "Baseline: 32 32 32", "32 16 64", "Baseline: 16 16 16", "VBMF: 16 8 16",
                                "8 16 64", "Baseline: 8 8 8", "2 16 32", "Baseline: 4 4 4", "1 8 16",
                                "Depthwise: 1 1 1"]
    assert rows["MACs"].tolist() == ["5.13M", "5.09M", "5.09M", "3.47M", "3.33M", "3.33M", "2.66M", "2.59M",
                                     "2.26M", "2.22M", "1.95M"]
    assert rows.loc["Full"].tolist()[1:] == ["-", "83.99 (0.00)", "-", "-", "-"]
    assert rows.loc["Baseline: 32 32 32", "True"] == "83.70 (0.07)"
    assert rows.loc["32 16 64"].tolist()[1:] == ["82.87 (0.10)", "84.05 (0.07)", "↑ 0.35", "0.00%", "0.00%"]
    assert rows.loc["VBMF: 16 8 16"].tolist()[3:] == ["↓ 0.11", "↓ 4.25%", "↓ 9.09%"]
    assert rows.loc["8 16 64"].tolist()[3:] == ["↑ 0.94", "↓ 4.25%", "↓ 9.09%"]
    assert rows.loc["2 16 32"].tolist()[3:] == ["↑ 0.64", "↓ 2.77%", "↓ 9.09%"]
    assert rows.loc["1 8 16"].tolist()[3:] == ["↑ 0.08", "↓ 1.63%", "↓ 9.09%"]
    assert rows.loc["Depthwise: 1 1 1"].tolist()[1:] == ["79.34", "81.70", "-", "-", "-"]


def test_numeric_table_against_direct_computation():
    num = search_table_numeric(table2_results())
    found = num[(num["group"] == "16") & (num["role"] == "found")].iloc[0]
    base_macs, base_gconv = four_layer_macs(16, 16, 16)
    macs, gconv = four_layer_macs(8, 16, 64)
    assert found["d_macs_total_pct"] == pytest.approx(100 * (macs - base_macs) / base_macs)
    assert found["d_macs_gconv_pct"] == pytest.approx(100 * (gconv - base_gconv) / base_gconv)
    assert found["d_acc"] == pytest.approx(83.88 - 82.94)
    row32 = num[(num["group"] == "32") & (num["role"] == "found")].iloc[0]
    assert row32["gross_std"] == pytest.approx(np.std([82.80, 82.94], ddof=1))
    assert row32["n"] == 2 and row32["config"] == (32, 16, 64)
    assert np.isnan(num[num["role"] == "baseline"]["d_acc"]).all()
    # population std on request
    num0 = search_table_numeric(table2_results(), ddof=0)
    assert num0.loc[1, "true_std"] == pytest.approx(0.05)


def test_increase_and_labels_and_gross_delta():
    df = pd.DataFrame([
        dict(group="g", role="baseline", config="4 4", macs=100, gconv_macs=40, gross_acc=70.0, true_acc=71.0),
        dict(group="g", role="found", config=(8, 4), macs=112, gconv_macs=52, gross_acc=70.5, true_acc=70.0,
             label="mine"),
    ])
    table = search_table(df)
    assert table.loc[1].tolist() == ["mine", "112", "70.50", "70.00", "↓ 1.00", "↑ 12.0%", "↑ 30.0%"]
    assert search_table(df, delta_acc="gross").loc[1, "ΔAcc"] == "↑ 0.50"


def test_errors():
    df = pd.DataFrame([dict(group="g", role="found", config=(1,), macs=1, gconv_macs=1, gross_acc=1.0,
                            true_acc=1.0)])
    with pytest.raises(ValueError, match="exactly one 'baseline'"):
        search_table(df)
    with pytest.raises(ValueError, match="unknown role"):
        search_table(df.assign(role="winner"))
    with pytest.raises(ValueError, match="missing columns"):
        search_table(df.drop(columns="macs"))


def test_format_ap_table():
    ap = pd.DataFrame({"All": [43.04, 44.12], "Mean": [60.66, 71.2]}, index=["No Fine-tuning", "GroSS"])
    out = format_ap_table(ap)
    assert out.loc["No Fine-tuning"].tolist() == ["43.0", "60.7"]
    bold = format_ap_table(ap, bold_best=True)
    assert bold.loc["GroSS"].tolist() == ["**44.1**", "**71.2**"]
    assert bold.loc["No Fine-tuning", "All"] == "43.0"
