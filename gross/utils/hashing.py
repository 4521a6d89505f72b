"""The one hash of gross: SHA-256 of canonical JSON, of bytes or of a file.

Fingerprints of stored artefacts and jobs, cache keys and content checksums all come
from here, so that one object always hashes the same way wherever it is hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["digest", "bytes_digest", "file_digest"]


def bytes_digest(data: bytes, length: int | None = None) -> str:
    """SHA-256 (hex) of ``data``, cut to its first ``length`` hex digits when given."""
    if length is not None and not (isinstance(length, int) and 1 <= length <= 64):
        raise ValueError(f"length must be an int in 1..64 (hex digits of SHA-256), got {length!r}")
    hexdigest = hashlib.sha256(data).hexdigest()
    return hexdigest if length is None else hexdigest[:length]


def digest(obj, length: int | None = 16) -> str:
    """SHA-256 (hex, first ``length`` digits) of ``obj`` as canonical JSON.

    Keys are sorted and objects JSON cannot encode are written with ``str``, so equal
    settings give equal digests whatever their order.

    Examples
    --------
    >>> digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    True
    """
    return bytes_digest(json.dumps(obj, sort_keys=True, default=str).encode(), length)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex, all 64 digits) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
