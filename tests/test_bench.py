"""Tests of gross.bench: the quick suite runs end to end and its table is consistent."""

import json
import math
import time

import pandas as pd
import pytest
import torch

from gross import bench
from gross.method.decomposition import random_gross
from gross.method.decomposition import enumerate_configs, export, search_space, set_config
from gross.method.macs import count_macs
from gross.models import four_layer_net, vgg16_cifar


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    start = time.perf_counter()
    table = bench.run("quick", device="cpu", out=out)
    return table, out, time.perf_counter() - start


def test_quick_suite_writes_every_benchmark(quick):
    table, out, _ = quick  # (its wall time is not asserted: timings belong to the benchmarks, not the tests)
    assert list(table.columns) == bench.COLUMNS
    assert set(table["benchmark"]) == set(bench.BENCHMARKS)
    on_disk = pd.read_csv(out / "benchmarks.csv")
    assert len(on_disk) == len(table) and list(on_disk.columns) == bench.COLUMNS
    assert (out / "benchmarks.md").read_text().count("\n") >= len(table) + 2
    meta = json.loads((out / "benchmarks.meta.json").read_text())
    assert meta["preset"] == "quick" and meta["settings"]["tree_images"] == bench.PRESETS["quick"].tree_images
    assert meta["machine"]["cpu_count"] >= 1 and "torch" in meta["versions"]
    assert set(meta["benchmark_seconds"]) == set(bench.BENCHMARKS)


def test_quick_rows_are_consistent(quick):
    table, _, _ = quick
    timed = table.dropna(subset=["measured_s"])
    assert (timed["measured_s"] > 0).all()
    both = table.dropna(subset=["measured_s", "versus_s"])
    assert len(both) >= 5  # train_step, switching, tree, latency, data compare two timings
    assert (both["ratio"] - both["measured_s"] / both["versus_s"]).abs().max() < 1e-12
    assert (both["target"].str.len() > 0).all()
    for _, row in both.iterrows():
        if row["target"] == "ratio <= 1.3":
            assert row["met"] == (row["ratio"] <= 1.3)
        if row["target"].startswith("ratio >= 5"):
            assert row["met"] == (row["ratio"] >= 5)
    steps = table[table["benchmark"] == "train_step"]
    per_config = steps[steps["target"] == "ratio <= 1.3"]
    summary = steps[steps["target"] == "every config's ratio <= 1.3"].iloc[0]
    assert summary["met"] == bool((per_config["ratio"] <= 1.3).all())
    assert summary["measured_s"] == pytest.approx(per_config["measured_s"].mean())
    tree = table[table["benchmark"] == "tree"].iloc[0]
    assert f"all {len(enumerate_configs(search_space(random_gross(four_layer_net()))))} configs" in tree["case"]
    assert "difference tree vs one by one 0" in tree["note"]  # same accuracies either way
    btd_total = table[(table["benchmark"] == "btd") & table["case"].str.endswith("total")]
    assert len(btd_total) == 2
    vgg_total = btd_total[btd_total["case"].str.startswith("vgg16")].iloc[0]
    assert "stopped at the cap of 1 sweeps" in vgg_total["note"]  # quick caps every VGG-16 BTD at 1 sweep


