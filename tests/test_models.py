"""Tests for gross.models."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from gross.method.decomposition import decomposable_layers
from gross.models import (
    DEFAULT_GROUP_SIZES,
    INPUT_SIZE,
    MODELS,
    build,
    CifarResNet,
    four_layer_net,
    resnet18_cifar,
    resnet18_imagenet,
    vgg16_cifar,
    vgg16_imagenet,
)


def _children(model):
    return [name for name, _ in model.named_children()]


def test_four_layer_structure_and_forward():
    torch.manual_seed(0)
    model = four_layer_net()
    assert isinstance(model, nn.Sequential)
    expected = []
    for i in range(1, 5):
        expected += [f"conv{i}", f"relu{i}", f"pool{i}"]
    expected += ["flatten", "fc1", "relu_fc1", "dropout", "fc2"]
    assert _children(model) == expected
    convs = [model.get_submodule(f"conv{i}") for i in range(1, 5)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 32), (32, 64), (64, 64)]
    for c in convs:
        assert c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None
    assert (model.fc1.in_features, model.fc1.out_features) == (256, 256)
    assert (model.fc2.in_features, model.fc2.out_features) == (256, 10)
    assert model.dropout.p == 0.5
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert four_layer_net(num_classes=7)(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    # parameter count computed by hand
    n = (3 * 9 * 32 + 32) + (32 * 9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 9 * 64 + 64) \
        + (256 * 256 + 256) + (256 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == n


def test_vgg16_cifar_structure_and_forward():
    torch.manual_seed(0)
    model = vgg16_cifar()
    names = _children(model)
    assert [n for n in names if n.startswith("conv")] == [f"conv{i}" for i in range(1, 14)]
    assert [n for n in names if n.startswith("pool")] == [f"pool{i}" for i in range(1, 6)]
    assert names[-5:] == ["flatten", "fc1", "relu_fc1", "dropout", "fc2"]
    outs = [model.get_submodule(f"conv{i}").out_channels for i in range(1, 14)]
    assert outs == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    # pools follow conv2, conv4, conv7, conv10, conv13
    pool_after = [names[names.index(f"pool{j}") - 1] for j in range(1, 6)]
    assert pool_after == ["relu2", "relu4", "relu7", "relu10", "relu13"]
    assert (model.fc1.in_features, model.fc1.out_features, model.fc2.out_features) == (512, 512, 10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_vgg16_cifar_width_mult():
    model = vgg16_cifar(num_classes=5, width_mult=0.25)
    outs = [model.get_submodule(f"conv{i}").out_channels for i in range(1, 14)]
    assert outs == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    assert model.conv2.in_channels == 16
    assert model.fc1.in_features == 128 and model.fc1.out_features == 512
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_flat_models_run_stage_by_stage():
    torch.manual_seed(1)
    for model in (four_layer_net(), vgg16_cifar(width_mult=0.125)):
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        y = x
        for _, child in model.named_children():
            y = child(y)
        torch.testing.assert_close(y, model(x))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=0), "num_classes must be a positive int, got 0"),
        (dict(num_classes=2.5), "num_classes must be a positive int, got 2.5"),
        (dict(width_mult=0), "width_mult must be a positive float, got 0"),
        (dict(width_mult=-1.0), "width_mult must be a positive float, got -1.0"),
    ],
)
def test_vgg16_cifar_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        vgg16_cifar(**kwargs)


def test_four_layer_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes must be a positive int, got -3"):
        four_layer_net(num_classes=-3)


def test_registry():
    assert set(MODELS) == {"four_layer", "vgg16_cifar", "vgg16_imagenet", "resnet18_imagenet", "resnet18_cifar"}
    assert set(INPUT_SIZE) == set(MODELS) == set(DEFAULT_GROUP_SIZES)
    assert INPUT_SIZE["four_layer"] == INPUT_SIZE["vgg16_cifar"] == INPUT_SIZE["resnet18_cifar"] == (3, 32, 32)
    assert INPUT_SIZE["vgg16_imagenet"] == INPUT_SIZE["resnet18_imagenet"] == (3, 224, 224)
    assert DEFAULT_GROUP_SIZES["four_layer"] is None
    for name in ("vgg16_cifar", "vgg16_imagenet", "resnet18_imagenet", "resnet18_cifar"):
        assert DEFAULT_GROUP_SIZES[name] == (1, 4, 16, 32)
    assert MODELS["four_layer"] is four_layer_net and MODELS["vgg16_cifar"] is vgg16_cifar
    assert MODELS["vgg16_imagenet"] is vgg16_imagenet and MODELS["resnet18_imagenet"] is resnet18_imagenet
    assert MODELS["resnet18_cifar"] is resnet18_cifar
    assert build("vgg16_cifar", width_mult=0.5).conv1.out_channels == 32


def test_build_unknown_name():
    with pytest.raises(ValueError, match=r"unknown model 'vgg19': valid names are \['four_layer', 'resnet18_cifar', "
                                         r"'resnet18_imagenet', 'vgg16_cifar', 'vgg16_imagenet'\]"):
        build("vgg19")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shapes_on_meta(name):
    with torch.device("meta"):
        model = build(name)
        y = model(torch.zeros(1, *INPUT_SIZE[name]))
    assert y.shape == (1, 10 if "cifar" in name or name == "four_layer" else 1000)


def test_decomposable_layers_of_each_model():
    assert decomposable_layers(four_layer_net()) == ["conv2", "conv3", "conv4"]
    assert decomposable_layers(vgg16_cifar(width_mult=0.125)) == [f"conv{i}" for i in range(2, 14)]
    with torch.device("meta"):
        vgg = vgg16_imagenet()
        resnet = resnet18_imagenet()
    assert len(decomposable_layers(vgg)) == 12
    names = decomposable_layers(resnet)
    expected = [f"layer{i}.{b}.conv{c}" for i in range(1, 5) for b in range(2) for c in (1, 2)]
    assert names == expected  # 16 3x3 convs; stem (7x7) and 1x1 downsamples excluded
    for n in names:
        conv = resnet.get_submodule(n)
        assert conv.kernel_size == (3, 3)
    assert isinstance(resnet.conv1, nn.Conv2d) and resnet.conv1.kernel_size == (7, 7)
    assert resnet.layer2[0].downsample[0].kernel_size == (1, 1)


def test_imagenet_models_are_torchvision():
    import torchvision

    with torch.device("meta"):
        vgg = vgg16_imagenet()
        resnet = resnet18_imagenet()
    assert isinstance(vgg, torchvision.models.VGG)
    assert isinstance(resnet, torchvision.models.ResNet)
    linears = [m for m in vgg.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(25088, 4096), (4096, 4096), (4096, 1000)]
    assert sum(p.numel() for p in vgg.parameters()) == 138_357_544
    assert sum(p.numel() for p in resnet.parameters()) == 11_689_512


def test_children_are_ordered_dict_named():
    # the flat models are built from an OrderedDict: named access works
    model = four_layer_net()
    assert isinstance(model._modules, (dict, OrderedDict))
    assert model.conv3 is model[6]


def test_vgg16_cifar_convs_use_he_fan_out_init():
    torch.manual_seed(0)
    model = vgg16_cifar()
    for conv in (model.conv1, model.conv7, model.conv13):
        k = conv.kernel_size[0] * conv.kernel_size[1]
        expected = (2.0 / (k * conv.out_channels)) ** 0.5
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)
        assert torch.count_nonzero(conv.bias) == 0


# ----------------------------------------------------------------------------- ResNet-18 for CIFAR-10 (notebook 07)


def _resnet18_cifar_macs(widths=(64, 128, 256, 512), config=None, num_classes=10):
    """MACs of resnet18_cifar counted by hand from its plan (independent of gross.method.macs).

    Convolution: output elements x input channels x 9 (no biases); batch norm: 2 per output element;
    fc: outputs x inputs (bias not counted). With ``config`` (one group size per block convolution,
    in order) each block convolution t -> u is counted as P (1x1 t -> t at the input resolution),
    R (3x3, groups t / s, at the output resolution) and Q (1x1 t -> u).
    """
    sizes = iter(config) if config is not None else None

    def conv3(t, u, in_hw, out_hw):
        if sizes is None:
            return out_hw * u * t * 9
        s = next(sizes)
        return in_hw * t * t + out_hw * t * s * 9 + out_hw * u * t

    side, c = 32, widths[0]
    macs = side * side * c * 3 * 9 + 2 * c * side * side  # stem conv + bn (never decomposed)
    for stage, w in enumerate(widths):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            out = side // stride
            macs += conv3(c, w, side * side, out * out) + 2 * w * out * out  # conv1 + bn1
            macs += conv3(w, w, out * out, out * out) + 2 * w * out * out  # conv2 + bn2
            if stride != 1 or c != w:
                macs += out * out * w * c + 2 * w * out * out  # 1x1 downsample + bn
            c, side = w, out
    return macs + num_classes * widths[-1]


def test_resnet18_cifar_structure_and_forward():
    import torchvision
    from torchvision.models.resnet import BasicBlock

    torch.manual_seed(0)
    model = resnet18_cifar()
    assert isinstance(model, torchvision.models.ResNet) and isinstance(model, CifarResNet)
    assert _children(model) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
                                "fc"]
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.bias is None
    assert isinstance(model.maxpool, nn.Identity)
    for i, (w, stride) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2)), start=1):
        stage = model.get_submodule(f"layer{i}")
        assert len(stage) == 2 and all(isinstance(b, BasicBlock) for b in stage)
        assert stage[0].conv1.stride == (stride, stride) and stage[0].conv2.out_channels == w
        assert (stage[0].downsample is not None) == (i > 1)
    assert (model.fc.in_features, model.fc.out_features) == (512, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(bns) == 20 and all(c.bias is None for c in convs)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert model(x).shape == (2, 10)
    # the stages run at 32, 16, 8 and 4 pixels (no max-pool after the stem)
    shapes = []
    hooks = [model.get_submodule(f"layer{i}").register_forward_hook(lambda m, a, out: shapes.append(out.shape[-1]))
             for i in range(1, 5)]
    model(x)
    for h in hooks:
        h.remove()
    assert shapes == [32, 16, 8, 4]
    assert resnet18_cifar(num_classes=7)(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_resnet18_cifar_width_mult_and_bad_arguments():
    model = resnet18_cifar(width_mult=0.25)
    assert [model.get_submodule(f"layer{i}")[1].conv2.out_channels for i in range(1, 5)] == [16, 32, 64, 128]
    assert model.conv1.out_channels == 16 and model.fc.in_features == 128
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="width_mult must be a positive float, got 0"):
        resnet18_cifar(width_mult=0)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        resnet18_cifar(num_classes=0)


@pytest.mark.parametrize("width_mult", [1.0, 0.25])
def test_resnet18_cifar_macs_match_an_independent_count(width_mult):
    from gross.method.macs import count_macs, mac_table

    with torch.device("meta"):
        model = resnet18_cifar(width_mult=width_mult)
    widths = tuple(int(round(c * width_mult)) for c in (64, 128, 256, 512))
    assert count_macs(model, (3, 32, 32)).total == _resnet18_cifar_macs(widths)
    if width_mult == 1.0:
        assert count_macs(model, (3, 32, 32)).total == 556_651_520
    table = mac_table(model, (3, 32, 32))
    bn = table[table["kind"] == "batchnorm"]
    assert len(bn) == 20  # every batch norm counted, 2 MACs per output element
    assert all(m == 2 * int(torch.Size(s).numel()) for m, s in zip(bn["macs"], bn["output_shape"]))
    for config in [(1,) * 16, (16,) * 16, (1, 4, 16, 1, 4, 16, 1, 4, 16, 1, 4, 16, 1, 4, 16, 1)]:
        assert count_macs(model, (3, 32, 32), config=config).total == _resnet18_cifar_macs(widths, config), config


def test_resnet18_cifar_decomposable_layers():
    with torch.device("meta"):
        model = resnet18_cifar()
    names = decomposable_layers(model)
    assert names == [f"layer{i}.{b}.conv{c}" for i in range(1, 5) for b in range(2) for c in (1, 2)]
    assert "conv1" not in names  # the stem is the first k x k convolution: kept
    assert not any("downsample" in n for n in names)  # 1x1: nothing to group


def test_resnet18_cifar_runs_unit_by_unit():
    """gross.search.evaluation.units cuts it like torchvision's ResNet (prefix-tree evaluation)."""
    from gross.search.evaluation import units

    torch.manual_seed(2)
    model = resnet18_cifar(width_mult=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    y = x
    for unit in units(model):
        y = unit(y)
    torch.testing.assert_close(y, model(x))
