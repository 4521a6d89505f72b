"""Batched (vmap) training of K networks equals training each alone with gross.training.loop (CPU, float64).

The references train in the default memory layout (``channels_last=False``), which is what the
``vmap`` path computes; gross.training.loop's CPU default (channels-last) differs in the last bits only.
"""

from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from gross.training.batched import choose_method, finetune_configs, read_checkpoint, train_bases, train_stacked
from gross.data import synthetic
from gross.method.decomposition import decompose
from gross.models import four_layer_net
from gross.training.loop import Recipe, finetune_config, train_base


class ToFloat64(nn.Module):
    """gross.data.batches yields float32; the float64 test networks cast their input first."""

    def forward(self, x):
        return x.double()


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([("cast", ToFloat64()), *four_layer_net().named_children()])).double()


@pytest.fixture(scope="module")
def data():
    return synthetic(n_train=100, n_val=40, n_test=40, seed=1)  # 100 = 3 batches of 32 + one of 4


def _recipes(seeds, **kw):
    base = Recipe(**{"epochs": 3, "batch_size": 32, "lr": 0.05, "weight_decay": 1e-3, "milestones": (2,), **kw})
    return [base.replace(seed=s) for s in seeds]


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def test_batched_base_training_equals_training_each_alone(data):
    seeds = [0, 1, 2]
    recipes = _recipes(seeds)
    alone = [_net(10 + s) for s in seeds]
    together = [_net(10 + s) for s in seeds]
    init = _net(10)
    hist_alone = [train_base(m, data, r, device="cpu", progress=False, channels_last=False)
                  for m, r in zip(alone, recipes)]
    hist_together = train_stacked(together, data, recipes, device="cpu")
    for a, t, ha, ht in zip(alone, together, hist_alone, hist_together):
        assert _max_diff(a, t) < 1e-10
        assert ha["val_acc"].tolist() == ht["val_acc"].tolist()
        assert ha["lr"].tolist() == ht["lr"].tolist() == pytest.approx([0.05, 0.05, 0.005], rel=1e-12)
        assert (ha["train_loss"] - ht["train_loss"]).abs().max() < 1e-10
    assert _max_diff(alone[0], init) > 1e-3  # training moved the weights
    assert _max_diff(alone[0], alone[1]) > 1e-3  # distinct networks


def test_batched_config_finetunes_equal_finetune_config(data):
    torch.manual_seed(0)
    gross = _net(3)
    decompose(gross, max_iter=3, seed=0)
    config = (4, 8, 16)
    recipes = _recipes([5, 6], lr=0.01, weight_decay=0.0)
    alone = [finetune_config(gross, config, data, r, device="cpu", progress=False, channels_last=False)
             for r in recipes]
    nets, hists = finetune_configs(gross, config, data, recipes, method="vmap", device="cpu")
    for (net_a, hist_a), net_t, hist_t in zip(alone, nets, hists):
        assert _max_diff(net_a, net_t) < 1e-10
        assert hist_a["val_acc"].tolist() == hist_t["val_acc"].tolist()
        # frozen parts (fc layers, first conv) were not trained, the bottlenecks were
        assert torch.equal(net_t.fc1.weight, gross.fc1.weight)
    assert _max_diff(nets[0], nets[1]) > 1e-4  # different seeds -> different data order and dropout


def test_packed_different_configs_equal_finetune_config(data):
    gross = _net(4)
    decompose(gross, max_iter=3, seed=1)
    configs = [(1, 2, 4), (32, 32, 64), (4, 8, 16)]
    recipes = _recipes([7, 8, 9], lr=0.01, weight_decay=1e-3)
    alone = [finetune_config(gross, c, data, r, device="cpu", progress=False,
                             channels_last=False) for c, r in zip(configs, recipes)]
    nets, hists = finetune_configs(gross, configs, data, recipes, method="vmap", device="cpu")
    for (net_a, hist_a), net_t, hist_t, c in zip(alone, nets, hists, configs):
        assert net_t.conv2.R.groups == 32 // c[0]  # handed back as real grouped convolutions
        assert _max_diff(net_a, net_t) < 1e-10
        assert hist_a["val_acc"].tolist() == hist_t["val_acc"].tolist()
    with pytest.raises(ValueError, match="one config or one per recipe"):
        finetune_configs(gross, configs[:2], data, recipes, method="vmap", device="cpu")


def test_batched_checkpoint_resume(data, tmp_path, batched_rows):
    recipes = _recipes([0, 1])
    full = [_net(1), _net(2)]
    train_stacked(full, data, recipes, device="cpu")
    batched_rows(kill_after=4)  # 2 networks x 2 epochs done and checkpointed, killed in epoch 3
    with pytest.raises(KeyboardInterrupt):
        train_stacked([_net(1), _net(2)], data, recipes, device="cpu", run_dir=tmp_path)
    batched_rows()
    assert read_checkpoint(tmp_path / "batched.pt")["epoch"] == 2
    resumed = [_net(1), _net(2)]
    hist = train_stacked(resumed, data, recipes, device="cpu", run_dir=tmp_path, resume=True)
    for a, b in zip(full, resumed):
        assert _max_diff(a, b) == 0.0
    assert hist[0]["epoch"].tolist() == [1, 2, 3]


def test_auto_method_and_bad_input(data):
    assert choose_method("auto", "cpu") == "sequential"
    assert choose_method("auto", "cuda") == "vmap"
    with pytest.raises(ValueError, match="valid methods"):
        choose_method("streams", "cpu")
    with pytest.raises(ValueError, match="more than seed"):
        train_stacked([_net(0), _net(1)], data, [_recipes([0])[0], _recipes([1])[0].replace(lr=0.2)], device="cpu")
    with pytest.raises(ValueError, match="one architecture"):
        train_stacked([_net(0), four_layer_net()], data, _recipes([0, 1]), device="cpu")
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    with pytest.raises(ValueError, match="batch norm in eval mode"):
        train_stacked([bn], data, _recipes([0]), device="cpu")


def test_train_bases_sequential_equals_vmap(data):
    recipes = _recipes([3, 4])
    a, b = [_net(1), _net(2)], [_net(1), _net(2)]
    train_bases(a, data, recipes, method="sequential", device="cpu", channels_last=False)
    train_bases(b, data, recipes, method="vmap", device="cpu")
    assert max(_max_diff(x, y) for x, y in zip(a, b)) < 1e-10


def test_memory_estimate_and_the_largest_k_that_fits():
    from gross.training.batched import largest_k_that_fits, network_bytes, networks_at_once

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
    weights = (3 * 4 * 9 + 4) + (4096 * 10 + 10)
    outputs = 4096 + 4096 + 10  # conv, flatten, linear: one image
    need = (4 * weights + 3 * outputs * 8) * 4  # float32, batch 8
    assert network_bytes(net, 8) == need
    assert largest_k_that_fits(net, 8, free_bytes=int(need * 10 / 0.8) + 1) == 10
    with pytest.raises(ValueError, match="one network needs about"):
        largest_k_that_fits(net, 8, free_bytes=need)
    assert networks_at_once("auto", "cpu") == 1 and networks_at_once(3, "cpu") == 3
    with pytest.raises(ValueError, match="positive integer"):
        networks_at_once(0, "cuda")
