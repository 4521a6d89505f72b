"""Tests of gross.utils.sealed: plain data with a content checksum, verified on every load."""

import pytest
import torch

from gross.utils import atomic_save
from gross.utils.sealed import DamagedFileError, load_sealed, seal


def test_round_trip_keeps_the_object_and_the_header(tmp_path):
    obj = {"w": torch.arange(6.0, dtype=torch.float64).reshape(2, 3), "n": [1, 2], "s": "x"}
    atomic_save(seal(obj, "kind-a", fingerprint="abc"), tmp_path / "f.pt")
    header, back = load_sealed(tmp_path / "f.pt", "kind-a", "thing", "redo it", header=True)
    assert header == {"fingerprint": "abc"} and back["n"] == [1, 2] and torch.equal(back["w"], obj["w"])


@pytest.mark.probe
def test_a_changed_byte_of_the_object_fails_the_checksum(tmp_path):
    atomic_save(seal({"w": torch.zeros(100)}, "kind-a"), tmp_path / "f.pt")
    env = torch.load(tmp_path / "f.pt", weights_only=True)
    blob = bytearray(env["blob"])
    i = bytes(blob).index(bytes(400))
    blob[i + 100] = 1
    env["blob"] = bytes(blob)
    torch.save(env, tmp_path / "f.pt")
    with pytest.raises(DamagedFileError, match=r"thing .*f\.pt fails its SHA-256 content checksum .*; redo it"):
        load_sealed(tmp_path / "f.pt", "kind-a", "thing", "redo it")


def test_another_kind_a_plain_torch_file_and_garbage_are_named(tmp_path):
    atomic_save(seal({}, "kind-a"), tmp_path / "a.pt")
    with pytest.raises(DamagedFileError, match=r"is not a sealed 'kind-b' file \(found 'kind-a'"):
        load_sealed(tmp_path / "a.pt", "kind-b", "thing", "redo it")
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(DamagedFileError, match=r"is not a sealed 'kind-a' file \(found None"):
        load_sealed(tmp_path / "plain.pt", "kind-a", "thing", "redo it")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DamagedFileError, match=r"junk\.pt is unreadable"):
        load_sealed(tmp_path / "junk.pt", "kind-a", "thing", "redo it")
    with pytest.raises(FileNotFoundError, match=r"thing .*none\.pt does not exist"):
        load_sealed(tmp_path / "none.pt", "kind-a", "thing", "redo it")




@pytest.mark.probe
def test_code_in_a_file_never_runs(tmp_path, code_in_a_pickle):
    evil, marker = code_in_a_pickle
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(DamagedFileError, match=r"evil\.pt is unreadable or cannot be read as plain data "
                                                r"\(UnpicklingError: WeightsUnpickler error"):
        load_sealed(tmp_path / "evil.pt", "kind-a", "thing", "redo it")
    # also inside a correctly checksummed blob (a file crafted with the checksum recomputed)
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save(evil, buf)
    blob = buf.getvalue()
    torch.save({"format": "kind-a", "sha256": hashlib.sha256(blob).hexdigest(), "blob": blob}, tmp_path / "c.pt")
    with pytest.raises(DamagedFileError, match=r"holds more than plain data"):
        load_sealed(tmp_path / "c.pt", "kind-a", "thing", "redo it")
    assert not marker.exists()


@pytest.mark.probe
def test_a_failed_write_names_the_file_and_the_free_space(tmp_path, monkeypatch):
    """A full disk (torch: RuntimeError 'unexpected pos') names the file and the space left; nothing half-written."""
    target = tmp_path / "out.pt"
    atomic_save({"old": 1}, target)

    def full_disk(obj, fh, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"writing .*out\.pt failed \(RuntimeError: \[enforce fail.*\); "
                                      r"[0-9.]+ (B|KiB|MiB|GiB) free in .*Nothing was half-written"):
        atomic_save({"new": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]
