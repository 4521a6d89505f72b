"""Tests of gross.table4: the whole Table 4 path under the smoke profile on a generated folder."""

import json

import pandas as pd
import pytest
import torch

from gross import config, table4
from gross import imagenet as inet


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("GROSS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "out"))
    root = inet.generate_folder(tmp_path / "data", classes=10, train_per_class=20, val_per_class=4, size=64)
    weights = {}
    for name, kw in (("vgg16", {"hidden": 32}), ("resnet18", {})):
        torch.manual_seed(0)
        weights[name] = tmp_path / f"{name}.pth"
        torch.save(inet.build(name, num_classes=10, width_mult=0.125, **kw).state_dict(), weights[name])
    return config.load("smoke", imagenet__root=str(root), imagenet__vgg16_weights=str(weights["vgg16"]),
                       imagenet__resnet18_weights=str(weights["resnet18"]))


def test_whole_table4_path_writes_every_row(cfg, tmp_path):
    res = table4.table4(cfg)
    table = res.tables["table4_imagenet"]
    first = table.columns[0]
    labels = table[first].tolist()
    assert len(table) == 12
    for title, n in (("VGG-16", 12), ("ResNet-18", 16)):
        i = labels.index(f"{title} (Full)")
        block = labels[i + 1:i + 6]
        assert [lab.startswith("Baseline") for lab in block] == [True, False, True, False, False]
        assert block[-1].startswith("Depthwise") and all(len(lab.split(":")[-1].split()) == n for lab in block)
    out = tmp_path / "out"
    written = pd.read_csv(out / "results" / "table4_imagenet.csv")
    assert written[first].tolist() == labels
    md = (out / "results" / "table4_imagenet.md").read_text()
    assert "[26]" in md and "supplementary material" in md and "imagenet.width_mult = 0.125" in md
    meta = json.loads((out / "results" / "table4_imagenet.meta.json").read_text())
    assert meta["profile"] == "smoke"
    for name in ("vgg16", "resnet18"):
        assert (out / "figures" / f"fig4_bfs_imagenet_{name}.png").stat().st_size > 0
    trace = pd.read_csv(out / "results" / "bfs_imagenet_trace.csv")
    assert set(trace["model"]) == {"vgg16", "resnet18"} and trace["accuracy"].between(0, 100).all()
    # found configurations stay within their baseline's MACs; accuracies are percentages
    num = res.tables["table4_imagenet"]
    assert (num["MACs"] != "").all()
    # artefacts are reused: a second call gives the same table without training again
    runs = list((tmp_path / "runs" / "smoke").glob("imagenet-*/*_gross.pt"))
    assert len(runs) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in runs}
    tuned = table4.gross_finetuned(cfg, "resnet18", 10)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert table4.true_accuracy(cfg, "resnet18", table4._uniform(table4.search_space(tuned), 1), 10) == \
        pytest.approx(float(table[first].str.startswith("Depthwise").pipe(lambda m: table.loc[m, "True"]).iloc[-1]))


def test_skipped_without_root_and_clear_errors(cfg, tmp_path, monkeypatch):
    empty = config.load("smoke")
    assert table4.table4(empty) is None
    with pytest.raises(ValueError, match="imagenet.root is empty"):
        table4.settings(empty)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    bad = config.load("smoke", imagenet__root=cfg["imagenet"]["root"], imagenet__vgg16_weights="")
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        table4.pretrained(bad, "vgg16", 10)
    with pytest.raises(ValueError, match="unknown ImageNet model"):
        table4.settings(config.load("smoke", imagenet__root="x", imagenet__models=["alexnet"]))
