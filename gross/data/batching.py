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

__all__ = ["batches", "augment", "normalize", "epoch_draws", "stacked_batches"]


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
    oy, ox, flips = _draw_augment(x.shape[0], generator, padding, flip)
    return _crop_flip(x, oy.to(x.device), ox.to(x.device), flips.to(x.device), padding)


def _draw_augment(n: int, generator, padding: int, flip: bool):
    """The offsets and flips :func:`augment` draws for ``n`` images (on the generator's device)."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev)
    if flip:
        flips = torch.rand(n, generator=generator, device=gdev) < 0.5
    else:
        flips = torch.zeros(n, dtype=torch.bool, device=gdev)
    return oy, ox, flips


def _crop_flip(x: torch.Tensor, oy, ox, flips, padding: int) -> torch.Tensor:
    """Zero-pad ``x`` (N x C x H x W) by ``padding``, crop at per-image offsets, flip where ``flips``: one gather."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4) if padding else x
    hp, wp = h + 2 * padding, w + 2 * padding
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = oy[:, None] + ar_h[None, :]                                                        # n x h
    cols = ox[:, None] + torch.where(flips[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # n x w
    # one gather over the flattened padded image (much faster than 4-D advanced indexing)
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(padded.reshape(n, c, hp * wp), 2, index).view(n, c, h, w)


def epoch_draws(n: int, batch_size: int, generator: torch.Generator, *, shuffle: bool = True,
                augment: bool = True, padding: int = 2, flip: bool = True, drop_last: bool = False):
    """Every random draw one epoch of :func:`batches` makes from ``generator``, in the same order.

    ``batches(split, batch_size, shuffle=..., augment=..., generator=g)`` draws the order
    (``randperm``) and then, per batch, the crop offsets and flips (:func:`augment`); drawing
    them all up front from a generator in the same state gives the same numbers, so a whole
    epoch needs one host-to-device copy (:func:`stacked_batches`).

    Returns
    -------
    (order, oy, ox, flips)
        CPU tensors of the images used this epoch (``n``, or fewer with ``drop_last``):
        image indices in batch order, crop offsets and flips (``None`` without ``augment``).
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    if not augment:
        return order[:stop], None, None, None
    draws = [_draw_augment(min(batch_size, stop - start), generator, padding, flip)
             for start in range(0, stop, batch_size)]
    oy, ox, flips = (torch.cat([d[i] for d in draws]) if draws else torch.zeros(0, dtype=torch.long)
                     for i in range(3))
    return order[:stop], oy, ox, flips


def stacked_batches(split, batch_size: int, generators: Sequence[torch.Generator], *, shuffle: bool = True,
                    augment: bool = True, padding: int = 2, flip: bool = True, mean: Sequence[float] = CIFAR_MEAN,
                    std: Sequence[float] = CIFAR_STD, device=None,
                    drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """K networks' batches at once: ``(x K x b x C x H x W float32, y K x b)``, network ``k`` from ``generators[k]``.

    Network ``k``'s batches are exactly those of ``batches(split, batch_size, shuffle=shuffle,
    augment=augment, generator=generators[k])`` (the same draws, :func:`epoch_draws`), but the
    split stays on the device, the epoch's draws of all K networks go there in one copy, and
    each step is one gather of the K batches and one crop/flip of all ``K x b`` images:
    no per-network work and no host synchronisation per step.

    Parameters
    ----------
    split : Split
        In-memory split (moved to ``device`` once).
    padding, flip : int, bool
        As in :func:`augment` (paper: 2, True).
    """
    if not isinstance(split, Split):
        raise ValueError(f"stacked_batches needs an in-memory Split, got {type(split).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else split.device
    split = split.to(device)
    n = len(split)
    draws = [epoch_draws(n, batch_size, g, shuffle=shuffle, augment=augment, padding=padding, flip=flip,
                         drop_last=drop_last) for g in generators]
    host = [torch.stack([d[i] for d in draws]) for i in range(4 if augment else 1)]
    if device.type == "cuda":
        host = [t.pin_memory() for t in host]
    order, *aug = [t.to(device, non_blocking=True) for t in host]  # one copy per tensor for the whole epoch
    m = _channel_tensor(mean, device, "mean")
    s = _channel_tensor(std, device, "std")
    scale, shift = 1.0 / (255.0 * s), -m / s
    k, stop = order.shape
    for start in range(0, stop, batch_size):
        idx = order[:, start:start + batch_size]
        b = idx.shape[1]
        xb = split.images[idx.reshape(-1)]                                        # one gather, K*b images
        if augment:
            oy, ox, flips = (a[:, start:start + b].reshape(-1) for a in aug)
            xb = _crop_flip(xb, oy, ox, flips, padding)                          # one crop/flip for all K
        x = torch.addcmul(shift, xb.float(), scale)
        yield x.view(k, b, *x.shape[1:]), split.labels[idx]


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
