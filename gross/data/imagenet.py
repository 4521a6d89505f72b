"""ImageNet for Table 4: pretrained torchvision networks, image folders, prefix-tree evaluation.

Pretrained weights (offline-first)
----------------------------------
The paper starts from torchvision's trained VGG-16 and ResNet-18. :func:`load_pretrained`
reads them from

1. a local file given explicitly (setting ``imagenet.vgg16_weights`` /
   ``imagenet.resnet18_weights``), else
2. torchvision's cache, ``torch.hub.get_dir()/checkpoints/<file>`` with torchvision's
   file names (:data:`WEIGHT_FILES`: ``vgg16-397923af.pth``, ``resnet18-f37072fd.pth``,
   the names in ``torchvision.models.VGG16_Weights.IMAGENET1K_V1.url`` and
   ``ResNet18_Weights.IMAGENET1K_V1.url``).

Nothing is downloaded. A missing file, a truncated file or the weights of another
architecture raise an error naming the file and what would work.

Data
----
:func:`imagenet` reads ``root/train/<class>/*`` and ``root/val/<class>/*`` (torchvision
``ImageFolder`` layout). Following the CIFAR-10 policy of the package, a seeded held-out
split of ``held_out`` training images (default 10,000) is the ``val`` split used by
the search and model selection, and the official validation folder is the ``test``
split on which Table 4's accuracies are reported. Preprocessing (Sec. 4.4): shorter
side resized to ``resize`` (256), a random ``crop`` x ``crop`` (224) crop and a
horizontal flip with probability 0.5 for training, a centre crop for evaluation.
Training items take their crop and flip from a generator seeded by
``(seed, epoch, index)`` (see :class:`ImageFolderSplit`), so the augmentation of an
image does not depend on the number of processes or DataLoader workers: this is what
makes multi-process training equal to single-process training.

Evaluation
----------
Configurations are evaluated by :mod:`gross.search.evaluation` (:func:`gross.search.evaluation.count_correct`),
the package's one accuracy path, whose prefix tree runs over the *units* of VGG-16 (layers)
and ResNet-18 (residual blocks); :func:`gross.training.distributed.evaluate` shards the images.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn as nn
import torchvision
from torchvision.transforms import functional as TF

from gross.data.datasets import IMAGENET_MEAN, IMAGENET_STD, Dataset
from gross.method.decomposition import decompose, decomposable_layers

__all__ = [
    "WEIGHT_FILES",
    "ARCHITECTURES",
    "arch_name",
    "build",
    "weights_path",
    "load_pretrained",
    "ImageFolderSplit",
    "imagenet",
    "generate_folder",
    "loader",
    "decompose_imagenet",
    "sample_seed",
    "normalise",
]

#: torchvision's file name of the ImageNet weights of each architecture (IMAGENET1K_V1).
WEIGHT_FILES = {"vgg16": "vgg16-397923af.pth", "resnet18": "resnet18-f37072fd.pth"}
#: Number of layers GroSS decomposes in the full-size networks (Sec. 4.3).
ARCHITECTURES = {"vgg16": 12, "resnet18": 16}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
_VGG_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


# ----------------------------------------------------------------------------- models
def arch_name(name: str) -> str:
    """``"vgg16"`` or ``"resnet18"`` from a pipeline or registry name (``"vgg16_imagenet"``)."""
    key = str(name).removesuffix("_imagenet")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown ImageNet model {name!r}: use one of {sorted(ARCHITECTURES)}")
    return key


def _scaled(c: int, width_mult: float) -> int:
    return max(1, int(round(c * width_mult)))


def _vgg16(num_classes: int, width_mult: float, hidden: int) -> nn.Module:
    from torchvision.models.vgg import VGG, make_layers

    plan = [c if c == "M" else _scaled(c, width_mult) for c in _VGG_PLAN]
    if width_mult == 1.0 and hidden == 4096:
        return VGG(make_layers(plan, batch_norm=False), num_classes=num_classes, init_weights=True)
    # torchvision's VGG class and module names with a narrower classifier (not built at full size first)
    model = VGG.__new__(VGG)
    nn.Module.__init__(model)
    model.features = make_layers(plan, batch_norm=False)
    model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    model.classifier = nn.Sequential(
        nn.Linear(plan[-2] * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(), nn.Linear(hidden, hidden), nn.ReLU(True),
        nn.Dropout(), nn.Linear(hidden, num_classes))
    for m in model.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def _resnet18(num_classes: int, width_mult: float) -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    if width_mult != 1.0:
        w = [_scaled(c, width_mult) for c in (64, 128, 256, 512)]
        model.conv1 = nn.Conv2d(3, w[0], kernel_size=7, stride=2, padding=3, bias=False)
        model.bn1 = nn.BatchNorm2d(w[0])
        model.inplanes = w[0]
        model.layer1 = model._make_layer(BasicBlock, w[0], 2)
        model.layer2 = model._make_layer(BasicBlock, w[1], 2, stride=2)
        model.layer3 = model._make_layer(BasicBlock, w[2], 2, stride=2)
        model.layer4 = model._make_layer(BasicBlock, w[3], 2, stride=2)
        model.fc = nn.Linear(w[3], num_classes)
    return model


def build(name: str, num_classes: int = 1000, width_mult: float = 1.0, hidden: int = 4096) -> nn.Module:
    """torchvision's VGG-16 or ResNet-18, randomly initialised, optionally narrower.

    Parameters
    ----------
    name : {"vgg16", "resnet18"} (``_imagenet`` suffix allowed)
    num_classes : int, default 1000
    width_mult : float, default 1.0
        Multiplies every convolution's channels (tests, CPU runs); 1.0 is torchvision's network
        with the module names and shapes of the pretrained files.
    hidden : int, default 4096
        VGG-16 classifier width (only used when changed or with ``width_mult != 1``).
    """
    arch = arch_name(name)
    if not width_mult > 0 or int(num_classes) < 1 or int(hidden) < 1:
        raise ValueError(f"need width_mult > 0, num_classes >= 1, hidden >= 1; got {width_mult}, "
                         f"{num_classes}, {hidden}")
    if arch == "vgg16":
        return _vgg16(int(num_classes), float(width_mult), int(hidden))
    return _resnet18(int(num_classes), float(width_mult))


def weights_path(name: str, path: str | os.PathLike | None = None) -> Path:
    """The pretrained weights file of ``name``: ``path`` if given, else torchvision's cache.

    Raises
    ------
    FileNotFoundError
        Neither exists; the message names both ways and the expected file name.
    """
    arch = arch_name(name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[arch]
    if path:
        path = Path(path).expanduser()
        if path.is_file():
            return path
        raise FileNotFoundError(
            f"weights file {path} for {arch} does not exist; set imagenet.{arch}_weights to torchvision's "
            f"{WEIGHT_FILES[arch]} (or leave it empty to use torchvision's cache {cached})")
    if cached.is_file():
        return cached
    raise FileNotFoundError(
        f"no pretrained {arch} weights found and nothing is downloaded: either set imagenet.{arch}_weights "
        f"to a local copy of torchvision's {WEIGHT_FILES[arch]} (from "
        f"https://download.pytorch.org/models/{WEIGHT_FILES[arch]}), or put that file into torchvision's cache "
        f"directory {cached.parent} (torch.hub.get_dir()/checkpoints, e.g. by running "
        f"torchvision.models.{arch}(weights='IMAGENET1K_V1') once on a machine with internet)")


def _read_state(path: Path, arch: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle error, not a torch file
        raise ValueError(
            f"weights file {path} cannot be read ({type(exc).__name__}: {exc}); it is truncated or not a torch "
            f"state dict. Replace it with torchvision's {WEIGHT_FILES[arch]}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors; expected torchvision's "
                         f"{WEIGHT_FILES[arch]}")
    return state


def load_pretrained(name: str, path: str | os.PathLike | None = None, **build_kwargs) -> nn.Module:
    """Build ``name`` (:func:`build`) and load its pretrained weights (see :func:`weights_path`).

    ``num_classes`` and ``width_mult`` / ``hidden`` of ``build_kwargs`` must match the file.

    Raises
    ------
    FileNotFoundError
        No weights file (see :func:`weights_path`).
    ValueError
        A truncated or unreadable file, or weights of another architecture or size.
    """
    arch = arch_name(name)
    file = weights_path(arch, path)
    state = _read_state(file, arch)
    with torch.device("meta"):  # shapes only; the file's tensors are assigned below
        model = build(arch, **build_kwargs)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        other = [a for a in ARCHITECTURES if a != arch]
        raise ValueError(
            f"weights file {file} does not fit {arch} ({build_kwargs or 'torchvision defaults'}): "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
            f"{len(shapes)} shape mismatches {shapes[:2]}. Is it the file of {other} or of another width? "
            f"Expected torchvision's {WEIGHT_FILES[arch]}")
    model.load_state_dict(state, assign=True)
    return model.eval()


def decompose_imagenet(model: nn.Module, group_sizes=(1, 4, 16, 32), **btd_options) -> nn.Module:
    """GroSS-decompose every k x k convolution after the first (12 in VGG-16, 16 in ResNet-18).

    ResNet-18's 7 x 7 stem is the first convolution and its 1 x 1 downsample convolutions
    are not spatial, so its decomposed layers are the 3 x 3 convolutions of the residual
    blocks. ``btd_options`` go to :func:`gross.method.btd.btd` (``tol``, ``max_iter``, ``seed``...).
    """
    names = decomposable_layers(model)
    return decompose(model, group_sizes=tuple(group_sizes), layers=names, **btd_options)


# ----------------------------------------------------------------------------- data
def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of one training item's crop and flip (independent of ranks and workers)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(epoch)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class ImageFolderSplit(torch.utils.data.Dataset):
    """Images of one split with the paper's preprocessing; items ``(uint8 3 x crop x crop, label)``.

    Parameters
    ----------
    samples : list of (path, label)
    resize, crop : int
        Shorter side after resizing; square crop size.
    train : bool
        Random crop + flip (``True``) or centre crop.

    Indexing with an ``int`` draws the random crop from torch's global generator; with
    ``(index, seed)`` (as :class:`gross.training.distributed.ShardSampler` yields) from a generator
    seeded with ``seed``, deterministically.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], resize: int, crop: int, train: bool):
        if int(crop) > int(resize):
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        self.samples = list(samples)
        self.targets = [int(y) for _, y in self.samples]
        self.resize, self.crop, self.train = int(resize), int(crop), bool(train)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: Iterable[int], train: bool | None = None) -> "ImageFolderSplit":
        """The items at ``indices`` (optionally with the other transform)."""
        return ImageFolderSplit([self.samples[int(i)] for i in indices], self.resize, self.crop,
                                self.train if train is None else train)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, label = self.samples[int(index)]
        from PIL import Image

        with open(path, "rb") as fh:
            img = Image.open(fh).convert("RGB")
        img = TF.resize(img, self.resize, antialias=True)
        w, h = img.size
        if self.train:
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=gen))
            flip = bool(torch.rand((), generator=gen) < 0.5)
            img = TF.crop(img, top, left, self.crop, self.crop)
            if flip:
                img = TF.hflip(img)
        else:
            img = TF.center_crop(img, [self.crop, self.crop])
        return TF.pil_to_tensor(img), label


