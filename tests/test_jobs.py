"""Jobs and executors: fingerprints, skipping, corrupt outputs, bad settings, and equal results
whatever the executor (serial, local process pool, submitit's LocalExecutor).

The jobs are the pipeline's own (:func:`gross.pipeline.common.artefact_jobs`): the GroSS
fine-tune and individual fine-tunes of the ``smoke`` profile's 4-layer network, each test in
its own copy of a ``runs/`` folder that holds the base network and its decomposition.
"""

import multiprocessing as mp
import os
import shutil
import time

import pytest
import torch

from gross.runs import config
from gross.runs import jobs
from gross.runs.jobs import CorruptOutputError, ExecutorSettings, Job, JobFailedError, load_output, run_jobs
from gross.pipeline import base, decomposition
from gross.pipeline.common import artefact_job, artefact_jobs, fan_out
from gross.pipeline.finetune import finetune_gross, true_accuracy, true_path
from gross.runs.store import Store

NAME = "four_layer"
CONFIGS = [(1, 2, 4), (4, 8, 16), (32, 32, 64)]
TIMING = ("seconds", "images_per_s", "wall_time_s")


def _smoke(**overrides):
    return config.load("smoke", device="cpu", **overrides)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """runs/ with the smoke 4-layer base network and its GroSS decomposition (made serially)."""
    tmp = tmp_path_factory.mktemp("jobs")
    with pytest.MonkeyPatch.context() as mpatch:
        mpatch.setenv("GROSS_RUNS", str(tmp / "runs"))
        cfg = _smoke()
        base.base_state(cfg, NAME)
        decomposition.gross_decompose(cfg, NAME, 0)
    return tmp / "runs"


@pytest.fixture
def runs(prepared, tmp_path, monkeypatch):
    """``runs(label)``: a fresh copy of the prepared runs/, made the current ``$GROSS_RUNS``."""
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)

    def copy(label="runs"):
        shutil.copytree(prepared, tmp_path / label)
        monkeypatch.setenv("GROSS_RUNS", str(tmp_path / label))
        return tmp_path / label

    return copy


def _true(config_, kind="config"):
    return true_accuracy, (NAME, list(config_), 0, kind), true_path(NAME, config_, 0, kind)


def _calls(configs=CONFIGS):
    """The GroSS fine-tune (its weights are stored) and one individual fine-tune per configuration."""
    return [(finetune_gross, (NAME, 0), decomposition.tuned_path(NAME, 0))] + [_true(c) for c in configs]


def _untimed(d):
    return {k: v for k, v in d.items() if k not in TIMING}


def _stored(cfg, configs=CONFIGS):
    """(GroSS fine-tune payload, individual fine-tune payloads) as the store holds them."""
    store = Store(cfg)
    return (store.load(decomposition.tuned_path(NAME, 0), "02_finetuning"),
            [store.load(true_path(NAME, c), "02_finetuning") for c in configs])


def _assert_same(a, b):
    (tuned_a, true_a), (tuned_b, true_b) = a, b
    assert tuned_a["state_dict"].keys() == tuned_b["state_dict"].keys()
    for k in tuned_a["state_dict"]:
        assert torch.equal(tuned_a["state_dict"][k], tuned_b["state_dict"][k]), k
    assert _untimed(tuned_a["history"]) == _untimed(tuned_b["history"])
    assert [_untimed(t) for t in true_a] == [_untimed(t) for t in true_b]


def test_same_results_serial_local_pool_and_submitit(runs):
    executors = {"serial": {}, "pool": {"executor__name": "local", "executor__workers": 2, "executor__threads": 1,
                                        "executor__gpus": 0},
                 "submitit": {"executor__name": "submitit_local", "executor__workers": 2, "executor__threads": 1}}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial executor runs with this process's threads; the workers with 1
    try:
        results = {}
        for label, overrides in executors.items():
            runs(label)
            cfg = _smoke(**overrides)
            assert fan_out(cfg, "test", _calls()) == 1 + len(CONFIGS)
            results[label] = _stored(cfg)
    finally:
        torch.set_num_threads(previous)
    _assert_same(results["serial"], results["pool"])
    _assert_same(results["serial"], results["submitit"])
    tuned, true = results["serial"]
    init = Store(cfg).load(decomposition.init_path(NAME, 0), "01_decomposition")["state_dict"]
    assert any(not torch.equal(tuned["state_dict"][k], init[k]) for k in init)  # the jobs trained
    assert [t["config"] for t in true] == [list(c) for c in CONFIGS]


