"""gross.bench.device: rows written the moment they are measured, and the paper-profile extrapolation."""

import math

import pandas as pd
import pytest

from gross.bench import device
from gross.runs import config


def test_row_writer_appends_each_row_at_once(tmp_path, capsys):
    writer = device.RowWriter(tmp_path / "sub" / "rows.csv")
    writer.write("ksweep", "K=1", networks=1, seconds=1.5)
    first = pd.read_csv(tmp_path / "sub" / "rows.csv")  # on disk before the next row exists
    assert list(first.columns) == device.ROW_COLUMNS and len(first) == 1
    writer.write("ksweep", "K=8", networks=8, seconds=2.0, met=True)
    rows = pd.read_csv(tmp_path / "sub" / "rows.csv")
    assert list(rows["networks"]) == [1, 8] and list(rows["case"]) == ["K=1", "K=8"]
    assert "[row] ksweep | K=8 | networks=8" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown row columns"):
        writer.write("ksweep", "x", speed=3)


def test_paper_workload_counts_the_profile():
    cfg = config.load("paper")
    w = device.paper_workload(cfg).set_index(["model", "stage"])
    assert w.loc[("four_layer", "gross"), "runs"] == 5 and w.loc[("four_layer", "gross"), "epochs"] == 150
    # (4 baselines + the 1s + one found per baseline) x 5 repeats + Table 5's 45 configurations
    assert w.loc[("four_layer", "config"), "runs"] == (4 + 1 + 4) * 5 + 45
    assert w.loc[("vgg16", "base"), "epochs"] == 200


def test_paper_estimate_from_measured_rows():
    rows = pd.DataFrame([
        {"stage": "paper", "case": "four_layer base", "networks": 1, "seconds": 2.0},
        {"stage": "paper", "case": "four_layer gross", "networks": 1, "seconds": 3.0},
        {"stage": "paper", "case": "four_layer config", "networks": 64, "seconds": 10.0},
        {"stage": "ksweep", "case": "four_layer base", "networks": 1, "seconds": 99.0},  # not a paper row
    ])
    workload = device.paper_workload(config.load("paper"))
    table = device.paper_estimate(rows, workload).set_index(["model", "stage"])
    assert table.loc[("four_layer", "base"), "estimate_s"] == 100 * 2.0
    assert table.loc[("four_layer", "gross"), "estimate_s"] == 5 * 150 * 3.0
    assert table.loc[("four_layer", "config"), "sequential_runs"] == math.ceil(90 / 64) == 2
    assert table.loc[("four_layer", "config"), "estimate_s"] == 2 * 100 * 10.0
    assert math.isnan(table.loc[("vgg16", "base"), "estimate_s"])
    total = table.loc[("all", "total")]
    assert total["estimate_s"] == 200 + 2250 + 2000 and total["estimate_min"] == pytest.approx(4450 / 60)
    assert "vgg16 base" in total["note"]
