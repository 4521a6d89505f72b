"""gross.utils.hashing: the one hash (SHA-256 of canonical JSON, bytes, files), checked against hashlib."""

import hashlib
import json

import pytest

from gross.utils.hashing import bytes_digest, digest, file_digest


def test_digest_is_sha256_of_sorted_json_and_ignores_key_order():
    obj = {"b": [1, 2.5, "x"], "a": {"y": None, "x": True}}
    want = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
    assert digest(obj, None) == want and digest(obj) == want[:16] and digest(obj, 12) == want[:12]
    assert digest({"a": {"x": True, "y": None}, "b": [1, 2.5, "x"]}) == digest(obj)
    assert digest({"a": 1}) != digest({"a": 2})


def test_digest_writes_unknown_objects_with_str():
    class Thing:
        def __str__(self):
            return "thing"

    assert digest({"k": Thing()}) == digest({"k": "thing"})


def test_bytes_and_file_digest(tmp_path):
    data = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert bytes_digest(data) == hashlib.sha256(data).hexdigest() == file_digest(path)
    with pytest.raises(ValueError, match="length must be an int in 1..64"):
        bytes_digest(data, 0)
