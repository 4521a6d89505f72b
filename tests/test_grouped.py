"""Tests for gross.method.grouped: loop nest == torch grouped conv == dense block-diagonal conv; costs."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gross.method.grouped import (
    block_diagonal_weight,
    conv_output_size,
    grouped_conv_costs,
    grouped_conv_loop,
)
from gross.method.expansion import expand_grouped_weight
from gross.method.macs import count_macs

# (C_in, C_out, groups, kernel, stride, padding, H, W)
CONFIGS = [
    (4, 4, 1, 3, 1, 1, 5, 5),
    (4, 4, 2, 3, 1, 1, 5, 6),
    (4, 4, 4, 3, 2, 1, 6, 5),       # depthwise, strided
    (6, 9, 3, 1, 1, 0, 4, 4),       # 1x1, C_out != C_in
    (4, 8, 2, (3, 2), (2, 1), (0, 1), 7, 5),  # rectangular kernel, mixed stride/padding
    (8, 4, 4, 3, 1, 2, 3, 3),       # padding larger than needed
]


def _random(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("c_in,c_out,groups,k,stride,padding,h,w", CONFIGS)
def test_loop_matches_torch_and_dense(c_in, c_out, groups, k, stride, padding, h, w):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = _random((2, c_in, h, w), 0)
    weight = _random((c_out, c_in // groups, kh, kw), 1)
    bias = _random((c_out,), 2)
    ref = F.conv2d(x, weight, bias, stride=stride, padding=padding, groups=groups)
    loop = grouped_conv_loop(x, weight, groups, stride=stride, padding=padding, bias=bias)
    assert isinstance(loop, torch.Tensor) and loop.dtype == torch.float64
    assert loop.shape == ref.shape
    torch.testing.assert_close(loop, ref, rtol=1e-12, atol=1e-12)

    dense_w = block_diagonal_weight(weight, groups)
    assert dense_w.shape == (c_out, c_in, kh, kw)
    dense = F.conv2d(x, dense_w, bias, stride=stride, padding=padding)
    torch.testing.assert_close(dense, ref, rtol=1e-12, atol=1e-12)


def test_loop_numpy_unbatched_without_bias():
    x = _random((4, 5, 5), 3)
    weight = _random((4, 2, 3, 3), 4)
    out = grouped_conv_loop(x.numpy(), weight.numpy(), groups=2, padding=1)
    assert isinstance(out, np.ndarray) and out.shape == (4, 5, 5)
    ref = F.conv2d(x[None], weight, padding=1, groups=2)[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_loop_detects_wrong_group_count():
    """The loop nest really depends on ``groups``: a dense weight read as grouped differs."""
    x = _random((1, 4, 4, 4), 5)
    weight = _random((4, 2, 3, 3), 6)
    grouped = grouped_conv_loop(x, weight, groups=2, padding=1)
    wrong = F.conv2d(x, weight.repeat(1, 2, 1, 1), padding=1)  # same weights, no block structure
    assert not torch.allclose(grouped, wrong)


def test_block_diagonal_structure():
    weight = _random((6, 2, 3, 3), 7)
    dense = block_diagonal_weight(weight, 3)
    for a in range(3):
        for b in range(3):
            block = dense[2 * a:2 * a + 2, 2 * b:2 * b + 2]
            if a == b:
                torch.testing.assert_close(block, weight[2 * a:2 * a + 2])
            else:
                assert torch.count_nonzero(block) == 0
    # groups=1 is the identity
    torch.testing.assert_close(block_diagonal_weight(weight, 1), weight)


def test_block_diagonal_is_full_expansion():
    """Dense block-diagonal weight == Ψ_{g -> C_in}(W) (expansion to a single group)."""
    weight = _random((8, 2, 3, 3), 8)
    torch.testing.assert_close(
        block_diagonal_weight(weight, 4), expand_grouped_weight(weight, 2, 8)
    )


def test_block_diagonal_differentiable():
    weight = _random((4, 1, 3, 3), 9).requires_grad_()
    block_diagonal_weight(weight, 4).sum().backward()
    torch.testing.assert_close(weight.grad, torch.ones_like(weight))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: grouped_conv_loop(np.zeros((1, 4, 3, 3)), np.zeros((4, 2, 1, 1)), 3), "groups=3"),
        (lambda: grouped_conv_loop(np.zeros((1, 4, 3, 3)), np.zeros((4, 1, 1, 1)), 2), r"weight.shape\[1\]"),
        (lambda: grouped_conv_loop(np.zeros((4, 3)), np.zeros((4, 1, 1, 1)), 4), "x must be"),
        (lambda: grouped_conv_loop(np.zeros((1, 4, 2, 2)), np.zeros((4, 1, 3, 3)), 4), "kernel extent"),
        (lambda: grouped_conv_loop(np.zeros((1, 4, 3, 3)), np.zeros((4, 1, 1, 1)), 4, stride=0), "stride"),
        (lambda: block_diagonal_weight(torch.zeros(6, 1, 1, 1), 4), "groups=4"),
        (lambda: grouped_conv_costs(32, 32, 3, 8, 8, groups_list=[3]), "valid numbers of groups"),
        (lambda: grouped_conv_costs(32, 32, 3, 8, 8, groups_list=[]), "must not be empty"),
        (lambda: grouped_conv_costs(0, 32, 3, 8, 8), "in_channels"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _count_with_hooks(conv: nn.Conv2d, height: int, width: int) -> tuple[int, int]:
    """Independent count: parameters from the module, MACs from the actual output of a forward
    pass times the number of non-zero weights each output element uses in the dense
    block-diagonal form (+1 per output element for the bias)."""
    counted = {}

    def hook(mod, inputs, output):
        dense = block_diagonal_weight(torch.ones_like(mod.weight), mod.groups)
        per_output = int(torch.count_nonzero(dense)) // mod.out_channels
        counted["macs"] = output.numel() * (per_output + (mod.bias is not None))

    handle = conv.register_forward_hook(hook)
    with torch.no_grad():
        conv(torch.zeros(1, conv.in_channels, height, width))
    handle.remove()
    return sum(p.numel() for p in conv.parameters()), counted["macs"]


@pytest.mark.parametrize("c_in,c_out,k,h,w,stride,padding,bias", [
    (32, 32, 3, 8, 8, 1, None, True),
    (32, 64, 3, 9, 7, 2, 1, False),
    (16, 8, (3, 1), 6, 6, 1, (1, 0), True),
    (12, 12, 5, 10, 10, 1, 0, True),
])
def test_costs_match_hook_count(c_in, c_out, k, h, w, stride, padding, bias):
    df = grouped_conv_costs(c_in, c_out, k, h, w, stride=stride, padding=padding, bias=bias)
    assert list(df["groups"]) == [d for d in range(1, c_in + 1) if c_in % d == 0 and c_out % d == 0]
    kk = (k, k) if isinstance(k, int) else k
    pad = (kk[0] // 2, kk[1] // 2) if padding is None else padding
    for row in df.itertuples():
        conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, groups=row.groups, bias=bias)
        params, macs = _count_with_hooks(conv, h, w)
        assert row.params == params, row
        assert row.macs == macs, row
        assert row.group_size == c_in // row.groups
    dense = df.iloc[0]
    np.testing.assert_allclose(df["params_ratio"], df["params"] / dense["params"])
    np.testing.assert_allclose(df["macs_saving_pct"], 100 * (1 - df["macs"] / dense["macs"]))


def test_costs_match_gross_macs():
    df = grouped_conv_costs(32, 64, 3, 16, 16, groups_list=[1, 4, 32])
    for row in df.itertuples():
        conv = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, groups=row.groups))
        assert count_macs(conv, input_size=(32, 16, 16)).total == row.macs


def test_costs_paper_layer_savings():
    """Without bias, G groups divide both counts exactly by G."""
    df = grouped_conv_costs(64, 64, 3, 8, 8, groups_list=(1, 2, 64), bias=False)
    np.testing.assert_allclose(df["macs_ratio"], 1 / df["groups"])
    np.testing.assert_allclose(df["params_ratio"], 1 / df["groups"])
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    # with bias the saving is slightly less than 1 - 1/G
    with_bias = grouped_conv_costs(64, 64, 3, 8, 8, groups_list=(1, 64))
    assert 0 < with_bias["macs_saving_pct"].iloc[1] < 100 * (1 - 1 / 64)


def test_conv_output_size_matches_torch():
    for size, k, s, p in [(5, 3, 1, 1), (7, 3, 2, 0), (8, 1, 3, 0), (4, 5, 1, 2)]:
        out = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, size, size))
        assert conv_output_size(size, k, s, p) == out.shape[-1]
