"""Fitted latency predictors (:mod:`gross.search.predictors`), on synthetic latencies in float64.

No real timings: the latency of a configuration is a known function, injected either
directly (config -> seconds) or as the timer of :mod:`gross.search.latency` (reading the
group sizes off the exported modules), so every assertion is exact up to float64 round-off.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from gross.method.decomposition import export, random_gross, search_space
from gross.method.space import random_configs
from gross.models import four_layer_net
from gross.search import latency as L
from gross.search import predictors as P

SPACE = {"a": (1, 2), "b": (1, 2, 4), "c": (1, 4)}


def additive_fn(config):
    """Seconds: 1 ms + a per-layer, per-size term (no interaction)."""
    return 1e-3 + sum((l + 1) * 1e-5 * math.log2(s) + 3e-6 * (s % 3) for l, s in enumerate(config))


def interacting_fn(config):
    """``additive_fn`` plus a neighbour interaction ``k · log2(s_{l-1}) · log2(s_l)`` (not additively separable)."""
    return additive_fn(config) + sum(4e-6 * math.log2(a) * math.log2(b) for a, b in zip(config, config[1:]))


# ----------------------------------------------------------------------------- features


def test_feature_count_matches_independent_formula():
    sizes = [len(v) for v in SPACE.values()]
    assert P.n_features(SPACE, "regression") == 1 + sum(n - 1 for n in sizes) == 5
    assert P.n_features(SPACE, "context") == 5 + sum((m - 1) * (n - 1) for m, n in zip(sizes, sizes[1:])) == 9
    assert P.feature_names(SPACE, "context")[5:] == ["a=2,b=2", "a=2,b=4", "b=2,c=4", "b=4,c=4"]


def test_design_matrix_by_hand():
    x = P.design_matrix([(1, 1, 1), (2, 4, 4), (2, 2, 1)], SPACE, "context")
    # columns: 1, a=2, b=2, b=4, c=4, a=2&b=2, a=2&b=4, b=2&c=4, b=4&c=4
    expected = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0],
                         [1, 1, 0, 1, 1, 0, 1, 0, 1],
                         [1, 1, 1, 0, 0, 1, 0, 0, 0]], dtype=np.float64)
    assert x.dtype == np.float64 and np.array_equal(x, expected)
    assert np.array_equal(P.design_matrix([(2, 4, 4)], SPACE, "regression"), expected[1:2, :5])


# ----------------------------------------------------------------------------- recovery on synthetic latencies


def _fit_and_validate(fn, predictor, space=SPACE, n_val=3):
    val, fit = P.split_configs(space, n_val, math.prod(len(v) for v in space.values()) - n_val, seed=1)
    model = P.fit_predictor(predictor, fit, [fn(c) for c in fit], space)
    truth = np.array([fn(c) for c in val])
    return np.abs(model.predict_many(val) - truth) / truth


@pytest.mark.parametrize("predictor", ["regression", "context"])
def test_additive_latency_is_recovered_exactly_by_both(predictor):
    assert _fit_and_validate(additive_fn, predictor).max() < 1e-12


def test_neighbour_interaction_is_recovered_by_context_only():
    assert _fit_and_validate(interacting_fn, "context").max() < 1e-12
    assert _fit_and_validate(interacting_fn, "regression").max() > 1e-3


def test_predict_equals_predict_many_and_coefficients_frame():
    configs = list(itertools.product(*SPACE.values()))
    fitted = P.fit_predictor("context", configs, [interacting_fn(c) for c in configs], SPACE)
    assert [fitted.predict(c) for c in configs] == pytest.approx(fitted.predict_many(configs).tolist(), rel=1e-15)
    assert fitted(configs[0]) == fitted.predict(configs[0]) and fitted.fit_rms_rel < 1e-12
    assert list(fitted.to_frame()["feature"]) == P.feature_names(SPACE, "context")
    assert fitted.to_frame()["seconds"].iloc[0] == pytest.approx(interacting_fn((1, 1, 1)), rel=1e-12)


# ----------------------------------------------------------------------------- injected timer, real networks


def _group_sizes(module: nn.Module) -> list[int]:
    """Group sizes of the exported bottlenecks inside ``module`` (its grouped ``R`` convs), in order."""
    return [m.R.in_channels // m.R.groups for m in module.modules() if hasattr(m, "R") and hasattr(m, "P")]


def interacting_timer(module: nn.Module, x: torch.Tensor) -> float:
    """Synthetic timer: additive per-bottleneck cost plus a neighbour interaction between consecutive bottlenecks."""
    sizes = _group_sizes(module)
    base = 1e-4 * x.shape[0] + 2e-5 * sum(math.log2(s) + 1 for s in sizes) + 1e-6 * x.shape[1]
    return base + sum(3e-5 * math.log2(a) * math.log2(b) for a, b in zip(sizes, sizes[1:]))


def test_injected_timer_context_recovers_interaction_table_and_regression_do_not():
    model = random_gross(four_layer_net(), seed=0).eval()
    space = search_space(model)
    table = L.measure_table(model, batch_size=2, mode="isolated", timer=interacting_timer, rounds=1, progress=False)
    val, fit = P.split_configs(space, 20, 100, seed=0)
    assert not set(val) & set(fit)
    times = L.measure_configs(model, val + fit, batch_size=2, timer=interacting_timer, rounds=1, progress=False)
    measured, fit_s = np.array(times[:20]), times[20:]
    x = torch.zeros(2, 3, 32, 32)
    assert measured == pytest.approx([interacting_timer(export(model, c), x) for c in val], rel=1e-15)
    err = {"additive": np.abs(np.array([table.predict(c) for c in val]) - measured) / measured}
    for name in ("regression", "context"):
        err[name] = np.abs(P.fit_predictor(name, val[:0] + fit, fit_s, space).predict_many(val) - measured) / measured
    assert err["context"].max() < 1e-12
    assert np.median(err["additive"]) > 1e-2 and np.median(err["regression"]) > 1e-3


# ----------------------------------------------------------------------------- splits and bad input


def test_split_is_disjoint_and_validation_is_the_plain_draw():
    space = search_space(random_gross(four_layer_net(), seed=0))
    val, fit = P.split_configs(space, 30, 150, seed=3)
    assert len(val) == 30 and len(fit) == 150 and not set(val) & set(fit)
    assert val == random_configs(space, 30, 3)
    with pytest.raises(ValueError, match="cannot draw 253"):
        P.split_configs(space, 30, 223)
    with pytest.raises(ValueError, match="n_fit must be a non-negative integer"):
        P.split_configs(space, 30, -1)


def test_bad_input_is_named():
    configs = list(itertools.product(*SPACE.values()))
    seconds = [additive_fn(c) for c in configs]
    with pytest.raises(ValueError, match=r"unknown latency predictor 'ridge'.*'additive', 'regression', 'context'"):
        P.fit_predictor("ridge", configs, seconds, SPACE)
    with pytest.raises(ValueError, match="unknown latency predictor"):
        P.check_predictor("lasso")
    assert P.check_predictor("additive") == "additive"
    with pytest.raises(ValueError, match="'additive' is not fitted"):
        P.fit_predictor("additive", configs, seconds, SPACE)
    with pytest.raises(ValueError, match=r"9 coefficients .* at least 9 fit configurations .* got 8"):
        P.fit_predictor("context", configs[:8], seconds[:8], SPACE)
    same_c = [c for c in configs if c[2] == 1] * 2  # layer c never at size 4: its coefficient is undetermined
    with pytest.raises(ValueError, match="determine only|needs at least"):
        P.fit_predictor("regression", same_c, [additive_fn(c) for c in same_c], SPACE)
    with pytest.raises(ValueError, match="one measured time per configuration"):
        P.fit_predictor("regression", configs, seconds[:-1], SPACE)
    with pytest.raises(ValueError, match="finite and positive"):
        P.fit_predictor("regression", configs, [0.0] + seconds[1:], SPACE)
    with pytest.raises(ValueError, match="group size 3"):
        P.design_matrix([(1, 3, 1)], SPACE, "regression")


# ----------------------------------------------------------------------------- the per-row target


@pytest.mark.parametrize("err, rho, ceiling, noise, expected", [
    (0.05, 0.80, 0.84, 0.04, "yes"),                      # within 0.05 of the ceiling
    (0.10, 0.79, 0.84, 0.10, "yes"),                      # both bounds inclusive
    (0.11, 0.95, 0.84, 0.04, "no"),                       # error too large
    (0.05, 0.78, 0.84, 0.04, "no"),                       # more than 0.05 below the ceiling
    (0.30, 0.10, 0.84, 0.123, "not applicable: repeats disagree by 12.3 %"),
])
def test_holds(err, rho, ceiling, noise, expected):
    row = {"median_abs_rel_error": err, "spearman": rho, "spearman_repeat": ceiling, "repeat_rel_diff": noise}
    assert P.holds(row) == expected


def test_cover_pairs_adds_every_missing_neighbour_pair_and_never_a_validation_config():
    space = search_space(random_gross(four_layer_net(), seed=0))
    val, fit = P.split_configs(space, 30, 20, seed=0)
    covered = P.cover_pairs(space, fit, exclude=val, seed=0)
    assert covered[:20] == fit and len(set(covered)) == len(covered) and not set(covered) & set(val)
    sizes = list(space.values())
    for l in range(1, len(sizes)):
        assert {(c[l - 1], c[l]) for c in covered} == set(itertools.product(sizes[l - 1], sizes[l]))
    assert P.cover_pairs(space, covered, exclude=val, seed=1) == covered  # nothing missing: nothing added


def test_complete_fit_makes_a_rank_deficient_draw_determine_every_coefficient():
    space = search_space(random_gross(four_layer_net(), seed=0))
    sizes = list(space.values())
    val, _ = P.split_configs(space, 30, 0, seed=0)
    # a fit set in which the last layer never takes its largest size and layer 1 only two sizes: rank-deficient
    deficient = [c for c in P.split_configs(space, 30, 150, seed=2)[1]
                 if c[2] != sizes[2][-1] and c[0] in sizes[0][:2] and c not in val]
    for predictor in ("regression", "context"):
        p = P.n_features(space, predictor)
        assert np.linalg.matrix_rank(P.design_matrix(deficient, space, predictor)) < p
        with pytest.raises(ValueError, match="determine only|needs at least"):
            P.fit_predictor(predictor, deficient, [1.0] * len(deficient), space)
        done = P.complete_fit(space, deficient, predictor, exclude=val, seed=0)
        assert done[:len(deficient)] == [tuple(c) for c in deficient]  # only appended
        added = done[len(deficient):]
        assert len(set(done)) == len(done) and not set(added) & set(val)
        assert np.linalg.matrix_rank(P.design_matrix(done, space, predictor)) == p
        assert 0 < len(added) <= p  # each added configuration raised the rank
        assert P.complete_fit(space, done, predictor, exclude=val, seed=1) == done  # full rank: nothing added
        # the additive truth is recovered from the completed fit set
        fitted = P.fit_predictor(predictor, done, [additive_fn(c) for c in done], space)
        assert np.allclose(fitted.predict_many(val), [additive_fn(c) for c in val], rtol=1e-12, atol=0)
