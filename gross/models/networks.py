"""Network definitions used in the paper (Sec. 4.2).

Two CIFAR-10 networks are defined here as *flat* :class:`torch.nn.Sequential`
containers with named children (``conv1 .. convN``, ``relu1 ..``, ``pool1 ..``,
``flatten``, ``fc1``, ``relu_fc1``, ``dropout``, ``fc2``), so that search code
can run them stage by stage:

* :func:`four_layer_net` -- four 3x3 convolutions (3->32->32->64->64, padding
  1, bias), each followed by ReLU and 2x2 max-pooling, then fc 256->256, ReLU,
  dropout 0.5, fc 256->10. No batch norm.
* :func:`vgg16_cifar` -- the 13 3x3 convolutions of VGG-16 (with bias, ReLU,
  no batch norm; 2x2 max-pooling after each stage), then fc 512->512, ReLU,
  dropout 0.5, fc 512->10.

A torchvision-style ResNet-18 for CIFAR-10 (not in the paper; notebook 07 applies GroSS to it):

* :func:`resnet18_cifar` -- a :class:`torchvision.models.ResNet` with a 3x3 stride-1 stem
  (no max-pooling), four stages of two :class:`~torchvision.models.resnet.BasicBlock`
  (64, 128, 256, 512 channels times ``width_mult``; batch norm after every convolution,
  1x1 downsample convolutions where the shape changes), global average pooling and
  one linear layer.

The ImageNet networks are torchvision's :func:`torchvision.models.vgg16` and
:func:`torchvision.models.resnet18` with ``weights=None``.

Parameters use PyTorch's default initialisation (``nn.Conv2d`` / ``nn.Linear``
defaults) for the 4-layer net, He (fan-out) normal convolutions with zero biases
for the CIFAR VGG-16 (as in the reference CIFAR VGG code), and torchvision's own scheme
for the ImageNet networks; the paper starts from trained networks, which are obtained
with :mod:`gross.training.loop`.

Tip: build a large network on the meta device to inspect shapes or count MACs
without allocating memory::

    with torch.device("meta"):
        model = build("vgg16_imagenet")
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet

__all__ = [
    "four_layer_net",
    "vgg16_cifar",
    "vgg16_imagenet",
    "resnet18_imagenet",
    "resnet18_cifar",
    "CifarResNet",
    "MODELS",
    "INPUT_SIZE",
    "DEFAULT_GROUP_SIZES",
    "build",
]

#: VGG-16 convolution plan: output channels, ``"M"`` = 2x2 max-pool.
VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M")


def _conv_stack(plan, in_channels: int, pool_after_every_conv: bool) -> "OrderedDict[str, nn.Module]":
    """Named ``convI``/``reluI``/``poolJ`` modules for a plain conv stack."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    n_conv = n_pool = 0
    channels = in_channels
    for item in plan:
        if item == "M":
            n_pool += 1
            layers[f"pool{n_pool}"] = nn.MaxPool2d(kernel_size=2, stride=2)
            continue
        n_conv += 1
        layers[f"conv{n_conv}"] = nn.Conv2d(channels, item, kernel_size=3, padding=1, bias=True)
        layers[f"relu{n_conv}"] = nn.ReLU(inplace=True)
        channels = item
        if pool_after_every_conv:
            n_pool += 1
            layers[f"pool{n_pool}"] = nn.MaxPool2d(kernel_size=2, stride=2)
    return layers


def _classifier(in_features: int, hidden: int, num_classes: int) -> "OrderedDict[str, nn.Module]":
    return OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(in_features, hidden)),
        ("relu_fc1", nn.ReLU(inplace=True)),
        ("dropout", nn.Dropout(p=0.5)),
        ("fc2", nn.Linear(hidden, num_classes)),
    ])


