"""scripts/probe_gross_recipes.py: its control loop trains as the library does; the summary counts right."""

from __future__ import annotations

from collections import OrderedDict

import pandas as pd
import pytest
import torch
import torch.nn as nn

from gross import data as D
from gross.data.batching import batches
from gross.method.decomposition import gross_layers, search_space
from gross.pipeline.common import uniform
from gross.method.layers import GroSSConv2d
from gross.pipeline.claims import paired_se
from gross.training import loop as T


def _tiny_gross(seed: int = 0, dropout: float = 0.3) -> nn.Sequential:
    """Float64 net with one GroSS layer (random series terms: every group size computes something else)."""
    torch.manual_seed(seed)
    layer = GroSSConv2d(8, 8, 3, (1, 2, 4, 8), padding=1, dtype=torch.float64)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, 0.2)
    layer.clear_cache()
    layer.name = "conv2"
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(), pool1=nn.MaxPool2d(4), conv2=layer, relu2=nn.ReLU(),
        pool2=nn.AdaptiveAvgPool2d(2), flatten=nn.Flatten(), dropout=nn.Dropout(dropout), fc=nn.Linear(32, 10),
    )).double()


def test_control_variant_trains_the_weights_finetune_gross_trains(load_script):
    """Variant A (the control of the probe) = gross.training.loop.finetune_gross, plain layout, float64."""
    probe = load_script("probe_gross_recipes")
    data = D.synthetic(n_train=96, n_val=32, n_test=32, seed=1)
    rec = T.Recipe(epochs=3, batch_size=32, lr=0.05, milestones=(1, 2), seed=4, name="tiny")
    ours, lib = _tiny_gross(), _tiny_gross()
    layers, space = gross_layers(ours), search_space(ours)
    probe.tune(ours, list(layers), data, rec, sampler_layers=[(layers[n], tuple(space[n])) for n in space])
    T.finetune_gross(lib, data, rec, progress=False, channels_last=False)
    for (k, a), (_, b) in zip(ours.state_dict().items(), lib.state_dict().items()):
        assert torch.allclose(a, b, rtol=0, atol=1e-10), k


def test_sandwich_adds_the_largest_configurations_gradient(load_script):
    """One sandwich step (one batch, no momentum, no dropout) = SGD on the sum of two losses' gradients."""
    probe = load_script("probe_gross_recipes")
    data = D.synthetic(n_train=32, n_val=32, n_test=32, seed=2)
    rec = T.Recipe(epochs=1, batch_size=32, lr=0.05, momentum=0.0, seed=3, name="tiny", augment=False)
    model, ref = _tiny_gross(dropout=0.0), _tiny_gross(dropout=0.0)
    layers, space = gross_layers(model), search_space(model)
    largest = uniform(space, 8)
    probe.tune(model, list(layers), data, rec, sandwich=True, largest=largest,
               sampler_layers=[(layers[n], tuple(space[n])) for n in space])
    ref_layers = gross_layers(ref)
    drawn = T.draw_config([(ref_layers[n], tuple(space[n])) for n in space], T.group_size_sampler(rec))
    x, y = next(batches(data.train, 32, mean=rec.mean, std=rec.std))  # the one batch (order does not matter)
    total = {}
    for config in (drawn, largest):  # independent: both losses' gradients by hand
        ref.conv2.group_size = config[0]
        ref.zero_grad()
        nn.functional.cross_entropy(ref(x.double()), y).backward()
        for n, p in ref.conv2.named_parameters():
            if p.grad is not None:
                total[n] = total.get(n, 0) + p.grad
    with torch.no_grad():
        for n, p in ref.conv2.named_parameters():
            p -= rec.lr * total.get(n, torch.zeros_like(p))
    for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), k


def test_summary_counts_lowered_configurations_and_paired_z(tmp_path, load_script):
    probe = load_script("probe_gross_recipes")
    rows = []
    for threads in (1, 2):
        for v, deltas in (("A", [(10, 20), (30, 20)]), ("S", [(10, 15), (12, 12)])):
            for i, (lost, gained) in enumerate(deltas):
                rows.append({"threads": threads, "repeat": 0, "kind": "gross", "variant": v, "config": f"{i} {i}",
                             "before": 60.0, "after": 60.0 + 100 * (gained - lost) / 5000,
                             "delta": 100 * (gained - lost) / 5000, "lost": lost, "gained": gained,
                             "n_images": 5000, "seconds": 1.0})
    pd.DataFrame(rows).to_csv(tmp_path / "rows.csv", index=False)
    table = probe.summarise([tmp_path / "rows.csv"], tmp_path / "out").set_index("variant")
    assert table.loc["A", "runs"] == 2 and table.loc["A", "configs"] == 4 and table.loc["A", "lowered"] == 2
    assert table.loc["A", "worst"] == pytest.approx(-0.2)
    assert table.loc["A", "most_negative_z"] == pytest.approx(-0.2 / paired_se(30, 20, 5000), abs=1e-4)
    assert table.loc["S", "lowered"] == 0 and table.loc["S", "worst"] == 0.0
    runs = pd.read_csv(tmp_path / "out" / "probe_gross_recipes_runs.csv")
    assert (runs["seconds"] == 1.0).all()  # one GroSS fine-tune per run, not one per configuration
    assert (tmp_path / "out" / "probe_gross_recipes.md").exists()
    assert (tmp_path / "out" / "probe_gross_recipes_runs.csv").exists()
    assert (tmp_path / "out" / "probe_gross_recipes_configs.csv").exists()
