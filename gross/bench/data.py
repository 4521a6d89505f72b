"""Benchmark group ``data``: CIFAR-10 load from the cache vs decoding, batched vs per-image augmentation."""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gross.utils import paths
from gross.bench.core import Settings, _median, _row, register, time_call

__all__ = ['bench_data']


def _tiny_tree(root: Path, per_class: int, seed: int) -> Path:
    """A small CIFAR-like image-folder tree of PNGs (train/test x 10 classes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", max(1, per_class // 2))):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root


def _data_source(settings: Settings, tmp: Path):
    """(root, description, validation size) of the CIFAR-10 source to time, or (None, reason, 0)."""
    if settings.data_source == "tiny":
        return _tiny_tree(tmp / "tiny", 20, settings.seed), "a generated 10-class PNG tree (200 train images)", 50
    if settings.data_source == "none":
        return None, "skipped (data_source='none')", 0
    root = os.environ.get("GROSS_DATA")
    if root:
        return Path(root), f"$GROSS_DATA ({Path(root).name})", 10_000
    batches_dir = paths.DATA / "cifar-10-batches-py"
    if batches_dir.is_dir():
        return batches_dir, "data/cifar-10-batches-py", 10_000
    return None, "skipped: no CIFAR-10 source (set GROSS_DATA)", 0


@register("data")
def bench_data(settings: Settings, device) -> list[dict]:
    """CIFAR-10 load from cache vs decode, and batched vs torchvision per-image augmentation."""
    from gross.data import augment, cifar10, synthetic

    device = torch.device(device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gross-bench-") as tmp:
        tmp = Path(tmp)
        root, source, val_size = _data_source(settings, tmp)
        images = None
        if root is None:
            rows.append(_row("data", "CIFAR-10 load", "load from cache", math.nan, device="cpu", note=source))
        else:
            cache = tmp / "cache"
            start = time.perf_counter()
            data = cifar10(root, val_size=val_size, cache_dir=cache, download=False)
            decode_s = time.perf_counter() - start
            load = time_call(lambda: cifar10(root, val_size=val_size, cache_dir=cache, download=False),
                             settings.data_repeats, 0)
            n = len(data.train) + len(data.val) + len(data.test)
            rows.append(_row("data", f"CIFAR-10 load ({n:,} images)", "load from the decoded cache", _median(load),
                             "decode the source + write the cache", decode_s, settings.data_repeats,
                             "load from cache takes a few seconds at most", _median(load) < 5.0, "cpu",
                             f"source: {source}; decode timed once (a fresh cache each run)"))
            images = data.train.images
    if images is None or len(images) < settings.aug_images:
        images = synthetic(n_train=settings.aug_images, n_val=0, n_test=0, seed=settings.seed).train.images
    images = images[: settings.aug_images]

    # batched augmentation on the device vs torchvision's per-image transforms on the CPU
    from torchvision.transforms import v2

    gen = torch.Generator().manual_seed(settings.seed)
    on_device = images.to(device)

    def batched():
        for i in range(0, len(on_device), settings.aug_batch):
            augment(on_device[i:i + settings.aug_batch], gen)

    per_image = v2.Compose([v2.RandomCrop(32, padding=2), v2.RandomHorizontalFlip()])

    def torchvision_loop():
        for img in images:
            per_image(img)

    t_batched = _median(time_call(batched, settings.data_repeats, settings.warmup, device))
    t_tv = _median(time_call(torchvision_loop, settings.data_repeats, settings.warmup, "cpu"))
    n = len(images)
    rows.append(_row(
        "data", f"augmentation of {n:,} images", "torchvision per-image RandomCrop(pad 2) + flip", t_tv,
        f"gross.data.augment, batches of {settings.aug_batch}", t_batched, settings.data_repeats,
        "batched faster (ratio > 1)", t_tv > t_batched, device,
        f"{n / t_batched:,.0f} images/s batched on {device} vs {n / t_tv:,.0f} images/s per image on cpu",
    ))
    return rows
