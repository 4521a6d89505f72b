"""The pipeline's job fan-out (gross.pipeline.common.fan_out): the same tables whatever the executor.

Table 5's individual fine-tunes (smoke profile, 4-layer network; the partial ones are read
from their first epoch) are run once in the test's process (``serial``) and once through the
``local`` pool of 2 worker processes x 1 thread, from copies of the same decomposed and
GroSS-fine-tuned network; every table must be identical. Reading the partial fine-tune from
the individual one equals training it.
"""

import shutil

import pandas as pd
import pytest

from gross.runs import config
from gross.runs.jobs import ExecutorSettings, JobFailedError
from gross.pipeline import decomposition, finetune, table5
from gross.pipeline.common import executor, fan_out


def _smoke(**overrides):
    return config.load("smoke", device="cpu", **overrides)


def _use_copy(smoke_four_layer_runs, tmp, monkeypatch):
    """A copy of the smoke_four_layer_runs runs/ under ``tmp``, made the current ``$GROSS_RUNS``; its path."""
    shutil.copytree(smoke_four_layer_runs, tmp / "runs")
    monkeypatch.setenv("GROSS_RUNS", str(tmp / "runs"))
    return tmp / "runs"


def _table5(smoke_four_layer_runs, tmp, monkeypatch, **overrides):
    _use_copy(smoke_four_layer_runs, tmp, monkeypatch)
    monkeypatch.setenv("GROSS_OUTPUTS", str(tmp / "out"))
    result = table5.ap_comparison(_smoke(**overrides))
    jobs = sorted(p.name for p in (tmp / "runs" / "smoke" / "jobs" / "true").glob("*.pt"))
    return result.tables, jobs


@pytest.mark.slow
def test_table5_fine_tunes_equal_serially_and_through_the_local_pool(smoke_four_layer_runs, tmp_path, monkeypatch):
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    serial, serial_jobs = _table5(smoke_four_layer_runs, tmp_path / "serial", monkeypatch)
    pool, pool_jobs = _table5(smoke_four_layer_runs, tmp_path / "pool", monkeypatch, executor__name="local",
                              executor__workers=2, executor__threads=1, executor__gpus=0)
    n = _smoke()["ap"]["n_configs"]
    assert finetune.partial_is_prefix(_smoke())
    assert len(serial_jobs) == n  # one individual fine-tune per configuration; the partial one is its first epoch
    assert pool_jobs == serial_jobs  # same job fingerprints: executor keys are not part of them
    for name in serial:
        pd.testing.assert_frame_equal(pool[name], serial[name], check_exact=True, obj=name)


@pytest.mark.slow
def test_partial_fine_tune_read_from_the_individual_one_equals_training_it(smoke_four_layer_runs, tmp_path, monkeypatch):
    """The fast path of Table 5 (no separate partial training) gives the partial fine-tune's own result."""
    runs = _use_copy(smoke_four_layer_runs, tmp_path, monkeypatch) / "smoke"
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    cfg = _smoke(four_layer__config_epochs=3, ap__partial_epochs=2)  # milestone after epoch 2: a prefix
    assert finetune.partial_is_prefix(cfg)
    configs = table5.ap_configs(cfg, finetune.search_space(decomposition.load_gross(cfg, "four_layer", 0)))[:2]
    derived = finetune.true_accuracies(cfg, "four_layer", configs, [0], kind="partial")
    assert all(r["derived_from"] and r["epochs"] == 2 and len(r["history_val_acc"]) == 2 for r in derived.values())
    shutil.rmtree(runs / "true")
    monkeypatch.setattr(finetune, "partial_is_prefix", lambda *a, **k: False)  # the plain path: train 2 epochs
    trained = finetune.true_accuracies(cfg, "four_layer", configs, [0], kind="partial")
    assert not (runs / finetune.true_path("four_layer", configs[0], 0, "config")).exists()  # no 3-epoch fine-tune
    for key in derived:
        assert trained[key]["test_acc"] is not None and "derived_from" not in trained[key]
        for field in ("val_acc", "no_finetune_val_acc", "history_val_acc", "epochs"):
            assert derived[key][field] == trained[key][field], (key, field)


def test_partial_is_prefix_only_before_the_first_milestone():
    assert finetune.partial_is_prefix(config.load("paper"))  # 5 of 100 epochs, decay at 80
    assert finetune.partial_is_prefix(config.load("cpu"))
    assert not finetune.partial_is_prefix(_smoke(ap__partial_epochs=2))  # longer than the 1-epoch individual one
    assert not finetune.partial_is_prefix(_smoke(four_layer__config_epochs=5, ap__partial_epochs=5))  # decay at 4
    assert finetune.partial_is_prefix(_smoke(four_layer__config_epochs=5, ap__partial_epochs=4))
    assert not finetune.partial_is_prefix(_smoke(data__eval_batch_size=64))  # history: batches of 1000, 128 images


def test_executor_keys_do_not_change_fingerprints_or_reductions():
    a, b = _smoke(), _smoke(executor__name="local", executor__workers=3, executor__gpus=0)
    assert config.reductions(a) == config.reductions(b)
    assert not [r for r in config.reductions(b) if r.startswith("executor.")]


def test_executor_settings_read_from_the_profile(monkeypatch):
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    with config.recording() as reads:
        s = executor(_smoke(executor__name="local", executor__workers=2, executor__gpus=0))
    assert (s.name, s.workers, s.gpus) == ("local", 2, 0)
    assert {f"executor.{k}" for k in ("name", "workers", "threads", "gpus", "workers_per_gpu", "slurm_partition",
                                      "slurm_time_min", "slurm_gpus_per_job", "slurm_array_parallelism")} <= reads
    paper = executor(config.load("paper"))
    assert paper == ExecutorSettings(name="local", workers=4, threads=2, gpus=None, workers_per_gpu=4,
                                     slurm_time_min=120)
    monkeypatch.setenv("GROSS_EXECUTOR", "name=local,workers=2,gpus=0")
    assert executor(_smoke()).name == "local"


def test_bad_executor_settings_are_rejected():
    with pytest.raises(ValueError, match="executor.name"):
        _smoke(executor__name="threads")
    with pytest.raises(ValueError, match="executor.gpus"):
        _smoke(executor__gpus=-1)


def _fails(cfg, name):
    raise RuntimeError(f"no artefact for {name}")


def test_failing_job_names_the_job(gross_runs, monkeypatch):
    monkeypatch.delenv("GROSS_EXECUTOR", raising=False)
    with pytest.raises(JobFailedError, match="no artefact for x"):
        fan_out(_smoke(), "test", [(_fails, ("x",), "x.pt")])
