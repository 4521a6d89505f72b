"""Tests for gross.data: readers, caching, splits, augmentation, batching, ImageNet folders."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gross import data as D

REAL_TAR = Path("/work/shared/data/cifar10-jpeg.tar.gz")
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


# ----------------------------------------------------------------------------- containers
def test_split_validates_types_and_lengths():
    with pytest.raises(ValueError, match="uint8"):
        D.Split(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        D.Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="must match"):
        D.Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_dataset_split_lookup_and_normalization_copy():
    ds = D.synthetic(n_train=20, n_val=10, n_test=10)
    assert ds.split("val") is ds.val
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        ds.split("validation")
    other = ds.with_normalization((0.5,) * 3, (0.225,) * 3)
    assert other.std == (0.225,) * 3 and ds.std == (0.5,) * 3 and other.train is ds.train


# ----------------------------------------------------------------------------- synthetic & subset
def test_synthetic_shapes_balance_and_seed():
    ds = D.synthetic(n_train=100, n_val=50, n_test=30, seed=3, num_classes=5, image_size=16)
    assert ds.train.images.shape == (100, 3, 16, 16) and ds.train.images.dtype == torch.uint8
    assert torch.bincount(ds.train.labels).tolist() == [20] * 5
    again = D.synthetic(n_train=100, n_val=50, n_test=30, seed=3, num_classes=5, image_size=16)
    other = D.synthetic(n_train=100, n_val=50, n_test=30, seed=4, num_classes=5, image_size=16)
    assert torch.equal(ds.train.images, again.train.images)
    assert not torch.equal(ds.train.images, other.train.images)


def test_synthetic_signal_is_learnable():
    # nearest class-mean colour classifier (an independent learner) must beat chance by far
    ds = D.synthetic(n_train=500, n_val=10, n_test=500, seed=1)
    feats = lambda s: s.images.double().mean(dim=(2, 3))  # noqa: E731
    centres = torch.stack([feats(ds.train)[ds.train.labels == c].mean(0) for c in range(10)])
    pred = torch.cdist(feats(ds.test), centres).argmin(1)
    assert (pred == ds.test.labels).double().mean() > 0.6


def test_subset_is_stratified_seeded_and_drawn_from_the_split():
    ds = D.synthetic(n_train=200, n_val=100, n_test=100)
    sub = D.subset(ds, n_train=50, n_val=20, seed=5)
    assert len(sub.train) == 50 and len(sub.val) == 20 and sub.test is ds.test
    assert torch.bincount(sub.val.labels, minlength=10).tolist() == [2] * 10
    assert torch.bincount(sub.train.labels, minlength=10).tolist() == [5] * 10
    # every chosen row is a row of the original split, without repetition
    rows = {bytes(x.numpy()) for x in ds.train.images.flatten(1)}
    chosen = [bytes(x.numpy()) for x in sub.train.images.flatten(1)]
    assert all(c in rows for c in chosen) and len(set(chosen)) == 50
    assert torch.equal(D.subset(ds, n_train=50, seed=5).train.images, sub.train.images)
    assert not torch.equal(D.subset(ds, n_train=50, seed=6).train.images, sub.train.images)
    with pytest.raises(ValueError, match="n_train=500"):
        D.subset(ds, n_train=500)


# ----------------------------------------------------------------------------- augmentation & batching
def test_augment_is_a_padded_crop_with_optional_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)  # no zeros: padding is recognisable
    out = D.augment(x, g, padding=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (2, 2, 2, 2))
    seen = set()
    for i in range(len(x)):
        matches = [(oy, ox, fl) for oy in range(5) for ox in range(5) for fl in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(-1) if fl else c)(padded[i, :, oy:oy + 8, ox:ox + 8]))]
        assert matches, f"image {i} is not a crop/flip of the padded input"
        seen.update(matches)
    assert {m[2] for m in seen} == {False, True}
    assert len({(m[0], m[1]) for m in seen}) > 10


def test_augment_statistics_and_determinism():
    # column j holds value j + 1 (row-independent), so the crop offset and flip can be read back
    x = (torch.arange(8, dtype=torch.uint8) + 1).view(1, 1, 1, 8).expand(4000, 3, 8, 8).contiguous()
    out = D.augment(x, torch.Generator().manual_seed(1), padding=2)
    assert torch.equal(out, D.augment(x, torch.Generator().manual_seed(1), padding=2))
    assert not torch.equal(out, D.augment(x, torch.Generator().manual_seed(2), padding=2))
    cols = out[:, 0].amax(1).long()  # zero rows of vertical padding do not change the max
    flipped = cols[:, 2] > cols[:, 5]  # output columns 2..5 always come from real pixels
    assert 0.45 < flipped.double().mean() < 0.55
    # horizontal offset ox: output column 2 (5 when flipped) shows original column ox (value ox + 1)
    offset = torch.where(flipped, cols[:, 5], cols[:, 2]) - 1
    freq = torch.bincount(offset, minlength=5).double() / len(out)
    assert freq.shape == (5,) and (freq - 0.2).abs().max() < 0.03
    # only the centred crop (offset (2, 2), probability 1/25) has no zero padding at all
    no_pad = (out[:, 0] != 0).flatten(1).all(1)
    assert 0.025 < no_pad.double().mean() < 0.06


def test_batches_cover_the_split_and_normalise():
    ds = D.synthetic(n_train=70, n_val=10, n_test=10)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    xs, ys = zip(*D.batches(ds.train, 32, mean=mean, std=std))
    assert [len(y) for y in ys] == [32, 32, 6]
    x = torch.cat(xs)
    ref = (ds.train.images.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), ref, rtol=1e-6, atol=1e-6)
    assert torch.equal(torch.cat(ys), ds.train.labels)
    assert len(list(D.batches(ds.train, 32, drop_last=True))) == 2


def test_batches_shuffle_is_a_seeded_permutation():
    ds = D.synthetic(n_train=64, n_val=8, n_test=8)
    ys1 = torch.cat([y for _, y in D.batches(ds.train, 16, shuffle=True, generator=torch.Generator().manual_seed(0))])
    xs2, ys2 = zip(*D.batches(ds.train, 16, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(ys1, torch.cat(ys2))
    # same multiset of images, different order
    x = torch.cat(xs2)
    back = ((x * 0.5 + 0.5) * 255).round().to(torch.uint8)
    assert _same_rows(back, torch.cat(ys2), ds.train.images, ds.train.labels)
    assert not torch.equal(back, ds.train.images)
    with pytest.raises(ValueError, match="batch_size"):
        next(D.batches(ds.train, 0))
    with pytest.raises(ValueError, match="std must be positive"):
        next(D.batches(ds.train, 4, std=(0.5, 0.0, 0.5)))


# ----------------------------------------------------------------------------- CIFAR-10 sources
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
    monkeypatch.setitem(D._READERS, "tree", lambda *a, **k: pytest.fail("source decoded again"))
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
    monkeypatch.setattr(D.paths, "DATA", tmp_path / "data")
    with pytest.raises(FileNotFoundError) as info:
        D.cifar10(download=False)
    msg = str(info.value)
    assert "cifar-10-batches-py" in msg and "{train,test}/<class>" in msg and ".tar.gz" in msg and "GROSS_DATA" in msg

    def offline(root):
        raise RuntimeError("network unreachable")
    monkeypatch.setattr(D, "_download", offline)
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


@pytest.mark.skipif(not REAL_TAR.exists(), reason="offline CIFAR-10 mirror not present")
def test_real_mirror_members_parse():
    # fast: only the first few members of the real archive go through the tree reader's parser/decoder
    assert D._resolve_source(REAL_TAR)[0] == "tar"
    n = 0
    with tarfile.open(REAL_TAR, "r:gz") as tar:
        for member in tar:
            hit = D._tree_member(member.name.split("/"))
            if member.isfile() and hit:
                assert hit[0] in ("train", "test") and hit[1] in CLASSES
                arr = D._decode_image(tar.extractfile(member).read(), member.name, 32)
                assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
                n += 1
                if n == 20:
                    break
    assert n == 20


# ----------------------------------------------------------------------------- ImageNet folders
def test_imagenet_folder_transforms(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [(300, 280), (260, 400)]
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    ds = D.imagenet(tmp_path)
    assert ds.classes == ("a", "b") and len(ds.train) == 4 and ds.test is ds.val
    assert ds.mean == D.IMAGENET_MEAN
    x, y = ds.val[1]
    assert x.shape == (3, 224, 224) and x.dtype == torch.uint8 and y == 0
    # independent reference: PIL resize of the shorter side to 256, then the centre 224 crop
    img = Image.open(tmp_path / "val" / "a" / "1.png").convert("RGB")
    w, h = img.size
    nw, nh = (256, int(256 * h / w)) if w < h else (int(256 * w / h), 256)
    ref = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
    ref = torch.from_numpy(ref[top:top + 224, left:left + 224].transpose(2, 0, 1).copy())
    assert (x.int() - ref.int()).abs().max() <= 1
    xt, _ = ds.train[0]
    assert xt.shape == (3, 224, 224)
    xb, yb = next(D.batches(ds.val, 4, mean=ds.mean, std=ds.std, num_workers=0))
    assert xb.shape == (4, 3, 224, 224) and xb.dtype == torch.float32 and yb.tolist() == [0, 0, 1, 1]
    with pytest.raises(FileNotFoundError, match="val"):
        D.imagenet(tmp_path / "train")
