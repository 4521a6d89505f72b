"""Tests for gross.data.cifar: CIFAR-10 sources (batches, image tree, tar), cache, clear errors."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gross.data import cifar as C
from gross import data as D


#: The real CIFAR-10 JPEG archive, when ``$GROSS_DATA`` names one (``.ci/run`` sets it from the shared
#: data folder). Every reader is also tested on archives these tests make themselves (below); this
#: one test only checks that the real archive's layout and JPEGs parse.
_GROSS_DATA = os.environ.get("GROSS_DATA", "")
REAL_TAR = Path(_GROSS_DATA) if _GROSS_DATA.endswith((".tar.gz", ".tgz")) else None
CLASSES = D.CIFAR10_CLASSES


# ----------------------------------------------------------------------------- fixtures
def _rng_image(rng, size=32):
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _make_tree(root: Path, n_train=3, n_test=2, classes=CLASSES, seed=0, size=32):
    """Lossless (PNG) tree; returns {split: (images N x 3 x H x W, labels)} in reader order."""
    rng = np.random.default_rng(seed)
    expected = {}
    for split, n in (("train", n_train), ("test", n_test)):
        imgs, labels = [], []
        for label, cls in enumerate(sorted(classes)):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = _rng_image(rng, size)
                (folder / f"{i:04d}.png").write_bytes(_png_bytes(arr))
                imgs.append(arr.transpose(2, 0, 1))
                labels.append(label)
        expected[split] = (torch.from_numpy(np.stack(imgs)), torch.tensor(labels))
    return expected


def _tar_tree(tree_parent: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(tree_parent, arcname="cifar10-mini")
    return out


def _make_batches(folder: Path, n_per_batch=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    expected = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
        key = "test" if name == "test_batch" else "train"
        expected[key][0].append(data.reshape(-1, 3, 32, 32))
        expected[key][1].extend(labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, fh)
    return {k: (torch.from_numpy(np.concatenate(v[0])), torch.tensor(v[1])) for k, v in expected.items()}


def _full_train(ds):
    """Reassemble the 50k-style training set from train + val in original order."""
    return torch.cat([ds.train.images, ds.val.images]), torch.cat([ds.train.labels, ds.val.labels])


def _same_rows(a_imgs, a_lab, b_imgs, b_lab):
    """True when (image, label) multisets are equal."""
    def keys(imgs, lab):
        return sorted(bytes(i.flatten().numpy()) + bytes([int(l)]) for i, l in zip(imgs, lab))
    return keys(a_imgs, a_lab) == keys(b_imgs, b_lab)


def test_cifar10_from_tree_splits_and_caches(tmp_path, monkeypatch):
    expected = _make_tree(tmp_path / "tree", n_train=3, n_test=2)
    cache = tmp_path / "cache"
    ds = D.cifar10(tmp_path / "tree", val_size=10, seed=0, cache_dir=cache)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (20, 10, 20)
    assert ds.classes == tuple(sorted(CLASSES))
    assert torch.bincount(ds.val.labels).tolist() == [1] * 10  # stratified
    assert _same_rows(*_full_train(ds), *expected["train"])
    assert torch.equal(ds.test.images, expected["test"][0]) and torch.equal(ds.test.labels, expected["test"][1])
    assert len(list(cache.glob("cifar10-*.pt"))) == 1
    assert not list(cache.glob("*.tmp"))
    # a second load comes from the cache: the reader must not run
    monkeypatch.setitem(C._READERS, "tree", lambda *a, **k: pytest.fail("source decoded again"))
    again = D.cifar10(tmp_path / "tree", val_size=10, seed=0, cache_dir=cache)
    assert torch.equal(again.val.images, ds.val.images)
    other = D.cifar10(tmp_path / "tree", val_size=10, seed=1, cache_dir=cache)
    assert not torch.equal(other.val.images, ds.val.images)
    with pytest.raises(ValueError, match="val_size=30"):
        D.cifar10(tmp_path / "tree", val_size=30, cache_dir=cache)


def test_cifar10_from_tar_and_env_variable(tmp_path, monkeypatch):
    expected = _make_tree(tmp_path / "tree", n_train=2, n_test=1, seed=1)
    archive = _tar_tree(tmp_path / "tree", tmp_path / "mini.tar.gz")
    monkeypatch.setenv("GROSS_DATA", str(archive))
    ds = D.cifar10(val_size=5, cache_dir=tmp_path / "cache")
    assert ds.source == str(archive.resolve()) and ds.info["kind"] == "tar"
    assert _same_rows(*_full_train(ds), *expected["train"])
    assert torch.equal(ds.test.images, expected["test"][0])
    # the extracted folder (tree inside a single sub-folder) gives the same data
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    ds2 = D.cifar10(tmp_path / "extracted", val_size=5, cache_dir=tmp_path / "cache")
    assert torch.equal(ds2.train.images, ds.train.images) and torch.equal(ds2.val.labels, ds.val.labels)
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 2  # different sources, different keys


def test_cifar10_from_torchvision_batches(tmp_path):
    expected = _make_batches(tmp_path / "cifar-10-batches-py")
    ds = D.cifar10(tmp_path, val_size=4, cache_dir=tmp_path / "cache")  # parent folder is accepted too
    assert ds.classes == CLASSES and len(ds.test) == 4
    assert _same_rows(*_full_train(ds), *expected["train"])
    assert torch.equal(ds.test.images, expected["test"][0])


def _assert_no_cache(cache: Path):
    assert not cache.exists() or not any(cache.iterdir())


def test_cifar10_bad_sources_raise_clear_errors(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="GROSS_DATA"):
        D.cifar10(tmp_path / "nope", cache_dir=cache)
    # wrong class count
    _make_tree(tmp_path / "nine", n_train=1, n_test=1, classes=CLASSES[:9])
    with pytest.raises(ValueError, match="9 classes"):
        D.cifar10(tmp_path / "nine", val_size=1, cache_dir=cache)
    # missing test split
    _make_tree(tmp_path / "notest", n_train=1, n_test=1)
    for p in (tmp_path / "notest" / "test").rglob("*.png"):
        p.unlink()
    with pytest.raises((ValueError, FileNotFoundError), match="test"):
        D.cifar10(tmp_path / "notest", val_size=1, cache_dir=cache)
    # unreadable image, named in the message
    _make_tree(tmp_path / "corrupt", n_train=1, n_test=1)
    bad = tmp_path / "corrupt" / "train" / "cat" / "0000.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="0000.png"):
        D.cifar10(tmp_path / "corrupt", val_size=1, cache_dir=cache)
    # wrong image size
    _make_tree(tmp_path / "big", n_train=1, n_test=1, size=40)
    with pytest.raises(ValueError, match="expected 32x32"):
        D.cifar10(tmp_path / "big", val_size=1, cache_dir=cache)
    # truncated archive
    _make_tree(tmp_path / "t", n_train=2, n_test=1)
    archive = _tar_tree(tmp_path / "t", tmp_path / "t.tar.gz")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="t.tar.gz"):
        D.cifar10(archive, val_size=1, cache_dir=cache)
    # torchvision folder missing a batch
    _make_batches(tmp_path / "b" / "cifar-10-batches-py")
    (tmp_path / "b" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        D.cifar10(tmp_path / "b", val_size=1, cache_dir=cache)
    _assert_no_cache(cache)


def test_cifar10_without_any_source_lists_the_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("GROSS_DATA", raising=False)
    monkeypatch.setattr(C.paths, "DATA", tmp_path / "data")
    with pytest.raises(FileNotFoundError) as info:
        D.cifar10(download=False)
    msg = str(info.value)
    assert "cifar-10-batches-py" in msg and "{train,test}/<class>" in msg and ".tar.gz" in msg and "GROSS_DATA" in msg

    def offline(root):
        raise RuntimeError("network unreachable")
    monkeypatch.setattr(C, "_download", offline)
    with pytest.raises(FileNotFoundError, match="download failed"):
        D.cifar10()


def test_corrupt_cache_is_rebuilt(tmp_path):
    _make_tree(tmp_path / "tree", n_train=1, n_test=1)
    cache = tmp_path / "cache"
    first = D.cifar10(tmp_path / "tree", val_size=2, cache_dir=cache)
    (file,) = cache.glob("cifar10-*.pt")
    file.write_bytes(file.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable CIFAR-10 cache"):
        again = D.cifar10(tmp_path / "tree", val_size=2, cache_dir=cache)
    assert torch.equal(again.train.images, first.train.images)


@pytest.mark.probe
def test_altered_cache_pixels_are_caught_and_decoded_again(tmp_path):
    """Overwriting bytes inside the cache's pixel data fails its checksum: decoded again, not used."""
    _make_tree(tmp_path / "tree", n_train=2, n_test=1)
    cache = tmp_path / "cache"
    first = D.cifar10(tmp_path / "tree", val_size=2, cache_dir=cache)
    (file,) = cache.glob("cifar10-*.pt")
    env = torch.load(file, weights_only=True)
    pixels = first.test.images.numpy().tobytes()[:64]
    blob = bytearray(env["blob"])
    i = bytes(blob).index(pixels)
    blob[i:i + 64] = bytes(255 - b for b in pixels)
    env["blob"] = bytes(blob)
    torch.save(env, file)
    with pytest.warns(UserWarning, match=r"fails its SHA-256 content checksum"):
        again = D.cifar10(tmp_path / "tree", val_size=2, cache_dir=cache)
    assert torch.equal(again.test.images, first.test.images)
    D.cifar10(tmp_path / "tree", val_size=2, cache_dir=cache)  # rewritten: loads without a warning


