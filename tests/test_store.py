"""Tests of gross.runs.store: artefacts with fingerprints, stale / damaged files, the run lock."""

import json
import os
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
    env = s.read("a.pt")
    assert env["settings"] == {"four_layer.btd_tol": cfg["four_layer"]["btd_tol"], "seed": cfg["seed"]}
    assert env["fingerprint"] == st.fingerprint(env["settings"]) and env["version"] == st.FORMAT


@pytest.mark.parametrize("name", ["b.pt", "b.json"])
def test_a_loaded_artefact_records_the_same_reads_as_a_computed_one(cfg, name):
    # keys without effect on the result (data.eval_batch_size) are not fingerprinted, but a step that
    # loads the artefact must still list them among its settings_read, as one that computed it does
    def compute():
        return {"value": cfg["seed"] + cfg["data"]["eval_batch_size"]}

    s = st.Store(cfg)
    with config.recording() as computed:
        s.make(name, compute, "01_decomposition")
    with config.recording() as loaded:
        s.make(name, compute, "01_decomposition")
    assert computed == loaded == {"seed", "data.eval_batch_size"}
    env = s.read(name)
    assert env["settings"] == {"seed": cfg["seed"]} and env["also_read"] == ["data.eval_batch_size"]
    with config.recording() as by_load:
        s.load(name, "01_decomposition")
    assert by_load == computed


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