def test_fingerprint_depends_on_inputs_and_finished_jobs_are_skipped(runs):
    runs()
    cfg = _smoke()
    a, b, c = artefact_jobs(cfg, "test", [_true(c) for c in CONFIGS])
    assert len({a.output, b.output, c.output}) == 3
    assert artefact_jobs(cfg, "test", [_true(CONFIGS[0])])[0].output == a.output
    other_seed = Job(artefact_job, {**a.kwargs, "seed": 99}, name=a.name, directory=a.directory)
    assert other_seed.output != a.output
    first = run_jobs([a], progress=False)
    stamp = a.output.stat().st_mtime_ns
    second = run_jobs([a, b], progress=False)  # a is not run again
    assert a.output.stat().st_mtime_ns == stamp
    assert first[0] == second[0] == {"target": "gross.pipeline.finetune:true_accuracy", "args": a.kwargs["args"]}
    assert second[1]["args"][1] == list(CONFIGS[1])
    assert [j.output for j in artefact_jobs(cfg, "test", [_true(c) for c in CONFIGS])] == [c.output]  # a, b fresh


def test_corrupt_output_is_a_clear_error(runs):
    runs()
    job = artefact_jobs(_smoke(), "test", [_true(CONFIGS[0])])[0]
    run_jobs([job], progress=False)
    payload = torch.load(job.output, weights_only=True)
    payload["blob"] = payload["blob"][:-1] + bytes([payload["blob"][-1] ^ 1])
    torch.save(payload, job.output)
    with pytest.raises(CorruptOutputError, match="checksum") as err:
        run_jobs([job], progress=False)
    assert str(job.output) in str(err.value) and "delete" in str(err.value)
    job.output.write_bytes(b"not a torch file")
    with pytest.raises(CorruptOutputError, match="unreadable"):
        load_output(job.output)
    job.output.unlink()  # as the message says: delete and run again
    assert run_jobs([job], progress=False)[0]["args"][1] == list(CONFIGS[0])


def test_bad_executor_settings():
    with pytest.raises(ValueError, match="serial, local, submitit_local, slurm"):
        ExecutorSettings(name="threads")
    with pytest.raises(ValueError, match="unknown executor settings"):
        ExecutorSettings.from_mapping({"name": "local", "worker": 2})
    with pytest.raises(ValueError, match="positive integer"):
        ExecutorSettings(name="local", workers=0)


def test_executor_settings_from_section_and_environment():
    section = {"name": "local", "workers": 2, "threads": 1}
    assert jobs.executor_settings(section, environ={}) == ExecutorSettings(name="local", workers=2)
    env = {"GROSS_EXECUTOR": "name=slurm, slurm_partition=gpu,slurm_time_min=90,gpus=none"}
    got = jobs.executor_settings(section, environ=env)
    assert (got.name, got.workers, got.slurm_partition, got.slurm_time_min, got.gpus) == ("slurm", 2, "gpu", 90, None)
    toml_like = jobs.executor_settings({"name": "slurm", "gpus": "auto", "slurm_partition": ""}, environ={})
    assert toml_like.gpus is None and toml_like.slurm_partition is None
    with pytest.raises(ValueError, match="GROSS_EXECUTOR: .local. must look like KEY=VALUE"):
        jobs.executor_settings(environ={"GROSS_EXECUTOR": "local"})
    with pytest.raises(ValueError, match="valid executors are"):
        jobs.executor_settings(environ={"GROSS_EXECUTOR": "name=dask"})


def test_more_workers_than_gpus(monkeypatch, runs):
    runs()
    monkeypatch.setattr(jobs, "_visible_gpus", lambda: 1)
    job = artefact_jobs(_smoke(), "test", [_true(CONFIGS[0])])
    with pytest.raises(ValueError, match="2 workers but only 1 GPUs x 1 workers per GPU"):
        run_jobs(job, ExecutorSettings(name="local", workers=2), progress=False)
    with pytest.raises(ValueError, match="asks for 2 GPUs but this machine has 1"):
        run_jobs(job, ExecutorSettings(name="local", workers=2, gpus=2), progress=False)
    assert jobs._gpu_slots(ExecutorSettings(name="local", workers=2, workers_per_gpu=2)) == [0, 0]
    assert not job[0].output.exists()


