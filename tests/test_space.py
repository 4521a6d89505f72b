"""Tests of gross.method.space: validation, enumeration, neighbours, random draws, text round trip."""

import itertools
import math
from collections import OrderedDict

import numpy as np
import pytest
from torch import nn

from gross.method.decomposition import decompose, enumerate_configs, search_space, set_config
from gross.method.space import SearchSpace, as_space, config_str, parse_config

SPACE = OrderedDict(a=(1, 2, 4), b=(1, 2, 4, 8), c=(1, 8))


def random_space(rng):
    """A random space: 1-5 layers, each with 1-5 distinct sizes from 1..64, in random order."""
    layers = int(rng.integers(1, 6))
    return OrderedDict(
        (f"l{i}", tuple(int(s) for s in rng.choice(np.arange(1, 65), size=int(rng.integers(1, 6)), replace=False)))
        for i in range(layers)
    )


def test_construction_forms_agree_and_sort_sizes():
    s = SearchSpace(SPACE)
    assert s.names == ("a", "b", "c") and s.sizes == ((1, 2, 4), (1, 2, 4, 8), (1, 8))
    assert SearchSpace({"a": (4, 1, 2)}).sizes == ((1, 2, 4),)
    seq = SearchSpace(list(SPACE.values()))
    assert seq.names == ("layer 0", "layer 1", "layer 2") and seq.sizes == s.sizes
    assert as_space(s) is s and as_space(SPACE) == s and SearchSpace(s) == s
    assert s.as_dict() == SPACE
    assert s.min_config() == (1, 1, 1) and s.max_config() == (4, 8, 8)
    assert s.num_layers == 3 and len(list(s)) == s.num_configs == 24
    assert config_str((8, 16, 64), sep="-") == "8-16-64"


@pytest.mark.parametrize("bad, match", [
    ({}, "empty"),
    ({"a": ()}, "layer 'a'.*distinct positive"),
    ({"a": (1, 1)}, "distinct positive"),
    ({"a": (0, 2)}, "distinct positive"),
    ({"a": (1.5, 2)}, "distinct positive"),
    ("1 2", "mapping of layer name"),
    (5, "mapping of layer name"),
])
def test_bad_spaces(bad, match):
    with pytest.raises(ValueError, match=match):
        SearchSpace(bad)


def test_enumeration_count_and_order_on_random_spaces():
    rng = np.random.default_rng(0)
    for _ in range(20):
        space = random_space(rng)
        s = SearchSpace(space)
        configs = s.configs()
        # independent count: product of the number of sizes per layer
        assert len(configs) == s.num_configs == math.prod(len(v) for v in space.values())
        assert len(set(configs)) == len(configs) == len(list(s))
        # independent enumeration: every combination of the sorted sizes, lexicographic order
        assert configs == sorted(itertools.product(*(sorted(v) for v in space.values())))
        assert all(c in s for c in configs)


def test_validate_accepts_all_forms():
    s = SearchSpace(SPACE)
    assert s.validate((2, 8, 1)) == (2, 8, 1)
    assert s.validate([np.int64(2), 8, 1.0]) == (2, 8, 1)
    assert s.validate("2 8 1") == s.validate("2, 8, 1") == (2, 8, 1)
    assert s.validate({"c": 1, "a": 2, "b": 8}) == (2, 8, 1)
    assert s.validate({"b": 4}, default=(1, 1, 8)) == (1, 4, 8)
    assert all(isinstance(v, int) for v in s.validate((np.int64(2), 8, 1)))


