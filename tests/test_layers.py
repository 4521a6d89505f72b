"""Tests for gross.method.layers.GroSSConv2d: the group-size series layer (Eqs. 5-6)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gross.method.layers as layers_module
from gross.method.btd import btd, reconstruct
from gross.method.layers import GroSSConv2d

DT = torch.float64


def make_conv(t, u, k, stride=1, padding=0, dilation=1, bias=True, seed=0, dtype=DT):
    torch.manual_seed(seed)
    return nn.Conv2d(t, u, k, stride=stride, padding=padding, dilation=dilation, bias=bias).to(dtype)


def random_factors(conv, sizes, width=None, seed=0):
    """Independent random bottleneck weights (P, R, Q) for every group size."""
    gen = torch.Generator().manual_seed(seed)
    t, u = conv.in_channels, conv.out_channels
    width = t if width is None else width
    kh, kw = conv.kernel_size
    return {
        s: (
            torch.randn(width, t, 1, 1, generator=gen, dtype=DT),
            torch.randn(width, s, kh, kw, generator=gen, dtype=DT),
            torch.randn(u, width, 1, 1, generator=gen, dtype=DT),
        )
        for s in sizes
    }


def bottleneck_reference(x, conv, P, R, Q):
    """Independent computation: 1x1 -> grouped conv (real groups) -> 1x1 + bias."""
    width, s = R.shape[:2]
    y = F.conv2d(x, P)
    y = F.conv2d(y, R, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=width // s)
    return F.conv2d(y, Q, conv.bias)


def order_of(layer, s):
    return layer.group_sizes.index(s) + 1


def terms(layer):
    """[(order, parameter)] for every series term."""
    out = [(1, layer.P1), (1, layer.R1), (1, layer.Q1)]
    for i in range(len(layer.group_sizes) - 1):
        out += [(i + 2, layer.p[i]), (i + 2, layer.r[i]), (i + 2, layer.q[i])]
    return out


SERIES_CASES = [
    # t, u, k, stride, padding, dilation, bias, width, sizes
    (8, 8, 3, 1, 1, 1, True, None, (1, 2, 4, 8)),
    (8, 12, 3, 2, 0, 1, True, None, (1, 2, 4, 8)),
    (6, 4, 3, 1, 2, 2, False, None, (1, 3, 6)),
    (4, 6, 1, 1, 0, 1, True, 8, (2, 4, 8)),
    (8, 8, 3, 1, "same", 1, True, 4, (1, 4)),
    (5, 3, (3, 1), 2, (1, 0), 1, True, 8, (8,)),
]


@pytest.mark.parametrize("t,u,k,stride,padding,dilation,bias,width,sizes", SERIES_CASES)
def test_series_equals_independent_bottleneck_at_every_size(t, u, k, stride, padding, dilation, bias, width, sizes):
    conv = make_conv(t, u, k, stride, padding, dilation, bias)
    factors = random_factors(conv, sizes, width)
    layer = GroSSConv2d.from_factors(conv, factors, width=width)
    assert layer.group_sizes == tuple(sorted(sizes))
    assert layer.group_size == max(sizes)
    x = torch.randn(2, t, 9, 9, dtype=DT, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for s in sizes:
        layer.group_size = s
        ref = bottleneck_reference(x, conv, *factors[s])
        outputs[s] = layer(x)
        torch.testing.assert_close(outputs[s], ref, rtol=1e-10, atol=1e-10)
        for got, want in zip(layer.weights(s), factors[s]):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        # the exported plain bottleneck computes the same thing with real groups
        exported = layer.to_bottleneck(s)
        assert [type(m) for m in exported] == [nn.Conv2d] * 3
        assert list(exported._modules) == ["P", "R", "Q"]
        assert exported.R.groups == layer.width // s
        torch.testing.assert_close(exported(x), outputs[s], rtol=1e-12, atol=1e-12)
    # different sizes give different functions (the test can fail)
    if len(sizes) > 1:
        assert (outputs[sizes[0]] - outputs[sizes[-1]]).abs().max() > 1e-3


def test_series_terms_are_the_eq6_differences():
    conv = make_conv(8, 8, 3, padding=1)
    factors = random_factors(conv, (1, 2, 4))
    layer = GroSSConv2d.from_factors(conv, factors)
    (P1, R1, Q1), (P2, R2, Q2), (P4, R4, Q4) = (factors[s] for s in (1, 2, 4))
    torch.testing.assert_close(layer.P1, P1)
    torch.testing.assert_close(layer.p[1], P4 - P2)
    torch.testing.assert_close(layer.q[0], Q2 - Q1)
    # r_2 = R_2 - Ψ_{1→2}(R_1), with Ψ written out for a depthwise weight (Fig. 2)
    psi = torch.zeros(8, 2, 3, 3, dtype=DT)
    psi[0::2, 0] = R1[0::2, 0]
    psi[1::2, 1] = R1[1::2, 0]
    torch.testing.assert_close(layer.r[0], R2 - psi)
    assert layer.r[1].shape == (8, 4, 3, 3)


def test_weights_never_expand_beyond_requested_size(monkeypatch):
    conv = make_conv(16, 8, 3, padding=1)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8, 16)))
    calls = []
    original = layers_module.expand_grouped_weight

    def spy(weight, g, h, *args, **kwargs):
        calls.append(h)
        return original(weight, g, h, *args, **kwargs)

    monkeypatch.setattr(layers_module, "expand_grouped_weight", spy)
    for s in layer.group_sizes:
        calls.clear()
        P, R, Q = layer.weights(s)
        assert R.shape == (16, s, 3, 3)
        assert all(h <= s for h in calls)
    calls.clear()
    layer.weights(1)
    assert calls == []


@pytest.mark.parametrize("s", (1, 2, 4, 8))
def test_backward_reaches_exactly_the_terms_up_to_s(s):
    conv = make_conv(8, 6, 3, padding=1)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8)))
    layer.group_size = s
    x = torch.randn(2, 8, 7, 7, dtype=DT, generator=torch.Generator().manual_seed(2))
    layer(x).square().sum().backward()
    n = order_of(layer, s)
    for order, param in terms(layer):
        if order <= n:
            assert param.grad is not None and param.grad.abs().max() > 0
        else:
            assert param.grad is None
    assert layer.bias.grad is not None


def test_gradient_matches_independent_bottleneck_gradient():
    # d loss / d R1 at s = 4 equals the chain rule through Ψ applied to dL/dR_4 of a plain bottleneck.
    conv = make_conv(8, 6, 3, padding=1)
    factors = random_factors(conv, (1, 2, 4))
    layer = GroSSConv2d.from_factors(conv, factors)
    layer.group_size = 4
    x = torch.randn(2, 8, 7, 7, dtype=DT, generator=torch.Generator().manual_seed(3))
    layer(x).square().sum().backward()
    exported = layer.to_bottleneck(4)
    exported(x).square().sum().backward()
    g4 = exported.R.weight.grad  # (8, 4, 3, 3)
    # R1 is depthwise: output channel o's single weight sits at column o % 4 of the 4-row.
    expected_r1 = torch.stack([g4[o, o % 4] for o in range(8)])[:, None]
    torch.testing.assert_close(layer.R1.grad, expected_r1)
    torch.testing.assert_close(layer.r[1].grad, g4)
    torch.testing.assert_close(layer.P1.grad, exported.P.weight.grad)
    torch.testing.assert_close(layer.q[1].grad, exported.Q.weight.grad)


def test_switching_group_size_and_errors():
    conv = make_conv(8, 8, 3, padding=1)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8)))
    assert layer.group_size == 8 and layer.groups == 1
    layer.group_size = 2
    assert layer.group_size == 2 and layer.groups == 4
    with pytest.raises(ValueError, match=r"group size 3 is not valid for this GroSSConv2d layer: allowed sizes are \(1, 2, 4, 8\)"):
        layer.group_size = 3
    assert layer.group_size == 2
    layer.name = "conv2"
    with pytest.raises(ValueError, match=r"group size 16 is not valid for layer 'conv2': allowed sizes are \(1, 2, 4, 8\)"):
        layer.weights(16)
    with pytest.raises(ValueError, match="group size '4' is not valid for layer 'conv2'"):
        layer.to_bottleneck("4")
    text = repr(layer)
    assert "group_sizes=(1, 2, 4, 8)" in text and "group_size=2" in text


def test_to_bottleneck_is_a_detached_copy():
    conv = make_conv(8, 8, 3, padding=1)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8)))
    layer.group_size = 2
    exported = layer.to_bottleneck()  # default: the active size
    assert exported.R.groups == 4 and exported.R.weight.dtype == DT
    assert exported.R.stride == layer.stride and exported.R.padding == layer.padding
    assert exported.Q.bias is not None and exported.P.bias is None
    before = layer.weights(2)[1].detach().clone()
    with torch.no_grad():
        exported.R.weight.add_(1.0)
        exported.Q.bias.add_(1.0)
    torch.testing.assert_close(layer.weights(2)[1], before)
    torch.testing.assert_close(layer.bias, conv.bias)


def test_deepcopy_and_state_dict_round_trip():
    conv = make_conv(8, 8, 3, padding=1)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8), seed=0))
    x = torch.randn(2, 8, 6, 6, dtype=DT, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        layer(x)  # populate the cache: it must not leak into state_dict or copies
    keys = set(layer.state_dict())
    assert keys == {"P1", "R1", "Q1", "bias"} | {f"{n}.{i}" for n in "prq" for i in range(3)}

    fresh = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8), seed=1))
    layer.group_size = fresh.group_size = 4
    assert (fresh(x) - layer(x)).abs().max() > 1e-3
    fresh.load_state_dict(layer.state_dict())
    clone = copy.deepcopy(layer)
    assert clone._cache == {}
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), layer(x), rtol=0, atol=0)
    torch.testing.assert_close(clone(x), layer(x), rtol=0, atol=0)
    with torch.no_grad():
        clone.R1.add_(1.0)
    assert (clone(x) - layer(x)).abs().max() > 1e-3  # independent parameters


def test_no_grad_cache_is_reused_and_invalidated():
    conv = make_conv(8, 8, 3, padding=1)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8)))
    x = torch.randn(2, 8, 6, 6, dtype=DT, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        first = layer.weights(4)
        assert layer.weights(4)[1] is first[1]  # cached
        out_before = layer(x)
    assert layer.weights(4)[1].grad_fn is not None  # with grad: built fresh, differentiable

    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer.group_size = 4
    layer(x).square().mean().backward()
    opt.step()
    with torch.no_grad():
        after = layer.weights(4)
        assert after[1] is not first[1]
        out_after = layer(x)
    rebuilt = [w.detach() for w in layer.weights(4)]
    for got, want in zip(after, rebuilt):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert (out_after - out_before).abs().max() > 1e-6

    # a step that touches only a higher-order term leaves size 2 cached, invalidates size 8
    with torch.no_grad():
        w2, w8 = layer.weights(2), layer.weights(8)
        layer.r[2].add_(1.0)
        assert layer.weights(2)[1] is w2[1]
        assert layer.weights(8)[1] is not w8[1]
        torch.testing.assert_close(layer.weights(8)[1], w8[1] + 1.0)

    # load_state_dict and dtype moves invalidate too
    other = GroSSConv2d.from_factors(conv, random_factors(conv, (1, 2, 4, 8), seed=9))
    with torch.no_grad():
        stale = layer.weights(4)[0].clone()
        layer.load_state_dict(other.state_dict())
        torch.testing.assert_close(layer.weights(4)[0], other.weights(4)[0], rtol=0, atol=0)
        assert (layer.weights(4)[0] - stale).abs().max() > 1e-3
        layer.float()
        assert all(w.dtype == torch.float32 for w in layer.weights(4))


def test_from_factors_casts_to_conv_dtype():
    conv = make_conv(8, 8, 3, padding=1, dtype=torch.float32)
    factors = random_factors(conv, (2, 8))
    layer = GroSSConv2d.from_factors(conv, factors)
    assert all(p.dtype == torch.float32 for p in layer.parameters())
    x = torch.randn(1, 8, 5, 5)
    layer.group_size = 2
    ref = bottleneck_reference(x.double(), conv.double(), *factors[2])
    torch.testing.assert_close(layer(x).double(), ref, rtol=1e-4, atol=1e-4)
    assert layer.to_bottleneck(8).P.weight.dtype == torch.float32


def test_constructor_initialises_a_usable_series():
    layer = GroSSConv2d(8, 4, 3, (1, 2, 8), padding=1, dtype=DT)
    assert layer.P1.shape == (8, 8, 1, 1) and layer.R1.shape == (8, 1, 3, 3) and layer.Q1.shape == (4, 8, 1, 1)
    assert [tuple(r.shape) for r in layer.r] == [(8, 2, 3, 3), (8, 8, 3, 3)]
    assert all(float(t.detach().abs().max()) == 0.0 for t in (*layer.p, *layer.r, *layer.q))
    assert layer.btd_errors == {} and layer.name is None
    assert layer(torch.randn(1, 8, 5, 5, dtype=DT)).shape == (1, 4, 5, 5)


@pytest.mark.parametrize(
    "sizes,message",
    [
        ((3,), r"group size 3 does not divide the bottleneck width 8: valid group sizes are the divisors of 8: \(1, 2, 4, 8\)"),
        ((1, 2, 2), r"group sizes must be distinct, got \(1, 2, 2\)"),
        ((0, 2), "group_sizes must hold positive integers, got 0"),
        ((1.5,), "group_sizes must hold positive integers, got 1.5"),
        ((), "group_sizes is empty: give at least one group size"),
        (4, "group_sizes must be a sequence of positive integers such as"),
    ],
)
def test_group_size_validation_errors(sizes, message):
    with pytest.raises(ValueError, match=message):
        GroSSConv2d(8, 8, 3, sizes)


def test_group_sizes_must_chain():
    conv = make_conv(12, 12, 3)
    with pytest.raises(ValueError, match=r"must each divide the next .* 4 does not divide 6 in group_sizes=\(1, 4, 6\)"):
        GroSSConv2d.from_factors(conv, random_factors(conv, (1, 4, 6)))


def test_from_factors_errors():
    conv = make_conv(8, 8, 3)
    good = random_factors(conv, (1, 2))
    with pytest.raises(ValueError, match="conv must be an nn.Conv2d, got Linear"):
        GroSSConv2d.from_factors(nn.Linear(8, 8), good)
    with pytest.raises(ValueError, match="conv must be an nn.Conv2d, got ConvTranspose2d"):
        GroSSConv2d.from_factors(nn.ConvTranspose2d(8, 8, 3), good)
    with pytest.raises(ValueError, match="ungrouped convolution \\(groups=1\\), got groups=2"):
        GroSSConv2d.from_factors(nn.Conv2d(8, 8, 3, groups=2), good)
    with pytest.raises(ValueError, match="padding_mode='zeros'.*got 'reflect'"):
        GroSSConv2d.from_factors(nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), good)
    with pytest.raises(ValueError, match="factors must be a non-empty mapping"):
        GroSSConv2d.from_factors(conv, {})
    bad = dict(good)
    bad[2] = (good[2][0], good[1][1], good[2][2])
    with pytest.raises(ValueError, match=r"factors\[2\].R has shape \(8, 1, 3, 3\), expected \(8, 2, 3, 3\)"):
        GroSSConv2d.from_factors(conv, bad)
    with pytest.raises(ValueError, match=r"factors\[1\].P has shape \(8, 8, 1, 1\), expected \(4, 8, 1, 1\)"):
        GroSSConv2d.from_factors(conv, good, width=4)
    with pytest.raises(ValueError, match="must be a \\(P, R, Q\\) triple"):
        GroSSConv2d.from_factors(conv, {1: (good[1][0],)})


def test_constructor_errors():
    with pytest.raises(ValueError, match="width must be a positive integer"):
        GroSSConv2d(8, 8, 3, (1,), width=0)
    with pytest.raises(ValueError, match="padding string must be 'same' or 'valid'"):
        GroSSConv2d(8, 8, 3, (1,), padding="full")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        GroSSConv2d(8, 8, 3, (1,), stride=2, padding="same")


def test_from_conv_reproduces_btd_at_every_size():
    conv = make_conv(8, 6, 3, padding=1, seed=3)
    options = {"tol": 1e-4, "max_iter": 5, "seed": 0}
    layer = GroSSConv2d.from_conv(conv, (4, 1, 2), **options)
    assert layer.group_sizes == (1, 2, 4)
    assert set(layer.btd_errors) == {1, 2, 4}
    x = torch.randn(2, 8, 6, 6, dtype=DT, generator=torch.Generator().manual_seed(6))
    for s in layer.group_sizes:
        result = btd(conv.weight.detach(), s, **options)
        assert layer.btd_errors[s] == pytest.approx(result.errors[-1])
        assert 0.0 <= layer.btd_errors[s] < 1.0
        layer.group_size = s
        dense = reconstruct(result.P, result.R, result.Q)
        torch.testing.assert_close(layer(x), F.conv2d(x, dense, conv.bias, padding=1), rtol=1e-8, atol=1e-8)
    # more groups → at least as large an approximation error
    assert layer.btd_errors[1] >= layer.btd_errors[4] - 1e-9


def test_forward_and_export_of_a_copy_made_in_inference_mode():
    """Tensors created under torch.inference_mode have no version counter: no cache, still exact."""
    torch.manual_seed(0)
    layer = GroSSConv2d(8, 8, 3, (1, 2, 8), padding=1).double()
    with torch.no_grad():
        for t in layer.p:
            t.normal_()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    with torch.inference_mode():
        clone = copy.deepcopy(layer)
        clone.group_size = 2
        y = clone(x)
        exported = clone.to_bottleneck(2)(x)
    layer.group_size = 2
    with torch.no_grad():
        torch.testing.assert_close(y, layer(x), rtol=0, atol=0)
    torch.testing.assert_close(exported, y, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_forward_backward_equal_cpu():  # pragma: no cover
    conv = make_conv(8, 12, 3, stride=2, padding=1)
    sizes = (1, 2, 4, 8)
    layer = GroSSConv2d.from_factors(conv, random_factors(conv, sizes))
    gpu = copy.deepcopy(layer).cuda()
    x = torch.randn(2, 8, 9, 9, dtype=DT, generator=torch.Generator().manual_seed(1))
    for s in sizes:
        layer.group_size = gpu.group_size = s
        layer.zero_grad()
        gpu.zero_grad()
        y, yg = layer(x), gpu(x.cuda())
        torch.testing.assert_close(yg.cpu(), y)
        y.square().sum().backward()
        yg.square().sum().backward()
        for (name, a), (_, b) in zip(layer.named_parameters(), gpu.named_parameters()):
            assert (a.grad is None) == (b.grad is None), name
            if a.grad is not None:
                torch.testing.assert_close(b.grad.cpu(), a.grad, msg=name)
    torch.testing.assert_close(gpu.to_bottleneck(4).cpu()(x), layer.to_bottleneck(4)(x))


# --------------------------------------------------------------------------- asymmetric bottleneck (Wang et al. [26])


def asymmetric_factors(conv, sizes, widths, seed=0):
    """Independent random (P, R, Q) per size for a bottleneck t -> w_in -> (grouped) w_out -> u."""
    gen = torch.Generator().manual_seed(seed)
    (w_in, w_out), t, u = widths, conv.in_channels, conv.out_channels
    kh, kw = conv.kernel_size
    return {s: (torch.randn(w_in, t, 1, 1, generator=gen, dtype=DT), torch.randn(w_out, s, kh, kw, generator=gen, dtype=DT),
                torch.randn(u, w_out, 1, 1, generator=gen, dtype=DT)) for s in sizes}


def asymmetric_reference(x, conv, P, R, Q):
    """Independent computation: groups = w_in // s with real grouped convolution."""
    y = F.conv2d(x, P)
    y = F.conv2d(y, R, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=P.shape[0] // R.shape[1])
    return F.conv2d(y, Q, conv.bias)


@pytest.mark.parametrize("widths, sizes", [((6, 12), (1, 2, 6)), ((12, 8), (3, 6, 12)), ((4, 10), (2, 4))])
def test_asymmetric_series_equals_independent_bottleneck_and_export(widths, sizes):
    conv = make_conv(5, 7, 3, stride=2, padding=1)
    factors = asymmetric_factors(conv, sizes, widths)
    layer = GroSSConv2d.from_factors(conv, factors)
    assert (layer.width, layer.width_out) == widths and layer.widths == widths
    assert f"width={widths}" in repr(layer)
    x = torch.randn(2, 5, 9, 9, dtype=DT)
    for s in sizes:
        layer.group_size = s
        expected = asymmetric_reference(x, conv, *factors[s])
        torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)
        seq = layer.to_bottleneck()
        assert (seq.P.out_channels, seq.R.in_channels, seq.R.out_channels, seq.R.groups, seq.Q.in_channels) == (
            widths[0], widths[0], widths[1], widths[0] // s, widths[1])
        torch.testing.assert_close(seq(x), layer(x), rtol=1e-12, atol=1e-12)


def test_asymmetric_full_rank_equals_the_original_convolution():
    conv = make_conv(6, 10, 3, padding=1)
    layer = GroSSConv2d.from_conv(conv, (1, 3, 6), width=(6, 12), tol=1e-12, max_iter=3000, progress=False)
    x = torch.randn(2, 6, 8, 8, dtype=DT)
    layer.group_size = 6  # one group of rank (12, 6) >= (u, t): exact
    assert layer.btd_errors[6] < 1e-12
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-10, atol=1e-10)
    for s in (1, 3):  # the lower orders reproduce their own BTDs
        layer.group_size = s
        P, R, Q = layer.weights()
        err = float((reconstruct(P, R, Q) - conv.weight).norm() / conv.weight.norm())
        assert err == pytest.approx(layer.btd_errors[s], abs=1e-9)


