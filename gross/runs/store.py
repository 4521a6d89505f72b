"""The file store of ``runs/<profile>/``: artefacts exchanged between notebooks, each with a fingerprint.

An *artefact* is a file under :func:`gross.utils.paths.run_dir` (a trained network, a
decomposition, one individual fine-tune). :meth:`Store.make` computes it inside a
:func:`gross.runs.config.recording`, so it knows which settings the computation read
(including those of the artefacts it loaded) and stores them next to the payload::

    {"format": 1, "fingerprint": "<sha1 of settings>", "settings": {"seed": 0, ...}, "payload": {...}}

Loading re-reads exactly those keys from the current config: a different value
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

__all__ = ["FORMAT", "ArtefactError", "RunLocked", "Store", "fingerprint", "require", "watch", "lock"]

#: Version of the envelope written around every artefact.
FORMAT = 1

_WATCHERS: list[list] = []


class ArtefactError(ValueError):
    """A stored artefact that cannot be used: unreadable, damaged, or made with other settings."""


class RunLocked(RuntimeError):
    """Another process holds the lock of a ``runs/<profile>/`` folder."""


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
        try:
            if path.suffix == ".json":
                env = json.loads(path.read_text())
            else:
                env = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any failure to parse means a damaged file
            raise ArtefactError(f"{path} is damaged and cannot be read ({type(exc).__name__}: {exc}); "
                                f"delete it and re-run the notebook that writes it") from exc
        if not isinstance(env, dict) or env.get("format") != FORMAT or "settings" not in env:
            raise ArtefactError(f"{path} was not written by this version of gross (no format-{FORMAT} envelope); "
                                f"delete {self.root} (or set $GROSS_RUNS elsewhere) and re-run the notebooks")
        if fingerprint(env["settings"]) != env.get("fingerprint"):
            raise ArtefactError(f"{path}: its fingerprint {env.get('fingerprint')!r} does not match its settings "
                                f"(the file was damaged or edited); delete it and re-run the notebook that writes it")
        return env

    def _stale_keys(self, env: dict) -> list[str]:
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

    def save(self, name: str, payload: dict, settings: Mapping) -> Path:
        """Write ``payload`` with ``settings`` and their fingerprint, atomically (``.json`` or torch file)."""
        env = {"format": FORMAT, "fingerprint": fingerprint(settings), "settings": dict(settings),
               "payload": payload}
        path = self.path(name)
        if path.suffix == ".json":
            return utils.atomic_write_text(json.dumps(env, indent=1, default=float) + "\n", path)
        return utils.atomic_save(env, path)

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
        self.save(name, payload, _settings(self.cfg, reads))
        for made in _WATCHERS:
            made.append(name)
        return payload


# ----------------------------------------------------------------------------- lock


@contextlib.contextmanager
def lock(profile: str, wait: bool = False) -> Iterator[Path]:
    """Hold the lock of ``runs/<profile>/`` (``fcntl.flock`` on ``.lock``) for the block.

    The lock is released when the block ends or the process dies. The lock file
    records the holder's pid and command line for the message of the next comer.

    Parameters
    ----------
    profile : str
    wait : bool, default False
        Block until the lock is free instead of raising.

    Raises
    ------
    RunLocked
        Another process holds the lock (names it, the folder and what to do).
    """
    path = paths.run_dir(profile) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = Path(path).read_text().strip() or "unknown process"
            raise RunLocked(f"{path.parent} is in use by another run ({holder}); wait for it to finish, "
                            f"or give this run its own folder with GROSS_RUNS=<dir>") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
