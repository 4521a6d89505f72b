"""Tests of gross.pipeline.decomposition (and base): stored GroSS models, missing predecessors, MAC table,
the verbs of the one-layer walk-through (BTD factors, Ψ, the GroSS layer switched) and of the full decomposition."""

import shutil

import pandas as pd
import pytest
import torch

from gross.data.batching import normalize
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
    wang = table[table["model"] == "vgg16_imagenet [26]"]
    paper_rows = table[(table["width_mult"] == 1.0) & (table["model"] != "vgg16_imagenet [26]")]
    assert len(paper_rows) == len(dec.PAPER_MACS)
    assert paper_rows["matches_paper"].all(), paper_rows[~paper_rows["matches_paper"].astype(bool)]
    rest = table[table["model"] != "vgg16_imagenet [26]"]
    assert (rest["macs"] == rest["macs_authors_rule"]).all()  # the two rules agree where width = input channels
    # Table 4's [26] rows: correct 1.42B / 1.43B (not the printed 1.16B); the authors' rule gives 1.16B
    assert list(wang["macs"]) == [1_417_490_816, 1_430_445_632] and not wang["matches_paper"].any()
    assert list(wang["macs_authors_rule"]) == [1_162_185_136, 1_157_674_000]
    assert list(wang["formatted_authors_rule"]) == list(wang["paper"]) == ["1.16B", "1.16B"]
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
        monkeypatch.setenv("GROSS_RUNS", str(ref_runs.parent))
        ref = store.Store(cfg).make(f"ref_{r}.pt", lambda: _old_decompose(cfg, "four_layer", r), "01_decomposition")
        ref_env = store.Store(cfg).read(f"ref_{r}.pt")
        for label, (runs, _) in outputs.items():
            monkeypatch.setenv("GROSS_RUNS", str(runs.parent))
            env = store.Store(cfg).read(dec.init_path("four_layer", r))
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


# ----------------------------------------------------------------------------- the one-layer walk-through and the verbs


def _factors(conv, sizes, **options):
    """BTD factors of ``conv`` in :func:`dec.layer_factors`'s format, computed directly."""
    from gross.method.btd import btd

    out = {}
    for s in sizes:
        r = btd(conv.weight.detach(), s, **options)
        out[s] = {"P": r.P, "R": r.R, "Q": r.Q, "error": r.errors[-1], "seconds": 0.0}
    return out


