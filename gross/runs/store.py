"""The file store of ``runs/<profile>/``: artefacts exchanged between notebooks, each with a fingerprint.

An *artefact* is a file under :func:`gross.utils.paths.run_dir` (a trained network, a
decomposition, one individual fine-tune). :meth:`Store.make` computes it inside a
:func:`gross.runs.config.recording`, so it knows which settings the computation read
(including those of the artefacts it loaded) and stores them next to the payload::

    {"format": 2, "fingerprint": "<sha256 of settings>", "settings": {"seed": 0, ...},
     "also_read": ["data.eval_batch_size", ...], "sha256": ..., "payload": {...}}

(JSON artefacts exactly so; torch artefacts as a sealed file, :mod:`gross.utils.sealed`, whose
header holds the fingerprint and settings and whose checksummed blob holds the payload).
Every load verifies the content checksum, so an edited number is an error, never a result.

``also_read`` names the keys of :data:`gross.runs.config.NO_EFFECT` the computation read: they
cannot change the result, so they are not fingerprinted, but loading reads them again, so that a
step that loads an artefact records the same settings as one that computed it.

Loading re-reads exactly the stored settings' keys from the current config: a different value
makes the artefact *stale* (re-made by :meth:`Store.make`, an error naming the
notebook to re-run from :meth:`Store.load`). A file that cannot be read, lacks
the envelope, or whose fingerprint does not match its settings raises
:class:`ArtefactError` naming the file and what to do. Every write is atomic
(temporary file + rename), so a crash never leaves half a file.

:func:`lock` guards a whole ``runs/<profile>/`` folder against a second concurrent
run (``make reproduce`` takes it, see :mod:`gross.pipeline.reproduce`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch

from gross.runs import config as _config
from gross import utils
from gross.utils import paths
from gross.utils.hashing import digest
from gross.utils.sealed import DamagedFileError, load_sealed, seal

__all__ = ["FORMAT", "HELD_ENV", "ArtefactError", "RunLocked", "PartialResults", "Store", "fingerprint", "require", "watch", "lock", "write_guard"]

#: Version of the envelope written around every artefact (2: content checksum).
FORMAT = 2
#: ``format`` of the sealed torch artefacts (:mod:`gross.utils.sealed`).
_KIND = "gross-artefact"

_WATCHERS: list[list] = []


class ArtefactError(ValueError):
    """A stored artefact that cannot be used: unreadable, damaged, or made with other settings."""


class RunLocked(RuntimeError):
    """Another process holds the lock of a ``runs/<profile>/`` folder."""


class PartialResults(Exception):
    """Raised by the ``compute`` of :meth:`Store.make_many`: some payloads are done, ``error`` is why the rest are not.

    :meth:`Store.make_many` stores ``payloads`` (artefact name -> payload) and then raises ``error``.
    """

    def __init__(self, payloads: dict, error: BaseException):
        super().__init__(str(error))
        self.payloads, self.error = dict(payloads), error


def _checksum(payload) -> str:
    """SHA-256 of a JSON artefact's payload (canonical JSON)."""
    return digest(payload, None)


def fingerprint(settings: Mapping) -> str:
    """Short SHA-1 of ``settings`` (JSON with sorted keys): the identity of an artefact's inputs."""
    return digest(dict(settings), 12)


def require(path, notebook: str, profile: str | None = None) -> Path:
    """Return ``path`` if it exists, else raise a ``FileNotFoundError`` naming the notebook to run.

    Raises
    ------
    FileNotFoundError
        ``"<path> is missing: run notebooks/02_finetuning.ipynb first (profile 'cpu')"``.
    """
    path = Path(path)
    if not path.exists():
        where = f" (profile {profile!r})" if profile is not None else ""
        raise FileNotFoundError(f"{path} is missing: run notebooks/{notebook}.ipynb first{where}")
    return path


@contextlib.contextmanager
def watch() -> Iterator[list]:
    """Collect the paths of the artefacts made (computed, not loaded) inside the block."""
    made: list = []
    _WATCHERS.append(made)
    try:
        yield made
    finally:
        _WATCHERS.remove(made)


def _settings(cfg: Mapping, keys) -> dict:
    """Current values of the dotted ``keys`` that can change a result (each read is recorded)."""
    return {k: _config.lookup(cfg, k) for k in sorted(keys) if k not in _config.NO_EFFECT and k != "profile"}


def _also_read(keys) -> list[str]:
    """The dotted ``keys`` of :data:`gross.runs.config.NO_EFFECT` among ``keys``: read, but not fingerprinted.

    Stored by name beside the settings and read again on every load, so that a step that loads an
    artefact records the same keys (``settings_read``) as one that computed it.
    """
    return sorted(k for k in keys if k in _config.NO_EFFECT)


def _reread(cfg: Mapping, keys) -> None:
    for key in keys:
        try:
            _config.lookup(cfg, key)
        except KeyError:  # a key of another profile's sections (e.g. imagenet.root): nothing to record
            pass


