"""Tests of gross.pipeline.decomposition (and base): stored GroSS models, missing predecessors, MAC table."""

import shutil

import pandas as pd
import pytest
import torch

from gross.runs import config
from gross.utils import paths
from gross.method.decomposition import decompose, search_space, set_config
from gross.runs.jobs import CorruptOutputError, load_output, run_jobs
from gross.pipeline import base, common, decomposition as dec
from gross.runs import store


@pytest.fixture
def cfg(gross_runs):
    return config.load("smoke", device="cpu")


def test_missing_predecessor_gives_clear_message(cfg):
    with pytest.raises(FileNotFoundError, match=r"four_layer_gross_0\.pt is missing: run notebooks/02_finetuning"):
        dec.load_gross(cfg, "four_layer", 0)
    with pytest.raises(FileNotFoundError, match=r"run notebooks/01_decomposition\.ipynb first \(profile 'smoke'\)"):
        dec.load_gross(cfg, "four_layer", 0, tuned=False)
    with pytest.raises(FileNotFoundError, match=r"01_decomposition"):
        base.base_model(cfg, "vgg16", train=False)


def test_gross_payload_round_trip(cfg):
    torch.manual_seed(0)
    model = common.build_model(cfg, "four_layer")
    decompose(model, tol=1e-2, max_iter=1)
    loaded = dec.gross_from_payload(cfg, "four_layer", dec.gross_payload(model))
    assert search_space(loaded) == search_space(model)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    for c in [(1, 1, 1), (32, 4, 64)]:
        set_config(model, c)
        set_config(loaded, c)
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.conv2.btd_errors.keys() == model.conv2.btd_errors.keys()


def test_base_models_restricted_and_stale_after_a_change(cfg, gross_runs):
    df = base.base_models(cfg, models="four_layer").tables["base_models"]
    assert list(df["model"]) == ["four_layer"]
    assert not (gross_runs / "smoke" / "vgg16_base.pt").exists()
    other = config.load("smoke", device="cpu", four_layer__base_epochs=2)
    with pytest.raises(store.ArtefactError, match=r"differing: \['four_layer.base_epochs'\]"):
        base.base_model(other, "four_layer", train=False)
    base.base_model(config.load("smoke", device="cpu", vgg16__base_epochs=2), "four_layer", train=False)


def test_mac_table_matches_every_printed_paper_value(cfg):
    table = dec.mac_table(cfg).tables["table_macs"]
    paper_rows = table[table["width_mult"] == 1.0]
    assert len(paper_rows) == len(dec.PAPER_MACS)
    assert paper_rows["matches_paper"].all(), paper_rows[~paper_rows["matches_paper"].astype(bool)]
    reduced = table[table["width_mult"] != 1.0]
    assert list(reduced["config"])[0] == "full" and len(reduced) == 1 + len(cfg["vgg16"]["baselines"]) + 1
    assert (paths.results_dir("smoke") / "table_macs.csv").exists()



def _old_decompose(cfg, name, repeat):
    """The step's decomposition before BTDs were jobs: ``decompose`` of the whole base network in-process."""
    sec = cfg[name]
    model = base.base_model(cfg, name, train=False)
    decompose(model, group_sizes=dec.group_sizes(cfg, name), tol=sec["btd_tol"], max_iter=sec["btd_max_iter"],
              method=sec["btd_method"], ridge=sec["btd_ridge"], seed=int(cfg["seed"]) + int(repeat))
    return dec.gross_payload(model)


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the pool's workers run 1 thread each: the same reduction order everywhere
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def submissions(monkeypatch):
    """(number of jobs, executor name) of every run_jobs call of the decomposition step."""
    calls = []

    def spy(jobs, settings, **kwargs):
        calls.append((len(jobs), settings.name))
        return run_jobs(jobs, settings, **kwargs)

    monkeypatch.setattr(dec, "run_jobs", spy)
    return calls


def _use_runs(monkeypatch, root, copy_from=None):
    if copy_from is not None:
        shutil.copytree(copy_from, root)
    monkeypatch.setenv("GROSS_RUNS", str(root))
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    return root / "smoke"