def report_worker(seed):
    """Job function for the GPU-assignment test (module-level, so spawned workers can import it)."""
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": torch.get_num_threads()}


def test_local_pool_gives_each_worker_one_gpu_and_its_threads(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "_visible_gpus", lambda: 2)  # the workers only read CUDA_VISIBLE_DEVICES
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    batch = [Job(report_worker, {"seed": i}, name=f"w{i}", directory=tmp_path) for i in range(2)]
    out = run_jobs(batch, ExecutorSettings(name="local", workers=2, threads=1), progress=False)
    seen = sorted(r["cuda_visible_devices"] for r in out)
    assert set(seen) <= {"0", "1"} and all(r["threads"] == 1 for r in out)


def die(seed):
    """Job function whose worker process dies (as if killed)."""
    os._exit(9)


def test_dead_worker_is_a_clear_error_and_finished_jobs_stay(tmp_path):
    ok = Job(report_worker, {"seed": 0}, name="ok", directory=tmp_path)
    run_jobs([ok], progress=False)
    dead = Job(die, {"seed": 1}, name="dead", directory=tmp_path)
    with pytest.raises(JobFailedError, match="worker process died.*run the same step again"):
        run_jobs([ok, dead], ExecutorSettings(name="local", workers=1, gpus=0), progress=False)
    assert ok.output.exists() and not dead.output.exists()


def test_slurm_without_sbatch(monkeypatch, runs, tmp_path):
    runs()
    job = artefact_jobs(_smoke(), "test", [_true(CONFIGS[0])])
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="sbatch is not on PATH"):
        run_jobs(job, "slurm", progress=False)
    monkeypatch.setattr(jobs.importlib, "import_module", lambda name: (_ for _ in ()).throw(ImportError(name)))
    with pytest.raises(RuntimeError, match="submitit==1.5.4"):
        run_jobs(job, "slurm", progress=False)


def test_job_rejects_unpicklable_function_and_bad_kwargs(tmp_path):
    with pytest.raises(ValueError, match="module-level"):
        Job(lambda: {}, {}, name="x", directory=tmp_path)
    with pytest.raises(ValueError, match="JSON-like"):
        Job(artefact_job, {"cfg": object()}, name="x", directory=tmp_path)


def test_failed_job_reports_and_keeps_others(runs):
    runs()
    good, bad = artefact_jobs(_smoke(), "test", [_true((1, 2, 4)), _true((3, 3, 3))])
    with pytest.raises(JobFailedError, match=r"(?s)1 of 2 jobs failed.*config_3-3-3.*3"):
        run_jobs([good, bad], progress=False)
    assert good.output.exists() and not bad.output.exists()


def test_killed_worker_resumes_from_its_checkpoint(runs):
    runs("killed")
    cfg = _smoke(four_layer__config_epochs=8)
    job = artefact_jobs(cfg, "test", [_true((4, 8, 16))])[0]
    proc = mp.get_context("spawn").Process(target=jobs.execute, args=(job, 1))
    proc.start()
    checkpoints = Store(cfg).root / "checkpoints" / "true"
    deadline = time.time() + 120
    while not list(checkpoints.glob("*.pt")) and proc.is_alive() and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, 9)
    proc.join()
    from gross.training.loop import load_checkpoint

    [ckpt] = checkpoints.glob("*.pt")
    epoch = load_checkpoint(ckpt)["epoch"]
    assert 1 <= epoch < 8 and not job.output.exists()
    run_jobs([job], progress=False)
    resumed = true_accuracy(cfg, NAME, (4, 8, 16))  # the stored result of the resumed job
    runs("fresh")
    run_jobs(artefact_jobs(cfg, "test", [_true((4, 8, 16))]), progress=False)  # from scratch, not killed
    fresh = true_accuracy(cfg, NAME, (4, 8, 16))
    assert resumed["epochs"] == 8 and _untimed(resumed) == _untimed(fresh)