class Store:
    """Artefacts of one profile under ``runs/<profile>/`` (or ``$GROSS_RUNS/<profile>``).

    Parameters
    ----------
    cfg : Profile
        The resolved configuration (:func:`gross.runs.config.load`).
    """

    def __init__(self, cfg: Mapping):
        self.cfg = cfg
        self.profile = cfg["profile"]
        self.root = paths.run_dir(self.profile)
        self._making: list[set] = []

    def path(self, name: str) -> Path:
        """Absolute path of artefact ``name`` (relative to ``runs/<profile>/``)."""
        return self.root / name

    def fingerprint_so_far(self) -> str:
        """Fingerprint of the settings read so far by the artefact being made (names its checkpoints)."""
        if not self._making:
            raise RuntimeError("fingerprint_so_far() is only valid inside Store.make")
        return fingerprint(_settings(self.cfg, self._making[-1]))

    # ------------------------------------------------------------------ reading

    def _read(self, path: Path) -> dict:
        remedy = "delete it and re-run the notebook that writes it"
        foreign = (f"{path} was not written by this version of gross (no format-{FORMAT} envelope); "
                   f"delete {self.root} (or set $GROSS_RUNS elsewhere) and re-run the notebooks")
        if path.suffix == ".json":
            try:
                env = json.loads(path.read_text())
            except Exception as exc:  # any failure to parse means a damaged file
                raise ArtefactError(f"{path} is damaged and cannot be read ({type(exc).__name__}: {exc}); "
                                    f"{remedy}") from exc
            if not isinstance(env, dict) or env.get("format") != FORMAT or "settings" not in env:
                raise ArtefactError(foreign)
            if env.get("sha256") != _checksum(env.get("payload")):
                raise ArtefactError(f"{path} fails its SHA-256 content checksum (the file was altered or damaged); "
                                    f"{remedy}")
        else:
            try:
                header, payload = load_sealed(path, _KIND, "artefact", remedy, header=True)
            except DamagedFileError as exc:
                raise ArtefactError(str(exc)) from None
            if header.get("version") != FORMAT or "settings" not in header:
                raise ArtefactError(foreign)
            env = {**header, "payload": payload}
        if fingerprint(env["settings"]) != env.get("fingerprint"):
            raise ArtefactError(f"{path}: its fingerprint {env.get('fingerprint')!r} does not match its settings "
                                f"(the file was damaged or edited); delete it and re-run the notebook that writes it")
        return env

    def _stale_keys(self, env: dict) -> list[str]:
        _reread(self.cfg, env.get("also_read", ()))
        stored = env["settings"]
        current = _settings(self.cfg, stored)
        return sorted(k for k in stored if json.dumps(stored[k], default=str) != json.dumps(current[k], default=str))

    def load(self, name: str, notebook: str) -> dict:
        """The payload of artefact ``name``, checked against the current settings.

        Raises
        ------
        FileNotFoundError
            The file is missing (names ``notebook``, the one that writes it).
        ArtefactError
            Damaged, foreign or mismatched file, or made with other settings (lists the
            differing keys and the notebook to re-run).
        """
        path = require(self.path(name), notebook, self.profile)
        env = self._read(path)
        stale = self._stale_keys(env)
        if stale:
            raise ArtefactError(f"{path} was made with different settings (differing: {stale}); re-run "
                                f"notebooks/{notebook}.ipynb with profile {self.profile!r} to re-make it")
        return env["payload"]

    def is_fresh(self, name: str) -> bool:
        """Whether artefact ``name`` exists and matches the current settings (damaged files raise)."""
        path = self.path(name)
        return path.exists() and not self._stale_keys(self._read(path))

    # ------------------------------------------------------------------ writing

    def save(self, name: str, payload: dict, settings: Mapping, also_read=()) -> Path:
        """Write ``payload`` with ``settings`` and their fingerprint, atomically (``.json`` or torch file).

        ``also_read`` names the :data:`gross.runs.config.NO_EFFECT` keys the computation read
        (:func:`_also_read`): stored by name, outside the fingerprint, and read again on load.

        Under the run lock of the folder (:func:`write_guard`): taken for the write unless
        this process or the run that started it holds it already.
        """
        path = self.path(name)
        with write_guard(self.profile):
            if path.suffix == ".json":
                payload = json.loads(json.dumps(payload, default=float))  # as it will read back
                env = {"format": FORMAT, "fingerprint": fingerprint(settings), "settings": dict(settings),
                       "also_read": list(also_read), "sha256": _checksum(payload), "payload": payload}
                return utils.atomic_write_text(json.dumps(env, indent=1) + "\n", path)
            return utils.atomic_save(seal(payload, _KIND, version=FORMAT, fingerprint=fingerprint(settings),
                                          settings=dict(settings), also_read=list(also_read)), path)

    def read(self, name: str) -> dict:
        """The whole stored envelope of artefact ``name``: ``settings``, ``fingerprint`` and ``payload`` (checked)."""
        path = self.path(name)
        if not path.exists():
            raise FileNotFoundError(f"artefact {path} does not exist")
        return self._read(path)

    def make(self, name: str, compute: Callable[[], dict], notebook: str) -> dict:
        """Load artefact ``name`` if it is fresh, else compute, store and return it.

        ``compute()`` returns the payload; every config key it reads (directly or by
        loading other artefacts) becomes part of the stored settings.
        """
        path = self.path(name)
        if path.exists():
            env = self._read(path)
            if not self._stale_keys(env):
                return env["payload"]
        with _config.recording() as reads:
            self._making.append(reads)
            try:
                t0 = time.perf_counter()
                payload = compute()
            finally:
                self._making.pop()
        payload.setdefault("wall_time_s", time.perf_counter() - t0)
        self.save(name, payload, _settings(self.cfg, reads), _also_read(reads))
        for made in _WATCHERS:
            made.append(name)
        return payload

    def make_many(self, names, compute: Callable[[list], dict], notebook: str) -> list[dict]:
        """:meth:`make` for artefacts computed together (e.g. K networks trained at once).

        ``compute(missing)`` gets the names that are not fresh and returns ``{name: payload}``
        for each. Each is stored as :meth:`make` would store it alone: with the settings read
        by ``compute`` (artefacts of one kind read the same keys) and ``wall_time_s`` = its
        share of the computation's time (unless the payload has one). ``compute`` may raise
        :class:`PartialResults`: the finished payloads are stored, then its error is raised.
        Returns the payloads in the order of ``names``.
        """
        names = list(names)
        out = {}
        for name in names:
            path = self.path(name)
            if path.exists():
                env = self._read(path)
                if not self._stale_keys(env):
                    out[name] = env["payload"]
        missing = [n for n in dict.fromkeys(names) if n not in out]
        if not missing:
            return [out[n] for n in names]
        error = None
        with _config.recording() as reads:
            self._making.append(reads)
            try:
                t0 = time.perf_counter()
                try:
                    payloads = compute(list(missing))
                except PartialResults as exc:
                    payloads, error = exc.payloads, exc.error
            finally:
                self._making.pop()
        unknown = sorted(set(payloads) - set(missing))
        if unknown:
            raise ValueError(f"make_many: compute returned artefacts {unknown} it was not asked for ({missing})")
        share = (time.perf_counter() - t0) / len(missing)
        settings = _settings(self.cfg, reads)
        for name in missing:
            if name in payloads:
                payloads[name].setdefault("wall_time_s", share)
                self.save(name, payloads[name], settings, _also_read(reads))
                for made in _WATCHERS:
                    made.append(name)
        if error is not None:
            raise error
        absent = [n for n in missing if n not in payloads]
        if absent:
            raise ValueError(f"make_many: compute returned no payload for {absent}")
        out.update(payloads)
        return [out[n] for n in names]


