"""CIFAR-10 from a folder of torchvision batches, an image tree or a tar archive, with a decoded cache.

Sources, tried in this order (see :func:`cifar10`):

1. the ``root`` argument, else the ``GROSS_DATA`` environment variable, pointing at

   a. torchvision's ``cifar-10-batches-py`` folder (or a folder containing it),
   b. an image-folder tree ``{train,test}/<class>/*.{png,jpg}`` (or a folder whose
      single sub-folder is such a tree),
   c. a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of such a tree (e.g. the offline
      mirror ``cifar10-jpeg.tar.gz`` with ``cifar10-jpeg/{train,test}/<class>/NNNN.jpg``);

2. an existing ``data/cifar-10-batches-py`` (:data:`gross.utils.paths.DATA`), else
   torchvision's download into ``data/``;
3. otherwise a ``FileNotFoundError`` listing these ways.

The decoded images are cached once as ``<cache_dir or data/>/cifar10-<key>.pt``
(atomic write), where the key hashes the source's path, size and modification
time. Part of :mod:`gross.data`, which re-exports :func:`cifar10`.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gross.utils import paths
from gross.data.datasets import Dataset, Split, _stratified_indices
from gross.utils import atomic_save
from gross.utils.sealed import DamagedFileError, load_sealed, seal
from gross.utils.hashing import digest

__all__ = ["cifar10"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CACHE_VERSION = 1
_CACHE_KIND = "gross-cifar10-cache"  # sealed file (gross.utils.sealed)
_BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


# ----------------------------------------------------------------------------- CIFAR-10 readers
_HOW_TO = (
    "Provide CIFAR-10 in one of these ways: pass root=... or set the GROSS_DATA environment variable to "
    "(a) torchvision's 'cifar-10-batches-py' folder, (b) an image-folder tree '{train,test}/<class>/*.png|jpg', "
    "or (c) a .tar.gz of such a tree (e.g. GROSS_DATA=/path/to/cifar10-jpeg.tar.gz); "
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
    return digest([_CACHE_VERSION, kind, str(path), entries], 16)


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


#: The only globals a CIFAR-10 python batch may name: numpy's array reconstruction (numpy 1 and 2 paths).
_BATCH_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler of CIFAR-10's python batches: numpy arrays, dicts, lists, ints, bytes, strings; nothing else.

    The format is a pickle by definition, so it is opened here only, and any other global
    (a function, a class: how a crafted pickle runs code) is refused before it is looked up.
    """

    def find_class(self, module, name):
        if (module, name) not in _BATCH_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a CIFAR-10 batch holds only numpy arrays, lists, ints, bytes "
                "and strings (this file is not one, or was altered)")
        return super().find_class(module, name)


def load_batch_file(file: Path) -> dict:
    """One pickled CIFAR-10 python batch (or ``batches.meta``) as a dict, through :class:`_BatchUnpickler`.

    Raises
    ------
    ValueError
        Unreadable, not a dict, or naming anything but numpy's array globals.
    """
    try:
        with open(file, "rb") as fh:
            obj = _BatchUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"cannot read CIFAR-10 batch file {file}: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR-10 batch file {file} holds a {type(obj).__name__}, expected a dict "
                         "(b'data', b'labels' or b'label_names')")
    return obj


def _read_batches(path: Path, num_classes: int = 10, image_size: int = 32) -> dict:
    def load(name):
        file = path / name
        if not file.exists():
            raise FileNotFoundError(
                f"{file} is missing: a 'cifar-10-batches-py' folder needs {', '.join(_BATCH_FILES)} and batches.meta"
            )
        return load_batch_file(file)

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
    """The decoded cache at ``file`` (sealed: plain data, SHA-256 verified), or ``None`` with a warning.

    The cache is derived from the source, so a damaged, altered or foreign one is decoded
    again (and overwritten), never trusted.
    """
    try:
        blob = load_sealed(file, _CACHE_KIND, "CIFAR-10 cache", "decoding the source again")
        if blob.get("version") != _CACHE_VERSION:
            raise DamagedFileError(f"CIFAR-10 cache {file} has version {blob.get('version')}, not {_CACHE_VERSION}")
        for key in ("train_images", "train_labels", "test_images", "test_labels", "classes"):
            blob[key]
        return blob
    except (DamagedFileError, KeyError, AttributeError) as exc:
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
        Where the decoded uint8 cache goes (default :data:`gross.utils.paths.DATA`).
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
        atomic_save(seal(blob, _CACHE_KIND), cache)
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