@pytest.fixture(scope="module")
def small_conv():
    """A float64 8-channel strided convolution, its BTD factors at every group size and an input."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1).double()
    factors = _factors(conv, (1, 2, 4, 8), tol=1e-8, max_iter=3, ridge=0.0)
    return conv, factors, torch.randn(2, 8, 9, 9, dtype=torch.float64)


def test_factor_table_shapes_and_reconstruction_error(small_conv):
    conv, factors, _ = small_conv
    table = dec.factor_table(conv.weight, factors)
    assert list(table["group_size"]) == [1, 2, 4, 8] and list(table["groups"]) == [8, 4, 2, 1]
    assert list(table["R"]) == [(8, s, 3, 3) for s in (1, 2, 4, 8)]
    assert set(table["P"]) == {(8, 8, 1, 1)} and set(table["Q"]) == {(8, 8, 1, 1)}
    assert list(table["parameters"]) == [64 + 8 * s * 9 + 64 for s in (1, 2, 4, 8)]
    assert table["reconstruction_error"].to_numpy() == pytest.approx(table["btd_error"].to_numpy(), abs=1e-10)
    assert table["reconstruction_error"].iloc[-1] < 1e-10  # s = width = t = u: one full-rank block, exact
    assert table["reconstruction_error"].is_monotonic_decreasing


def test_expansion_check_is_exact_for_every_pair(small_conv):
    conv, factors, x = small_conv
    table = dec.expansion_check(conv, factors, x)
    assert list(zip(table["g"], table["h"])) == [(1, 2), (1, 4), (1, 8), (2, 4), (2, 8), (4, 8)]
    assert table["max_abs_diff"].max() < 1e-12
    assert list(table["groups"])[0] == "8 -> 4" and list(table["weights"])[0] == "72 -> 144"


def test_switching_table_series_equals_each_btd_and_restores_the_size(small_conv):
    from gross.method.layers import GroSSConv2d
    from gross.method.macs import count_macs

    conv, factors, x = small_conv
    layer = GroSSConv2d.from_factors(conv, {s: (f["P"], f["R"], f["Q"]) for s, f in factors.items()})
    layer.group_size = 2
    table = dec.switching_table(layer, conv, factors, x)
    assert layer.group_size == 2
    assert list(table["group_size"]) == [1, 2, 4, 8] and list(table["order"]) == [1, 2, 3, 4]
    assert list(table["groups"]) == [8, 4, 2, 1]
    assert table["max_abs_diff_btd"].max() < 1e-12  # Eqs. 5-6 rebuild every BTD exactly
    assert table["max_abs_diff_conv"].iloc[-1] < 1e-10  # full rank: the original convolution
    assert table["relative_error_conv"].iloc[0] > 1e-3
    assert list(table["macs"]) == [count_macs(layer, input_size=(8, 9, 9), config=(s,)).total for s in (1, 2, 4, 8)]
    assert table["macs"].is_monotonic_increasing


def test_one_layer_walk_through_reuses_the_decomposition_jobs(gross_runs, one_thread, submissions):
    cfg = config.load("smoke", device="cpu", num_threads=1)
    base.base_models(cfg, models=["four_layer"])
    factors = dec.layer_factors(cfg, "four_layer", "conv2")
    assert list(factors) == [1, 2, 4, 8, 16, 32] and submissions == [(6, "serial")]
    assert factors[4]["R"].shape == (32, 4, 3, 3) and factors[4]["R"].dtype == torch.float64
    outputs = {p: p.stat().st_mtime_ns for p in (gross_runs / "smoke" / "btd" / "four_layer").glob("conv2-*.pt")}
    assert len(outputs) == 6
    with pytest.raises(ValueError, match=r"'conv1' is not a decomposed layer of four_layer: choose one of "
                                         r"\['conv2', 'conv3', 'conv4'\]"):
        dec.layer_factors(cfg, "four_layer", "conv1")

    conv = dec.base_layer(cfg, "four_layer", "conv2")
    net = base.base_model(cfg, "four_layer")
    assert conv.weight.dtype == torch.float64 and torch.equal(conv.weight, net.conv2.weight.double())
    x = dec.layer_input(cfg, "four_layer", "conv2", n_images=3)
    data = common.prepare_data(cfg, "four_layer")
    with torch.no_grad():
        expected = net.pool1(net.relu1(net.conv1(normalize(data.val.images[:3], data.mean, data.std))))
    assert x.dtype == torch.float64 and torch.equal(x, expected.double())

    decompositions = dec.decompose_models(cfg, models=["four_layer"])  # reuses conv2's BTDs
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs
    model = dec.gross_from_payload(cfg, "four_layer", decompositions["four_layer"][0])
    for s, f in factors.items():
        P, R, Q = model.conv2.weights(s)
        torch.testing.assert_close(R.double(), f["R"], rtol=0, atol=1e-6)  # float32 series of the same BTD
    assert model.conv2.btd_errors == {s: f["error"] for s, f in factors.items()}


def test_btd_error_table_with_the_verbs_results_equals_the_bare_step(gross_runs):
    first = dec.btd_error_table(config.load("smoke", device="cpu"), models=["four_layer"])  # trains, decomposes
    cfg = config.load("smoke", device="cpu")
    bare = dec.btd_error_table(cfg, models=["four_layer"])  # from the store
    pd.testing.assert_frame_equal(bare.tables["btd_errors"], first.tables["btd_errors"])
    cfg = config.load("smoke", device="cpu")  # as in the notebook: the verbs cell by cell, then the step
    decompositions = dec.decompose_models(cfg, models=["four_layer"])
    errors = dec.btd_errors(decompositions)
    again = dec.btd_error_table(cfg, decompositions=decompositions, errors=errors)
    pd.testing.assert_frame_equal(again.tables["btd_errors"], bare.tables["btd_errors"])
    assert again.reads == bare.reads  # the cells' reads are credited to the step
    assert list(errors.columns) == ["model", "repeat", "layer", "group_size", "error", "decomposition_s"]
    assert set(errors["layer"]) == {"conv2", "conv3", "conv4"} and len(errors) == 6 + 6 + 7
