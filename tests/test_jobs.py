"""Jobs and executors: fingerprints, skipping, corrupt outputs, bad settings, and equal results
whatever the executor (serial, local process pool, submitit's LocalExecutor)."""

import multiprocessing as mp
import os
import time

import pytest
import torch

from gross import jobs
from gross.decomposition import decompose
from gross.job_functions import individual_finetune, save_gross_init
from gross.jobs import CorruptOutputError, ExecutorSettings, Job, JobFailedError, load_output, run_jobs
from gross.models import four_layer_net

DATA = {"kind": "synthetic", "n_train": 96, "n_val": 48, "n_test": 48, "seed": 3}
RECIPE = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "milestones": [1], "name": "t"}
CONFIGS = [(1, 2, 4), (4, 8, 16), (32, 32, 64)]


@pytest.fixture(scope="module")
def init_file(tmp_path_factory):
    torch.manual_seed(0)
    net = four_layer_net()
    decompose(net, max_iter=3, seed=0)
    path = tmp_path_factory.mktemp("init") / "gross_init.pt"
    save_gross_init(net, {"model": "four_layer"}, path)
    return path


def _finetune_jobs(init_file, directory, configs=CONFIGS, recipe=RECIPE):
    return [Job(individual_finetune, {"config": list(c), "data": DATA, "recipe": recipe, "seed": 10 + i},
                name=f"config-{'-'.join(map(str, c))}", directory=directory, inputs={"init": init_file})
            for i, c in enumerate(configs)]


