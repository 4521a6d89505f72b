"""Dataset containers (:class:`Split`, :class:`Dataset`), synthetic data and seeded subsets.

Images are held as whole-split ``uint8`` tensors ``N x 3 x H x W`` (normalised only
when batched, see :mod:`gross.data.batching`); part of :mod:`gross.data`, which re-exports
every public name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "Split",
    "Dataset",
    "CIFAR10_CLASSES",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "synthetic",
    "subset",
]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
#: Default normalisation (the 4-layer net's): mean 0.5, std 0.5 per channel.
CIFAR_MEAN = (0.5, 0.5, 0.5)
CIFAR_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CACHE_VERSION = 1
_BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


# ----------------------------------------------------------------------------- containers
@dataclass
class Split:
    """One split held as tensors.

    Parameters
    ----------
    images : torch.Tensor
        ``uint8`` tensor ``N x 3 x H x W``.
    labels : torch.Tensor
        ``int64`` tensor ``N`` (class indices).
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                "Split.images must be a uint8 tensor N x C x H x W, got "
                f"{type(self.images).__name__} {getattr(self.images, 'dtype', '')} "
                f"{tuple(getattr(self.images, 'shape', ()))}"
            )
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                "Split.labels must be an int64 tensor of shape (N,), got "
                f"{getattr(self.labels, 'dtype', type(self.labels).__name__)} {tuple(getattr(self.labels, 'shape', ()))}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"Split has {len(self.images)} images but {len(self.labels)} labels; they must match")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> "Split":
        """Copy of this split on ``device`` (``self`` when already there)."""
        device = torch.device(device)
        if self.images.device == device and self.labels.device == device:
            return self
        return Split(self.images.to(device), self.labels.to(device))

    def __getitem__(self, index) -> "Split":
        return Split(self.images[index], self.labels[index])

    def __repr__(self) -> str:
        return f"Split(n={len(self)}, image_shape={tuple(self.images.shape[1:])}, device={self.images.device})"


@dataclass
class Dataset:
    """Train / validation / test splits plus metadata.

    Parameters
    ----------
    train, val, test : Split or torch.utils.data.Dataset
        :class:`Split` for in-memory data (CIFAR, synthetic); image-folder datasets
        for ImageNet (see :func:`imagenet`).
    classes : tuple of str
        Class names, index = label.
    source : str
        Where the data came from (path or description).
    mean, std : tuple of float
        Default normalisation used by :func:`gross.training.loop.evaluate` when none is given.
    """

    train: Split
    val: Split
    test: Split
    classes: tuple
    source: str
    mean: tuple = CIFAR_MEAN
    std: tuple = CIFAR_STD
    info: dict = field(default_factory=dict)

    def split(self, name: str):
        """The split called ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}: expected 'train', 'val' or 'test'")
        return getattr(self, name)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_normalization(self, mean: Sequence[float], std: Sequence[float]) -> "Dataset":
        """Shallow copy whose default normalisation is ``mean`` / ``std``."""
        return dataclasses.replace(self, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    def to(self, device) -> "Dataset":
        """Shallow copy with every :class:`Split` moved to ``device``."""
        moved = {k: (v.to(device) if isinstance(v, Split) else v) for k, v in
                 (("train", self.train), ("val", self.val), ("test", self.test))}
        return dataclasses.replace(self, **moved)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(getattr(self, k))}" for k in ("train", "val", "test"))
        return f"Dataset({sizes}, classes={len(self.classes)}, source={self.source!r})"


# ----------------------------------------------------------------------------- synthetic & subsets
def synthetic(n_train: int = 512, n_val: int = 256, n_test: int = 256, seed: int = 0,
              num_classes: int = 10, image_size: int = 32) -> Dataset:
    """CIFAR-shaped data with a learnable class signal, for tests and smoke runs.

    Each class has a random colour and a random low-frequency pattern; images are
    ``128 + 45 * colour + 35 * pattern + noise(std 40)``, clipped to uint8. The colour
    survives flips and crops, so the task stays learnable under augmentation.

    Returns
    -------
    Dataset
        Balanced labels; ``source`` is ``"synthetic(seed=...)"``.
    """
    if min(n_train, n_val, n_test) < 0 or num_classes < 2 or image_size < 4:
        raise ValueError(
            "synthetic() needs non-negative split sizes, num_classes >= 2 and image_size >= 4, got "
            f"{(n_train, n_val, n_test)}, {num_classes}, {image_size}"
        )
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(num_classes, 3, 1, 1, generator=g) * 2 - 1
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g) * 2 - 1
    patterns = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    templates = 128 + 60 * colours + 40 * patterns

    def make(n):
        labels = torch.arange(n) % num_classes
        labels = labels[torch.randperm(n, generator=g)]
        noise = torch.randn(n, 3, image_size, image_size, generator=g) * 30
        images = (templates[labels] + noise).round().clamp_(0, 255).to(torch.uint8)
        return Split(images, labels.to(torch.int64))

    return Dataset(
        train=make(n_train), val=make(n_val), test=make(n_test),
        classes=tuple(f"class{i}" for i in range(num_classes)),
        source=f"synthetic(seed={seed})",
    )


def _stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` indices drawn per class in proportion to class frequency (seeded), sorted."""
    total = len(labels)
    if not 0 <= n <= total:
        raise ValueError(f"cannot take {n} samples from a split of {total}")
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    take = exact.floor().long()
    remainder = n - int(take.sum())
    if remainder:
        # largest remainders first; ties broken by a seeded permutation
        order = torch.randperm(len(classes), generator=g)
        frac = (exact - take)[order]
        ranked = order[torch.argsort(frac, descending=True, stable=True)]
        take[ranked[:remainder]] += 1
    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist()):
        idx = (labels == cls).nonzero().squeeze(1)
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.cat(chosen).sort().values


def subset(dataset: Dataset, n_train: int | None = None, n_val: int | None = None,
           n_test: int | None = None, seed: int = 0) -> Dataset:
    """Smaller copy of ``dataset`` (for reduced CPU profiles).

    Each requested split is subsampled class-stratified with a seeded generator;
    ``None`` keeps the split whole.
    """
    parts = {}
    for i, (name, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        split = getattr(dataset, name)
        if n is None:
            parts[name] = split
            continue
        if not isinstance(split, Split):
            raise ValueError(f"subset() needs in-memory Split data, {name} is {type(split).__name__}")
        if not 0 <= int(n) <= len(split):
            raise ValueError(f"n_{name}={n} must be between 0 and the split size {len(split)}")
        parts[name] = split[_stratified_indices(split.labels, int(n), seed + i)]
    info = dict(dataset.info, subset={"n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed})
    return dataclasses.replace(dataset, info=info, **parts)