@pytest.mark.skipif(REAL_TAR is None, reason="GROSS_DATA names no CIFAR-10 .tar.gz (the readers are tested on "
                                               "archives made by these tests)")
def test_real_mirror_members_parse():
    assert REAL_TAR.is_file(), f"GROSS_DATA={REAL_TAR} is not a file"
    # fast: only the first few members of the real archive go through the tree reader's parser/decoder
    assert C._resolve_source(REAL_TAR)[0] == "tar"
    n = 0
    with tarfile.open(REAL_TAR, "r:gz") as tar:
        for member in tar:
            hit = C._tree_member(member.name.split("/"))
            if member.isfile() and hit:
                assert hit[0] in ("train", "test") and hit[1] in CLASSES
                arr = C._decode_image(tar.extractfile(member).read(), member.name, 32)
                assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
                n += 1
                if n == 20:
                    break
    assert n == 20


# ----------------------------------------------------------------------------- ImageNet folders




@pytest.mark.probe
def test_a_crafted_batch_file_is_refused_without_running_code(tmp_path, code_in_a_pickle):
    folder = tmp_path / "cifar-10-batches-py"
    _make_batches(folder)
    evil, marker = code_in_a_pickle
    with open(folder / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": evil, b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"data_batch_2: refusing global pathlib.*Path.write_text"):
        D.cifar10(tmp_path, val_size=4, cache_dir=tmp_path / "cache")
    assert not marker.exists()


@pytest.mark.probe
def test_a_batch_file_that_is_not_a_dict_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _make_batches(folder)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(7, fh)
    with pytest.raises(ValueError, match=r"batches.meta holds a int, expected a dict"):
        D.cifar10(tmp_path, val_size=4, cache_dir=tmp_path / "cache")
