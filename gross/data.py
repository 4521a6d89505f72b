"""Datasets as whole-split uint8 tensors, batched augmentation and normalisation.

CIFAR-10 is small enough to hold in memory (and on the GPU) as one uint8 tensor
per split, so batching is index slicing and augmentation runs on whole batches
on the device where training happens.

Normalisation
-------------
Images are stored as raw ``uint8`` pixels. They are normalised only when batched
(``(x / 255 - mean) / std`` per channel). The mean/std used are always explicit
arguments of :func:`batches`; :class:`Dataset` carries *default* values
(``Dataset.mean`` / ``Dataset.std``) that :func:`gross.train.evaluate` falls back
to. The training functions in :mod:`gross.train` use the mean/std of their
``Recipe`` (per-model normalisation: 0.5/0.5 for the 4-layer net, 0.5/0.225 for
the CIFAR VGG-16, the usual ImageNet statistics for ImageNet models). Use
:meth:`Dataset.with_normalization` to make a dataset's defaults match a recipe.

Augmentation (paper Sec. 4.4, CIFAR-10): zero-padding of 2 pixels on every border
(pixel value 0 before normalisation, as ``torchvision.transforms.RandomCrop(32,
padding=2)`` does), a random 32x32 crop and a horizontal flip with probability 0.5.

Sources for :func:`cifar10`, tried in this order:

1. the ``root`` argument, else the ``GROSS_DATA`` environment variable, pointing at

   a. torchvision's ``cifar-10-batches-py`` folder (or a folder containing it),
   b. an image-folder tree ``{train,test}/<class>/*.{png,jpg}`` (or a folder whose
      single sub-folder is such a tree),
   c. a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of such a tree (e.g. the offline
      mirror ``cifar10-jpeg.tar.gz`` with ``cifar10-jpeg/{train,test}/<class>/NNNN.jpg``);

2. an existing ``data/cifar-10-batches-py`` (:data:`gross.paths.DATA`), else
   torchvision's download into ``data/``;
3. otherwise a ``FileNotFoundError`` listing these ways.

The decoded images are cached once as ``<cache_dir or data/>/cifar10-<key>.pt``
(atomic write), where the key hashes the source's path, size and modification
time, so later loads take well under a few seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import tarfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import paths
from .utils import atomic_save

__all__ = [
    "Split",
    "Dataset",
    "CIFAR10_CLASSES",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "cifar10",
    "synthetic",
    "subset",
    "batches",
    "augment",
    "normalize",
    "imagenet",
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
        Default normalisation used by :func:`gross.train.evaluate` when none is given.
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


# ----------------------------------------------------------------------------- CIFAR-10 readers
_HOW_TO = (
    "Provide CIFAR-10 in one of these ways: pass root=... or set the GROSS_DATA environment variable to "
    "(a) torchvision's 'cifar-10-batches-py' folder, (b) an image-folder tree '{train,test}/<class>/*.png|jpg', "
    "or (c) a .tar.gz of such a tree (e.g. GROSS_DATA=/work/shared/data/cifar10-jpeg.tar.gz); "
    f"or allow torchvision to download it into {paths.DATA} (needs network access)."
)


def _is_tree(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "test").is_dir()


def _resolve_source(path: Path) -> tuple[str, Path]:
    """Classify ``path`` as ('batches'|'tree'|'tar', resolved path)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 source {path} does not exist. {_HOW_TO}")
    path = path.resolve()
    if path.is_file():
        name = path.name.lower()
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return "tar", path
        raise ValueError(
            f"CIFAR-10 source {path} is a file but not a .tar.gz/.tgz/.tar archive. {_HOW_TO}"
        )
    if (path / "data_batch_1").exists() or (path / "test_batch").exists():
        return "batches", path
    if (path / "cifar-10-batches-py").is_dir():
        return "batches", path / "cifar-10-batches-py"
    if _is_tree(path):
        return "tree", path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    trees = [p for p in subdirs if _is_tree(p)]
    if len(trees) == 1:
        return "tree", trees[0]
    raise ValueError(
        f"CIFAR-10 source {path} is neither a 'cifar-10-batches-py' folder (data_batch_1..5, test_batch) "
        f"nor an image tree with 'train/' and 'test/' sub-folders. {_HOW_TO}"
    )


