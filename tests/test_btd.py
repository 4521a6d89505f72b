"""Tests for gross.method.btd: BTD of a conv weight into a P/R/Q grouped bottleneck."""

import importlib

import pytest
import torch
import torch.nn.functional as F

from gross.method.btd import METHODS, BTDResult, btd, reconstruct

btd_module = importlib.import_module("gross.method.btd")  # the module: ``gross.method.btd`` is re-exported as the function
core_module = importlib.import_module("gross.method.btd_core")  # the core (block-diagonal) LS update and its constants


@pytest.fixture(autouse=True)
def _single_thread():
    # The test machine is shared; oversubscribed OpenMP threads slow small linear
    # algebra down by more than an order of magnitude.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _weight(u, t, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(u, t, k, k, generator=gen, dtype=torch.float64)


def _relative_error(weight, result):
    return float(torch.linalg.vector_norm(weight - reconstruct(result.P, result.R, result.Q)) / weight.norm())


def _non_increasing(errors):
    return all(b <= a for a, b in zip(errors, errors[1:]))


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("u, t, width, s", [(6, 8, None, 2), (10, 6, 12, 3), (8, 8, 4, 4), (5, 7, 7, 1)])
def test_shapes_dtype_and_device(u, t, width, s):
    weight = _weight(u, t).float()  # any float dtype in, float64 CPU out
    result = btd(weight, s, width=width, max_iter=3)
    w = t if width is None else width
    assert isinstance(result, BTDResult)
    assert result.P.shape == (w, t, 1, 1)
    assert result.R.shape == (w, s, 3, 3)
    assert result.Q.shape == (u, w, 1, 1)
    for tensor in result[:3]:
        assert tensor.dtype == torch.float64 and tensor.device.type == "cpu"
    assert all(isinstance(e, float) for e in result.errors)
    assert 1 <= len(result.errors) <= 4


