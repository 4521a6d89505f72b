"""Tests for gross.method.expansion: the grouped-weight expansion Ψ (Eq. 4, Fig. 2)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from gross.method.expansion import expand_grouped_weight

DT = torch.float64


def grouped_conv_loops(x, w, groups, stride=1, padding=0):
    """Grouped convolution as the explicit loop nest of the slides (one image, pure Python).

    ``x`` is ``(C_in, H, W)``, ``w`` is ``(C_out, C_in // groups, KH, KW)``.
    """
    c_in, height, width = x.shape
    c_out, c_per_group, kh_size, kw_size = w.shape
    xp = [[[0.0] * (width + 2 * padding) for _ in range(height + 2 * padding)] for _ in range(c_in)]
    for ci in range(c_in):
        for ih in range(height):
            for iw in range(width):
                xp[ci][ih + padding][iw + padding] = float(x[ci, ih, iw])
    out_h = (height + 2 * padding - kh_size) // stride + 1
    out_w = (width + 2 * padding - kw_size) // stride + 1
    out = [[[0.0] * out_w for _ in range(out_h)] for _ in range(c_out)]
    for g in range(groups):
        for co in range(c_out // groups * g, c_out // groups * (g + 1)):
            for ci in range(c_in // groups * g, c_in // groups * (g + 1)):
                for oh in range(out_h):
                    for ow in range(out_w):
                        for kh in range(kh_size):
                            for kw in range(kw_size):
                                out[co][oh][ow] += (
                                    xp[ci][oh * stride + kh][ow * stride + kw]
                                    * float(w[co, ci - c_in // groups * g, kh, kw])
                                )
    return torch.tensor(out, dtype=DT)


def expand_loops(w, g, h, c_in):
    """Reference Ψ: place each output channel's g weights at offset a*g - b*h of its h-row."""
    c_out, _, kh, kw = w.shape
    out = torch.zeros(c_out, h, kh, kw, dtype=w.dtype)
    per_g = c_out // (c_in // g)
    per_h = c_out // (c_in // h)
    for o in range(c_out):
        a, b = o // per_g, o // per_h
        assert b * h <= a * g < (b + 1) * h
        out[o, a * g - b * h : a * g - b * h + g] = w[o]
    return out


@pytest.mark.parametrize(
    "c_in,c_out,groups,k,stride,padding",
    [(4, 4, 1, 3, 1, 1), (4, 4, 2, 3, 1, 0), (4, 4, 4, 3, 2, 1), (4, 8, 2, 2, 1, 1), (6, 3, 3, 3, 2, 0)],
)
def test_torch_grouped_conv_matches_loop_nest(c_in, c_out, groups, k, stride, padding):
    gen = torch.Generator().manual_seed(c_in * 100 + c_out * 10 + groups)
    x = torch.randn(c_in, 5, 5, generator=gen, dtype=DT)
    w = torch.randn(c_out, c_in // groups, k, k, generator=gen, dtype=DT)
    expected = grouped_conv_loops(x, w, groups, stride, padding)
    got = F.conv2d(x[None], w, stride=stride, padding=padding, groups=groups)[0]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_loop_nest_is_not_a_full_convolution():
    # Sanity of the reference itself: grouping must matter.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 5, generator=gen, dtype=DT)
    w = torch.randn(4, 2, 3, 3, generator=gen, dtype=DT)
    grouped = grouped_conv_loops(x, w, 2)
    full = F.conv2d(x[None], torch.cat([w, w], 1))[0]
    assert (grouped - full).abs().max() > 1e-3


CASES = [
    # (c_in, c_out, k, stride, padding, dilation)
    (8, 8, 3, 1, 1, 1),
    (8, 8, 1, 1, 0, 1),
    (12, 12, 3, 2, 0, 1),
    (8, 16, 3, 1, 2, 2),
    (16, 8, 5, 2, 2, 1),
    (6, 12, (3, 1), 1, (1, 0), 1),
]


def _pairs(c_in, c_out):
    """All (g, h) with h a multiple of g, both dividing c_in and c_out divisible by c_in // g."""
    sizes = [g for g in range(1, c_in + 1) if c_in % g == 0 and c_out % (c_in // g) == 0]
    return [(g, h) for g, h in itertools.product(sizes, sizes) if h >= g and h % g == 0]


@pytest.mark.parametrize("c_in,c_out,k,stride,padding,dilation", CASES)
def test_expanded_weight_gives_identical_outputs(c_in, c_out, k, stride, padding, dilation):
    gen = torch.Generator().manual_seed(c_in + 7 * c_out)
    x = torch.randn(2, c_in, 9, 9, generator=gen, dtype=DT)
    kh, kw = (k, k) if isinstance(k, int) else k
    pairs = _pairs(c_in, c_out)
    assert any(h > g for g, h in pairs)
    for g, h in pairs:
        w = torch.randn(c_out, g, kh, kw, generator=gen, dtype=DT)
        expanded = expand_grouped_weight(w, g, h, in_channels=c_in)
        assert expanded.shape == (c_out, h, kh, kw)
        ref = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=c_in // g)
        got = F.conv2d(x, expanded, stride=stride, padding=padding, dilation=dilation, groups=c_in // h)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(expanded, expand_loops(w, g, h, c_in), rtol=0, atol=0)


def test_expansion_matches_figure_2():
    w = torch.arange(1.0, 5.0, dtype=DT).view(4, 1, 1, 1)
    to2 = expand_grouped_weight(w, 1, 2).view(4, 2)
    to4 = expand_grouped_weight(w, 1, 4).view(4, 4)
    torch.testing.assert_close(to2, torch.tensor([[1, 0], [0, 2], [3, 0], [0, 4]], dtype=DT))
    torch.testing.assert_close(to4, torch.diag(torch.arange(1.0, 5.0, dtype=DT)))


def test_in_channels_defaults_to_out_channels():
    w = torch.randn(8, 2, 3, 3, dtype=DT, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(expand_grouped_weight(w, 2, 4), expand_grouped_weight(w, 2, 4, in_channels=8))


def test_expansion_composes_and_identity():
    w = torch.randn(16, 1, 3, 3, dtype=DT, generator=torch.Generator().manual_seed(2))
    step = expand_grouped_weight(expand_grouped_weight(w, 1, 2), 2, 8)
    torch.testing.assert_close(step, expand_grouped_weight(w, 1, 8), rtol=0, atol=0)
    assert expand_grouped_weight(w, 1, 1) is w


def test_expansion_gradient_is_the_embedded_block():
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(8, 2, 3, 3, dtype=DT, generator=gen, requires_grad=True)
    upstream = torch.randn(8, 8, 3, 3, dtype=DT, generator=gen)
    (expand_grouped_weight(w, 2, 8) * upstream).sum().backward()
    mask = expand_loops(torch.ones(8, 2, 3, 3, dtype=DT), 2, 8, 8).bool()
    torch.testing.assert_close(w.grad, upstream[mask].view(8, 2, 3, 3))
    assert torch.autograd.gradcheck(
        lambda t: expand_grouped_weight(t, 1, 4, in_channels=4), (torch.randn(8, 1, 2, 2, dtype=DT, requires_grad=True),)
    )


@pytest.mark.parametrize(
    "shape,g,h,c_in,message",
    [
        ((8, 2, 3), 2, 4, None, "4-D conv weight"),
        ((8, 2, 3, 3), 1, 4, None, r"weight.shape\[1\] must equal group_size=1"),
        ((8, 4, 3, 3), 4, 2, None, "new_group_size must be >= group_size"),
        ((12, 2, 3, 3), 2, 3, None, "3 is not a multiple of 2"),
        ((8, 2, 3, 3), 2, 6, 12, "out_channels 8 must be divisible by the number of groups"),
        ((8, 2, 3, 3), 2, 4, 6, "new_group_size 4 must divide in_channels 6"),
        ((4, 1, 3, 3), 1, 2, 8, "out_channels 4 must be divisible by the number of groups"),
        ((8, 2, 3, 3), 0, 4, None, "group_size must be a positive integer"),
        ((8, 2, 3, 3), 2, 2.5, None, "new_group_size must be a positive integer"),
        ((8, 2, 3, 3), 2, 4, -8, "in_channels must be a positive integer"),
    ],
)
def test_expansion_errors(shape, g, h, c_in, message):
    with pytest.raises(ValueError, match=message):
        expand_grouped_weight(torch.zeros(shape), g, h, in_channels=c_in)