def _source_key(kind: str, path: Path) -> str:
    """Hash of the source's path, sizes and modification times."""
    entries = []
    if kind == "tar":
        st = path.stat()
        entries.append((str(path), st.st_size, st.st_mtime_ns))
    elif kind == "batches":
        for name in _BATCH_FILES + ("batches.meta",):
            p = path / name
            if p.exists():
                st = p.stat()
                entries.append((str(p), st.st_size, st.st_mtime_ns))
    else:
        for split in ("train", "test"):
            for p in sorted((path / split).iterdir()):
                st = p.stat()
                entries.append((str(p), st.st_size, st.st_mtime_ns))
    blob = json.dumps([_CACHE_VERSION, kind, str(path), entries]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _decode_image(data: bytes, where: str, image_size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode image {where}: {exc}; the CIFAR-10 source is corrupt") from exc
    if arr.shape != (image_size, image_size, 3):
        raise ValueError(
            f"image {where} has shape {arr.shape[1]}x{arr.shape[0]}, expected {image_size}x{image_size} RGB"
        )
    return arr


def _assemble(records: dict, where: str, num_classes: int, image_size: int) -> dict:
    """records[split][class] = list of (name, HxWx3 array) -> tensors."""
    for split in ("train", "test"):
        if not records.get(split):
            raise FileNotFoundError(
                f"CIFAR-10 source {where} has no '{split}' split: expected '{split}/<class>/*.png|jpg'"
            )
    classes = sorted(records["train"])
    if sorted(records["test"]) != classes:
        raise ValueError(
            f"CIFAR-10 source {where}: train classes {classes} differ from test classes {sorted(records['test'])}"
        )
    if len(classes) != num_classes:
        raise ValueError(
            f"CIFAR-10 source {where} has {len(classes)} classes {classes}, expected {num_classes} "
            f"(one sub-folder per class under train/ and test/)"
        )
    out = {"classes": tuple(classes)}
    for split in ("train", "test"):
        images, labels = [], []
        for label, cls in enumerate(classes):
            items = sorted(records[split][cls], key=lambda item: item[0])
            if not items:
                raise ValueError(f"CIFAR-10 source {where}: class folder {split}/{cls} has no images")
            images.extend(arr for _, arr in items)
            labels.extend([label] * len(items))
        stacked = np.stack(images).transpose(0, 3, 1, 2)
        out[f"{split}_images"] = torch.from_numpy(np.ascontiguousarray(stacked))
        out[f"{split}_labels"] = torch.tensor(labels, dtype=torch.int64)
    return out


def _tree_member(parts: Sequence[str]) -> tuple[str, str, str] | None:
    """(split, class, filename) if ``parts`` ends in {train,test}/<class>/<image file>."""
    if len(parts) < 3 or parts[-3] not in ("train", "test"):
        return None
    if not parts[-1].lower().endswith(_IMAGE_SUFFIXES) or parts[-1].startswith("."):
        return None
    return parts[-3], parts[-2], parts[-1]


def _read_tree(path: Path, num_classes: int = 10, image_size: int = 32) -> dict:
    records: dict = {"train": {}, "test": {}}
    for split in ("train", "test"):
        for cls_dir in sorted(p for p in (path / split).iterdir() if p.is_dir()):
            files = [p for p in cls_dir.iterdir() if p.is_file() and _tree_member((split, cls_dir.name, p.name))]
            records[split][cls_dir.name] = [
                (p.name, _decode_image(p.read_bytes(), str(p), image_size)) for p in files
            ]
    return _assemble(records, str(path), num_classes, image_size)


def _read_tar(path: Path, num_classes: int = 10, image_size: int = 32) -> dict:
    records: dict = {"train": {}, "test": {}}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                hit = _tree_member(member.name.split("/"))
                if hit is None:
                    continue
                split, cls, name = hit
                fh = tar.extractfile(member)
                data = fh.read() if fh is not None else b""
                records[split].setdefault(cls, []).append(
                    (name, _decode_image(data, f"{path}:{member.name}", image_size))
                )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(
            f"cannot read archive {path}: {exc}; expected a complete .tar.gz of "
            "'<folder>/{train,test}/<class>/*.png|jpg'"
        ) from exc
    return _assemble(records, str(path), num_classes, image_size)


def _read_batches(path: Path, num_classes: int = 10, image_size: int = 32) -> dict:
    def load(name):
        file = path / name
        if not file.exists():
            raise FileNotFoundError(
                f"{file} is missing: a 'cifar-10-batches-py' folder needs {', '.join(_BATCH_FILES)} and batches.meta"
            )
        try:
            with open(file, "rb") as fh:
                return pickle.load(fh, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read CIFAR-10 batch file {file}: {exc}") from exc

    def arrays(names):
        images, labels = [], []
        for name in names:
            batch = load(name)
            try:
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                lab = batch.get(b"labels", batch.get(b"fine_labels"))
                images.append(data.reshape(len(data), 3, image_size, image_size))
                labels.extend(int(v) for v in lab)
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(
                    f"CIFAR-10 batch file {path / name} is malformed ({exc}); expected keys b'data' "
                    f"(N x {3 * image_size * image_size} uint8) and b'labels'"
                ) from exc
        return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)

    meta = load("batches.meta")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", ()))
    if len(classes) != num_classes:
        raise ValueError(f"{path / 'batches.meta'} lists {len(classes)} classes, expected {num_classes}")
    train_images, train_labels = arrays(_BATCH_FILES[:-1])
    test_images, test_labels = arrays(_BATCH_FILES[-1:])
    for lab, name in ((train_labels, "train"), (test_labels, "test")):
        if lab.numel() and (lab.min() < 0 or lab.max() >= num_classes):
            raise ValueError(f"{path}: {name} labels outside 0..{num_classes - 1}")
    return {
        "classes": classes,
        "train_images": train_images, "train_labels": train_labels,
        "test_images": test_images, "test_labels": test_labels,
    }


_READERS = {"batches": _read_batches, "tree": _read_tree, "tar": _read_tar}


def _download(root: Path) -> Path:
    """torchvision's CIFAR-10 download into ``root``; returns the batches folder."""
    from torchvision.datasets import CIFAR10

    CIFAR10(root=str(root), train=True, download=True)
    return root / "cifar-10-batches-py"


def _find_source(root, download: bool) -> tuple[str, Path]:
    if root is None:
        root = os.environ.get("GROSS_DATA") or None
    if root is not None:
        return _resolve_source(Path(root))
    local = paths.DATA / "cifar-10-batches-py"
    if (local / "data_batch_1").exists():
        return "batches", local.resolve()
    if download:
        try:
            return "batches", _download(paths.DATA).resolve()
        except Exception as exc:  # noqa: BLE001 - any download failure ends in the same advice
            raise FileNotFoundError(f"No CIFAR-10 source given and the download failed ({exc}). {_HOW_TO}") from exc
    raise FileNotFoundError(f"No CIFAR-10 source found. {_HOW_TO}")


def _load_cache(file: Path):
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        if blob.get("version") != _CACHE_VERSION:
            return None
        for key in ("train_images", "train_labels", "test_images", "test_labels", "classes"):
            blob[key]
        return blob
    except Exception as exc:  # noqa: BLE001 - a bad cache is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable CIFAR-10 cache {file} ({exc}); decoding the source again")
        return None


def cifar10(root=None, val_size: int = 10_000, seed: int = 0, cache_dir=None, *, download: bool = True) -> Dataset:
    """CIFAR-10 with the paper's split: train / validation carved from the training set, plus test.

    Parameters
    ----------
    root : str or path-like, optional
        A ``cifar-10-batches-py`` folder, an image tree ``{train,test}/<class>/*``, or a
        ``.tar.gz`` of such a tree. Defaults to ``$GROSS_DATA``, then ``data/``.
    val_size : int
        Validation images taken from the 50k training images (stratified by class,
        seeded). The paper uses 10,000 (40k train / 10k validation).
    seed : int
        Seed of the train/validation split.
    cache_dir : path-like, optional
        Where the decoded uint8 cache goes (default :data:`gross.paths.DATA`).
    download : bool
        Try torchvision's download into ``data/`` when no source is given.

    Returns
    -------
    Dataset
        ``train`` (50k - val_size), ``val`` (val_size), ``test`` (10k) as uint8 tensors.

    Raises
    ------
    FileNotFoundError
        No source, or a split/file is missing.
    ValueError
        Corrupt or inconsistent source (unreadable image or archive, wrong class count,
        wrong image size) or a bad ``val_size``.
    """
    kind, src = _find_source(root, download)
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.DATA
    cache = cache_dir / f"cifar10-{_source_key(kind, src)}.pt"
    blob = _load_cache(cache) if cache.exists() else None
    if blob is None:
        blob = _READERS[kind](src)
        blob["version"] = _CACHE_VERSION
        blob["source"] = str(src)
        atomic_save(blob, cache)
    n_train = len(blob["train_labels"])
    if not 0 <= int(val_size) < n_train:
        raise ValueError(f"val_size={val_size} must be in [0, {n_train}) for a training set of {n_train} images")
    full = Split(blob["train_images"], blob["train_labels"])
    val_idx = _stratified_indices(full.labels, int(val_size), seed)
    mask = torch.ones(n_train, dtype=torch.bool)
    mask[val_idx] = False
    return Dataset(
        train=full[mask.nonzero().squeeze(1)],
        val=full[val_idx],
        test=Split(blob["test_images"], blob["test_labels"]),
        classes=tuple(blob["classes"]),
        source=str(src),
        info={"kind": kind, "cache": str(cache), "val_size": int(val_size), "split_seed": seed},
    )


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
            num_workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
        Pad-2 / random-crop / flip (:func:`augment`) with ``generator``.
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
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(split, Split):
        yield from _tensor_batches(split, batch_size, shuffle, augment, mean, std, device, generator, drop_last)
    else:
        yield from _loader_batches(split, batch_size, shuffle, mean, std, device, generator, drop_last, num_workers)


def _tensor_batches(split, batch_size, shuffle, do_augment, mean, std, device, generator, drop_last):
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
            xb = augment(xb, generator)
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


# ----------------------------------------------------------------------------- ImageNet
def imagenet(root, *args, **kwargs) -> Dataset:
    """ImageNet-style image folders; moved to :func:`gross.imagenet.imagenet` (same arguments)."""
    from .imagenet import imagenet as _imagenet

    return _imagenet(root, *args, **kwargs)
