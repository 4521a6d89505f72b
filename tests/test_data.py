"""Tests for gross.data: the re-exports of gross.data.datasets / gross.data.cifar / gross.data.batching, ImageNet folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gross import data as D
from gross.data import imagenet as inet


# ----------------------------------------------------------------------------- ImageNet folders
def test_imagenet_folder_transforms(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [(300, 280), (260, 400)]
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    ds = inet.imagenet(tmp_path)
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
        inet.imagenet(tmp_path / "train")


# ----------------------------------------------------------------------------- facade
def test_data_reexports_the_split_modules():
    from gross.data import batching
    from gross.data import cifar
    from gross.data import datasets

    for module in (datasets, cifar, batching):
        for name in module.__all__:
            assert getattr(D, name) is getattr(module, name), name
            assert name in D.__all__, name