def test_asymmetric_from_conv_equals_btd_with_the_widths():
    conv = make_conv(6, 10, 3, padding=1)
    layer = GroSSConv2d.from_conv(conv, (2, 6), width=(6, 9), max_iter=20, progress=False)
    for s in (2, 6):
        r = btd(conv.weight.detach(), s, width=(6, 9), max_iter=20, progress=False)
        for got, want in zip(layer.weights(s), (r.P, r.R, r.Q)):
            torch.testing.assert_close(got.detach(), want, rtol=1e-10, atol=1e-10)


def test_symmetric_width_stays_an_int():
    layer = GroSSConv2d(8, 8, 3, (1, 2), width=(8, 8))
    assert layer.width == layer.width_out == 8 and "width=8," in repr(layer)


@pytest.mark.parametrize("width, sizes, message", [
    ((8, 6), (1, 2), r"group size 1 gives 8 groups .* output width 6: valid group sizes for widths \(8, 6\) are \(4, 8\)"),
    ((8, 12), (3,), "group size 3 does not divide the bottleneck width 8"),
    ((8, -1), (1,), "width must be a positive integer or a pair"),
    ("8", (1,), "width must be a positive integer or a pair"),
])
def test_asymmetric_width_errors(width, sizes, message):
    with pytest.raises(ValueError, match=message):
        GroSSConv2d(8, 8, 3, sizes, width=width)