def test_time_call_counts_and_measures():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.01)

    times = bench.time_call(fn, repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3
    assert all(0.009 <= t < 1.0 for t in times)
    with pytest.raises(ValueError, match="repeats"):
        bench.time_call(fn, repeats=0)


def test_random_gross_has_the_decompose_structure():
    # the structure decompose() gives (paper: powers of two up to each layer's width)
    model = random_gross(four_layer_net(), seed=1)
    assert dict(search_space(model)) == {"conv2": (1, 2, 4, 8, 16, 32), "conv3": (1, 2, 4, 8, 16, 32),
                                         "conv4": (1, 2, 4, 8, 16, 32, 64)}
    vgg = random_gross(vgg16_cifar(width_mult=0.125), bench.VGG_GROUP_SIZES)
    space = search_space(vgg)
    assert len(space) == 12 and space["conv2"] == (1, 4) and space["conv13"] == (1, 4, 16, 32)
    # the random series is a working network: exported bottleneck == GroSS forward (float64)
    model = model.double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    config = (4, 2, 16)
    set_config(model, config)
    with torch.no_grad():
        expected = model(x)
        got = export(model, config).eval()(x)
    assert torch.isfinite(expected).all() and expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_latency_uses_committed_search_results(tmp_path, monkeypatch):
    model = random_gross(four_layer_net())
    space = search_space(model)
    configs = enumerate_configs(space)
    baseline = bench._uniform(space, 16)
    budget = count_macs(model, config=baseline).total
    cheap = [c for c in configs if count_macs(model, config=c).total <= budget and c != baseline]
    winner = cheap[len(cheap) // 2]
    rows = [{"config": " ".join(map(str, c)), "macs": count_macs(model, config=c).total,
             "gconv_macs": count_macs(model, config=c).gconv, "accuracy": 90.0 if c == winner else 10.0}
            for c in configs]
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path))  # results_dir("cpu") -> tmp_path / "results"
    (tmp_path / "results").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "results" / "exhaustive_search_all.csv", index=False)
    found, source = bench._found_configs(model, [baseline], seed=0)
    assert found == [winner] and "exhaustive search" in source
    # without the file: seeded stand-ins within the budget, labelled as such
    (tmp_path / "results" / "exhaustive_search_all.csv").unlink()
    found, source = bench._found_configs(model, [baseline], seed=0)
    assert count_macs(model, config=found[0]).total <= budget and "stand-in" in source


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="preset"):
        bench.run("huge")
    with pytest.raises(ValueError, match="benchmark"):
        bench.run("quick", device="cpu", only=["nope"])


def test_override_settings():
    quick = bench.PRESETS["quick"]
    changed = bench.override(quick, ["tree_images=50", "data_source=none", "latency_batches=(1, 2)"])
    assert (changed.tree_images, changed.data_source, changed.latency_batches) == (50, "none", (1, 2))
    assert changed.repeats == quick.repeats
    with pytest.raises(ValueError, match="KEY=VALUE"):
        bench.override(quick, ["no_such_field=1"])
    with pytest.raises(ValueError, match="number"):
        bench.override(quick, ["tree_images=many"])


def test_cli_subset(tmp_path):
    assert bench.main(["--quick", "--only", "latency", "--device", "cpu", "--out", str(tmp_path),
                       "--name", "lat", "--set", "latency_batches=(2,)"]) == 0
    table = pd.read_csv(tmp_path / "lat.csv")
    assert set(table["benchmark"]) == {"latency"} and table["case"].str.contains("batch 2:").all()
    assert not math.isnan(table["ratio"].iloc[0])


def test_register_adds_a_group_with_its_own_settings(tmp_path, monkeypatch):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Own:
        n: int = 5

    monkeypatch.setattr(bench.core, "GROUPS", dict(bench.GROUPS))  # restored after the test
    monkeypatch.setattr(bench.core, "BENCHMARKS", dict(bench.BENCHMARKS))
    seen = []

    @bench.register("toy", presets={"default": Own(), "quick": Own(n=2)})
    def toy(settings, device):
        seen.append(settings)
        return [bench.row("toy", f"n={settings.n}", "a", 2.0, "b", 4.0, device=device)]

    assert list(bench.core.BENCHMARKS)[-1] == "toy"  # runs after the built-in groups
    table = bench.run("quick", device="cpu", out=tmp_path, only=["toy"])
    assert seen == [Own(n=2)] and table["case"].tolist() == ["n=2"] and table["ratio"].tolist() == [0.5]
    meta = json.loads((tmp_path / "benchmarks.meta.json").read_text())
    assert meta["settings"]["toy"] == {"n": 2}
    bench.run("default", device="cpu", out=tmp_path, only=["toy"])
    assert seen[-1] == Own(n=5)
    with pytest.raises(ValueError, match="benchmark group 'toy' is already registered"):
        bench.register("toy", lambda settings, device: [])
    with pytest.raises(ValueError, match="must include 'default'"):
        bench.register("toy2", lambda settings, device: [], presets={"quick": Own()})


def test_python_dash_m_entry_point_lists_the_groups():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "gross.bench", "--help"], capture_output=True, text=True, check=True)
    assert "btd,train_step,train_layout,switching,tree,latency,data" in out.stdout.replace("\n", "").replace(" ", "")