# ----------------------------------------------------------------------------- lock


#: Environment variable naming the lock file a process (and every process it starts: notebook
#: kernels, job workers) already holds; :meth:`Store.save` does not take it again.
HELD_ENV = "GROSS_HELD_LOCK"
#: How long a write outside a run waits for the lock (seconds) before refusing.
WRITE_WAIT_S = 30.0


@contextlib.contextmanager
def lock(profile: str, wait: bool | float = False) -> Iterator[Path]:
    """Hold the lock of ``runs/<profile>/`` (``fcntl.flock`` on ``.lock``) for the block.

    The lock is released when the block ends or the process dies. The lock file
    records the holder's pid and command line for the message of the next comer. While
    it is held, ``$GROSS_HELD_LOCK`` names it, so processes started inside the block
    (papermill's kernels, job workers) write under it without taking it again.

    Parameters
    ----------
    profile : str
    wait : bool or float, default False
        Block until the lock is free (``True``), for at most that many seconds (a
        number), or not at all (``False``) before raising.

    Raises
    ------
    RunLocked
        Another process holds the lock (names it, the folder and what to do).
    """
    path = paths.run_dir(profile) / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if path.is_symlink():
            raise RunLocked(f"{path} is a symbolic link (to {os.readlink(path)}); a lock file must be a plain file, "
                            f"so nothing is written through it: delete the link") from None
        raise
    previous = os.environ.get(HELD_ENV)
    try:
        _acquire(fd, path, wait)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        os.environ[HELD_ENV] = str(path)
        yield path
    finally:
        if previous is None:
            os.environ.pop(HELD_ENV, None)
        else:
            os.environ[HELD_ENV] = previous
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(fd: int, path: Path, wait: bool | float) -> None:
    if wait is True:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + (0.0 if wait is False else float(wait))
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = Path(path).read_text().strip() or "unknown process"
                raise RunLocked(f"{path.parent} is in use by another run ({holder}); wait for it to finish, "
                                f"or give this run its own folder with GROSS_RUNS=<dir>") from None
            time.sleep(0.05)


@contextlib.contextmanager
def write_guard(profile: str) -> Iterator[None]:
    """Hold the run lock for one write, unless this process or its parent run already holds it.

    Notebooks opened in JupyterLab (no run) take it only while they write, so they never
    block each other while idle; a write while ``make reproduce`` runs on the same folder
    waits :data:`WRITE_WAIT_S` seconds and then refuses, naming that run.
    """
    if os.environ.get(HELD_ENV) == str(paths.run_dir(profile) / ".lock"):
        yield
        return
    with lock(profile, wait=WRITE_WAIT_S):
        yield
