"""Datasets as whole-split uint8 tensors, batched augmentation and normalisation.

CIFAR-10 is small enough to hold in memory (and on the GPU) as one uint8 tensor
per split, so batching is index slicing and augmentation runs on whole batches
on the device where training happens.

Normalisation
-------------
Images are stored as raw ``uint8`` pixels. They are normalised only when batched
(``(x / 255 - mean) / std`` per channel). The mean/std used are always explicit
arguments of :func:`batches`; :class:`Dataset` carries *default* values
(``Dataset.mean`` / ``Dataset.std``) that :func:`gross.training.loop.evaluate` falls back
to. The training functions in :mod:`gross.training.loop` use the mean/std of their
``Recipe`` (per-model normalisation: 0.5/0.5 for the 4-layer net, 0.5/0.225 for
the CIFAR VGG-16, the usual ImageNet statistics for ImageNet models). Use
:meth:`Dataset.with_normalization` to make a dataset's defaults match a recipe.

Augmentation (paper Sec. 4.4, CIFAR-10): zero-padding of 2 pixels on every border
(pixel value 0 before normalisation, as ``torchvision.transforms.RandomCrop(32,
padding=2)`` does), a random 32x32 crop and a horizontal flip with probability 0.5.

The code lives in :mod:`gross.data.datasets` (containers, synthetic data, subsets),
:mod:`gross.data.cifar` (CIFAR-10 sources and cache) and :mod:`gross.data.batching`
(normalisation, augmentation, batches); this module re-exports them.

CIFAR-10 is read from ``root``, ``$GROSS_DATA`` or ``data/`` (torchvision batches, an
image tree or a tar archive of one; see :mod:`gross.data.cifar`) and cached decoded.
"""

from __future__ import annotations

from pathlib import Path

from gross.data import batching as _batching
from gross.data import cifar as _cifar
from gross.data import datasets as _datasets
from gross.data.batching import augment, batches, epoch_draws, normalize, stacked_batches  # noqa: F401  (re-exported)
from gross.data.cifar import cifar10  # noqa: F401
from gross.data.datasets import (CIFAR10_CLASSES, CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, Dataset,  # noqa: F401
                       Split, subset, synthetic)

#: Every public name of gross.data.datasets, gross.data.cifar and gross.data.batching (ImageNet folders:
#: :func:`gross.data.imagenet.imagenet`).
__all__ = [*_datasets.__all__, *_cifar.__all__, *_batching.__all__]
