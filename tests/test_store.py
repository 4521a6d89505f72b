"""Tests of gross.runs.store: artefacts with fingerprints, stale / damaged files, the run lock."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from gross.runs import config
from gross.utils import paths
from gross.runs import store as st


@pytest.fixture
def cfg(gross_runs):
    return config.load("smoke", device="cpu")


def _compute(cfg, calls):
    def compute():
        calls.append(1)
        return {"tensor": torch.arange(3), "value": cfg["four_layer"]["btd_tol"] * 2 + cfg["seed"]}
    return compute


def test_make_records_settings_read_and_reuses_fresh_artefacts(cfg):
    s, calls = st.Store(cfg), []
    with st.watch() as made:
        out = s.make("a.pt", _compute(cfg, calls), "01_decomposition")
        again = s.make("a.pt", _compute(cfg, calls), "01_decomposition")
    assert calls == [1] and made == ["a.pt"]
    assert again["value"] == out["value"] and torch.equal(again["tensor"], torch.arange(3))
    env = torch.load(s.path("a.pt"), weights_only=True)
    assert env["settings"] == {"four_layer.btd_tol": cfg["four_layer"]["btd_tol"], "seed": cfg["seed"]}
    assert env["fingerprint"] == st.fingerprint(env["settings"]) and env["format"] == st.FORMAT


def test_changed_setting_makes_artefact_stale(cfg, gross_runs):
    calls = []
    st.Store(cfg).make("a.pt", _compute(cfg, calls), "01_decomposition")
    other = config.load("smoke", device="cpu", four_layer__btd_tol=0.5)
    with pytest.raises(st.ArtefactError, match=r"different settings \(differing: \['four_layer.btd_tol'\]\); "
                                               r"re-run notebooks/01_decomposition.ipynb"):
        st.Store(other).load("a.pt", "01_decomposition")
    # a key the artefact did not read changes nothing
    assert st.Store(config.load("smoke", device="cpu", vgg16__bfs_runs=7)).is_fresh("a.pt")
    assert st.Store(config.load("smoke", device="cpu", data__eval_batch_size=3)).is_fresh("a.pt")
    out = st.Store(other).make("a.pt", _compute(other, calls), "01_decomposition")
    assert calls == [1, 1] and out["value"] == 1.0


def test_load_errors_name_the_problem(cfg):
    s = st.Store(cfg)
    with pytest.raises(FileNotFoundError, match=r"a\.pt is missing: run notebooks/02_finetuning\.ipynb first "
                                                r"\(profile 'smoke'\)"):
        s.load("a.pt", "02_finetuning")
    s.path("bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(st.ArtefactError, match=r"bad\.pt is damaged and cannot be read"):
        s.load("bad.pt", "01_decomposition")
    torch.save({"state_dict": {}}, s.path("old.pt"))
    with pytest.raises(st.ArtefactError, match=r"old\.pt was not written by this version of gross"):
        s.load("old.pt", "01_decomposition")
    s.save("x.json", {"v": 1}, {"seed": 0})
    env = json.loads(s.path("x.json").read_text())
    env["settings"]["seed"] = 1  # edited by hand: the fingerprint no longer matches
    s.path("x.json").write_text(json.dumps(env))
    with pytest.raises(st.ArtefactError, match=r"x\.json: its fingerprint .* does not match its settings"):
        s.load("x.json", "02_finetuning")


def test_json_artefacts_round_trip(cfg):
    s = st.Store(cfg)
    out = s.make("true/m/c.json", lambda: {"acc": cfg["seed"] + 0.5}, "02_finetuning")
    assert s.load("true/m/c.json", "02_finetuning") == out
    assert not list(s.path("true/m").glob("*.tmp"))


def test_fingerprint_so_far_only_inside_make(cfg):
    s = st.Store(cfg)
    with pytest.raises(RuntimeError, match="only valid inside Store.make"):
        s.fingerprint_so_far()
    seen = []
    s.make("f.pt", lambda: seen.append(s.fingerprint_so_far()) or {"a": cfg["seed"]}, "01_decomposition")
    assert seen == [st.fingerprint({})]  # nothing read before the call


def test_require(tmp_path):
    missing = tmp_path / "vgg16_gross_0.pt"
    with pytest.raises(FileNotFoundError, match=r"run notebooks/02_finetuning.ipynb first \(profile 'cpu'\)"):
        st.require(missing, "02_finetuning", "cpu")
    missing.write_text("x")
    assert st.require(missing, "02_finetuning") == missing


_HOLDER = textwrap.dedent("""
    import pathlib, sys, time
    from gross.runs.store import lock
    with lock("smoke") as path:
        print("locked", flush=True)
        time.sleep(float(sys.argv[1]))
        (path.parent / "holder-done").write_text("x")  # the last thing before the lock is released
""")


def test_lock_refuses_a_second_run_waits_and_is_released_on_exit(gross_runs):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(st.RunLocked, match=rf"{paths.run_dir('smoke')} is in use by another run \(pid "
                                               rf"{holder.pid}, started .*GROSS_RUNS"):
            with st.lock("smoke"):
                pass
        with st.lock("other"):  # another profile's folder is free
            pass
        with st.lock("smoke", wait=True):  # waits for the holder to finish
            assert (paths.run_dir("smoke") / "holder-done").exists()
    finally:
        holder.kill()
        holder.wait()
    killed = subprocess.Popen([sys.executable, "-c", _HOLDER, "60"], stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "locked"
    killed.kill()  # a crashed run does not leave the folder locked
    killed.wait()
    with st.lock("smoke"):
        pass