def test_non_square_kernel():
    weight = torch.randn(6, 4, 3, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    result = btd(weight, 2, max_iter=20)
    assert result.R.shape == (4, 2, 3, 1)
    assert result.errors[-1] == pytest.approx(_relative_error(weight, result), abs=1e-12)


# --------------------------------------------------------------------- error history


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("s", [1, 2, 4])
def test_error_history_non_increasing_and_matches_factors(method, s):
    weight = _weight(8, 8, seed=s)
    max_iter = 300 if method == "als" else 15
    result = btd(weight, s, tol=1e-7, max_iter=max_iter, method=method)
    assert len(result.errors) >= 3
    assert _non_increasing(result.errors), result.errors
    assert result.errors[-1] < result.errors[0]
    # The last reported error is the error of the returned factors.
    assert result.errors[-1] == pytest.approx(_relative_error(weight, result), abs=1e-10)


def test_stops_when_decrease_below_tol():
    weight = _weight(8, 8, seed=3)
    loose = btd(weight, 2, tol=1e-2)
    tight = btd(weight, 2, tol=1e-7)
    assert len(loose.errors) < len(tight.errors)
    assert loose.errors[-2] - loose.errors[-1] < 1e-2
    assert all(a - b >= 1e-2 for a, b in zip(loose.errors[:-2], loose.errors[1:-1]))
    assert tight.errors[-1] <= loose.errors[-1]


def test_max_iter_limits_sweeps():
    result = btd(_weight(8, 8), 2, tol=1e-12, max_iter=4)
    assert len(result.errors) == 5
    assert btd(_weight(8, 8), 2, max_iter=0).errors == result.errors[:1]


# ------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("u, t", [(8, 8), (5, 8)])
def test_full_block_rank_is_exact(method, u, t):
    # group size = width = t and u <= t: a single Tucker-2 term of full rank.
    weight = _weight(u, t, seed=u)
    result = btd(weight, t, method=method, max_iter=5)
    assert result.errors[-1] <= 1e-10
    assert _relative_error(weight, result) <= 1e-10


def test_depthwise_of_diagonal_weight_is_exact():
    # A weight that is exactly a BTD with s = 1 (Q diag(r) P per kernel tap) is
    # recovered to (near) machine precision.
    gen = torch.Generator().manual_seed(4)
    P = torch.randn(6, 6, 1, 1, generator=gen, dtype=torch.float64)
    R = torch.randn(6, 1, 3, 3, generator=gen, dtype=torch.float64)
    Q = torch.randn(7, 6, 1, 1, generator=gen, dtype=torch.float64)
    weight = reconstruct(P, R, Q)
    result = btd(weight, 1, tol=1e-14, max_iter=3000)
    assert _relative_error(weight, result) < 1e-6


# ------------------------------------------------------------------------ bottleneck


def test_reconstruct_matches_independent_sum_over_blocks():
    gen = torch.Generator().manual_seed(5)
    width, s, t, u = 6, 2, 5, 4
    P = torch.randn(width, t, 1, 1, generator=gen, dtype=torch.float64)
    R = torch.randn(width, s, 3, 3, generator=gen, dtype=torch.float64)
    Q = torch.randn(u, width, 1, 1, generator=gen, dtype=torch.float64)
    expected = torch.zeros(u, t, 3, 3, dtype=torch.float64)
    for o in range(u):
        for i in range(t):
            for a in range(width):
                start = (a // s) * s
                for b in range(s):
                    expected[o, i] += Q[o, a, 0, 0] * R[a, b] * P[start + b, i, 0, 0]
    torch.testing.assert_close(reconstruct(P, R, Q), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "u, t, width, s, stride, padding",
    [(6, 4, None, 2, 1, 1), (6, 4, None, 1, 2, 1), (5, 8, 12, 4, 2, 0), (8, 8, 4, 2, 1, 2)],
)
def test_bottleneck_convs_equal_conv_with_reconstructed_weight(u, t, width, s, stride, padding):
    weight = _weight(u, t, seed=6)
    result = btd(weight, s, width=width, max_iter=10)
    w = t if width is None else width
    bias = torch.randn(u, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    x = torch.randn(2, t, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    y = F.conv2d(x, result.P)
    y = F.conv2d(y, result.R, stride=stride, padding=padding, groups=w // s)
    y = F.conv2d(y, result.Q, bias=bias)
    dense = F.conv2d(x, reconstruct(result.P, result.R, result.Q), bias=bias, stride=stride, padding=padding)
    torch.testing.assert_close(y, dense, rtol=1e-10, atol=1e-10)
    # ... and the BTD approximates the original layer to the reported error.
    original = F.conv2d(x, weight, bias=bias, stride=stride, padding=padding)
    assert float((dense - original).norm() / original.norm()) < 1.0


# ------------------------------------------------------------------- ALS vs reference


@pytest.mark.parametrize("s", [4, 8])
def test_als_reaches_hooi_error(s):
    weight = _weight(16, 16, seed=10 + s)
    hooi = btd(weight, s, method="hooi", tol=1e-5, max_iter=40)
    als = btd(weight, s, method="als", tol=1e-6)
    assert _non_increasing(hooi.errors)
    assert als.errors[-1] <= hooi.errors[-1] + 2e-3


@pytest.mark.parametrize("s", [1, 4])
def test_cg_core_path_is_monotone_and_reaches_direct_path(monkeypatch, s):
    weight = _weight(12, 12, seed=11)
    direct = btd(weight, s, tol=1e-6)
    monkeypatch.setattr(core_module, "_DIRECT_CORE_UNKNOWNS", 0)
    monkeypatch.setattr(core_module, "_DIRECT_CORE_UNKNOWNS_DIAGONAL", 0)
    cg = btd(weight, s, tol=1e-6)
    assert _non_increasing(cg.errors)
    assert cg.errors[-1] <= direct.errors[-1] + 5e-3
    assert cg.errors[-1] == pytest.approx(_relative_error(weight, cg), abs=1e-10)


# -------------------------------------------------------- exactness of the LS steps


def _random_state(u=7, t=6, n=3, s=2, K=4, seed=12):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(K, u, t, generator=gen, dtype=torch.float64)
    C = torch.randn(u, n * s, generator=gen, dtype=torch.float64)
    B = torch.randn(t, n * s, generator=gen, dtype=torch.float64)
    G = torch.randn(K, n, s, s, generator=gen, dtype=torch.float64)
    return X, C, B, G


def _objective(X, C, B, G):
    return ((X - btd_module._model(C, B, G)) ** 2).sum()


def _gradient(X, C, B, G, wrt):
    args = {"C": C.clone(), "B": B.clone(), "G": G.clone()}
    args[wrt].requires_grad_(True)
    _objective(X, **args).backward()
    return args[wrt].grad


@pytest.mark.parametrize("n, s", [(3, 2), (5, 1), (1, 3)])
def test_factor_updates_are_least_squares_minimisers(n, s):
    X, C, B, G = _random_state(n=n, s=s)
    C_new = btd_module._update_left(X @ B, G, B.t() @ B)
    assert float(_gradient(X, C_new, B, G, "C").abs().max()) < 1e-9
    assert float(_gradient(X, C, B, G, "C").abs().max()) > 1e-3  # the test can fail
    B_new = btd_module._update_right(X.transpose(1, 2) @ C, G, C.t() @ C)
    assert float(_gradient(X, C, B_new, G, "B").abs().max()) < 1e-9


@pytest.mark.parametrize("ridge", [0.0, 0.3])
@pytest.mark.parametrize("n, s", [(3, 2), (5, 1), (1, 3)])
@pytest.mark.parametrize("direct_unknowns, cg_iters", [(10_000, 10), (0, 500)])
def test_core_solve_matches_explicit_kronecker_least_squares(monkeypatch, direct_unknowns, cg_iters, n, s, ridge):
    monkeypatch.setattr(core_module, "_DIRECT_CORE_UNKNOWNS", direct_unknowns)
    monkeypatch.setattr(core_module, "_DIRECT_CORE_UNKNOWNS_DIAGONAL", direct_unknowns)
    monkeypatch.setattr(core_module, "_CG_MAX_ITER", cg_iters)
    monkeypatch.setattr(core_module, "_CG_RTOL", 1e-13)
    monkeypatch.setattr(core_module, "_CG_REFINEMENTS", 8)  # float32 CG corrections refined to float64 accuracy
    X, C, B, G = _random_state(n=n, s=s)
    K = G.shape[0]
    T = core_module._core_rhs(C, X @ B, n, s)
    G_new = core_module._solve_core(T, C.t() @ C, B.t() @ B, G, ridge)
    # Independent: vec(C D B^T) = (B kron C) vec(D), restricted to the block diagonal;
    # the ridge as extra rows sqrt(ridge) I with zero targets.
    columns = []
    for r in range(n):
        for a in range(s):
            for b in range(s):
                columns.append(torch.outer(C[:, r * s + a], B[:, r * s + b]).reshape(-1))
    design = torch.stack(columns, dim=1)
    targets = X.reshape(K, -1).t()
    design = torch.cat([design, ridge**0.5 * torch.eye(design.shape[1], dtype=design.dtype)])
    targets = torch.cat([targets, targets.new_zeros(design.shape[1], K)])
    expected = torch.linalg.lstsq(design, targets).solution.t().reshape(K, n, s, s)
    torch.testing.assert_close(G_new, expected, rtol=1e-8, atol=1e-8)


# ------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_for_fixed_seed(method):
    weight = _weight(6, 6, seed=13)
    a = btd(weight, 2, seed=3, max_iter=5, method=method)
    b = btd(weight, 2, seed=3, max_iter=5, method=method)
    for x, y in zip(a[:3], b[:3]):
        assert torch.equal(x, y)
    assert a.errors == b.errors


def test_seed_changes_initialisation():
    weight = _weight(6, 6, seed=13)
    a = btd(weight, 2, seed=0, max_iter=0)
    b = btd(weight, 2, seed=1, max_iter=0)
    assert not torch.allclose(a.P, b.P)


def test_zero_weight():
    result = btd(torch.zeros(4, 4, 3, 3), 2)
    assert result.errors == [0.0]
    assert float(reconstruct(result.P, result.R, result.Q).abs().max()) == 0.0


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weight": torch.zeros(4, 4, 3)}, "4-D conv weight"),
        ({"weight": torch.zeros(4, 0, 3, 3)}, "non-empty"),
        ({"weight": torch.zeros(4, 4, 3, 3, dtype=torch.int64)}, "floating-point"),
        ({"weight": torch.ones(4, 4, 3, 3).index_fill_(0, torch.tensor([1]), float("nan"))},
         r"weight contains 36 NaN and 0 infinite value\(s\) \(of 144, shape \(4, 4, 3, 3\)\): BTD needs a finite weight"),
        ({"weight": torch.ones(4, 4, 3, 3).index_fill_(1, torch.tensor([0]), float("-inf"))},
         r"weight contains 0 NaN and 36 infinite value\(s\)"),
        ({"progress": "yes"}, r"progress must be None, a bool or a callable"),
        ({"group_size": 3}, r"group size 3 does not divide the bottleneck width 4: allowed group sizes are \(1, 2, 4\)"),
        ({"group_size": 0}, "group_size must be a positive integer"),
        ({"group_size": 2, "width": 0}, "width must be a positive integer"),
        ({"group_size": 4, "width": 6}, r"allowed group sizes are \(1, 2, 3, 6\)"),
        ({"tol": 0.0}, "tol must be > 0"),
        ({"tol": -1e-3}, "tol must be > 0"),
        ({"max_iter": -1}, "max_iter must be a non-negative integer"),
        ({"method": "cp"}, r"unknown method 'cp': expected one of \('als', 'hooi'\)"),
        ({"ridge": -1e-3}, "ridge must be a non-negative number, got -0.001"),
        ({"n_init": 0}, "n_init must be a positive integer, got 0"),
        ({"n_init": 2, "method": "hooi"}, r"n_init=2 is supported by method='als' only"),
        ({"ridge": 1e-3, "method": "hooi"}, r"ridge=0.001 is supported by method='als' only"),
    ],
)
def test_btd_value_errors(kwargs, message):
    args = {"weight": torch.ones(4, 4, 3, 3), "group_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        btd(**args)


def test_reconstruct_value_errors():
    P, R, Q = torch.zeros(4, 3, 1, 1), torch.zeros(4, 2, 3, 3), torch.zeros(5, 4, 1, 1)
    with pytest.raises(ValueError, match="P must be a 4-D conv weight"):
        reconstruct(P[:, :, 0], R, Q)
    with pytest.raises(ValueError, match="must be 1x1 conv weights"):
        reconstruct(torch.zeros(4, 3, 3, 3), R, Q)
    with pytest.raises(ValueError, match="bottleneck widths disagree"):
        reconstruct(P, R, torch.zeros(5, 6, 1, 1))
    with pytest.raises(ValueError, match="not divisible by its number of groups width / s = 6 / 2 = 3"):
        reconstruct(torch.zeros(6, 3, 1, 1), R, Q)
    with pytest.raises(ValueError, match="group size 3 must divide"):
        reconstruct(P, torch.zeros(4, 3, 3, 3), Q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_weight_gives_the_cpu_decomposition(method):  # pragma: no cover
    weight = _weight(8, 8)
    cpu = btd(weight, 2, max_iter=5, method=method)
    gpu = btd(weight.cuda(), 2, max_iter=5, method=method)
    assert all(t.device.type == "cpu" for t in gpu[:3])
    assert gpu.errors == pytest.approx(cpu.errors, abs=1e-9)
    torch.testing.assert_close(reconstruct(*gpu[:3]), reconstruct(*cpu[:3]), atol=1e-8, rtol=1e-8)


def test_ridge_bounds_the_core_of_a_degenerating_decomposition():
    # A rank-deficient-looking random tensor run to a tight tolerance: the plain BTD
    # lets blocks grow and cancel; the ridge keeps the core near the tensor's scale.
    weight = _weight(12, 12, seed=3)
    plain = btd(weight, 1, tol=1e-9, max_iter=3000)
    ridged = btd(weight, 1, tol=1e-9, max_iter=3000, ridge=1e-3)
    ratio = lambda r: float(r.R.norm() / weight.norm())  # noqa: E731
    assert ratio(ridged) < ratio(plain)
    assert ratio(ridged) < 5
    assert ridged.errors[-1] >= plain.errors[-1] - 1e-12  # the ridge costs (a little) error
    assert ridged.errors[-1] < plain.errors[-1] + 0.05
    assert ridged.errors[-1] == pytest.approx(_relative_error(weight, ridged), abs=1e-10)


def test_n_init_keeps_the_best_start():
    weight = _weight(10, 8, seed=21)
    singles = [btd(weight, 2, tol=1e-6, seed=sd) for sd in (5, 6, 7)]
    best = btd(weight, 2, tol=1e-6, seed=5, n_init=3)
    assert best.errors[-1] == min(r.errors[-1] for r in singles)
    assert best.errors == min(singles, key=lambda r: r.errors[-1]).errors


# ---------------------------------------------------------------------------- progress


@pytest.mark.parametrize("method", METHODS)
def test_progress_callback_sees_every_sweep(method):
    weight = _weight(6, 6, seed=13)
    seen = []
    result = btd(weight, 2, max_iter=5, method=method, progress=lambda s, sweep, err: seen.append((s, sweep, err)))
    assert seen == [(2, i, e) for i, e in enumerate(result.errors)]
    plain = btd(weight, 2, max_iter=5, method=method, progress=False)
    assert plain.errors == result.errors and torch.equal(plain.R, result.R)  # reporting changes nothing


def test_progress_bar_silent_off_a_terminal_and_shown_when_asked(capfd):
    weight = _weight(6, 6, seed=13)
    btd(weight, 2, max_iter=3)  # default progress=None: stderr is captured (not a terminal)
    assert capfd.readouterr().err == ""
    btd(weight, 2, max_iter=3, progress=True)
    err = capfd.readouterr().err
    assert "BTD s=2 width=6" in err and "sweep" in err


# --------------------------------------------------------------------------- asymmetric bottleneck (Wang et al. [26])


def _pci_reference(weight, groups, widths, iters=40, min_step=1e-5):
    """Independent BTD: the GroSS authors' block-wise Tucker-2 residual iteration (``engine/btd.py::pci``).

    Each of the ``groups`` blocks is a tensorly ``partial_tucker`` (HOOI with its default SVD start
    and stopping rule) of the residual of the other blocks, with ranks ``(w_out / groups,
    w_in / groups)`` in the (output, input) channel modes, repeated until the error falls by
    less than ``min_step`` (the authors' ``MIN_STEP``). Returns the dense approximation and its error.
    """
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    w_in, w_out = widths
    rank = [w_out // groups, w_in // groups]
    X = weight.detach().to(torch.float64)
    blocks = [torch.zeros_like(X) for _ in range(groups)]
    last = float("inf")
    with tl.backend_context("pytorch"):
        for _ in range(iters):
            for i in range(groups):
                residual = X - (sum(blocks) - blocks[i])
                (core, factors), _ = partial_tucker(residual, rank=rank, modes=[0, 1])
                blocks[i] = torch.einsum("abhw,ua,tb->uthw", core, factors[0], factors[1])
            error = float((X - sum(blocks)).norm() / X.norm())
            if abs(last - error) <= min_step:
                break
            last = error
    return sum(blocks), error


def _block_term_weight(u, t, groups, widths, k=3, seed=0):
    """A weight that is exactly a sum of ``groups`` Tucker-2 blocks of ranks (w_out/groups, w_in/groups)."""
    gen = torch.Generator().manual_seed(seed)
    so, si = widths[1] // groups, widths[0] // groups
    return sum(torch.einsum("abhw,ua,tb->uthw", torch.randn(so, si, k, k, generator=gen, dtype=torch.float64),
                            torch.randn(u, so, generator=gen, dtype=torch.float64),
                            torch.randn(t, si, generator=gen, dtype=torch.float64)) for _ in range(groups))


@pytest.mark.parametrize("widths, s", [((4, 6), 2), ((6, 4), 3), ((4, 8), 1)])
def test_asymmetric_btd_recovers_an_exact_block_term_tensor(widths, s):
    groups = widths[0] // s
    weight = _block_term_weight(10, 8, groups, widths)
    result = btd(weight, s, width=widths, tol=1e-14, max_iter=2000, progress=False)
    assert result.P.shape == (widths[0], 8, 1, 1)
    assert result.R.shape == (widths[1], s, 3, 3)
    assert result.Q.shape == (10, widths[1], 1, 1)
    assert _relative_error(weight, result) < 1e-10  # measured: below 2e-14


@pytest.mark.parametrize("method", METHODS)
def test_asymmetric_single_block_equals_the_reference_tucker2(method):
    # one group of ranks (7, 5): every solver must find the Tucker-2 (HOOI) optimum the reference finds, up to the
    # reference's own stopping rule (measured, ALS: 0.6358354 vs the reference's 0.6358378)
    weight = _weight(12, 8, seed=5)
    _, reference = _pci_reference(weight, 1, (5, 7), min_step=1e-9)
    result = btd(weight, 5, width=(5, 7), method=method, tol=1e-12, max_iter=200, progress=False)
    assert result.errors[-1] == pytest.approx(reference, abs=1e-4)
    assert result.errors[-1] <= reference + 1e-6


@pytest.mark.parametrize("widths, s", [((8, 12), 4), ((8, 4), 4), ((6, 9), 2)])
def test_asymmetric_btd_matches_the_blockwise_tucker2_iteration_on_random_weights(widths, s):
    # Both are local minimisers of the same objective: ALS must reach the reference's error (measured: 0.397 vs
    # 0.400, 0.759 vs 0.760, 0.665 vs 0.674); HOOI, the same block iteration with 10 inner HOOI steps and an
    # accept-if-better rule, stays within 0.02 of it after 15 sweeps (measured: 0.012, 0.0002, 0.002).
    weight = _weight(12, 8, seed=3)
    groups = widths[0] // s
    _, reference = _pci_reference(weight, groups, widths)
    als = btd(weight, s, width=widths, tol=1e-10, max_iter=2000, progress=False, n_init=3)
    hooi = btd(weight, s, width=widths, method="hooi", tol=1e-5, max_iter=15, progress=False)
    assert als.errors[-1] <= reference + 1e-6
    assert abs(hooi.errors[-1] - reference) <= 0.02
    # each stated error is the error of the returned factors (independent dense reconstruction)
    for r in (als, hooi):
        assert _relative_error(weight, r) == pytest.approx(r.errors[-1], abs=1e-10)


def test_asymmetric_btd_full_rank_is_exact():
    weight = _weight(6, 5, seed=1)
    result = btd(weight, 5, width=(5, 6), tol=1e-12, progress=False)  # one block of rank (u, t)
    assert _relative_error(weight, result) < 1e-12


def test_asymmetric_reconstruct_equals_the_grouped_bottleneck():
    gen = torch.Generator().manual_seed(0)
    P = torch.randn(6, 5, 1, 1, generator=gen, dtype=torch.float64)
    R = torch.randn(9, 2, 3, 3, generator=gen, dtype=torch.float64)  # 6 -> 9, 3 groups
    Q = torch.randn(4, 9, 1, 1, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 5, 7, 7, generator=gen, dtype=torch.float64)
    y = F.conv2d(F.conv2d(F.conv2d(x, P), R, groups=3, padding=1), Q)
    torch.testing.assert_close(F.conv2d(x, reconstruct(P, R, Q), padding=1), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("width, s, message", [
    ((8, 6), 2, r"output width 6 is not divisible by the number of groups .* 8 / 2 = 4: group sizes valid for widths \(8, 6\) are \(4, 8\)"),
    ((8, 12), 3, "group size 3 does not divide the bottleneck width 8"),
    ((8, 0), 2, "width must be a positive integer or a pair"),
    ((8, 12, 3), 2, "width must be a positive integer or a pair"),
])
def test_asymmetric_btd_errors(width, s, message):
    with pytest.raises(ValueError, match=message):
        btd(_weight(6, 8), s, width=width, progress=False)
