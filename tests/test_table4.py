"""Tests of gross.pipeline.table4: the whole Table 4 path under the smoke profile on a generated folder."""

import json

import pandas as pd
import pytest
import torch

from gross.runs import config
from gross.data import imagenet as inet
from gross.pipeline import EXPECTED_OUTPUTS, STEPS, expected_outputs
from gross.pipeline import table4

CLASSES = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A generated ImageNet-style folder and random 'pretrained' weights of both reduced networks."""
    tmp = tmp_path_factory.mktemp("table4")
    root = inet.generate_folder(tmp / "data", classes=CLASSES, train_per_class=12, val_per_class=4, size=40)
    weights = {}
    for name, kw in (("vgg16", {"hidden": 32}), ("resnet18", {})):
        torch.manual_seed(0)
        weights[name] = tmp / f"{name}.pth"
        torch.save(inet.build(name, num_classes=CLASSES, width_mult=0.125, **kw).state_dict(), weights[name])
    return tmp, root, weights


@pytest.fixture(scope="module")
def run(files):
    """The Table 4 step run once under the smoke profile: ``(cfg, result, output folder, runs folder)``."""
    tmp, root, weights = files
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp / "runs"))
        mp.setenv("GROSS_OUTPUTS", str(tmp / "out"))
        cfg = config.load("smoke", device="cpu", imagenet__root=str(root),
                          imagenet__vgg16_weights=str(weights["vgg16"]),
                          imagenet__resnet18_weights=str(weights["resnet18"]))
        yield cfg, table4.imagenet_bfs(cfg), tmp / "out", tmp / "runs"


def test_whole_table4_path_writes_every_row(run):
    cfg, res, out, _ = run
    table = res.tables["table4_imagenet"]
    first = table.columns[0]
    labels = table[first].tolist()
    assert first == "ImageNet Configuration" and len(table) == 14  # 6 VGG-16 + 6 ResNet-18 + 2 [26]
    for title, n in (("VGG-16", 12), ("ResNet-18", 16)):
        i = labels.index(f"{title} (Full)")
        block = labels[i + 1:i + 6]
        assert [lab.startswith("Baseline") for lab in block] == [True, False, True, False, False]
        assert block[-1].startswith("Depthwise") and all(len(lab.split(":")[-1].split()) == n for lab in block)
    assert (table["MACs"] != "").all()
    written = pd.read_csv(out / "results" / "table4_imagenet.csv")
    assert written[first].tolist() == labels
    md = (out / "results" / "table4_imagenet.md").read_text()
    assert "[26]" in md and "Wang et al." in md and "Zhang" not in md and "imagenet.width_mult = 0.125" in md
    # machine-only keys and weight paths are read but are not reductions vs the paper
    assert "imagenet.workers" not in md and "imagenet.vgg16_weights" not in md
    meta = json.loads((out / "results" / "table4_imagenet.meta.json").read_text())
    assert meta["profile"] == "smoke" and meta["settings_read"] == res.reads
    for name in ("vgg16", "resnet18"):
        assert (out / "figures" / f"fig4_bfs_imagenet_{name}.png").stat().st_size > 0
        assert b"/Subtype /Image" not in (out / "figures" / f"fig4_bfs_imagenet_{name}.pdf").read_bytes()
    trace = pd.read_csv(out / "results" / "bfs_imagenet_trace.csv")
    assert set(trace["model"]) == {"vgg16", "resnet18", "vgg16 [26]"} and trace["accuracy"].between(0, 100).all()


def test_wang_et_al_rows(run):
    """Table 4's [26] rows: the structure's asymmetric layers, searched under the original's correct MACs."""
    from gross.method.layers import gross_layers
    from gross.method.macs import count_macs
    from gross.method.structures import WANG_ET_AL

    cfg, res, _, runs = run
    table = res.tables["table4_imagenet"]
    labels = table.iloc[:, 0].tolist()
    assert labels[-2] == "[26]: " + " ".join(map(str, WANG_ET_AL.configs["original"])) + "*"
    assert labels[-1].startswith("Found: ") and labels[-1].endswith("*")
    found = tuple(int(x) for x in labels[-1].removeprefix("Found: ").rstrip("*").split())
    model = table4.decomposed(cfg, "vgg16", CLASSES, "wang")
    assert [m.widths for m in gross_layers(model).values()] == list(WANG_ET_AL.widths)  # full-size [26] widths
    assert tuple(table4.search_space(model).values()) == WANG_ET_AL.group_sizes
    size = (3, cfg["imagenet"]["crop"], cfg["imagenet"]["crop"])
    original = count_macs(model, size, config=WANG_ET_AL.configs["original"])
    assert count_macs(model, size, config=found).total <= original.total  # the BFS budget, counted correctly
    # the individual fine-tunes ran the [26] schedule (their own checkpoints) on the exported networks
    for c in (WANG_ET_AL.configs["original"], found):
        label = "-".join(map(str, c))
        ckpt = list((runs / "smoke").glob(f"imagenet-*/vgg16_wang_config_{label}.pt"))
        assert ckpt
        # ... keeping the best epoch by held-out accuracy (imagenet.wang_keep_best), the authors' early stopping
        done = table4.ddp.read_checkpoint(ckpt[0])
        assert done["best"]["epoch"] >= 1 and "select_accuracy" in done["run"]["history"][-1]
        assert done["best"]["accuracy"] == max(h["select_accuracy"] for h in done["run"]["history"])
    # the GroSS fine-tune trained every weight and drew configurations of the structure (the authors' schedule)
    state = table4.ddp.read_checkpoint(next((runs / "smoke").glob("imagenet-*/vgg16_wang_gross.pt")))
    assert state["trainable"] == "gross_all" and len(state["run"]["configs"]) > 0
    assert state["recipe"]["lr"] == 5e-5  # vgg16_imagenet_wang_gross (the other VGG-16 rows: imagenet.vgg16_lr)


