"""Tests for gross.search.evaluation: one accuracy path, the prefix tree equal to the plain path."""

import copy
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from gross import utils
from gross.training import loop as train
from gross.data import Dataset, Split
from gross.method.decomposition import enumerate_configs, export, get_config, search_space, set_config
from gross.search.evaluation import (ConfigEvaluator, accuracy, correct_images, evaluate_configs, get_split,
                                     paired_change, time_switching_vs_rebuild)
from gross.method.layers import GroSSConv2d
from gross.method.space import SearchSpace

INPUT = (3, 8, 8)


# ----------------------------------------------------------------------------- fixtures


def gross_layer(t, u, sizes, dtype):
    layer = GroSSConv2d(t, u, 3, sizes, padding=1, dtype=dtype)
    with torch.no_grad():
        for p in layer.parameters():  # random difference terms: every group size computes something else
            p.normal_(0.0, 0.4)
    layer.clear_cache()
    return layer


def tiny_gross_net(seed=0, dtype=torch.float32):
    """Flat Sequential with 3 GroSS layers: 3 x 4 x 2 = 24 configurations, 8x8 inputs."""
    torch.manual_seed(seed)
    layers = OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1, dtype=dtype),
        relu1=nn.ReLU(inplace=True),
        conv2=gross_layer(4, 8, (1, 2, 4), dtype),
        relu2=nn.ReLU(inplace=True),
        pool1=nn.MaxPool2d(2),
        conv3=gross_layer(8, 8, (1, 2, 4, 8), dtype),
        relu3=nn.ReLU(inplace=True),
        pool2=nn.MaxPool2d(2),
        conv4=gross_layer(8, 8, (1, 8), dtype),
        relu4=nn.ReLU(inplace=True),
        flatten=nn.Flatten(),
        fc1=nn.Linear(8 * 2 * 2, 16, dtype=dtype),
        relu_fc1=nn.ReLU(inplace=True),
        dropout=nn.Dropout(0.5),
        fc2=nn.Linear(16, 5, dtype=dtype),
    )
    model = nn.Sequential(layers)
    for name in ("conv2", "conv3", "conv4"):
        model.get_submodule(name).name = name
    return model


def tiny_data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    split = Split(torch.randint(0, 256, (n, *INPUT), generator=g, dtype=torch.uint8),
                  torch.randint(0, 5, (n,), generator=g))
    return Dataset(split, split, split, classes=tuple("abcde"), source="random", mean=(0.4, 0.5, 0.6),
                   std=(0.3, 0.25, 0.2))


