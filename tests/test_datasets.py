"""Tests for gross.data.datasets: Split / Dataset containers, synthetic data, stratified subsets."""

from __future__ import annotations

import pytest
import torch

from gross import data as D



# ----------------------------------------------------------------------------- containers
def test_split_validates_types_and_lengths():
    with pytest.raises(ValueError, match="uint8"):
        D.Split(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        D.Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="must match"):
        D.Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_dataset_split_lookup_and_normalization_copy():
    ds = D.synthetic(n_train=20, n_val=10, n_test=10)
    assert ds.split("val") is ds.val
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        ds.split("validation")
    other = ds.with_normalization((0.5,) * 3, (0.225,) * 3)
    assert other.std == (0.225,) * 3 and ds.std == (0.5,) * 3 and other.train is ds.train


# ----------------------------------------------------------------------------- synthetic & subset
def test_synthetic_shapes_balance_and_seed():
    ds = D.synthetic(n_train=100, n_val=50, n_test=30, seed=3, num_classes=5, image_size=16)
    assert ds.train.images.shape == (100, 3, 16, 16) and ds.train.images.dtype == torch.uint8
    assert torch.bincount(ds.train.labels).tolist() == [20] * 5
    again = D.synthetic(n_train=100, n_val=50, n_test=30, seed=3, num_classes=5, image_size=16)
    other = D.synthetic(n_train=100, n_val=50, n_test=30, seed=4, num_classes=5, image_size=16)
    assert torch.equal(ds.train.images, again.train.images)
    assert not torch.equal(ds.train.images, other.train.images)


def test_synthetic_signal_is_learnable():
    # nearest class-mean colour classifier (an independent learner) must beat chance by far
    ds = D.synthetic(n_train=500, n_val=10, n_test=500, seed=1)
    feats = lambda s: s.images.double().mean(dim=(2, 3))  # noqa: E731
    centres = torch.stack([feats(ds.train)[ds.train.labels == c].mean(0) for c in range(10)])
    pred = torch.cdist(feats(ds.test), centres).argmin(1)
    assert (pred == ds.test.labels).double().mean() > 0.6


def test_subset_is_stratified_seeded_and_drawn_from_the_split():
    ds = D.synthetic(n_train=200, n_val=100, n_test=100)
    sub = D.subset(ds, n_train=50, n_val=20, seed=5)
    assert len(sub.train) == 50 and len(sub.val) == 20 and sub.test is ds.test
    assert torch.bincount(sub.val.labels, minlength=10).tolist() == [2] * 10
    assert torch.bincount(sub.train.labels, minlength=10).tolist() == [5] * 10
    # every chosen row is a row of the original split, without repetition
    rows = {bytes(x.numpy()) for x in ds.train.images.flatten(1)}
    chosen = [bytes(x.numpy()) for x in sub.train.images.flatten(1)]
    assert all(c in rows for c in chosen) and len(set(chosen)) == 50
    assert torch.equal(D.subset(ds, n_train=50, seed=5).train.images, sub.train.images)
    assert not torch.equal(D.subset(ds, n_train=50, seed=6).train.images, sub.train.images)
    with pytest.raises(ValueError, match="n_train=500"):
        D.subset(ds, n_train=500)


# ----------------------------------------------------------------------------- augmentation & batching
