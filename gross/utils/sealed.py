"""Sealed files: plain data with a content checksum, verified on every load.

A sealed file is ``torch.save`` of ``{"format": <kind>, "sha256": <hex>, "blob": <bytes>}``
where ``blob`` is ``torch.save`` of the object itself and ``sha256`` its checksum. Loading
reads both layers with ``torch.load(weights_only=True)`` (plain data: tensors, numbers,
strings, lists, dicts -- nothing in the file can run code) and checks the checksum before
the object is unpacked, so an altered, truncated or foreign file is an error naming the file
and what to do, never a silently wrong number.

Used by the store's artefacts (:mod:`gross.runs.store`), job outputs (:mod:`gross.runs.jobs`),
training checkpoints (:mod:`gross.training`) and the decoded CIFAR-10 cache
(:mod:`gross.data.cifar`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from gross.utils.hashing import bytes_digest

__all__ = ["DamagedFileError", "seal", "unseal", "load_sealed", "to_bytes"]


class DamagedFileError(ValueError):
    """A sealed file that cannot be trusted: unreadable, of another kind, or failing its checksum."""


def to_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` into bytes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def seal(obj: Any, kind: str, **header) -> dict:
    """The sealed form of ``obj``: ``{"format": kind, "sha256", "blob", **header}`` (save it with ``torch.save``).

    ``header`` holds plain values readable without unpacking the blob (e.g. a fingerprint).
    """
    blob = to_bytes(obj)
    return {**header, "format": kind, "sha256": bytes_digest(blob), "blob": blob}


def _fail(what: str, path, reason: str, remedy: str) -> DamagedFileError:
    return DamagedFileError(f"{what} {path} {reason}; {remedy}")


def _read(path: Path, what: str, remedy: str) -> Any:
    """``torch.load(path, weights_only=True)``; any failure becomes one line naming the reason."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip or pickle, or a forbidden global
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if ln.startswith("WeightsUnpickler error:")), lines[0] if lines else "")
        raise _fail(what, path, f"is unreadable or cannot be read as plain data ({type(exc).__name__}: {reason})",
                    remedy) from None


def unseal(envelope: Any, kind: str, path, what: str, remedy: str) -> Any:
    """The object inside ``envelope`` (read from ``path``) after checking its kind and checksum."""
    if not isinstance(envelope, dict) or envelope.get("format") != kind or not isinstance(envelope.get("blob"), bytes):
        found = envelope.get("format") if isinstance(envelope, dict) else type(envelope).__name__
        raise _fail(what, path, f"is not a sealed {kind!r} file (found {found!r}: written by another version "
                                "of gross, or not by gross)", remedy)
    if bytes_digest(envelope["blob"]) != envelope.get("sha256"):
        raise _fail(what, path, "fails its SHA-256 content checksum (the file was altered or damaged)", remedy)
    try:
        return torch.load(io.BytesIO(envelope["blob"]), map_location="cpu", weights_only=True)
    except Exception as exc:  # a checksummed blob that is not plain data was written so on purpose
        raise _fail(what, path, f"holds more than plain data ({type(exc).__name__})", remedy) from None


def load_sealed(path: str | os.PathLike, kind: str, what: str, remedy: str, header: bool = False) -> Any:
    """Read the sealed file ``path`` of ``kind`` and return its object (checksum verified).

    Parameters
    ----------
    path : path-like
    kind : str
        The ``format`` the file must carry (e.g. ``"gross-train-checkpoint"``).
    what : str
        What the file is, for messages (``"checkpoint"``, ``"job output"``).
    remedy : str
        What the user should do when it is damaged (``"delete it and run the step again"``).
    header : bool
        Return ``(header, obj)``: the envelope's other keys (see :func:`seal`) with the object.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    DamagedFileError
        Unreadable, of another kind, failing its checksum, or not plain data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    envelope = _read(path, what, remedy)
    obj = unseal(envelope, kind, path, what, remedy)
    if header:
        return {k: v for k, v in envelope.items() if k not in ("format", "sha256", "blob")}, obj
    return obj