class Nested(nn.Module):
    """Same network, but the GroSS layers are not direct children of a Sequential."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)


@pytest.fixture(autouse=True)
def _cpu_by_default(monkeypatch):
    """Bit-for-bit comparisons with CPU evaluations: device=None stays on CPU even where CUDA exists."""
    monkeypatch.setattr(utils, "default_device", lambda: torch.device("cpu"))


@pytest.fixture(scope="module")
def model():
    return tiny_gross_net()


@pytest.fixture(scope="module")
def data():
    return tiny_data()


# ----------------------------------------------------------------------------- fast evaluation


def test_tree_logits_exact_float64():
    """The prefix tree computes exactly model(x) at every configuration (logits, float64)."""
    model = tiny_gross_net(seed=1, dtype=torch.float64)
    data = tiny_data(n=40, seed=2)
    configs = enumerate_configs(search_space(model))[::-1] + [(2, 4, 8)]  # any order, duplicates
    inputs, logits = [], []
    hooks = [model.conv1.register_forward_pre_hook(lambda m, a: inputs.append(a[0].clone())),
             model.fc2.register_forward_hook(lambda m, a, out: logits.append(out.clone()))]
    before = get_config(model)
    try:
        evaluate_configs(model, configs, data, batch_size=64)  # one batch
    finally:
        for h in hooks:
            h.remove()
    assert get_config(model) == before and len(inputs) == 1 and inputs[0].dtype == torch.float64
    unique = sorted(set(configs))  # the tree visits configurations in lexicographic order
    assert len(logits) == len(unique)
    model.eval()
    for c, out in zip(unique, logits):
        set_config(model, c)
        with torch.no_grad():
            assert torch.equal(out, model(inputs[0])), c
    set_config(model, before)
    assert not torch.equal(logits[0], logits[1])  # the configurations really differ


def test_evaluate_configs_tree_equals_separate_evaluation(model, data):
    configs = SearchSpace.from_model(model).random(24, seed=1) + [(1, 1, 1)]
    model.train()
    set_config(model, (2, 4, 8))
    tree = evaluate_configs(model, configs, data, batch_size=64)
    assert get_config(model) == (2, 4, 8) and model.training  # restored
    assert list(tree.columns) == ["config", "accuracy"]
    assert tree["config"].tolist() == configs
    flat = evaluate_configs(model, configs, data, batch_size=64, tree=False)
    nested = evaluate_configs(Nested(model), configs, data, batch_size=64)
    independent = [accuracy(model, data, config=c, batch_size=64) for c in configs]
    assert tree["accuracy"].tolist() == independent
    assert flat["accuracy"].tolist() == independent
    assert nested["accuracy"].tolist() == independent
    assert tree["accuracy"].nunique() > 3  # configurations are told apart
    # explicit mean/std are used (different normalisation -> different accuracies somewhere)
    other = evaluate_configs(model, configs, data, batch_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert other["accuracy"].tolist() == [
        accuracy(model, data, config=c, batch_size=64, mean=(0.5,) * 3, std=(0.5,) * 3) for c in configs]
    # the exported plain network, a bare split and gross.training.loop.evaluate all go the same way
    assert train.evaluate is accuracy
    plain = [accuracy(export(model, c), data.val, batch_size=64, mean=data.mean, std=data.std) for c in configs]
    assert plain == independent


def test_channels_last_tree_equals_one_by_one(model, data):
    configs = enumerate_configs(search_space(model))
    tree = evaluate_configs(model, configs, data, batch_size=128, channels_last=True)
    flat = evaluate_configs(model, configs, data, batch_size=128, channels_last=True, tree=False)
    assert tree["accuracy"].tolist() == flat["accuracy"].tolist()
    nchw = evaluate_configs(model, configs, data, batch_size=128)
    # another memory layout may round differently, flipping at most a rare prediction
    assert np.abs(tree["accuracy"] - nchw["accuracy"]).max() <= 100 * 2 / 300


def test_tree_runs_prefix_once_per_batch(model, data):
    calls = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
             for n in ("conv1", "conv2", "conv3", "conv4")]
    try:
        evaluate_configs(model, enumerate_configs(search_space(model)), data, batch_size=100)  # 3 batches
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"conv1": 3, "conv2": 3 * 3, "conv3": 3 * 12, "conv4": 3 * 24}


def test_evaluate_configs_errors(model, data):
    with pytest.raises(ValueError, match="group size 3 is not valid for layer 'conv2'"):
        evaluate_configs(model, [(3, 1, 1)], data)
    with pytest.raises(ValueError, match="2 group sizes"):
        evaluate_configs(model, [(1, 1)], data)
    with pytest.raises(ValueError, match="no GroSS layers"):
        evaluate_configs(nn.Sequential(nn.Conv2d(3, 3, 3)), [(1,)], data)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_configs(model, [(1, 1, 1)], data, batch_size=0)


def test_config_evaluator_and_get_split(model, data):
    ev = ConfigEvaluator(model, data, batch_size=100)
    configs = [(1, 1, 1), (4, 8, 8), (1, 1, 1)]
    assert ev(configs) == evaluate_configs(model, configs, data, batch_size=100)["accuracy"].tolist()
    assert ev.input_size() == INPUT
    assert get_split(data, "test") is data.test and get_split(data.val) is data.val
    with pytest.raises(ValueError, match="gross.data.Dataset or Split"):
        get_split([1, 2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        ConfigEvaluator(model, data, batch_size=0)
    with pytest.raises(TypeError):
        ConfigEvaluator(model, data, bogus=1)


def test_accuracy_restores_mode_and_config(model, data):
    model.train()
    set_config(model, (2, 4, 8))
    a = accuracy(model, data, config={"conv2": 1, "conv3": 1, "conv4": 1})
    assert model.training and get_config(model) == (2, 4, 8)
    assert a == accuracy(model, data, config="1 1 1") == accuracy(export(model, (1, 1, 1)), data)
    with pytest.raises(ValueError, match="is empty"):
        accuracy(model, Split(data.val.images[:0], data.val.labels[:0]))


def test_correct_images_are_the_forward_argmax_per_image(model, data):
    """Per image, equal to an independent float64 forward of the exported network; the mean is accuracy()."""
    before = get_config(model)
    mean = torch.tensor(data.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float64).view(1, 3, 1, 1)
    x = (data.val.images.double() / 255.0 - mean) / std
    for c in enumerate_configs(search_space(model))[:3] + [None]:
        mask = correct_images(model, data, config=c, batch_size=7)
        assert mask.dtype == torch.bool and mask.shape == (len(data.val.labels),)
        assert 100.0 * mask.double().mean().item() == pytest.approx(accuracy(model, data, config=c), abs=1e-9)
        net = copy.deepcopy(export(model, before if c is None else c)).double().eval()
        with torch.inference_mode():
            logits = net(x)
        top2 = logits.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # float32 and float64 agree wherever the top-1 is not a near tie
        assert clear.sum() > 0.9 * len(clear)
        assert torch.equal(mask[clear], (logits.argmax(1) == data.val.labels)[clear])
    assert get_config(model) == before


def test_paired_change_counts_the_images_that_moved(model, data):
    before = correct_images(model, data, config="1 1 1")
    after = correct_images(model, data, config="4 8 8")
    pair = paired_change(before, after)
    b, a = before.numpy(), after.numpy()  # independent: numpy on the same masks
    assert pair["lost"] == int(np.sum(b & ~a)) and pair["gained"] == int(np.sum(~b & a))
    assert pair["before"] == accuracy(model, data, config="1 1 1") and pair["after"] == accuracy(model, data,
                                                                                               config="4 8 8")
    assert pair["n_images"] == len(b)
    assert pair["after"] - pair["before"] == pytest.approx(100 * (pair["gained"] - pair["lost"]) / len(b))
    with pytest.raises(ValueError, match="same images"):
        paired_change(before, after[:-1])


def test_switching_vs_rebuild_reports_equal_accuracies(model, data):
    configs = enumerate_configs(search_space(model))[:6]
    r = time_switching_vs_rebuild(model, configs, data)
    assert r.loc[0, "max_abs_diff"] == 0 and r.loc[0, "n_configs"] == 6 and r.loc[0, "rebuild_s"] > 0
    assert r.loc[0, "ratio"] == pytest.approx(r.loc[0, "rebuild_s"] / r.loc[0, "switching_s"])


# ----------------------------------------------------------------------------- torchvision models, any feed


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_count_correct_tree_over_torchvision_units_equals_one_by_one_and_the_forward(name):
    """Prefix tree over VGG layers / ResNet blocks, fed by any callable: the counts of the plain forward."""
    from gross.data import imagenet as inet
    from gross.search.evaluation import _stages, count_correct, units

    torch.manual_seed(0)
    kw = {"hidden": 16} if name == "vgg16" else {}
    model = inet.build(name, num_classes=5, width_mult=1 / 16, **kw).double()
    inet.decompose_imagenet(model, (1, 2, 4), tol=1e-2, max_iter=1)
    model.eval()
    space = search_space(model)
    layers = list(__import__("gross").gross_layers(model).values())
    stages = _stages(model, layers)
    assert units(model) is not None and stages is not None
    assert [len(owned) for _, owned, _ in stages[1]] == ([1] * 12 if name == "vgg16" else [2] * 8)
    rng = np.random.default_rng(0)
    configs = [tuple(int(rng.choice(s)) for s in space.values()) for _ in range(6)]
    configs += [configs[0][:-1] + (max(list(space.values())[-1]),), configs[1]]  # shared prefixes, a duplicate
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 5, (6,))

    def feed():
        return iter([(x, y), (x[:3], y[:3])])

    tree, n = count_correct(model, configs, feed)
    plain, _ = count_correct(model, configs, feed, tree=False)
    assert n == 9 and tree == plain
    ref = []
    with torch.no_grad():
        for c in configs:
            set_config(model, c)
            ref.append(int((model(x).argmax(1) == y).sum()) + int((model(x[:3]).argmax(1) == y[:3]).sum()))
    assert tree == ref
    assert count_correct(export(model, configs[2]), None, feed) == ([ref[2]], 9)  # the plain case


class _AddInPlace(nn.Module):
    def forward(self, x):
        return x.add_(3.0)


def test_tree_copies_a_shared_input_a_branch_could_change_in_place():
    """A unit that starts with an in-place op gets a copy of the activation shared by the branches."""
    from gross.search.evaluation import count_correct

    body = tiny_gross_net(seed=3, dtype=torch.float64)
    model = nn.Sequential(*[nn.Sequential(_AddInPlace(), m) if isinstance(m, GroSSConv2d) else m
                            for m in body.children()])
    x = torch.randn(64, *INPUT, dtype=torch.float64)
    y = torch.randint(0, 5, (64,))
    configs = enumerate_configs(search_space(model))
    tree, _ = count_correct(model, configs, lambda: iter([(x.clone(), y)]))
    plain, _ = count_correct(model, configs, lambda: iter([(x.clone(), y)]), tree=False)
    assert tree == plain


def test_tree_with_asymmetric_bottlenecks_equals_the_forward_float64():
    """Prefix-tree evaluation of asymmetric GroSS layers (width=(in, out)) computes model(x) at every configuration."""
    torch.manual_seed(3)
    model = tiny_gross_net(seed=3, dtype=torch.float64)
    for name, t, u, sizes, widths in (("conv2", 4, 8, (1, 3), (3, 6)), ("conv3", 8, 8, (2, 4, 8), (8, 12))):
        layer = GroSSConv2d(t, u, 3, sizes, width=widths, padding=1, dtype=torch.float64)
        with torch.no_grad():
            for p in layer.parameters():
                p.normal_(0.0, 0.4)
        layer.clear_cache()
        layer.name = name
        setattr(model, name, layer)
    data = tiny_data(n=40, seed=4)
    configs = enumerate_configs(search_space(model))
    inputs, logits = [], []
    hooks = [model.conv1.register_forward_pre_hook(lambda m, a: inputs.append(a[0].clone())),
             model.fc2.register_forward_hook(lambda m, a, out: logits.append(out.clone()))]
    try:
        tree = evaluate_configs(model, configs, data, batch_size=64)  # one batch
    finally:
        for h in hooks:
            h.remove()
    flat = evaluate_configs(model, configs, data, batch_size=64, tree=False)
    assert tree["accuracy"].tolist() == flat["accuracy"].tolist()
    others = math.prod(len(sizes) for name, sizes in search_space(model).items() if name not in ("conv2", "conv3"))
    assert len(inputs) == 1 and len(logits) == len(configs) == 2 * 3 * others  # the asymmetric layers: 2 x 3 sizes
    model.eval()
    for c, out in zip(sorted(configs), logits):
        set_config(model, c)
        with torch.no_grad():
            assert torch.equal(out, model(inputs[0])), c
            torch.testing.assert_close(export(model, c)(inputs[0]), out, rtol=1e-12, atol=1e-12)
