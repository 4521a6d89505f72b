"""Tests for gross.data.batching: augmentation (padded crop, flip), normalisation, batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gross import data as D



def _same_rows(a_imgs, a_lab, b_imgs, b_lab):
    """True when (image, label) multisets are equal."""
    def keys(imgs, lab):
        return sorted(bytes(i.flatten().numpy()) + bytes([int(l)]) for i, l in zip(imgs, lab))
    return keys(a_imgs, a_lab) == keys(b_imgs, b_lab)


def test_augment_is_a_padded_crop_with_optional_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)  # no zeros: padding is recognisable
    out = D.augment(x, g, padding=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (2, 2, 2, 2))
    seen = set()
    for i in range(len(x)):
        matches = [(oy, ox, fl) for oy in range(5) for ox in range(5) for fl in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(-1) if fl else c)(padded[i, :, oy:oy + 8, ox:ox + 8]))]
        assert matches, f"image {i} is not a crop/flip of the padded input"
        seen.update(matches)
    assert {m[2] for m in seen} == {False, True}
    assert len({(m[0], m[1]) for m in seen}) > 10


def test_augment_statistics_and_determinism():
    # column j holds value j + 1 (row-independent), so the crop offset and flip can be read back
    x = (torch.arange(8, dtype=torch.uint8) + 1).view(1, 1, 1, 8).expand(4000, 3, 8, 8).contiguous()
    out = D.augment(x, torch.Generator().manual_seed(1), padding=2)
    assert torch.equal(out, D.augment(x, torch.Generator().manual_seed(1), padding=2))
    assert not torch.equal(out, D.augment(x, torch.Generator().manual_seed(2), padding=2))
    cols = out[:, 0].amax(1).long()  # zero rows of vertical padding do not change the max
    flipped = cols[:, 2] > cols[:, 5]  # output columns 2..5 always come from real pixels
    assert 0.45 < flipped.double().mean() < 0.55
    # horizontal offset ox: output column 2 (5 when flipped) shows original column ox (value ox + 1)
    offset = torch.where(flipped, cols[:, 5], cols[:, 2]) - 1
    freq = torch.bincount(offset, minlength=5).double() / len(out)
    assert freq.shape == (5,) and (freq - 0.2).abs().max() < 0.03
    # only the centred crop (offset (2, 2), probability 1/25) has no zero padding at all
    no_pad = (out[:, 0] != 0).flatten(1).all(1)
    assert 0.025 < no_pad.double().mean() < 0.06


def test_batches_cover_the_split_and_normalise():
    ds = D.synthetic(n_train=70, n_val=10, n_test=10)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    xs, ys = zip(*D.batches(ds.train, 32, mean=mean, std=std))
    assert [len(y) for y in ys] == [32, 32, 6]
    x = torch.cat(xs)
    ref = (ds.train.images.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), ref, rtol=1e-6, atol=1e-6)
    assert torch.equal(torch.cat(ys), ds.train.labels)
    assert len(list(D.batches(ds.train, 32, drop_last=True))) == 2


def test_batches_shuffle_is_a_seeded_permutation():
    ds = D.synthetic(n_train=64, n_val=8, n_test=8)
    ys1 = torch.cat([y for _, y in D.batches(ds.train, 16, shuffle=True, generator=torch.Generator().manual_seed(0))])
    xs2, ys2 = zip(*D.batches(ds.train, 16, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(ys1, torch.cat(ys2))
    # same multiset of images, different order
    x = torch.cat(xs2)
    back = ((x * 0.5 + 0.5) * 255).round().to(torch.uint8)
    assert _same_rows(back, torch.cat(ys2), ds.train.images, ds.train.labels)
    assert not torch.equal(back, ds.train.images)
    with pytest.raises(ValueError, match="batch_size"):
        next(D.batches(ds.train, 0))
    with pytest.raises(ValueError, match="std must be positive"):
        next(D.batches(ds.train, 4, std=(0.5, 0.0, 0.5)))


# ----------------------------------------------------------------------------- CIFAR-10 sources


@pytest.mark.parametrize("padding", [0, 2, 4])
def test_batches_pass_the_augmentation_padding_through(padding):
    # batches(augment=True, padding=p) == normalise(augment(x, padding=p)) on the same generator stream
    ds = D.synthetic(n_train=48, n_val=8, n_test=8)
    got = torch.cat([x for x, _ in D.batches(ds.train, 16, augment=True, padding=padding, mean=(0.5,) * 3,
                                              std=(0.5,) * 3, generator=torch.Generator().manual_seed(3))])
    g = torch.Generator().manual_seed(3)
    ref = torch.cat([D.augment(ds.train.images[i:i + 16], g, padding=padding) for i in range(0, 48, 16)])
    torch.testing.assert_close(got.double(), ref.double() / 255 * 2 - 1, rtol=0, atol=1e-6)
    if padding == 4:  # offsets up to 8: some crops hold rows/columns 3..4 pixels deep into the zero border
        zero = (ref == 0).all(1)  # N x H x W: pixels from the border
        assert bool(zero[:, :4, :].all(2).any(1).logical_and(zero[:, 3, :].all(1)).any())


def test_stacked_batches_are_each_networks_batches_in_one_op():
    """K networks' batches from stacked_batches are each network's own draws (bit for bit against batches())."""
    from gross.data import Split, epoch_draws, stacked_batches

    g = torch.Generator().manual_seed(3)
    split = Split(torch.randint(0, 256, (70, 3, 8, 8), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (70,), generator=g))
    for augment, padding, flip, drop_last in [(True, 2, True, False), (True, 3, False, True), (False, 2, True, False)]:
        seeds = [5, 6, 7]
        alone = [list(D.batches(split, 32, shuffle=True, augment=False, generator=torch.Generator().manual_seed(s)))
                 for s in seeds] if not augment else None
        if augment:  # batches() augments with padding 2 and flips; other settings through epoch_draws + augment
            alone = []
            for s in seeds:
                gen = torch.Generator().manual_seed(s)
                order = torch.randperm(70, generator=gen)
                stop = 64 if drop_last else 70
                run = []
                for start in range(0, stop, 32):
                    idx = order[start:start + 32]
                    xb = D.augment(split.images[idx], gen, padding=padding, flip=flip)
                    run.append((D.normalize(xb), split.labels[idx]))
                alone.append(run)
        together = list(stacked_batches(split, 32, [torch.Generator().manual_seed(s) for s in seeds],
                                        augment=augment, padding=padding, flip=flip, drop_last=drop_last))
        assert len(together) == len(alone[0]) == (2 if drop_last else 3)
        for step, (x, y) in enumerate(together):
            assert x.shape[0] == 3 and x.dtype == torch.float32
            for k in range(3):
                assert torch.equal(y[k], alone[k][step][1])
                assert torch.allclose(x[k], alone[k][step][0], rtol=0, atol=1e-6)
    plain = list(D.batches(split, 32, shuffle=True, augment=True, generator=torch.Generator().manual_seed(9)))
    (x, y), *_ = stacked_batches(split, 32, [torch.Generator().manual_seed(9)])
    assert torch.equal(x[0], plain[0][0]) and torch.equal(y[0], plain[0][1])  # batches()' own arithmetic
    order, oy, ox, flips = epoch_draws(70, 32, torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(70)) and oy.shape == ox.shape == flips.shape == (70,)
    with pytest.raises(ValueError, match="in-memory Split"):
        next(stacked_batches([1, 2], 32, [g]))