def _check_positive(name: str, value, kind=int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
            or (kind is int and int(value) != value):
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")


def four_layer_net(num_classes: int = 10) -> nn.Sequential:
    """The paper's custom 4-layer CIFAR-10 network.

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of ``fc2``.

    Returns
    -------
    torch.nn.Sequential
        Children ``conv1..conv4``, ``relu1..relu4``, ``pool1..pool4``,
        ``flatten``, ``fc1`` (256->256), ``relu_fc1``, ``dropout`` (p=0.5),
        ``fc2`` (256->num_classes). Expects 3x32x32 inputs.
    """
    _check_positive("num_classes", num_classes)
    layers = _conv_stack((32, 32, 64, 64), in_channels=3, pool_after_every_conv=True)
    layers.update(_classifier(64 * 2 * 2, 256, num_classes))
    return nn.Sequential(layers)


def vgg16_cifar(num_classes: int = 10, width_mult: float = 1.0) -> nn.Sequential:
    """VGG-16 for CIFAR-10 (13 3x3 convs, no batch norm, 2-layer classifier).

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of ``fc2``.
    width_mult : float, default 1.0
        Multiplies every convolution's output channels (rounded, at least 1);
        ``fc1``'s input follows the last conv. The classifier's hidden size
        stays 512. Use values < 1 for reduced CPU runs.

    Returns
    -------
    torch.nn.Sequential
        Children ``conv1..conv13``, ``relu1..relu13``, ``pool1..pool5``,
        ``flatten``, ``fc1`` (C->512), ``relu_fc1``, ``dropout`` (p=0.5),
        ``fc2`` (512->num_classes). Expects 3x32x32 inputs.
    """
    _check_positive("num_classes", num_classes)
    _check_positive("width_mult", width_mult, kind=float)
    plan = tuple(c if c == "M" else max(1, int(round(c * width_mult))) for c in VGG16_PLAN)
    layers = _conv_stack(plan, in_channels=3, pool_after_every_conv=False)
    last = [c for c in plan if c != "M"][-1]
    layers.update(_classifier(last * 1 * 1, 512, num_classes))
    model = nn.Sequential(layers)
    _he_init_convs(model)
    return model


def _he_init_convs(model: nn.Module) -> None:
    """He (fan-out) normal initialisation of every conv, zero biases.

    This is the scheme of the public CIFAR VGG-16 code whose recipe (batch 128,
    lr 0.05, ImageNet std 0.225) the authors' base training follows: weights
    ~ N(0, 2 / (k·k·out_channels)). PyTorch's default initialisation shrinks the
    signal through thirteen plain convolutions without batch norm: measured with the
    base recipe at width ×0.25, 15 epochs on 10k CIFAR-10 images stayed at chance
    (10 % validation accuracy) with the default initialisation, while with this one
    10 epochs on 5k images reach 31 % (the first epochs are a slow plateau).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def vgg16_imagenet(num_classes: int = 1000, **kwargs) -> nn.Module:
    """torchvision's VGG-16 (no batch norm), randomly initialised (``weights=None``).

    Extra keyword arguments are passed to :func:`torchvision.models.vgg16`.
    """
    return torchvision.models.vgg16(weights=None, num_classes=num_classes, **kwargs)


def resnet18_imagenet(num_classes: int = 1000, **kwargs) -> nn.Module:
    """torchvision's ResNet-18, randomly initialised (``weights=None``).

    Its decomposable layers (see :func:`gross.method.decomposition.decomposable_layers`)
    are the 16 3x3 convolutions inside the residual blocks; the 7x7 stem and the
    1x1 downsample convolutions are not decomposed.
    Extra keyword arguments are passed to :func:`torchvision.models.resnet18`.
    """
    return torchvision.models.resnet18(weights=None, num_classes=num_classes, **kwargs)


class CifarResNet(ResNet):
    """A torchvision :class:`~torchvision.models.ResNet` of :class:`BasicBlock` stages for 32x32 inputs.

    The stem is a 3x3 stride-1 convolution (no bias) + batch norm + ReLU and ``maxpool`` is
    an :class:`torch.nn.Identity`, so the four stages run at 32, 16, 8 and 4 pixels.
    ``forward`` and the module names (``conv1, bn1, relu, maxpool, layer1..layer4,
    avgpool, fc``) are torchvision's, so code written for torchvision's ResNet
    (:func:`gross.search.evaluation.units`, the prefix-tree evaluation) applies unchanged.
    Initialisation as torchvision's: He (fan-out) normal convolutions, batch norm weight
    1 and bias 0, PyTorch's default for ``fc``.

    Parameters
    ----------
    layers : sequence of int
        Blocks per stage (ResNet-18: ``(2, 2, 2, 2)``).
    widths : sequence of int
        Output channels of the stem and the four stages (the stem's equals stage 1's).
    num_classes : int
    """

    def __init__(self, layers, widths, num_classes: int = 10):
        nn.Module.__init__(self)  # torchvision's __init__ hard-codes the ImageNet stem and widths
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"need 4 stages, got layers={tuple(layers)} widths={tuple(widths)}")
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = int(widths[0]), 1, 1, 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, int(widths[0]), layers[0])
        self.layer2 = self._make_layer(BasicBlock, int(widths[1]), layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, int(widths[2]), layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, int(widths[3]), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(int(widths[3]) * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


#: ResNet-18 stage widths (stem = stage 1).
RESNET18_WIDTHS = (64, 128, 256, 512)


def resnet18_cifar(num_classes: int = 10, width_mult: float = 1.0) -> CifarResNet:
    """ResNet-18 for CIFAR-10: torchvision's blocks with a 3x3 stem and no max-pooling.

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of ``fc``.
    width_mult : float, default 1.0
        Multiplies the channels of every stage (64, 128, 256, 512; rounded, at least
        1). Use values < 1 for reduced CPU runs.

    Returns
    -------
    CifarResNet
        A :class:`torchvision.models.ResNet`: ``conv1`` (3x3, stride 1, no bias), ``bn1``,
        ``relu``, ``maxpool`` (identity), ``layer1..layer4`` (two BasicBlocks each,
        stride 2 from ``layer2`` on, 1x1 downsample + batch norm where the shape
        changes), ``avgpool``, ``fc``. Expects 3x32x32 inputs. Its decomposable layers
        (:func:`gross.method.decomposition.decomposable_layers`) are the 16 3x3
        convolutions of the blocks; the stem and the 1x1 downsamples are not decomposed.
        At width 1.0 it has 11,173,962 parameters and 556.65M MACs (batch norm counted,
        2 per output element; :func:`gross.method.macs.count_macs`).
    """
    _check_positive("num_classes", num_classes)
    _check_positive("width_mult", width_mult, kind=float)
    widths = tuple(max(1, int(round(c * width_mult))) for c in RESNET18_WIDTHS)
    return CifarResNet((2, 2, 2, 2), widths, num_classes=num_classes)


#: Registry name -> factory.
MODELS: "dict[str, Callable[..., nn.Module]]" = {
    "four_layer": four_layer_net,
    "vgg16_cifar": vgg16_cifar,
    "vgg16_imagenet": vgg16_imagenet,
    "resnet18_imagenet": resnet18_imagenet,
    "resnet18_cifar": resnet18_cifar,
}

#: Input size (C, H, W) of each registered model.
INPUT_SIZE: "dict[str, tuple[int, int, int]]" = {
    "four_layer": (3, 32, 32),
    "vgg16_cifar": (3, 32, 32),
    "vgg16_imagenet": (3, 224, 224),
    "resnet18_imagenet": (3, 224, 224),
    "resnet18_cifar": (3, 32, 32),
}

#: Group sizes searched per model (Sec. 4.3). ``None`` = all powers of two
#: that do not exceed each layer's bottleneck width.
DEFAULT_GROUP_SIZES: "dict[str, tuple[int, ...] | None]" = {
    "four_layer": None,
    "vgg16_cifar": (1, 4, 16, 32),
    "vgg16_imagenet": (1, 4, 16, 32),
    "resnet18_imagenet": (1, 4, 16, 32),
    "resnet18_cifar": (1, 4, 16, 32),
}


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name.

    Parameters
    ----------
    name : str
        One of ``MODELS`` (``"four_layer"``, ``"vgg16_cifar"``,
        ``"vgg16_imagenet"``, ``"resnet18_imagenet"``, ``"resnet18_cifar"``).
    **kwargs
        Passed to the factory (e.g. ``num_classes``, ``width_mult``).

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: valid names are {sorted(MODELS)}")
    return MODELS[name](**kwargs)