def _smoke2(**overrides):
    return config.load("smoke", device="cpu", num_threads=1, four_layer__repeats=2, **overrides)


def test_btd_jobs_of_all_repeats_equal_decompose_serially_and_in_a_pool(tmp_path, monkeypatch, one_thread,
                                                                          submissions):
    cfg = _smoke2()
    _use_runs(monkeypatch, tmp_path / "prepared")
    base.base_models(cfg, models=["four_layer"])
    n_btd = len(dec.decomposition_jobs(cfg, "four_layer", 0))
    outputs = {}
    for label, ex in [("serial", {}), ("local", dict(executor__name="local", executor__workers=2,
                                                     executor__threads=1, executor__gpus=0))]:
        runs = _use_runs(monkeypatch, tmp_path / label, tmp_path / "prepared")
        submissions.clear()
        table = dec.btd_error_table(_smoke2(**ex), models=["four_layer"]).tables["btd_errors"]
        assert submissions[0] == (2 * n_btd, label)  # every layer, size and repeat in one submission
        assert len(list((runs / "btd" / "four_layer").glob("*-s*-*.pt"))) == 2 * n_btd
        outputs[label] = (runs, table)
    ref_runs = _use_runs(monkeypatch, tmp_path / "reference", tmp_path / "prepared")
    for r in range(2):
        ref = store.Store(cfg).make(f"ref_{r}.pt", lambda: _old_decompose(cfg, "four_layer", r), "01_decomposition")
        ref_env = torch.load(ref_runs / f"ref_{r}.pt", weights_only=True)
        for label, (runs, _) in outputs.items():
            env = torch.load(runs / dec.init_path("four_layer", r), weights_only=True)
            assert (env["settings"], env["fingerprint"]) == (ref_env["settings"], ref_env["fingerprint"]), label
            got = env["payload"]
            assert got["state_dict"].keys() == ref["state_dict"].keys()
            assert all(torch.equal(got["state_dict"][k], ref["state_dict"][k]) for k in ref["state_dict"]), (label, r)
            assert (got["btd_errors"], got["space"]) == (ref["btd_errors"], ref["space"])
    serial, pool = outputs["serial"][1], outputs["local"][1]
    pd.testing.assert_frame_equal(pool.drop(columns="decomposition_s"), serial.drop(columns="decomposition_s"),
                                  check_exact=True)
    assert serial.groupby("repeat")["decomposition_s"].nunique().eq(1).all()


def test_decomposition_reruns_only_missing_btd_jobs_and_reports_corrupt_ones(tmp_path, monkeypatch, one_thread,
                                                                            submissions):
    cfg = _smoke2()
    runs = _use_runs(monkeypatch, tmp_path / "runs")
    base.base_models(cfg, models=["four_layer"])
    dec.btd_error_table(cfg, models=["four_layer"])
    jobs = [job for _, _, job in dec.decomposition_jobs(cfg, "four_layer", 1)]
    payload = store.Store(cfg).load(dec.init_path("four_layer", 1), "01_decomposition")
    assert payload["wall_time_s"] == sum(load_output(job.output)["seconds"] for job in jobs)  # BTD job times
    first = {p: p.stat().st_mtime_ns for p in (runs / "btd").rglob("*.pt")}
    (runs / dec.init_path("four_layer", 1)).unlink()
    jobs[0].output.unlink()
    submissions.clear()
    again = dec.btd_error_table(cfg, models=["four_layer"]).tables["btd_errors"]
    assert submissions[0] == (len(jobs), "serial")  # repeat 1's jobs submitted, ...
    assert {p: p.stat().st_mtime_ns for p in (runs / "btd").rglob("*.pt")} == first | {
        jobs[0].output: jobs[0].output.stat().st_mtime_ns}  # ... but only the missing one ran
    assert len(again) == 2 * len(jobs)
    (runs / dec.init_path("four_layer", 1)).unlink()
    jobs[1].output.write_bytes(b"garbage")
    with pytest.raises(CorruptOutputError, match=jobs[1].output.name):
        dec.btd_error_table(cfg, models=["four_layer"])