@pytest.mark.probe
def test_load_errors_name_the_problem(cfg):
    s = st.Store(cfg)
    with pytest.raises(FileNotFoundError, match=r"a\.pt is missing: run notebooks/02_finetuning\.ipynb first "
                                                r"\(profile 'smoke'\)"):
        s.load("a.pt", "02_finetuning")
    s.path("bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(st.ArtefactError, match=r"bad\.pt is unreadable or cannot be read as plain data"):
        s.load("bad.pt", "01_decomposition")
    torch.save({"state_dict": {}}, s.path("old.pt"))
    with pytest.raises(st.ArtefactError, match=r"old\.pt is not a sealed 'gross-artefact' file \(found None: written by another version of gross"):
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


@pytest.mark.probe
def test_lock_refuses_a_symlink(gross_runs, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (paths.run_dir("smoke") / ".lock").symlink_to(victim)
    with pytest.raises(st.RunLocked, match=r"\.lock is a symbolic link .*delete the link"):
        with st.lock("smoke"):
            pass
    assert victim.read_text() == "precious\n"


@pytest.mark.probe
@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x y"])
def test_profile_names_that_are_paths_are_refused(gross_runs, name):
    with pytest.raises(ValueError, match="is not a profile name"):
        paths.run_dir(name)
    with pytest.raises(ValueError, match="is not a profile name"):
        paths.results_dir(name)
    assert list(gross_runs.iterdir()) == []


@pytest.mark.probe
def test_an_edited_json_artefact_fails_its_checksum(cfg):
    s = st.Store(cfg)
    s.make("true.json", lambda: {"val_acc": 9.375, "config": [1, 2]}, "02_finetuning")
    path = s.path("true.json")
    path.write_text(path.read_text().replace("9.375", "99.5"))
    with pytest.raises(st.ArtefactError, match=r"true.json fails its SHA-256 content checksum .*delete it"):
        s.load("true.json", "02_finetuning")
    with pytest.raises(st.ArtefactError, match="checksum"):
        s.make("true.json", lambda: {"val_acc": 0.0}, "02_finetuning")  # never silently re-used


@pytest.mark.probe
def test_an_altered_torch_artefact_fails_its_checksum(cfg):
    s = st.Store(cfg)
    s.make("a.pt", lambda: {"weights": torch.arange(1000.0)}, "01_decomposition")
    env = torch.load(s.path("a.pt"), weights_only=True)
    blob = bytearray(env["blob"])
    i = bytes(blob).index(torch.arange(1000.0).numpy().tobytes()[400:408])
    blob[i:i + 8] = torch.tensor([123.0, 456.0]).numpy().tobytes()
    env["blob"] = bytes(blob)
    torch.save(env, s.path("a.pt"))
    with pytest.raises(st.ArtefactError, match=r"a.pt fails its SHA-256 content checksum"):
        s.load("a.pt", "01_decomposition")


@pytest.mark.probe
def test_an_old_format_artefact_is_named(cfg):
    s = st.Store(cfg)
    torch.save({"format": 1, "fingerprint": "x", "settings": {}, "payload": {}}, s.path("old.pt"))
    with pytest.raises(st.ArtefactError, match=r"old.pt is not a sealed 'gross-artefact' file"):
        s.load("old.pt", "01_decomposition")


def test_a_write_outside_a_run_takes_the_lock_only_while_it_writes(cfg, monkeypatch):
    monkeypatch.delenv(st.HELD_ENV, raising=False)
    st.Store(cfg).save("a.json", {"v": 1}, {"seed": 0})
    with st.lock("smoke"):  # free again after the write; held now by "this run": its writes pass
        assert os.environ[st.HELD_ENV] == str(paths.run_dir("smoke") / ".lock")
        st.Store(cfg).save("b.json", {"v": 2}, {"seed": 0})
    assert st.HELD_ENV not in os.environ


@pytest.mark.probe
def test_a_write_while_another_run_holds_the_folder_refuses_naming_it(cfg, monkeypatch):
    monkeypatch.delenv(st.HELD_ENV, raising=False)
    monkeypatch.setattr(st, "WRITE_WAIT_S", 0.3)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(st.RunLocked, match=rf"is in use by another run \(pid {holder.pid}, started"):
            st.Store(cfg).save("c.json", {"v": 3}, {"seed": 0})
        assert not st.Store(cfg).path("c.json").exists()
        # a process started by that run (a notebook kernel under `make reproduce`) inherits the lock
        monkeypatch.setenv(st.HELD_ENV, str(paths.run_dir("smoke") / ".lock"))
        st.Store(cfg).save("c.json", {"v": 3}, {"seed": 0})
    finally:
        holder.kill()
        holder.wait()


def test_make_many_stores_each_artefact_as_make_would(cfg):
    s = st.Store(cfg)
    alone = s.make("one/a.json", lambda: {"v": cfg["seed"] + cfg["four_layer"]["btd_tol"]}, "02_finetuning")
    asked = []

    def compute(missing):
        asked.append(list(missing))
        return {n: {"v": cfg["seed"] + cfg["four_layer"]["btd_tol"], "name": n} for n in missing}

    with st.watch() as made:
        out = s.make_many(["many/a.json", "many/b.json", "one/a.json"], compute, "02_finetuning")
    assert asked == [["many/a.json", "many/b.json"]] and made == ["many/a.json", "many/b.json"]  # one/a is fresh
    assert out[2] == alone and out[0]["v"] == alone["v"] and out[1]["name"] == "many/b.json"
    for name in ("many/a.json", "many/b.json"):
        assert s.read(name)["settings"] == s.read("one/a.json")["settings"]  # the settings one make records
    assert s.make_many(["many/b.json"], compute, "02_finetuning")[0]["name"] == "many/b.json" and len(asked) == 1

    def half_done(missing):
        raise st.PartialResults({missing[0]: {"v": 1}}, FloatingPointError("network b diverged"))

    with pytest.raises(FloatingPointError, match="network b diverged"):
        s.make_many(["p/a.json", "p/b.json"], half_done, "02_finetuning")
    assert s.path("p/a.json").exists() and not s.path("p/b.json").exists()  # the finished one is kept
    with pytest.raises(ValueError, match="no payload for"):
        s.make_many(["q/a.json", "q/b.json"], lambda missing: {missing[0]: {"v": 1}}, "02_finetuning")
    with pytest.raises(ValueError, match="not asked for"):
        s.make_many(["r/a.json"], lambda missing: {"r/zzz.json": {"v": 1}}, "02_finetuning")