@pytest.mark.parametrize("config, match", [
    ((3, 1, 1), r"group size 3 is not valid for layer 'a': allowed sizes are \(1, 2, 4\)"),
    ((1, 1, 2), r"group size 2 is not valid for layer 'c': allowed sizes are \(1, 8\)"),
    ((2.5, 1, 1), r"group size 2.5 is not valid for layer 'a'"),
    ((True, 1, 1), r"group size True is not valid for layer 'a'"),
    (("2", 1, 1), r"group size '2' is not valid for layer 'a'"),
    ((1, 1), r"config has 2 group sizes but the model has 3 decomposed layers \['a', 'b', 'c'\]"),
    ("1 x 1", "cannot parse"),
    ({"a": 1}, r"config names layers \['a'\], but the decomposed layers are"),
    ({"a": 1, "z": 2}, r"unknown layer\(s\) \['z'\]"),
    (7, "sequence of ints"),
])
def test_validate_errors_name_layer_value_and_allowed(config, match):
    s = SearchSpace(SPACE)
    with pytest.raises(ValueError, match=match):
        s.validate(config)
    assert config not in s


def test_neighbours_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = SearchSpace(random_space(rng))
        c = s.draw(rng)
        nb = s.neighbours(c)
        brute = [d for d in itertools.product(*s.sizes) if sum(x != y for x, y in zip(c, d)) == 1]
        assert sorted(nb) == sorted(brute) and len(set(nb)) == len(nb)
        assert len(nb) == sum(len(v) - 1 for v in s.sizes)
        # ordered by layer, then by ascending size
        changed = [next(i for i in range(len(c)) if d[i] != c[i]) for d in nb]
        assert changed == sorted(changed)
        assert all(nb[k][changed[k]] < nb[k + 1][changed[k]] for k in range(len(nb) - 1)
                   if changed[k] == changed[k + 1])
    with pytest.raises(ValueError, match="layer 'a'"):
        SearchSpace(SPACE).neighbours((3, 1, 1))


def test_format_parse_round_trip():
    s = SearchSpace(SPACE)
    assert config_str((8, 16, 64)) == "8 16 64" and parse_config("8 16 64") == (8, 16, 64)
    for c in s.configs():
        assert s.parse(s.format(c)) == c and parse_config(config_str(c)) == c
    with pytest.raises(ValueError, match="cannot parse"):
        parse_config("8 x 64")
    with pytest.raises(ValueError, match="layer 'b'"):
        s.parse("1 3 1")


def test_random_draws_nested_reproducible_distinct_uniform():
    s = SearchSpace(SPACE)
    cs = s.random(10, seed=3)
    assert len(cs) == 10 and len(set(cs)) == 10 and all(c in s for c in cs)
    assert cs == s.random(10, seed=3) and cs != s.random(10, seed=4)
    for m in (0, 1, 5, 10):
        assert s.random(m, seed=3) == cs[:m]
    assert sorted(s.random(24, seed=0)) == s.configs()
    # independent re-implementation of the draw: sequential uniform draws, repeats rejected
    rng = np.random.default_rng(3)
    expected = []
    while len(expected) < 10:
        c = tuple(int(v[rng.integers(len(v))]) for v in s.sizes)
        if c not in expected:
            expected.append(c)
    assert cs == expected
    with pytest.raises(ValueError, match="n <= 24"):
        s.random(25)
    with pytest.raises(ValueError, match="non-negative integer"):
        s.random(-1)
    counts = np.zeros(3)
    for seed in range(300):
        for c in s.random(4, seed=seed):
            counts[(1, 2, 4).index(c[0])] += 1
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.05)


def test_from_model_matches_decomposition():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    decompose(model, group_sizes=(1, 2, 8), max_iter=5)
    s = SearchSpace.from_model(model)
    assert s.as_dict() == search_space(model) and as_space(model) == s
    assert s.configs() == enumerate_configs(search_space(model))
    set_config(model, {"4": 2})  # set_config validates through SearchSpace (partial mappings allowed)
    with pytest.raises(ValueError, match=r"group size 4 is not valid for layer '2'"):
        set_config(model, (4, 1))
    with pytest.raises(ValueError, match="no GroSS layers"):
        SearchSpace.from_model(nn.Sequential(nn.Conv2d(3, 3, 3)))
