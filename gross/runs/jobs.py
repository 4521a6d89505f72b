"""Independent units of work (jobs) with fingerprinted outputs, and the executors that run them.

A :class:`Job` is a picklable top-level function, its keyword arguments (JSON-like
values) and the input artefacts it reads (files). Its output file in ``runs/`` is
named from a fingerprint of all three, so a job whose inputs changed gets a new file
and a finished job is never run again. There is no scheduler or job database here:
the files in ``runs/`` say what is done, and the processes are run by
:mod:`concurrent.futures` (``local``) or by `submitit <https://github.com/facebookincubator/submitit>`_
(``submitit_local`` and ``slurm``).

Executors (:class:`ExecutorSettings`, e.g. from an ``[executor]`` config section)
--------------------------------------------------------------------------------
``serial``
    In the calling process, one job after the other.
``local``
    A pool of ``workers`` processes (``spawn`` context), each with ``threads`` torch
    threads. With CUDA, worker ``i`` sees one GPU (``CUDA_VISIBLE_DEVICES``),
    round-robin over ``gpus`` (default: all visible), at most ``workers_per_gpu`` each.
``submitit_local``
    submitit's ``LocalExecutor`` (one subprocess per job, ``workers`` at a time); used
    by the tests to show that submitit gives the same results.
``slurm``
    submitit's ``AutoExecutor`` on Slurm: one array job (``slurm_array_parallelism``
    tasks at a time), ``slurm_gpus_per_job`` GPUs and ``threads`` CPUs per task,
    ``slurm_partition``, ``slurm_time_min``; logs under ``runs/submitit/``. ``runs/``
    must be on a filesystem shared with the compute nodes.

Every job runs through :func:`execute`: it sets the torch thread count and seeds, runs
the function with ``checkpoint_dir`` (a folder beside the output, for
:mod:`gross.training.loop`'s resume mechanism), and writes the result atomically with a
SHA-256 checksum. A worker killed mid-job therefore loses at most the epochs since
the job's last checkpoint; running the same jobs again skips every finished one and
resumes the others. A corrupt output file (checksum or format wrong) is an error
naming the file: delete it and run again (it is not deleted automatically, because
corruption of a file written atomically means something outside gross changed it).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import importlib
import inspect
import json
import multiprocessing as mp
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from tqdm import tqdm

from gross.utils import paths
from gross.utils import atomic_save, provenance, seed_everything
from gross.utils.assignments import parse_assignments
from gross.utils.hashing import digest, file_digest
from gross.utils.sealed import DamagedFileError, load_sealed, seal
from gross.runs.store import write_guard

__all__ = [
    "EXECUTORS",
    "ExecutorSettings",
    "executor_settings",
    "Job",
    "JobFailedError",
    "CorruptOutputError",
    "fingerprint_file",
    "load_output",
    "run_jobs",
    "execute",
]

#: Valid executor names.
EXECUTORS = ("serial", "local", "submitit_local", "slurm")
_OUTPUT_FORMAT = "gross-job-output"
_OUTPUT_VERSION = 1


class JobFailedError(RuntimeError):
    """One or more jobs raised; finished jobs kept their outputs."""


class CorruptOutputError(DamagedFileError):
    """A job's output file exists but is not a valid gross job output (unreadable, foreign or altered)."""


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ExecutorSettings:
    """How jobs are run (see the module docstring for each executor).

    Parameters
    ----------
    name : {"serial", "local", "submitit_local", "slurm"}
    workers : int
        Concurrent worker processes (``local``, ``submitit_local``).
    threads : int
        torch threads per job (and CPUs per Slurm task).
    gpus : int, optional
        GPUs the ``local`` pool uses (default: every visible one; 0 = CPU only).
    workers_per_gpu : int
        Most workers sharing one GPU (``local``).
    slurm_partition : str, optional
    slurm_time_min : int
        Time limit of one Slurm task (or ``submitit_local`` job), minutes.
    slurm_gpus_per_job : int
    slurm_array_parallelism : int
        Most array tasks running at once.
    folder : str, optional
        submitit's log folder (default ``runs/submitit``).
    poll_s : float
        Seconds between checks of running jobs.
    """

    name: str = "serial"
    workers: int = 1
    threads: int = 1
    gpus: int | None = None
    workers_per_gpu: int = 1
    slurm_partition: str | None = None
    slurm_time_min: int = 60
    slurm_gpus_per_job: int = 1
    slurm_array_parallelism: int = 32
    folder: str | None = None
    poll_s: float = 0.5

    def __post_init__(self):
        if self.name not in EXECUTORS:
            raise ValueError(f"unknown executor {self.name!r}; valid executors are {', '.join(EXECUTORS)}")
        for key in ("workers", "threads", "workers_per_gpu", "slurm_time_min", "slurm_array_parallelism"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"executor setting {key} must be a positive integer, got {value!r}")
        for key in ("gpus", "slurm_gpus_per_job"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"executor setting {key} must be a non-negative integer, got {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping | None) -> "ExecutorSettings":
        """Build from a mapping such as an ``[executor]`` config section (unknown keys are an error)."""
        mapping = dict(mapping or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(f"unknown executor settings {unknown}; valid keys are {sorted(known)}")
        return cls(**mapping)


def executor_settings(section: Mapping | None = None, environ: Mapping | None = None) -> ExecutorSettings:
    """Executor settings from a config's ``[executor]`` section, overridden by ``$GROSS_EXECUTOR``.

    ``GROSS_EXECUTOR`` is a comma-separated list of ``key=value`` pairs, e.g.
    ``"name=local,workers=8,workers_per_gpu=8"`` or ``"name=slurm,slurm_partition=gpu"``,
    so a profile can run on another machine without editing its config. ``gpus = "auto"``
    and empty ``slurm_partition`` / ``folder`` strings mean ``None`` (TOML has no null).
    """
    merged = dict(section or {})
    text = (os.environ if environ is None else environ).get("GROSS_EXECUTOR", "")
    items = filter(None, (t.strip() for t in text.split(",")))
    try:
        merged.update(parse_assignments(items, example="GROSS_EXECUTOR='name=local,workers=2'", none_words=True))
    except ValueError as exc:
        raise ValueError(f"GROSS_EXECUTOR: {exc}") from None
    if merged.get("gpus") == "auto":  # TOML has no null
        merged["gpus"] = None
    for key in ("slurm_partition", "folder"):
        if merged.get(key) is not None:
            merged[key] = str(merged[key]) or None
    return ExecutorSettings.from_mapping(merged)


# ----------------------------------------------------------------------------- jobs
_FILE_CACHE: dict = {}


def fingerprint_file(path) -> str:
    """SHA-256 (hex) of a file's bytes, cached per (path, size, mtime) in this process."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input artefact {path} does not exist; run the step that makes it first")
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_CACHE:
        _FILE_CACHE[key] = file_digest(path)
    return _FILE_CACHE[key]


def _jsonable(value, where: str):
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise ValueError(
        f"{where}: job arguments must be JSON-like (None, bool, int, float, str, Path, list, dict), "
        f"got {type(value).__name__}; pass files as inputs= and settings as plain values"
    )


@dataclass(frozen=True)
class Job:
    """One independent unit of work.

    Parameters
    ----------
    fn : callable
        A module-level function ``fn(**kwargs, **inputs, checkpoint_dir=...) -> dict``
        (``checkpoint_dir`` only when it takes that argument). The dict may hold
        tensors, numbers, strings, lists and dicts (``torch.load(weights_only=True)``).
    kwargs : dict
        Settings and seed (JSON-like values; part of the fingerprint).
    name : str
        Readable stem of the output file, e.g. ``"config-4-8-16-r0"``.
    directory : path-like
        Folder of the output (e.g. ``runs/<profile>/jobs/<step>``).
    inputs : dict of str to path
        Files the job reads, passed to ``fn`` as keyword arguments (paths); their
        contents' SHA-256 are part of the fingerprint.
    """

    fn: Callable
    kwargs: dict
    name: str
    directory: Path
    inputs: dict = field(default_factory=dict)

    def __post_init__(self):
        fn = self.fn
        if not callable(fn) or "<locals>" in getattr(fn, "__qualname__", "<locals>") \
                or getattr(fn, "__name__", "") == "<lambda>":
            raise ValueError(f"job function must be a module-level function (picklable), got {fn!r}")
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"job name must be a non-empty file stem without '/', '\\' or spaces, got {self.name!r}")
        clash = sorted(set(self.kwargs) & set(self.inputs))
        if clash:
            raise ValueError(f"job {self.name}: {clash} given both as kwargs and as inputs")
        object.__setattr__(self, "kwargs", _jsonable(dict(self.kwargs), f"job {self.name}"))
        object.__setattr__(self, "inputs", {str(k): Path(v) for k, v in dict(self.inputs).items()})
        object.__setattr__(self, "directory", Path(self.directory))

    @property
    def function_name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def fingerprint(self) -> str:
        """First 16 hex digits of SHA-256 over the function name, kwargs and input file hashes."""
        key = {"fn": self.function_name, "kwargs": self.kwargs,
               "inputs": {k: fingerprint_file(v) for k, v in sorted(self.inputs.items())}}
        return digest(key, 16)

    @property
    def output(self) -> Path:
        """``<directory>/<name>-<fingerprint>.pt``."""
        return self.directory / f"{self.name}-{self.fingerprint()}.pt"

    @property
    def checkpoint_dir(self) -> Path:
        """Where the job keeps its training checkpoints (deleted once the output exists)."""
        return self.directory / "checkpoints" / f"{self.name}-{self.fingerprint()}"


# ----------------------------------------------------------------------------- outputs
def load_output(path) -> dict:
    """The result dict stored by a finished job (a sealed file: checksum verified).

    Raises
    ------
    FileNotFoundError
        No output at ``path``.
    CorruptOutputError
        Unreadable, wrong format or checksum mismatch (message says to delete the file).
    """
    path = Path(path)
    try:
        return load_sealed(path, _OUTPUT_FORMAT, "job output",
                           f"delete {path} and run the step again to recompute that job")
    except DamagedFileError as exc:
        raise CorruptOutputError(str(exc)) from None


def _is_done(job: Job) -> bool:
    """True when the output exists and is valid (a corrupt one raises)."""
    if not job.output.exists():
        return False
    load_output(job.output)
    return True


# ----------------------------------------------------------------------------- running one job
def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def execute(job: Job, threads: int = 1) -> str:
    """Run ``job`` in this process and write its output atomically; returns the output path.

    Sets ``torch.set_num_threads(threads)`` (restored afterwards) and seeds every
    generator with ``job.kwargs.get("seed", 0)`` so that the result does not depend on
    which worker runs it. A finished job (valid output) is not run again.
    """
    out = job.output
    if _is_done(job):
        return str(out)
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    seed_everything(int(job.kwargs.get("seed", 0)))
    kwargs = {**job.kwargs, **{k: str(v) for k, v in job.inputs.items()}}
    if _accepts(job.fn, "checkpoint_dir"):
        kwargs["checkpoint_dir"] = str(job.checkpoint_dir)
    t0 = time.perf_counter()
    try:
        result = job.fn(**kwargs)
    finally:
        torch.set_num_threads(previous)
    if not isinstance(result, dict):
        raise TypeError(f"job function {job.function_name} must return a dict, got {type(result).__name__}")
    meta = provenance(job=job.name, function=job.function_name, kwargs=job.kwargs,
                      inputs={k: str(v) for k, v in job.inputs.items()}, threads=int(threads),
                      wall_time_s=time.perf_counter() - t0,
                      cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    with _guard(out):
        atomic_save(seal(result, _OUTPUT_FORMAT, version=_OUTPUT_VERSION, fingerprint=job.fingerprint(),
                         meta=json.loads(json.dumps(meta, default=str))), out)
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    return str(out)


def _guard(out: Path):
    """The run lock of ``runs/<profile>/`` for a write there (:func:`gross.runs.store.write_guard`); else nothing."""
    try:
        profile = paths.check_profile_name(Path(out).resolve().relative_to(paths.runs_root().resolve()).parts[0])
    except ValueError:  # a job directory outside runs/<profile>/ (tests, benchmarks): no run folder to guard
        return contextlib.nullcontext()
    return write_guard(profile)


def _execute_or_report(job: Job, threads: int):
    """Worker entry point: ``(output path, None)`` or ``(None, traceback text)``."""
    try:
        return execute(job, threads), None
    except Exception:  # reported to the driver, which raises JobFailedError
        return None, traceback.format_exc()


# ----------------------------------------------------------------------------- executors
def _visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _gpu_slots(settings: ExecutorSettings) -> list:
    """GPU index of every local worker (``None`` for CPU workers)."""
    available = _visible_gpus()
    gpus = available if settings.gpus is None else settings.gpus
    if gpus > available:
        raise ValueError(f"executor asks for {gpus} GPUs but this machine has {available} visible; "
                         f"set gpus <= {available} (0 for CPU-only workers)")
    if gpus == 0:
        return [None] * settings.workers
    if settings.workers > gpus * settings.workers_per_gpu:
        raise ValueError(
            f"{settings.workers} workers but only {gpus} GPUs x {settings.workers_per_gpu} workers per GPU; "
            f"use workers <= {gpus * settings.workers_per_gpu} or raise workers_per_gpu"
        )
    return [i % gpus for i in range(settings.workers)]


def _init_worker(queue, threads: int) -> None:
    gpu = queue.get()
    if gpu is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(64)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[gpu]
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _run_serial(jobs, settings):
    for i, job in enumerate(jobs):
        yield i, _execute_or_report(job, settings.threads)


def _run_local(jobs, settings):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for slot in _gpu_slots(settings):
        queue.put(slot)
    pool = cf.ProcessPoolExecutor(max_workers=settings.workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(queue, settings.threads))
    try:
        with _environ({"PYTHONPATH": _pythonpath()}):
            futures = {pool.submit(_execute_or_report, job, settings.threads): i for i, job in enumerate(jobs)}
        for fut in cf.as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except cf.BrokenExecutor:
                raise JobFailedError(
                    "a worker process died (killed, or out of memory); finished jobs kept their outputs and "
                    "running ones their last checkpoint: run the same step again to finish the missing jobs"
                ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _submitit():
    try:
        return importlib.import_module("submitit")
    except ImportError:
        raise RuntimeError("this executor needs submitit: pip install submitit==1.5.4 "
                           "(or use executor 'local' or 'serial')") from None


def _submitit_executor(settings):
    submitit = _submitit()
    folder = Path(settings.folder) if settings.folder else paths.runs_root() / "submitit"
    if settings.name == "slurm":
        if shutil.which("sbatch") is None:
            raise RuntimeError("executor 'slurm' needs Slurm, but sbatch is not on PATH on this machine; "
                               "run from a Slurm login node, or use executor 'local' or 'serial'")
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params = {"timeout_min": settings.slurm_time_min, "gpus_per_node": settings.slurm_gpus_per_job,
                  "cpus_per_task": settings.threads, "slurm_array_parallelism": settings.slurm_array_parallelism,
                  "name": "gross"}
        if settings.slurm_partition:
            params["slurm_partition"] = settings.slurm_partition
        executor.update_parameters(**params)
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=settings.slurm_time_min)
    return executor


def _handle_result(handle):
    try:
        return handle.result()
    except Exception as exc:  # submitit's FailedJobError / UncompletedJobError (killed, timed out)
        return None, f"{type(exc).__name__}: {exc}"


def _run_submitit(jobs, settings):
    """Slurm: one array job. Local: ``workers`` submitit subprocesses at a time."""
    executor = _submitit_executor(settings)
    env = {"OMP_NUM_THREADS": str(settings.threads), "PYTHONPATH": _pythonpath()}
    waiting, pending = list(enumerate(jobs)), {}
    if settings.name == "slurm":
        with _environ(env):
            handles = executor.map_array(_execute_or_report, jobs, [settings.threads] * len(jobs))
        waiting, pending = [], dict(enumerate(handles))
    gpus = _visible_gpus() if settings.gpus is None else min(settings.gpus, _visible_gpus())
    while waiting or pending:
        while waiting and len(pending) < settings.workers:
            i, job = waiting.pop(0)
            slot = {"gpus_per_node": 1, "visible_gpus": (i % gpus,)} if gpus else {"gpus_per_node": 0}
            executor.update_parameters(**slot)
            with _environ(env):
                pending[i] = executor.submit(_execute_or_report, job, settings.threads)
        done = [i for i, h in pending.items() if h.done()]
        for i in done:
            yield i, _handle_result(pending.pop(i))
        if not done:
            time.sleep(settings.poll_s)


_RUNNERS = {"serial": _run_serial, "local": _run_local, "submitit_local": _run_submitit, "slurm": _run_submitit}


def _settings(executor) -> ExecutorSettings:
    if isinstance(executor, ExecutorSettings):
        return executor
    if isinstance(executor, str):
        return ExecutorSettings(name=executor)
    if isinstance(executor, Mapping) or executor is None:
        return ExecutorSettings.from_mapping(executor)
    raise ValueError(f"executor must be an ExecutorSettings, a mapping or one of {EXECUTORS}, got {executor!r}")


def run_jobs(jobs: Sequence[Job], executor="serial", progress: bool | None = None, desc: str = "jobs") -> list:
    """Run the jobs that have no valid output yet; return every job's result, in job order.

    Parameters
    ----------
    jobs : sequence of Job
        Distinct outputs required (two jobs with the same fingerprint and name are an error).
    executor : ExecutorSettings, mapping or str
        E.g. ``"serial"``, ``{"name": "local", "workers": 2}`` or ``ExecutorSettings(...)``.
    progress : bool, optional
        tqdm bar over jobs; ``None`` shows it only on a terminal.
    desc : str
        Label of the bar.

    Returns
    -------
    list of dict
        :func:`load_output` of each job, in the order of ``jobs``.

    Raises
    ------
    CorruptOutputError
        An existing output is damaged (before anything runs).
    JobFailedError
        Some jobs raised or their worker died; the others' outputs are kept.
    ValueError, RuntimeError
        Bad executor settings, or an executor that cannot run here.
    """
    settings = _settings(executor)
    jobs = list(jobs)
    outputs = [job.output for job in jobs]
    if len(set(outputs)) != len(outputs):
        dup = sorted({str(o) for o in outputs if outputs.count(o) > 1})
        raise ValueError(f"several jobs write the same output {dup[:3]}; give them distinct names or settings")
    results = {i: load_output(o) for i, o in enumerate(outputs) if o.exists()}  # a corrupt one raises here
    todo = [job for i, job in enumerate(jobs) if i not in results]
    if settings.name == "local":
        _gpu_slots(settings)  # bad GPU settings fail before anything starts
    disable = None if progress is None else not progress
    failures = []
    if todo:
        with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="job", disable=disable) as bar:
            for i, (path, error) in _RUNNERS[settings.name](todo, settings):
                if error is not None:
                    failures.append(f"{todo[i].name} ({todo[i].output.name}):\n{error}")
                bar.update(1)
    if failures:
        raise JobFailedError(f"{len(failures)} of {len(todo)} jobs failed (the others kept their outputs; "
                             f"run again to retry only the failed ones). First failure: {failures[0]}")
    for i, o in enumerate(outputs):
        if i not in results:  # the jobs that ran now
            results[i] = load_output(o)
    return [results[i] for i in range(len(outputs))]


def _pythonpath() -> str:
    root = str(paths.ROOT)
    rest = os.environ.get("PYTHONPATH", "")
    return root if not rest else root + os.pathsep + rest


class _environ:
    def __init__(self, env):
        self.env, self.old = env, {}

    def __enter__(self):
        for k, v in self.env.items():
            self.old[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