def _scan(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    samples = []
    for y, c in enumerate(classes):
        files = sorted(p for p in (folder / c).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        samples += [(str(p), y) for p in files]
    return classes, samples


def imagenet(root, resize: int = 256, crop: int = 224, held_out: int = 0, split_seed: int = 0,
             val_dir: str = "val") -> Dataset:
    """ImageNet-style folders as a :class:`gross.data.Dataset` (see the module docstring).

    Parameters
    ----------
    root : path-like
        Holds ``train/<class>/*`` and ``<val_dir>/<class>/*`` with the same class folders.
    resize, crop : int, default 256, 224
    held_out : int, default 0
        Training images set aside (seeded by ``split_seed``) as the ``val`` split for search
        and model selection (Table 4 uses the setting ``imagenet.held_out``, 10,000). ``0``: no
        held-out split, ``val`` *is* the official validation folder (only for runs that do not
        select anything on it).
    split_seed : int, default 0
    val_dir : str, default "val"

    Returns
    -------
    Dataset
        ``train`` (training images minus the held-out ones, random crop + flip), ``val``
        (held-out training images, centre crop), ``test`` (the official validation folder,
        centre crop), all :class:`ImageFolderSplit`.

    Raises
    ------
    FileNotFoundError
        ``train/`` or ``<val_dir>/`` is missing, or a split has no images.
    ValueError
        The splits have different class folders, or ``held_out`` leaves no training images.
    """
    root = Path(root).expanduser()
    for sub in ("train", val_dir):
        if not (root / sub).is_dir():
            raise FileNotFoundError(
                f"ImageNet folder {root / sub} not found: expected '{root}/train/<class>/*.JPEG' and "
                f"'{root}/{val_dir}/<class>/*.JPEG' (torchvision ImageFolder layout; the official validation "
                "images sorted into class folders)")
    train_classes, train_samples = _scan(root / "train")
    val_classes, val_samples = _scan(root / val_dir)
    if train_classes != val_classes:
        only_t = sorted(set(train_classes) - set(val_classes))
        only_v = sorted(set(val_classes) - set(train_classes))
        raise ValueError(
            f"ImageNet folder {root}: train/ and {val_dir}/ must hold the same class folders; only in train/: "
            f"{only_t[:5]}{' ...' if len(only_t) > 5 else ''} ({len(only_t)}), only in {val_dir}/: "
            f"{only_v[:5]}{' ...' if len(only_v) > 5 else ''} ({len(only_v)})")
    for sub, samples in (("train", train_samples), (val_dir, val_samples)):
        if not samples:
            raise FileNotFoundError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) under {root / sub}/<class>/")
    held_out = int(held_out)
    if not 0 <= held_out < len(train_samples):
        raise ValueError(f"held_out must be between 0 and {len(train_samples) - 1} (the training set has "
                         f"{len(train_samples)} images), got {held_out}")
    full = ImageFolderSplit(train_samples, resize, crop, train=True)
    test = ImageFolderSplit(val_samples, resize, crop, train=False)
    info = {"kind": "imagefolder", "held_out": held_out, "split_seed": int(split_seed), "resize": int(resize),
            "crop": int(crop)}
    common = dict(classes=tuple(train_classes), source=str(root.resolve()), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  info=info)
    if held_out == 0:
        return Dataset(train=full, val=test, test=test, **common)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(int(split_seed))).tolist()
    val_idx, train_idx = sorted(perm[:held_out]), sorted(perm[held_out:])
    return Dataset(train=full.subset(train_idx), val=full.subset(val_idx, train=False), test=test, **common)


