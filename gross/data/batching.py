"""Batches of normalised (and optionally augmented) images from a split, on the training device.

Batching an in-memory :class:`~gross.data.datasets.Split` is index slicing; augmentation
(paper Sec. 4.4: zero-padding of 2 pixels, random 32x32 crop, horizontal flip with
p=0.5) runs on whole batches on the device. Other (image-folder) datasets go
through a ``DataLoader``. Part of :mod:`gross.data`, which re-exports every public name.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from gross.data.datasets import CIFAR_MEAN, CIFAR_STD, Split

__all__ = ["batches", "augment", "normalize"]


# ----------------------------------------------------------------------------- batching
def _channel_tensor(values, device, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float32, device=device).flatten()
    if t.numel() not in (1, 3) or not torch.isfinite(t).all():
        raise ValueError(f"{name} must be 1 or 3 finite numbers, got {values!r}")
    if name == "std" and (t <= 0).any():
        raise ValueError(f"std must be positive, got {values!r}")
    return t.view(1, -1, 1, 1)


def normalize(x: torch.Tensor, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> torch.Tensor:
    """``uint8`` batch ``N x C x H x W`` -> float32 ``(x / 255 - mean) / std``."""
    m = _channel_tensor(mean, x.device, "mean")
    s = _channel_tensor(std, x.device, "std")
    return x.float().mul_(1.0 / 255).sub_(m).div_(s)


def augment(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 2,
            flip: bool = True) -> torch.Tensor:
    """Zero-pad, random crop back to the input size and random horizontal flip (p=0.5), per image.

    Parameters
    ----------
    x : torch.Tensor
        ``uint8`` (or float) batch ``N x C x H x W`` on any device.
    generator : torch.Generator, optional
        Source of the random offsets and flips (drawn on the generator's device,
        then moved to ``x.device``), so results depend only on its state.
    padding : int
        Zero border added on every side before cropping (paper: 2).
    flip : bool
        Apply random horizontal flips.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``x``.
    """
    if x.dim() != 4:
        raise ValueError(f"augment() expects a batch N x C x H x W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    gdev = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    if flip:
        flips = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
    else:
        flips = torch.zeros(n, dtype=torch.bool, device=x.device)
    padded = F.pad(x, (padding,) * 4) if padding else x
    hp, wp = h + 2 * padding, w + 2 * padding
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = oy[:, None] + ar_h[None, :]                                                        # n x h
    cols = ox[:, None] + torch.where(flips[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # n x w
    # one gather over the flattened padded image (much faster than 4-D advanced indexing)
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(padded.reshape(n, c, hp * wp), 2, index).view(n, c, h, w)


def batches(split, batch_size: int, *, shuffle: bool = False, augment: bool = False,
            mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD, device=None,
            generator: torch.Generator | None = None, drop_last: bool = False,
            num_workers: int | None = None, padding: int = 2) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalised ``(x float32, y int64)`` batches from a split.

    Parameters
    ----------
    split : Split or torch.utils.data.Dataset
        In-memory :class:`Split` (moved to ``device`` once, batches are index slices),
        or an image-folder dataset yielding ``(uint8 C x H x W tensor, label)`` (see
        :func:`imagenet`; its own transform does the augmentation, ``augment`` is ignored).
    batch_size : int
    shuffle : bool
        Random order from ``generator``.
    augment : bool
        Pad / random-crop / flip (:func:`augment`) with ``generator``.
    mean, std : sequence of float
        Per-channel normalisation.
    device : torch.device or str, optional
        Where batches are produced (default: the split's device).
    generator : torch.Generator, optional
        CPU generator for shuffling and augmentation (default: torch's global one).
    drop_last : bool
        Drop a final incomplete batch.
    num_workers : int, optional
        DataLoader workers for image-folder datasets (default ``min(8, cpu_count)``).
    padding : int
        Zero-padding of :func:`augment` (2: the paper's text, Sec. 4.4; 4: the authors' code,
        ``dataset/cifar10.py``; see :attr:`gross.training.recipes.Recipe.padding`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(split, Split):
        yield from _tensor_batches(split, batch_size, shuffle, augment, mean, std, device, generator, drop_last,
                                   padding)
    else:
        yield from _loader_batches(split, batch_size, shuffle, mean, std, device, generator, drop_last, num_workers)


def _tensor_batches(split, batch_size, shuffle, do_augment, mean, std, device, generator, drop_last, padding=2):
    device = torch.device(device) if device is not None else split.device
    split = split.to(device)
    n = len(split)
    m = _channel_tensor(mean, device, "mean")
    s = _channel_tensor(std, device, "std")
    scale, shift = 1.0 / (255.0 * s), -m / s
    order = torch.randperm(n, generator=generator).to(device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            xb = split.images[start:start + batch_size]
            yb = split.labels[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            xb, yb = split.images[idx], split.labels[idx]
        if do_augment:
            xb = augment(xb, generator, padding=padding)
        yield torch.addcmul(shift, xb.float(), scale), yb


def _loader_batches(ds, batch_size, shuffle, mean, std, device, generator, drop_last, num_workers):
    from torch.utils.data import DataLoader

    device = torch.device(device) if device is not None else torch.device("cpu")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last,
                        num_workers=num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    m = _channel_tensor(mean, device, "mean")
    s = _channel_tensor(std, device, "std")
    scale, shift = 1.0 / (255.0 * s), -m / s
    for xb, yb in loader:
        xb = xb.to(device, non_blocking=True)
        yield torch.addcmul(shift, xb.float(), scale), yb.to(device, non_blocking=True).long()
