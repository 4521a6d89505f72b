"""Tests for gross.method.vbmf (EVBMF and VBMF group-size selection)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from gross.method.decomposition import decomposable_layers
from gross.method.layers import GroSSConv2d
from gross.models import four_layer_net
from gross.method.vbmf import (
    VBMFResult,
    evb_threshold,
    evbmf,
    input_unfolding,
    nearest_group_size,
    select_config,
    vbmf_table,
)


def low_rank(L=64, M=200, rank=5, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((L, rank)) @ rng.standard_normal((rank, M))
    return signal + noise * rng.standard_normal((L, M))


def free_energy_reference(sigma2, Y, gamma=None):
    """Independent form of the EVBMF objective (2F/M up to constants), written in
    terms of the singular values gamma and sigma^2 directly, with the threshold
    found by bisection on the condition that the kept-component term vanishes."""
    L, M = sorted(Y.shape)
    alpha = L / M
    if gamma is None:
        gamma = np.linalg.svd(Y, compute_uv=False)

    def kept_term(tau):
        return math.log(tau + 1) + alpha * math.log(tau / alpha + 1) - tau

    lo, hi = math.sqrt(alpha), 50.0
    for _ in range(200):  # bisection: kept_term > 0 below the root, < 0 above
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kept_term(mid) > 0 else (lo, mid)
    tau_thr = lo
    gamma_thr2 = M * sigma2 * (1 + tau_thr) * (1 + alpha / tau_thr)
    value = 0.0
    for g in gamma:
        x = g * g / (M * sigma2)
        value += x - math.log(x)
        if g * g > gamma_thr2:
            # tau solves x = (1 + tau)(1 + alpha / tau)
            b = x - 1 - alpha
            tau = (b + math.sqrt(b * b - 4 * alpha)) / 2
            value += kept_term(tau)
    return value


def test_threshold_constant():
    tau, x = evb_threshold(1.0)
    assert tau == pytest.approx(2.5129, abs=5e-5)  # the constant quoted by Nakajima et al.
    assert x == pytest.approx((1 + tau) ** 2 / tau)
    for alpha in (0.9, 0.5, 0.32, 0.2):
        tau, x = evb_threshold(alpha)
        assert tau == pytest.approx(2.5129 * math.sqrt(alpha), rel=0.02)  # the usual approximation
        assert math.log1p(tau) + alpha * math.log1p(tau / alpha) - tau == pytest.approx(0, abs=1e-12)
        assert x > (1 + math.sqrt(alpha)) ** 2  # above the Marchenko-Pastur edge
    with pytest.raises(ValueError, match=r"alpha = L/M must lie in \(0, 1\], got 1\.5"):
        evb_threshold(1.5)


def test_recovers_rank_and_noise_variance():
    Y = low_rank(noise=0.1, seed=0)
    result = evbmf(Y)
    assert isinstance(result, VBMFResult)
    assert result.rank == 5
    assert result.sigma2 == pytest.approx(0.01, rel=0.05)
    gamma = np.linalg.svd(Y, compute_uv=False)
    est = result.singular_values
    assert est.shape == (64,) and np.all(est[5:] == 0)
    # shrinkage: 0 < estimate < observation, and close to it for strong components
    assert np.all(est[:5] > 0) and np.all(est[:5] < gamma[:5])
    np.testing.assert_allclose(est[:5], gamma[:5], rtol=0.01)
    # torch input, transposed input and scaling
    assert evbmf(torch.from_numpy(Y)).rank == 5
    t = evbmf(Y.T)
    assert t.rank == 5 and t.sigma2 == pytest.approx(result.sigma2, rel=1e-9)
    scaled = evbmf(3.0 * Y)
    assert scaled.rank == 5 and scaled.sigma2 == pytest.approx(9 * result.sigma2, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_has_rank_zero(seed):
    Y = np.random.default_rng(seed).standard_normal((64, 200)) * 0.5
    result = evbmf(Y)
    assert result.rank == 0
    assert result.sigma2 == pytest.approx(0.25, rel=0.05)
    assert np.all(result.singular_values == 0)


@pytest.mark.parametrize("seed, shape, rank, noise", [(3, (40, 90), 3, 0.3), (4, (30, 30), 4, 0.5),
                                                      (5, (64, 288), 8, 1.0)])
def test_sigma2_is_global_minimiser_of_free_energy(seed, shape, rank, noise):
    Y = low_rank(*shape, rank=rank, noise=noise, seed=seed)
    result = evbmf(Y)
    L, M = sorted(Y.shape)
    gamma = np.linalg.svd(Y, compute_uv=False)
    grid = np.geomspace(1e-3 * result.sigma2, 1e3 * result.sigma2, 1201)
    values = np.array([free_energy_reference(v, Y, gamma) for v in grid])
    best = free_energy_reference(result.sigma2, Y)
    assert best <= values.min() + 1e-7 * abs(values.min())
    # and the rank is the number of singular values above the EVB threshold at that sigma2
    gamma = np.linalg.svd(Y, compute_uv=False)
    _, x_thr = evb_threshold(L / M)
    assert result.rank == int(np.sum(gamma**2 > M * result.sigma2 * x_thr))
    assert result.rank == rank


def test_known_sigma2_and_shrinkage_formula():
    Y = low_rank(30, 50, rank=3, noise=0.2, seed=7)
    L, M = Y.shape
    sigma2 = 0.04
    result = evbmf(Y, sigma2=sigma2)
    assert result.sigma2 == sigma2 and result.rank == 3
    gamma = np.linalg.svd(Y, compute_uv=False)[:3]
    # the EVB estimate is the larger root of z^2 - (1 - (L+M)s2/g^2) g z + L M s2^2 / g^2 = 0
    for g, z in zip(gamma, result.singular_values[:3]):
        b = (1 - (L + M) * sigma2 / g**2) * g
        c = L * M * sigma2**2 / g**2
        assert z == pytest.approx(np.roots([1.0, -b, c]).real.max(), rel=1e-10)
    with pytest.raises(ValueError, match=r"sigma2 must be positive, got -1\.0"):
        evbmf(Y, sigma2=-1.0)


def test_zero_matrix():
    result = evbmf(np.zeros((4, 6)))
    assert result.rank == 0 and result.sigma2 == 0.0


@pytest.mark.parametrize("bad, message", [
    (np.zeros(5), r"evbmf expects a 2-D matrix, got an array of shape \(5,\)"),
    (np.zeros((2, 3, 4)), r"evbmf expects a 2-D matrix, got an array of shape \(2, 3, 4\)"),
    (np.zeros((0, 3)), r"evbmf expects a non-empty matrix, got shape \(0, 3\)"),
    (np.array([[1.0, np.nan]]), r"evbmf expects a finite matrix \(found NaN or inf\)"),
])
def test_evbmf_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        evbmf(bad)


# --------------------------------------------------------------------------- rank selection


def test_input_unfolding():
    w = torch.arange(2 * 3 * 2 * 2, dtype=torch.float64).reshape(2, 3, 2, 2)
    m = input_unfolding(w)
    assert m.shape == (3, 8)
    for t in range(3):
        torch.testing.assert_close(m[t], torch.cat([w[0, t].flatten(), w[1, t].flatten()]))
    with pytest.raises(ValueError, match=r"expected a conv weight of shape \(u, t, kh, kw\), got shape \(2, 3\)"):
        input_unfolding(torch.zeros(2, 3))


@pytest.mark.parametrize("rank, expected", [
    (0, 1), (1, 1), (2, 1), (3, 4), (4, 4), (7, 4), (8, 4), (9, 16), (16, 16), (22, 16), (23, 32), (40, 32),
])
def test_nearest_group_size_log2(rank, expected):
    # sizes (1, 4, 16, 32): 2 is a log2 tie between 1 and 4 -> 1; 8 ties 4 / 16 -> 4;
    # 22.6 = sqrt(16 * 32) is the boundary between 16 and 32
    assert nearest_group_size(rank, (1, 4, 16, 32)) == expected


def test_nearest_group_size_errors():
    with pytest.raises(ValueError, match=r"sizes must be a non-empty sequence of positive ints, got \[\]"):
        nearest_group_size(3, ())
    with pytest.raises(ValueError, match=r"sizes must be a non-empty sequence of positive ints, got \[0, 2\]"):
        nearest_group_size(3, (0, 2))


def _plant_ranks(net, ranks, seed=0, noise=1e-3):
    """Give each decomposable conv a weight whose input unfolding has the given rank."""
    g = torch.Generator().manual_seed(seed)
    for name, r in zip(decomposable_layers(net), ranks):
        conv = net.get_submodule(name)
        u, t, kh, kw = conv.weight.shape
        a = torch.randn(t, r, generator=g, dtype=torch.float64)
        b = torch.randn(r, u * kh * kw, generator=g, dtype=torch.float64)
        m = a @ b + noise * torch.randn(t, u * kh * kw, generator=g, dtype=torch.float64)
        with torch.no_grad():
            conv.weight.copy_(m.reshape(t, u, kh, kw).transpose(0, 1))
    return net


def test_select_config_on_planted_ranks():
    torch.manual_seed(0)
    net = _plant_ranks(four_layer_net().double(), ranks=(3, 12, 40))
    table = vbmf_table(net)
    assert table["layer"].tolist() == ["conv2", "conv3", "conv4"]
    assert table["rank"].tolist() == [3, 12, 40]
    assert table["t"].tolist() == [32, 32, 64]
    # default sizes: powers of two up to t; log2-nearest: 3 -> 4 (|log2 3 - 2| = 0.415 < 0.585),
    # 12 -> 16 (0.415 < 0.585), 40 -> 32 (0.32 < 0.68)
    assert select_config(net) == (4, 16, 32)
    assert select_config(net, sizes=(1, 4, 16, 32)) == (4, 16, 32)
    assert select_config(net, sizes={"conv2": (1, 2), "conv3": (8,), "conv4": (64,)}) == (2, 8, 64)


def _weight_by_impulses(layer, t):
    """Dense 3x3 weight of a padding-1 layer, read off its responses to unit impulses."""
    x = torch.zeros(t, t, 3, 3, dtype=torch.float64)
    x[torch.arange(t), torch.arange(t), 1, 1] = 1.0
    with torch.no_grad():
        y = layer(x) - layer(torch.zeros(1, t, 3, 3, dtype=torch.float64))  # (t, u, 3, 3), bias removed
    # y[c, o, p, q] = W[o, c, 2 - p, 2 - q]
    return y.flip(-1).flip(-2).transpose(0, 1)


def test_select_config_gross_model_uses_represented_weight():
    torch.manual_seed(0)
    net = four_layer_net().double()
    g = copy.deepcopy(net)
    for i, name in enumerate(decomposable_layers(net)):
        conv = net.get_submodule(name)
        layer = GroSSConv2d(conv.in_channels, conv.out_channels, 3, (1, 4, 16), padding=1).double()
        with torch.no_grad():
            for prm in layer.parameters():
                prm.normal_()
            # make the represented weight (nearly) low-rank in its input channels
            r = 5 + i
            low = torch.randn(layer.width, r, dtype=torch.float64) @ torch.randn(r, conv.in_channels,
                                                                                  dtype=torch.float64)
            noise = 0.01 * torch.randn(layer.width, conv.in_channels, dtype=torch.float64)
            layer.P1.copy_((low + noise)[..., None, None])
            for prm in layer.p:
                prm.zero_()
        layer.name = name
        layer.group_size = 1  # the active size must not matter: the largest size is used
        setattr(g, name, layer)
    table = vbmf_table(g)
    for (name, layer), rank, sigma2 in zip(((n, g.get_submodule(n)) for n in decomposable_layers(net)),
                                           table["rank"], table["sigma2"]):
        layer.group_size = 16
        dense = _weight_by_impulses(layer, layer.in_channels)
        ref = evbmf(input_unfolding(dense))
        assert rank == ref.rank
        # the free energy is flat at its minimum: sigma2 is determined to ~1e-4 relative in float64
        assert sigma2 == pytest.approx(ref.sigma2, rel=1e-3)
    assert table["sizes"].tolist() == [(1, 4, 16)] * 3  # the GroSS layers' own sizes by default
    assert select_config(g) == tuple(nearest_group_size(r, (1, 4, 16)) for r in table["rank"])
    assert select_config(g, sizes=(1, 2)) == tuple(nearest_group_size(r, (1, 2)) for r in table["rank"])


def test_select_config_errors():
    net = four_layer_net()
    with pytest.raises(ValueError, match=r"no group sizes given for layer 'conv3'; keys given: \['conv2'\]"):
        select_config(net, sizes={"conv2": (1, 2)})
    with pytest.raises(ValueError, match=r"group sizes \[3\] do not divide the bottleneck width 32 of layer 'conv2'"):
        select_config(net, sizes={"conv2": (1, 3), "conv3": (1,), "conv4": (1,)})
    with pytest.raises(ValueError, match=r"none of the group sizes \(3, 5\) divides the bottleneck width 32 "
                                         r"of layer 'conv2'"):
        select_config(net, sizes=(3, 5))
    lone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
    with pytest.raises(ValueError, match="the model has no decomposable convolution"):
        select_config(lone)


def test_dense_weight_of_an_asymmetric_layer_is_its_bottleneck():
    """``_dense_weight`` of a layer with width=(in, out) equals the independent reconstruction of its P, R, Q."""
    import torch

    from gross.method import vbmf as vbmf_module
    from gross.method.btd import reconstruct
    from gross.method.layers import GroSSConv2d

    torch.manual_seed(0)
    layer = GroSSConv2d(5, 7, 3, (2, 4), width=(8, 12), dtype=torch.float64)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    layer.clear_cache()
    P, R, Q = layer.weights(4)
    torch.testing.assert_close(vbmf_module._dense_weight(layer), reconstruct(P, R, Q), rtol=1e-12, atol=1e-12)