def _assert_same(a, b):
    assert a["val_acc"] == b["val_acc"] and a["test_acc"] == b["test_acc"]
    timing = ("seconds", "images_per_s")
    assert {k: v for k, v in a["history"].items() if k not in timing} == \
        {k: v for k, v in b["history"].items() if k not in timing}
    assert a["config"] == b["config"] and a["no_finetune_val_acc"] == b["no_finetune_val_acc"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_same_results_serial_local_pool_and_submitit(init_file, tmp_path):
    serial = run_jobs(_finetune_jobs(init_file, tmp_path / "serial"), "serial", progress=False)
    pool = run_jobs(_finetune_jobs(init_file, tmp_path / "pool"),
                    ExecutorSettings(name="local", workers=2, threads=1, gpus=0), progress=False)
    sub = run_jobs(_finetune_jobs(init_file, tmp_path / "submitit"),
                   {"name": "submitit_local", "workers": 2, "threads": 1, "folder": str(tmp_path / "logs")},
                   progress=False)
    assert len(serial) == len(pool) == len(sub) == len(CONFIGS)
    for a, b, c in zip(serial, pool, sub):
        _assert_same(a, b)
        _assert_same(a, c)
    assert serial[0]["history"]["train_loss"] != serial[1]["history"]["train_loss"]  # distinct jobs


def test_fingerprint_depends_on_inputs_and_finished_jobs_are_skipped(init_file, tmp_path):
    a, b, c = _finetune_jobs(init_file, tmp_path)
    assert len({a.output, b.output, c.output}) == 3
    again = _finetune_jobs(init_file, tmp_path)[0]
    assert again.output == a.output
    other_seed = Job(individual_finetune, {**a.kwargs, "seed": 99}, name=a.name, directory=tmp_path,
                     inputs=a.inputs)
    assert other_seed.output != a.output
    first = run_jobs([a], progress=False)
    stamp = a.output.stat().st_mtime_ns
    second = run_jobs([a, b], progress=False)  # a is not run again
    assert a.output.stat().st_mtime_ns == stamp
    _assert_same(first[0], second[0])
    assert second[1]["config"] == list(CONFIGS[1])
    assert not a.checkpoint_dir.exists()  # checkpoints of finished jobs are removed


def test_corrupt_output_is_a_clear_error(init_file, tmp_path):
    job = _finetune_jobs(init_file, tmp_path)[0]
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
    assert run_jobs([job], progress=False)[0]["config"] == list(CONFIGS[0])


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
    with pytest.raises(ValueError, match="not key=value"):
        jobs.executor_settings(environ={"GROSS_EXECUTOR": "local"})
    with pytest.raises(ValueError, match="valid executors are"):
        jobs.executor_settings(environ={"GROSS_EXECUTOR": "name=dask"})


def test_more_workers_than_gpus(monkeypatch, init_file, tmp_path):
    monkeypatch.setattr(jobs, "_visible_gpus", lambda: 1)
    job = _finetune_jobs(init_file, tmp_path)[:1]
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


def test_slurm_without_sbatch(monkeypatch, init_file, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    job = _finetune_jobs(init_file, tmp_path)[:1]
    with pytest.raises(RuntimeError, match="sbatch is not on PATH"):
        run_jobs(job, "slurm", progress=False)
    monkeypatch.setattr(jobs.importlib, "import_module", lambda name: (_ for _ in ()).throw(ImportError(name)))
    with pytest.raises(RuntimeError, match="submitit==1.5.4"):
        run_jobs(job, "slurm", progress=False)


def test_job_rejects_unpicklable_function_and_bad_kwargs(tmp_path):
    with pytest.raises(ValueError, match="module-level"):
        Job(lambda: {}, {}, name="x", directory=tmp_path)
    with pytest.raises(ValueError, match="JSON-like"):
        Job(individual_finetune, {"data": object()}, name="x", directory=tmp_path)


def test_failed_job_reports_and_keeps_others(init_file, tmp_path):
    good, bad = _finetune_jobs(init_file, tmp_path, configs=[(1, 2, 4), (3, 3, 3)])
    with pytest.raises(JobFailedError, match=r"(?s)1 of 2 jobs failed.*config-3-3-3.*group size 3"):
        run_jobs([good, bad], progress=False)
    assert good.output.exists() and not bad.output.exists()


def test_killed_worker_resumes_from_its_checkpoint(init_file, tmp_path):
    recipe = {**RECIPE, "epochs": 8, "milestones": [4]}
    job = _finetune_jobs(init_file, tmp_path / "killed", configs=[(4, 8, 16)], recipe=recipe)[0]
    proc = mp.get_context("spawn").Process(target=jobs.execute, args=(job, 1))
    proc.start()
    ckpt = job.checkpoint_dir / "config.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.is_alive() and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, 9)
    proc.join()
    from gross.train import load_checkpoint

    epoch = load_checkpoint(ckpt)["epoch"]
    assert 1 <= epoch < 8 and not job.output.exists()
    resumed = run_jobs([job], progress=False)[0]
    fresh = run_jobs(_finetune_jobs(init_file, tmp_path / "fresh", configs=[(4, 8, 16)], recipe=recipe),
                     progress=False)[0]
    _assert_same(resumed, fresh)


def test_bench_jobs_rows_quick():
    from gross.bench import COLUMNS
    from gross.bench_jobs import bench_jobs

    rows = bench_jobs("quick", device="cpu")
    assert [r["benchmark"] for r in rows] == ["executor", "batched"]
    for r in rows:
        assert list(r) == COLUMNS
        assert r["measured_s"] > 0 and r["versus_s"] > 0 and r["ratio"] == r["measured_s"] / r["versus_s"]
    with pytest.raises(ValueError, match="valid presets"):
        bench_jobs("huge")


def test_individual_finetunes_job_equals_single_jobs(init_file, tmp_path):
    from gross.job_functions import individual_finetunes

    configs = [list(c) for c in CONFIGS[:2]]
    many = Job(individual_finetunes, {"configs": configs, "seeds": [10, 11], "data": DATA, "recipe": RECIPE,
                                      "method": "vmap"}, name="many", directory=tmp_path, inputs={"init": init_file})
    runs = run_jobs([many], progress=False)[0]["runs"]
    single = run_jobs(_finetune_jobs(init_file, tmp_path, configs=CONFIGS[:2]), progress=False)
    for a, b in zip(single, runs):  # float32 here: equal up to reassociation
        assert a["config"] == b["config"] and a["seed"] == b["seed"]
        for k in a["state_dict"]:
            assert torch.allclose(a["state_dict"][k], b["state_dict"][k], rtol=1e-4, atol=1e-5), k


def test_pipeline_job_functions_chain_and_per_layer_btd_equals_decompose(tmp_path):
    from gross.decomposition import default_group_sizes, decomposable_layers
    from gross.job_functions import (base_training, btd_layer, gross_finetune, gross_init, load_gross_model,
                                     read_artefact)

    data = {**DATA, "n_train": 64}
    base_job = Job(base_training, {"model": "four_layer", "data": data, "recipe": {**RECIPE, "epochs": 1, "lr": 0.01},
                                   "seed": 0}, name="base", directory=tmp_path)
    base = run_jobs([base_job], progress=False)[0]
    net = four_layer_net()
    net.load_state_dict(base["state_dict"])
    layers = decomposable_layers(net)
    btd_opts = {"max_iter": 3, "tol": 1e-6, "seed": 4}
    btd_jobs = [Job(btd_layer, {"layer": n, "group_size": s, **btd_opts}, name=f"btd-{n}-{s}", directory=tmp_path,
                    inputs={"base": base_job.output})
                for n in layers for s in default_group_sizes(net.get_submodule(n).in_channels)]
    assembled = gross_init(base, run_jobs(btd_jobs, progress=False))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the jobs ran with threads=1: same reduction order, bitwise-equal factors
    try:
        reference = decompose(net, **btd_opts)  # the whole-network path, independently
    finally:
        torch.set_num_threads(previous)
    ra, rb = assembled.state_dict(), reference.state_dict()
    assert ra.keys() == rb.keys() and all(torch.equal(ra[k], rb[k]) for k in ra)
    init = save_gross_init(assembled, base, tmp_path / "init.pt")
    assert read_artefact(base_job.output)["model"] == "four_layer"
    tuned_job = Job(gross_finetune, {"data": data, "recipe": {**RECIPE, "epochs": 1}, "seed": 0}, name="gross",
                    directory=tmp_path, inputs={"init": init})
    tuned = run_jobs([tuned_job], progress=False)[0]
    assert tuned["space"] == {n: list(s) for n, s in
                              ((n, default_group_sizes(net.get_submodule(n).in_channels)) for n in layers)}
    again = load_gross_model(tuned_job.output)
    assert not torch.equal(again.state_dict()["conv2.P1"], ra["conv2.P1"])  # fine-tuning changed the layers