def test_every_imagenet_key_is_read(run):
    """With a root, the step reads every ``[imagenet]`` key of the paper profile (none is dead)."""
    _, res, _, _ = run
    schema = {".".join(k) for k in config.flatten(config.load("paper").to_dict()) if k[0] == "imagenet"}
    assert schema <= set(res.reads), sorted(schema - set(res.reads))


def test_declared_outputs_are_optional():
    decl = STEPS["imagenet_bfs"]
    assert decl.optional and decl.notebook == "04_breadth_first_search"
    names = expected_outputs(include_optional=True)["04_breadth_first_search"]
    for out in ("table4_imagenet.csv", "bfs_imagenet_trace.md", "fig4_bfs_imagenet_resnet18.png"):
        assert out in names and out not in EXPECTED_OUTPUTS["04_breadth_first_search"]


def test_artefacts_are_reused_and_true_column_matches(run):
    cfg, res, _, runs = run
    saved = list((runs / "smoke").glob("imagenet-*/*_gross.pt"))
    assert len(saved) == 3  # vgg16, resnet18, vgg16_wang
    mtimes = {p: p.stat().st_mtime_ns for p in saved}
    tuned = table4.gross_finetuned(cfg, "resnet18", CLASSES)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    # the decompositions ran as one job per (layer, group size), outputs beside the run's artefacts
    for name in ("vgg16", "resnet18"):
        model = table4.decomposed(cfg, name, CLASSES)
        jobs = list((runs / "smoke").glob(f"imagenet-*/btd/{name}/*-s*-*.pt"))
        assert len(jobs) == sum(len(s) for s in table4.search_space(model).values())
    table = res.tables["table4_imagenet"]
    depthwise = table.loc[table.iloc[:, 0].str.startswith("Depthwise"), "True"].iloc[-1]
    ones = table4.uniform(table4.search_space(tuned), 1)
    assert table4.imagenet_true_accuracy(cfg, "resnet18", ones, CLASSES) == pytest.approx(float(depthwise))
    # another number of workers / processes is the same run (machine-only keys are not in the folder's hash)
    other = config.load("smoke", device="cpu", imagenet__root=cfg["imagenet"]["root"], imagenet__workers=2,
                        imagenet__eval_batch_size=7, imagenet__vgg16_weights=cfg["imagenet"]["vgg16_weights"],
                        imagenet__resnet18_weights=cfg["imagenet"]["resnet18_weights"])
    assert table4._work_dir(other) == table4._work_dir(cfg)
    assert table4._work_dir(config.load("smoke", imagenet__root="x", imagenet__bfs_runs=3)) != table4._work_dir(cfg)


def test_skipped_without_root_and_clear_errors(files, tmp_path, monkeypatch):
    _, root, _ = files
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp_path / "out"))
    empty = config.load("smoke")
    assert table4.imagenet_bfs(empty) is None and not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="imagenet.root is empty"):
        table4.settings(empty)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    bad = config.load("smoke", imagenet__root=str(root), imagenet__vgg16_weights="")
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        table4.pretrained(bad, "vgg16", CLASSES)
    with pytest.raises(ValueError, match="imagenet.models"):
        config.load("smoke", imagenet__root="x", imagenet__models=["alexnet"])
    assert config.load("smoke", imagenet__workers=0)["imagenet"]["workers"] == 0
    with pytest.raises(ValueError, match="'imagenet.workers' must be >= 0"):
        config.load("smoke", imagenet__workers=-1)


def test_module_entry_without_root_is_an_argparse_error():
    with pytest.raises(SystemExit):
        table4.main(["--profile", "smoke"])  # no root: argparse error naming imagenet__root