def generate_folder(root, classes: int = 10, train_per_class: int = 20, val_per_class: int = 4,
                    size: int = 64, seed: int = 0) -> Path:
    """Write a small ImageNet-style folder of JPEGs (tests, smoke runs); returns ``root``.

    Class ``c`` images are noise around a class colour (so that a network can learn them),
    sizes vary around ``size`` so that the shorter-side resize matters.
    """
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, (classes, 3))
    for split, per in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                h, w = size + int(rng.integers(0, size // 4 + 1)), size + int(rng.integers(0, size // 4 + 1))
                arr = np.clip(colours[c] + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(folder / f"{split}_{c}_{i}.JPEG", quality=90)
    return root


def loader(split: ImageFolderSplit, batch_sampler, workers: int = 8, pin_memory: bool = True,
           persistent_workers: bool = True) -> torch.utils.data.DataLoader:
    """A multi-worker DataLoader over ``split`` driven by ``batch_sampler`` (lists of keys).

    ``pin_memory`` only applies when CUDA is available; ``persistent_workers`` only with
    ``workers > 0``.
    """
    if int(workers) < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    workers = int(workers)
    return torch.utils.data.DataLoader(
        split, batch_sampler=batch_sampler, num_workers=workers,
        pin_memory=bool(pin_memory) and torch.cuda.is_available(),
        persistent_workers=bool(persistent_workers) and workers > 0)


def normalise(x: torch.Tensor, device, dtype=torch.float32, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 batch -> normalised ``dtype`` batch on ``device`` (``(x / 255 - mean) / std``)."""
    x = x.to(device, non_blocking=True).to(dtype).div_(255)
    m = torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device, dtype=dtype).view(1, -1, 1, 1)
    return (x - m) / s
