"""Tests for gross.training.loop: training loops, checkpoints/resume, determinism, evaluation."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn

from gross import data as D
from gross.data import imagenet as inet
from gross.training import loop as T
from gross import utils
from gross.method.decomposition import decomposable_layers, export, get_config, gross_layers, search_space, set_config
from gross.method.layers import GroSSConv2d
from gross.models import four_layer_net


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny runs on a shared 2-core box are much faster single-threaded (results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _cpu_by_default(monkeypatch):
    """Tests compare bit-for-bit with CPU models: keep the default device on CPU even where CUDA
    exists (CUDA kernels are not bitwise deterministic); CUDA is tested explicitly below."""
    monkeypatch.setattr(utils, "default_device", lambda: torch.device("cpu"))


# ----------------------------------------------------------------------------- helpers
def tiny_net(bn: bool = False, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(), pool1=nn.MaxPool2d(4),
        conv2=nn.Conv2d(8, 8, 3, padding=1), **({"bn2": nn.BatchNorm2d(8)} if bn else {}), relu2=nn.ReLU(),
        pool2=nn.AdaptiveAvgPool2d(2), flatten=nn.Flatten(), dropout=nn.Dropout(0.3), fc=nn.Linear(32, 10),
    ))


def grossify(model: nn.Module, sizes=None, seed: int = 0) -> nn.Module:
    """Replace every decomposable conv by a GroSS layer with random (non-zero) series terms.

    Avoids running BTD in tests; the training code only needs the GroSS structure.
    """
    gen = torch.Generator().manual_seed(seed)
    for name in decomposable_layers(model):
        conv = model.get_submodule(name)
        t = conv.in_channels
        layer_sizes = sizes or tuple(2 ** i for i in range(t.bit_length()) if 2 ** i <= t)
        layer = GroSSConv2d(t, conv.out_channels, conv.kernel_size, layer_sizes, stride=conv.stride,
                            padding=conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        layer.name = name
        setattr(model, name, layer)
    return model


def recipe(**kw) -> T.Recipe:
    base = dict(epochs=2, batch_size=64, lr=0.05, name="tiny", augment=True)
    base.update(kw)
    return T.Recipe(**base)


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def det_cols(df):
    return df.drop(columns=["seconds", "images_per_s"])


@pytest.fixture(scope="module")
def data():
    return D.synthetic(n_train=256, n_val=128, n_test=128, seed=0)


# ----------------------------------------------------------------------------- train_base
def test_train_base_learns_and_reports(data, tmp_path):
    model = tiny_net(bn=True)
    hist = T.train_base(model, data, recipe(epochs=5, lr=0.05, batch_size=32, milestones=(4,)), run_dir=tmp_path,
                        progress=False)
    assert list(hist.columns) == ["epoch", "lr", "train_loss", "train_acc", "val_acc", "best_val_acc",
                                  "seconds", "images_per_s"]
    assert hist["epoch"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(hist["lr"], [0.05] * 4 + [0.005])
    assert hist["val_acc"].iloc[-1] > 50 and hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]  # chance: 10%
    assert hist["best_val_acc"].tolist() == np.maximum.accumulate(hist["val_acc"]).tolist()
    assert hist["val_acc"].iloc[-1] == T.evaluate(model, data)  # last epoch kept
    assert (tmp_path / "tiny.pt").exists() and not list(tmp_path.glob("*.tmp"))


def test_same_seed_same_weights_and_accuracies(data):
    runs = []
    for _ in range(2):
        model = tiny_net(seed=1)
        hist = T.train_base(model, data, recipe(epochs=2, seed=7), progress=False)
        runs.append((model, hist))
    assert same_state(runs[0][0], runs[1][0])
    assert det_cols(runs[0][1]).equals(det_cols(runs[1][1]))
    other = tiny_net(seed=1)
    T.train_base(other, data, recipe(epochs=2, seed=8), progress=False)
    assert not same_state(runs[0][0], other)


def test_progress_bar_only_when_asked(data, capsys):
    T.train_base(tiny_net(), data, recipe(epochs=1), progress=False)
    assert capsys.readouterr().err == ""
    T.train_base(tiny_net(), data, recipe(epochs=1), progress=None)  # not a terminal under pytest: quiet
    assert capsys.readouterr().err == ""
    T.train_base(tiny_net(), data, recipe(epochs=1), progress=True)
    err = capsys.readouterr().err
    assert "tiny" in err and "img_s" in err and "val" in err


def test_training_does_not_disturb_the_global_rng(data):
    model = tiny_net()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    T.train_base(model, data, recipe(epochs=1), progress=False)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- checkpoints & resume
class _Interrupt(Exception):
    pass


def _interrupt_at(monkeypatch, epoch_to_fail):
    real = T._run_epoch

    def run_epoch(job, recipe, data, optimizer, data_rng, sampler, device, epoch, *args):
        if epoch == epoch_to_fail:
            raise _Interrupt(f"killed at epoch {epoch}")
        return real(job, recipe, data, optimizer, data_rng, sampler, device, epoch, *args)
    monkeypatch.setattr(T, "_run_epoch", run_epoch)


def test_resume_gross_is_bitwise_identical(data, tmp_path, monkeypatch):
    r = recipe(epochs=4, lr=0.02, milestones=(3,), seed=3)
    full = grossify(tiny_net(seed=2))
    hist_full = T.finetune_gross(full, data, r, run_dir=tmp_path / "a", progress=False)

    part = grossify(tiny_net(seed=2))
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        with pytest.raises(_Interrupt):
            T.finetune_gross(part, data, r, run_dir=tmp_path / "b", progress=False)
    assert T.load_checkpoint(tmp_path / "b" / "tiny.pt")["epoch"] == 2
    resumed = grossify(tiny_net(seed=2))  # fresh process: weights come from the checkpoint
    hist_res = T.finetune_gross(resumed, data, r, run_dir=tmp_path / "b", resume=True, progress=False)
    assert same_state(full, resumed)
    assert det_cols(hist_full).equals(det_cols(hist_res))
    # resuming a finished run changes nothing
    again = grossify(tiny_net(seed=9))
    hist_again = T.finetune_gross(again, data, r, run_dir=tmp_path / "b", resume=True, progress=False)
    assert same_state(full, again) and det_cols(hist_again).equals(det_cols(hist_full))


def test_resume_base_with_dropout_is_bitwise_identical(data, tmp_path, monkeypatch):
    r = recipe(epochs=4, lr=0.05, checkpoint_every=2)
    full = tiny_net(seed=4)
    T.train_base(full, data, r, progress=False)
    part = tiny_net(seed=4)
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)  # checkpoint at 2 only (every 2): epoch 3 is redone
        with pytest.raises(_Interrupt):
            T.train_base(part, data, r, run_dir=tmp_path, progress=False)
    assert T.load_checkpoint(tmp_path / "tiny.pt")["epoch"] == 2
    resumed = tiny_net(seed=5)
    T.train_base(resumed, data, r, run_dir=tmp_path, resume=True, progress=False)
    assert same_state(full, resumed)


def test_bad_checkpoints_are_clear_errors(data, tmp_path):
    r = recipe(epochs=1)
    T.train_base(tiny_net(), data, r, run_dir=tmp_path, progress=False)
    ckpt = tmp_path / "tiny.pt"
    # different model
    with pytest.raises(ValueError, match="different model"):
        T.train_base(tiny_net(bn=True), data, r, run_dir=tmp_path, resume=True, progress=False)
    # different recipe
    with pytest.raises(ValueError, match="different recipe"):
        T.train_base(tiny_net(), data, recipe(epochs=1, lr=0.2), run_dir=tmp_path, resume=True, progress=False)
    # truncated file: named, with advice, and left alone
    blob = ckpt.read_bytes()
    ckpt.write_bytes(blob[: len(blob) // 3])
    model = tiny_net(seed=3)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"tiny\.pt.*(delete it|resume=False)"):
        T.train_base(model, data, r, run_dir=tmp_path, resume=True, progress=False)
    assert ckpt.read_bytes() == blob[: len(blob) // 3]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="needs run_dir"):
        T.train_base(tiny_net(), data, r, resume=True, progress=False)


class _Explode(nn.Module):
    """Identity until ``after`` training forward passes, then NaN."""

    def __init__(self, after):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                return x * float("nan")
        return x


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    model = tiny_net()
    model.add_module("explode", _Explode(after=4 + 2))  # 4 iterations per epoch: dies in epoch 2, iteration 3
    r = recipe(epochs=3)
    with pytest.raises(T.TrainingDivergedError, match=r"epoch 2, iteration 3.*tiny\.pt") as info:
        T.train_base(model, data, r, run_dir=tmp_path, progress=False)
    assert isinstance(info.value, FloatingPointError)
    state = T.load_checkpoint(tmp_path / "tiny.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


# ----------------------------------------------------------------------------- GroSS fine-tuning
def test_finetune_gross_trains_only_gross_weights_bn_frozen(data):
    model = grossify(tiny_net(bn=True, seed=6))
    model.bn2.running_mean.fill_(0.3)
    set_config(model, (2,))
    before = copy.deepcopy(model.state_dict())
    hist = T.finetune_gross(model, data, recipe(epochs=2, lr=0.05), progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    gross_keys = {k for k in before if k.startswith("conv2.")}
    assert changed and changed <= gross_keys                      # nothing outside GroSS layers moved
    assert {"conv2.P1", "conv2.R1", "conv2.Q1"} <= changed          # lowest order always trained
    assert torch.equal(after["bn2.running_mean"], before["bn2.running_mean"])  # BN in eval mode
    assert get_config(model) == (2,)                                # configuration restored
    assert {"val_acc_min", "val_acc_max"} <= set(hist.columns)
    np.testing.assert_allclose(hist["val_acc"], (hist["val_acc_min"] + hist["val_acc_max"]) / 2)
    assert hist["val_acc_min"].iloc[-1] == T.evaluate(model, data, config=(1,))
    assert hist["val_acc_max"].iloc[-1] == T.evaluate(model, data, config=(8,))


def test_group_size_sampler_is_uniform_and_seeded():
    model = grossify(tiny_net())
    space = search_space(model)
    job = T._Job("gross", model, [], True, "x", [(gross_layers(model)[n], s) for n, s in space.items()], OrderedDict())
    draws = []
    sampler = torch.Generator().manual_seed(0)
    for _ in range(4000):
        T.draw_config(job.sampler_layers, sampler)
        draws.append(get_config(model)[0])
    counts = np.array([draws.count(s) for s in space["conv2"]]) / len(draws)
    assert counts.shape == (4,) and np.abs(counts - 0.25).max() < 0.03
    sampler = torch.Generator().manual_seed(0)
    replay = []
    for _ in range(50):
        T.draw_config(job.sampler_layers, sampler)
        replay.append(get_config(model)[0])
    assert replay == draws[:50]


def test_finetune_gross_on_the_real_four_layer_net(tmp_path):
    small = D.synthetic(n_train=64, n_val=32, n_test=32)
    model = grossify(four_layer_net())
    assert list(search_space(model)) == ["conv2", "conv3", "conv4"]
    hist = T.finetune_gross(model, small, T.RECIPES["four_layer_gross"].scaled(1).replace(batch_size=32),
                            run_dir=tmp_path, progress=False, track_configs=[(1, 1, 1), (4, 8, 16)])
    assert {"val_acc_1-1-1", "val_acc_4-8-16"} <= set(hist.columns)
    assert (tmp_path / "four_layer_gross.pt").exists()
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith(("conv2", "conv3", "conv4")))


def test_finetune_gross_rejects_plain_models_and_bad_track_configs(data):
    with pytest.raises(ValueError, match="GroSS"):
        T.finetune_gross(tiny_net(), data, recipe())
    with pytest.raises(ValueError, match="group size 3"):
        T.finetune_gross(grossify(tiny_net()), data, recipe(), track_configs=[(3,)])


# ----------------------------------------------------------------------------- channels_last layout
def _float64(model: nn.Module) -> nn.Module:
    return model.double()


@pytest.mark.parametrize("kind", ["base", "gross", "config"])
def test_channels_last_training_equals_the_default_layout(kind):
    """The CPU default (channels_last for the epochs) trains the same weights as the plain layout (float64)."""
    small = D.synthetic(n_train=96, n_val=32, n_test=32, seed=1)
    rec = recipe(epochs=2, batch_size=32, lr=0.05, weight_decay=1e-3, seed=4)
    results = []
    for layout in (False, True):
        model = _float64(tiny_net(seed=2) if kind == "base" else grossify(tiny_net(seed=2)))
        if kind == "base":
            hist = T.train_base(model, small, rec, progress=False, channels_last=layout)
        elif kind == "gross":
            hist = T.finetune_gross(model, small, rec, progress=False, channels_last=layout)
        else:
            model, hist = T.finetune_config(model, (2,), small, rec, progress=False, channels_last=layout)
        assert all(p.is_contiguous() for p in model.parameters())  # default layout again after training
        results.append((model.state_dict(), hist))
    (plain, h_plain), (fast, h_fast) = results
    assert plain.keys() == fast.keys()
    for k in plain:
        assert torch.allclose(plain[k], fast[k], rtol=0, atol=1e-10), k
    np.testing.assert_allclose(h_plain["train_loss"], h_fast["train_loss"], rtol=1e-10)


def test_channels_last_is_the_cpu_default(data, monkeypatch):
    seen = []
    real = T._epoch_pass
    monkeypatch.setattr(T, "_epoch_pass", lambda job, *a: seen.append(job.channels_last) or real(job, *a))
    T.train_base(tiny_net(), data, recipe(epochs=1), progress=False)
    T.train_base(tiny_net(), data, recipe(epochs=1), progress=False, channels_last=False)
    assert seen == [True, False]


# ----------------------------------------------------------------------------- individual configurations
def test_finetune_config_trains_the_exported_bottleneck_only(data, tmp_path):
    model = grossify(tiny_net(seed=3))
    original = copy.deepcopy(model.state_dict())
    reference = export(model, (2,))
    net, hist = T.finetune_config(model, (2,), data, recipe(epochs=2, lr=0.05), run_dir=tmp_path, progress=False)
    assert same_state(model, _with_state(grossify(tiny_net(seed=3)), original))  # input model untouched
    assert isinstance(net.conv2, nn.Sequential) and list(net.conv2._modules) == ["P", "R", "Q"]
    assert net.conv2.R.groups == 4
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, reference.state_dict()[k])}
    assert changed and all(k.startswith("conv2.") for k in changed)
    assert hist["val_acc"].iloc[-1] == T.evaluate(net, data)
    assert (tmp_path / "tiny-2.pt").exists()


def _with_state(model, state):
    model.load_state_dict(state)
    return model


def test_finetune_config_unfrozen_trains_everything(data):
    model = grossify(tiny_net(seed=3))
    reference = export(model, (8,))
    net, _ = T.finetune_config(model, {"conv2": 8}, data, recipe(epochs=1, freeze=False), progress=False)
    changed = {k.split(".")[0] for k, v in net.state_dict().items() if not torch.equal(v, reference.state_dict()[k])}
    assert {"conv1", "conv2", "fc"} <= changed


def test_finetune_config_bad_config_writes_nothing(data, tmp_path):
    model = grossify(tiny_net())
    for bad, msg in (((3,), "group size 3"), ((2, 2), "1 decomposed layers"), ({"conv9": 2}, "conv9")):
        with pytest.raises(ValueError, match=msg):
            T.finetune_config(model, bad, data, recipe(), run_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- evaluation
def test_evaluate_matches_an_independent_computation(data):
    model = grossify(tiny_net(seed=8)).eval()
    mean, std = (0.3, 0.4, 0.5), (0.2, 0.3, 0.25)
    for cfg in [(1,), (4,)]:
        set_config(model, (8,))
        acc = T.evaluate(model, data, config=cfg, split="test", batch_size=50, mean=mean, std=std)
        assert get_config(model) == (8,)  # restored
        x = (data.test.images.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) \
            / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
        bottleneck = export(model, cfg).double()
        ref = (bottleneck(x).argmax(1) == data.test.labels).double().mean().item() * 100
        assert acc == pytest.approx(ref, abs=100 / len(data.test) + 1e-9)
    # defaults come from the dataset's normalisation
    shifted = data.with_normalization(mean, std)
    assert T.evaluate(model, shifted, split="test") == T.evaluate(model, data, split="test", mean=mean, std=std)
    model.train()
    T.evaluate(model, data)
    assert model.training


def test_training_on_an_image_folder_dataset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, colour in enumerate(((200, 30, 30), (30, 30, 200))):
            (tmp_path / split / f"c{c}").mkdir(parents=True)
            for i in range(3):
                arr = np.clip(np.array(colour) + rng.normal(0, 20, (240, 250, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(tmp_path / split / f"c{c}" / f"{i}.png")
    ds = inet.imagenet(tmp_path, resize=40, crop=32)
    model = tiny_net()
    model.fc = nn.Linear(32, 2)
    hist = T.train_base(model, ds, T.RECIPES["vgg16_imagenet_config"].replace(epochs=1, batch_size=3, lr=0.01),
                        progress=False)
    assert len(hist) == 1 and 0 <= hist["val_acc"].iloc[0] <= 100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_training_runs(data):  # pragma: no cover
    model = tiny_net()
    history = T.train_base(model, data, recipe(epochs=3), device="cuda")
    assert len(history) == 3 and np.isfinite(history["train_loss"]).all()
    gross_model = grossify(tiny_net(seed=1))
    history = T.finetune_gross(gross_model, data, recipe(epochs=2, lr=0.01), device="cuda")
    assert len(history) == 2 and np.isfinite(history["train_loss"]).all()
    assert all(p.device.type == "cuda" for p in gross_model.parameters())
