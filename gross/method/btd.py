"""Block Term Decomposition (BTD) of a convolution weight into a grouped bottleneck.

A convolution weight ``X`` of shape ``(u, t, kh, kw)`` (PyTorch layout: ``u`` output
channels, ``t`` input channels) is approximated by a sum of ``n = width // s``
rank-``(s, s)`` Tucker-2 terms (paper Sec. 3.1-3.2, Eq. 2)::

    X ~= sum_r  G_r  x_u C_r  x_t B_r ,   C_r: (u, s),  B_r: (t, s),  G_r: (s, s, kh, kw)

which is exactly a three-layer bottleneck (paper Table 1, Fig. 1)::

    P = B^T            1x1 conv, t -> width, no bias
    R = blockdiag(G_r) kh x kw conv, width -> width, groups = n, stride/padding of X
    Q = C              1x1 conv, width -> u, bias of X

so that ``reconstruct(P, R, Q)`` (``Q @ blockdiag(R) @ P`` per kernel tap) is the
approximated dense weight.

Asymmetric bottleneck. ``width`` may be a pair ``(width, width_out)`` (the structure of
Wang et al. [26]): ``P`` maps ``t -> width``, the grouped ``R`` maps ``width -> width_out``
with ``n = width // s`` groups and ``Q`` maps ``width_out -> u``; every block is then a
Tucker-2 term of multilinear rank ``(width_out / n, s)`` (output, input channel mode).
A single int means ``width_out = width`` (the paper's symmetric bottleneck).

Two solvers are provided. ``method="hooi"`` is the reference the paper describes
(block-coordinate descent with tensorly, each block a ``partial_tucker`` (HOOI) of the
residual of the other blocks). ``method="als"`` (default) is an alternating
least-squares solver that updates all ``C`` at once, all ``B`` at once and then the
block-diagonal core, the factors by exact least squares and the core exactly when a
direct solve is cheap, otherwise by a few warm-started preconditioned conjugate-gradient
iterations (in float32, as a correction to the float64 residual); one sweep costs about
two passes over the tensor instead of one HOOI per block. The core update lives in
:mod:`gross.method.btd_core`, the HOOI reference in :mod:`gross.method.btd_hooi`.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm import tqdm

from gross.method.btd_core import _core_operator, _core_rhs, _psd_solve, _solve_core

__all__ = ["BTDResult", "METHODS", "btd", "reconstruct"]

#: Solvers accepted by :func:`btd`.
METHODS = ("als", "hooi")

# Below this squared relative error the cheap (expanded) error formula loses
# precision to cancellation and the error is recomputed from the dense model.
_DIRECT_ERROR_BELOW = 1e-4
# Extrapolation of the factors after each sweep: (initial step, growth on success,
# shrink on failure, maximum step).
_EXTRAPOLATION = (1.0, 1.1, 2.0, 2.0)


class BTDResult(NamedTuple):
    """Grouped-bottleneck factors of a BTD.

    Attributes
    ----------
    P : Tensor
        ``(width, t, 1, 1)`` weight of the first 1x1 convolution (factor ``B^T``).
    R : Tensor
        ``(width_out, s, kh, kw)`` weight of the grouped convolution with
        ``groups = width // s`` (block-diagonal core; ``width_out = width`` unless
        an asymmetric bottleneck was asked for).
    Q : Tensor
        ``(u, width_out, 1, 1)`` weight of the last 1x1 convolution (factor ``C``).
    errors : list of float
        Relative error ``||X - X_hat||_F / ||X||_F`` of the initialisation followed
        by one entry per completed sweep; non-increasing.
    """

    P: Tensor
    R: Tensor
    Q: Tensor
    errors: list[float]


# ---------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------


def reconstruct(P: Tensor, R: Tensor, Q: Tensor) -> Tensor:
    """Dense convolution weight of a P/R/Q grouped bottleneck.

    Parameters
    ----------
    P : Tensor
        ``(width, t, 1, 1)`` first 1x1 convolution weight.
    R : Tensor
        ``(width_out, s, kh, kw)`` grouped convolution weight, ``groups = width // s``
        (``width_out = width`` for the symmetric bottleneck).
    Q : Tensor
        ``(u, width_out, 1, 1)`` last 1x1 convolution weight.

    Returns
    -------
    Tensor
        ``(u, t, kh, kw)`` weight ``W`` with ``conv(x, W) == Q(R(P(x)))`` (same
        stride, padding and dilation as ``R``; bias belongs to ``Q``).

    Raises
    ------
    ValueError
        If the shapes are not those of a grouped bottleneck.
    """
    for name, tensor in (("P", P), ("R", R), ("Q", Q)):
        if tensor.dim() != 4:
            raise ValueError(f"{name} must be a 4-D conv weight, got shape {tuple(tensor.shape)}")
    if P.shape[2:] != (1, 1) or Q.shape[2:] != (1, 1):
        raise ValueError(
            f"P and Q must be 1x1 conv weights, got P {tuple(P.shape)} and Q {tuple(Q.shape)}"
        )
    width, width_out, s = P.shape[0], R.shape[0], R.shape[1]
    if Q.shape[1] != width_out:
        raise ValueError(
            f"bottleneck widths disagree: R has {width_out} output channels and Q has {Q.shape[1]} "
            f"input channels; they must be equal"
        )
    if s < 1 or width % s:
        raise ValueError(
            f"P has {width} output channels and R group size {s}: group size {s} must divide "
            f"the width {width}"
        )
    n = width // s
    if width_out % n:
        raise ValueError(
            f"R has {width_out} output channels, not divisible by its number of groups "
            f"width / s = {width} / {s} = {n}"
        )
    so = width_out // n
    # Dense (width_out, width, kh, kw) weight of the grouped convolution.
    dense_r = R.new_zeros((width_out, width) + tuple(R.shape[2:]))
    for group in range(n):
        dense_r[group * so:(group + 1) * so, group * s:(group + 1) * s] = R[group * so:(group + 1) * so]
    return torch.einsum("oa,abhw,bi->oihw", Q[:, :, 0, 0], dense_r, P[:, :, 0, 0])


def btd(
    weight: Tensor,
    group_size: int,
    width: int | tuple[int, int] | None = None,
    tol: float = 1e-6,
    max_iter: int = 500_000,
    seed: int = 0,
    method: str = "als",
    ridge: float = 0.0,
    n_init: int = 1,
    progress=None,
) -> BTDResult:
    """Block Term Decomposition of a conv weight into a grouped bottleneck.

    Approximates ``weight`` (``(u, t, kh, kw)``) by ``width // group_size`` Tucker-2
    terms of multilinear rank ``(group_size, group_size)`` in the channel modes
    (paper Eq. 2) and returns them as the weights of a P (1x1) -> R (grouped k x k)
    -> Q (1x1) bottleneck (paper Table 1).

    Parameters
    ----------
    weight : Tensor
        ``(u, t, kh, kw)`` convolution weight, any float dtype and device. The
        decomposition is computed in float64 on the weight's device.
    group_size : int
        Channels per group ``s`` of the grouped convolution (the block rank).
    width : int or (int, int), optional
        Bottleneck width (channels between P and Q); defaults to ``t``. May be
        smaller or larger than ``t``; must be a multiple of ``group_size``. A pair
        ``(width, width_out)`` gives an asymmetric bottleneck: ``R`` maps ``width``
        to ``width_out`` channels with ``width // group_size`` groups, each block of
        rank ``(width_out * group_size / width, group_size)``; ``width_out`` must be
        divisible by the number of groups.
    tol : float, default 1e-6
        Stop when the relative error decreases by less than ``tol`` in one sweep.
    max_iter : int, default 500_000
        Maximum number of sweeps.
    seed : int, default 0
        Seed of the initialisation.
    method : {"als", "hooi"}, default "als"
        ``"als"``: fast alternating least squares over all factors and the
        block-diagonal core. ``"hooi"``: reference block-coordinate descent, each
        block a tensorly ``partial_tucker`` (HOOI) of the residual of the others.
    ridge : float, default 0.0
        Tikhonov weight ``lambda`` of the ALS core: minimise
        ``||X - X_hat||^2 + lambda ||G||^2`` (blocks of ``P`` and ``Q`` have
        orthonormal columns, so ``||G||`` is the scale of the bottleneck). ``0`` is
        the plain least-squares BTD of the paper. Run to a tight ``tol``, the plain
        BTD can drift into a degenerate solution (blocks that grow large and cancel;
        ``||R||`` tens of times ``||X||``) that makes GroSS fine-tuning diverge; a
        small ridge (``1e-3``) prevents it at a small cost in error. ALS only.
    n_init : int, default 1
        ALS only: run from ``n_init`` initialisations (seeds ``seed, seed + 1, ...``) and
        keep the one with the lowest final objective. ALS finds local minima; a few
        starts cost little for small layers (see the README for measurements).
    progress : bool, callable or None, default None
        A tqdm bar of sweeps (with the current error): ``None`` shows it only when
        stderr is a terminal, ``True`` always, ``False`` never.  A callable
        ``progress(group_size, sweep, error)`` is called instead after the
        initialisation (sweep 0) and every sweep (:func:`gross.decompose` uses this
        for its own bar).

    Returns
    -------
    BTDResult
        ``P (width, t, 1, 1)``, ``R (width_out, s, kh, kw)``, ``Q (u, width_out, 1, 1)``
        (float64, CPU) and the non-increasing relative-error history ``errors``
        (initialisation first, then one entry per sweep; with ``ridge > 0`` the
        regularised objective, not the error, is the non-increasing quantity).

    Raises
    ------
    ValueError
        On a weight that is not 4-D, empty or holds NaN/inf values, a group size or width that is not a
        positive integer, a group size that does not divide the width, a
        non-positive ``tol``, a negative ``max_iter``, an unknown ``method`` or a
        negative ``ridge`` (or a positive one with ``method="hooi"``) or an ``n_init``
        that is not a positive integer (or above 1 with ``method="hooi"``).

    Notes
    -----
    Stride and padding of the original convolution belong to the grouped
    convolution ``R`` and its bias to ``Q`` (paper Table 1).
    """
    width, width_out = _check_args(weight, group_size, width, tol, max_iter, method, ridge, n_init, progress)
    u, t, kh, kw = weight.shape
    # (K, u, t): one (u, t) matrix per kernel tap.
    X = weight.detach().to(torch.float64).permute(2, 3, 0, 1).reshape(kh * kw, u, t).contiguous()
    n = width // group_size
    blocks = (n, width_out // n, group_size)  # groups, output rank, input rank per block
    label = width if width_out == width else f"({width}, {width_out})"
    with _sweep_reporter(progress, group_size, label) as on_sweep:
        if method == "als":
            best, norm2 = None, (X * X).sum()
            for start in range(n_init):
                run = _als(X, blocks, tol, max_iter, seed + start, float(ridge), on_sweep)
                objective = _objective(run[3][-1], run[2], float(ridge), norm2)
                if best is None or objective < best[0]:
                    best = (objective, run)
            C, B, G, errors = best[1]
        else:
            from gross.method.btd_hooi import _hooi

            C, B, G, errors = _hooi(X, blocks, tol, max_iter, seed, on_sweep)
    P, R, Q = _to_bottleneck(C, B, G, kh, kw)
    return BTDResult(P.cpu(), R.cpu(), Q.cpu(), [float(e) for e in errors])


@contextlib.contextmanager
def _sweep_reporter(progress, group_size: int, width):
    """The ``on_sweep(sweep, error)`` callback of one :func:`btd` call (see its ``progress``).

    ``progress`` callable: forwards ``(group_size, sweep, error)`` to it.  Otherwise a
    tqdm bar of sweeps with the error as postfix, shown only on a terminal when
    ``progress`` is None (tqdm's ``disable=None``), never when False.
    """
    if callable(progress):
        yield lambda sweep, error: progress(group_size, sweep, error)
        return
    with tqdm(desc=f"BTD s={group_size} width={width}", unit="sweep", leave=False,
              disable=None if progress is None else not progress) as bar:

        def on_sweep(sweep: int, error: float) -> None:
            bar.set_postfix_str(f"sweep {sweep}, error {error:.3e}", refresh=False)
            bar.update(1)

        yield on_sweep


def _as_widths(width, t: int) -> tuple[int, int]:
    """``(width, width_out)`` from ``None`` (``t``), an int or a pair; non-positive or non-int entries are errors."""
    if width is None:
        return t, t
    pair = tuple(width) if isinstance(width, (tuple, list)) else (width, width)
    if len(pair) != 2 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in pair):
        raise ValueError(f"width must be a positive integer or a pair (width, width_out) of them, got {width!r}")
    return pair


def _check_args(weight, group_size, width, tol, max_iter, method, ridge, n_init, progress) -> tuple[int, int]:
    """Validate the arguments of :func:`btd`; returns the bottleneck widths ``(width, width_out)``."""
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a 4-D conv weight (u, t, kh, kw), got {shape}")
    if weight.numel() == 0:
        raise ValueError(f"weight must be non-empty, got shape {tuple(weight.shape)}")
    if not (weight.is_floating_point()):
        raise ValueError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
    finite = torch.isfinite(weight)
    if not bool(finite.all()):
        nan, bad = int(torch.isnan(weight).sum()), int((~finite).sum())
        raise ValueError(
            f"weight contains {nan} NaN and {bad - nan} infinite value(s) (of {weight.numel()}, shape "
            f"{tuple(weight.shape)}): BTD needs a finite weight; check the model it comes from "
            f"(e.g. a training run that diverged)"
        )
    width, width_out = _as_widths(width, weight.shape[1])
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if width % group_size:
        valid = tuple(d for d in range(1, width + 1) if width % d == 0)
        raise ValueError(
            f"group size {group_size} does not divide the bottleneck width {width}: "
            f"allowed group sizes are {valid}"
        )
    if width_out % (width // group_size):
        n = width // group_size
        valid = tuple(d for d in range(1, width + 1) if width % d == 0 and width_out % (width // d) == 0)
        raise ValueError(
            f"bottleneck output width {width_out} is not divisible by the number of groups "
            f"width / group size = {width} / {group_size} = {n}: group sizes valid for widths "
            f"({width}, {width_out}) are {valid}"
        )
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {METHODS}")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
        raise ValueError(f"ridge must be a non-negative number, got {ridge!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
    if n_init > 1 and method != "als":
        raise ValueError(f"n_init={n_init} is supported by method='als' only")
    if ridge and method != "als":
        raise ValueError(f"ridge={ridge!r} is supported by method='als' only (the reference HOOI is "
                         "unregularised); use ridge=0 (config: btd_ridge = 0) with method='hooi'")
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be None, a bool or a callable(group_size, sweep, error), got {progress!r}")
    return width, width_out


# ---------------------------------------------------------------------------------
# layout helpers
# ---------------------------------------------------------------------------------


def _to_bottleneck(C: Tensor, B: Tensor, G: Tensor, kh: int, kw: int):
    """Factors ``C (u, width_out)``, ``B (t, width)``, core ``G (K, n, so, si)`` -> P, R, Q."""
    K, n, so, si = G.shape
    P = B.t().reshape(n * si, B.shape[0], 1, 1).contiguous()
    R = G.permute(1, 2, 3, 0).reshape(n * so, si, kh, kw).contiguous()
    Q = C.reshape(C.shape[0], n * so, 1, 1).contiguous()
    return P, R, Q


def _model(C: Tensor, B: Tensor, G: Tensor) -> Tensor:
    """Dense ``(K, u, t)`` tensor ``C D_k B^T`` with ``D_k = blockdiag(G[k])``."""
    K, n, so, si = G.shape
    CD = torch.einsum("una,knab->kunb", C.reshape(-1, n, so), G).reshape(K, -1, n * si)
    return CD @ B.t()


def _relative_error(X: Tensor, C: Tensor, B: Tensor, G: Tensor, norm: Tensor) -> float:
    return float(torch.linalg.vector_norm(X - _model(C, B, G)) / norm)


# ---------------------------------------------------------------------------------
# ALS solver
# ---------------------------------------------------------------------------------


def _init_factors(X: Tensor, n: int, s: int, seed: int, s_in: int | None = None):
    """Seeded SVD-based initial factors ``C (u, n s)`` and ``B (t, n s_in)`` (``s_in`` defaults to ``s``).

    The leading singular subspaces of the two channel unfoldings are rotated by a
    seeded random orthogonal matrix and dealt out to the blocks; when the width
    exceeds a channel dimension the remaining columns are seeded Gaussian.
    """
    K, u, t = X.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def basis(unfolding: Tensor, width: int) -> Tensor:
        # Eigenvectors on the CPU (signs and order of eigh differ between devices), so a
        # seed gives the same initialisation on every device.
        dim = unfolding.shape[0]
        evals, evecs = torch.linalg.eigh((unfolding @ unfolding.t()).cpu())
        order = torch.argsort(evals, descending=True)
        m = min(width, dim)
        U = evecs[:, order[:m]]
        U = U @ torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=X.dtype))[0]
        if m < width:
            extra = torch.randn(dim, width - m, generator=gen, dtype=X.dtype)
            U = torch.cat([U, extra / dim**0.5], dim=1)
        return U.to(X.device)

    C = basis(X.permute(1, 0, 2).reshape(u, K * t), n * s)
    B = basis(X.permute(2, 0, 1).reshape(t, K * u), n * (s if s_in is None else s_in))
    return C, B


def _orthonormalise(F: Tensor, G: Tensor, side: str):
    """QR of each block of factor ``F`` with the triangular factor moved into ``G``.

    Leaves the model unchanged; skipped when a block has more columns than rows.
    """
    K, n, so, si = G.shape
    s = so if side == "left" else si
    if s > F.shape[0]:
        return F, G
    Qf, Rf = torch.linalg.qr(F.reshape(F.shape[0], n, s).permute(1, 0, 2))  # (n, dim, s), (n, s, s)
    F = Qf.permute(1, 0, 2).reshape(F.shape[0], n * s)
    if side == "left":  # G_r <- Rf_r G_r
        G = torch.einsum("nac,kncb->knab", Rf, G)
    else:  # G_r <- G_r Rf_r^T
        G = torch.einsum("nbc,knac->knab", Rf, G)
    return F, G


def _update_left(XB: Tensor, G: Tensor, BB: Tensor) -> Tensor:
    """Exact LS update of ``C`` given ``XB[k] = X_k B``, the core and ``BB = B^T B``.

    Solves ``C gram = rhs`` with ``rhs = sum_k X_k B D_k^T`` and
    ``gram = sum_k D_k B^T B D_k^T`` (``D_k = blockdiag(G[k])``).
    """
    K, n, so, si = G.shape
    if so == si == 1:  # diagonal cores: Hadamard products, O(K width^2) with no small-matrix batches
        g = G.reshape(K, n)
        rhs = (XB * g.unsqueeze(1)).sum(0)
        gram = BB * (g.t() @ g)
    else:
        rhs = torch.einsum("kunb,knab->una", XB.reshape(K, -1, n, si), G).reshape(-1, n * so)
        Y = torch.einsum("knab,nbmd->knamd", G, BB.reshape(n, si, n, si))
        gram = torch.einsum("knamd,kmcd->namc", Y, G).reshape(n * so, n * so)
    return _psd_solve(gram, rhs.t()).t()


def _update_right(XtC: Tensor, G: Tensor, CC: Tensor) -> Tensor:
    """Exact LS update of ``B`` given ``XtC[k] = X_k^T C``, the core and ``CC = C^T C``.

    By symmetry this is the ``C`` update with every block core transposed.
    """
    return _update_left(XtC, G.transpose(2, 3), CC)


def _objective(err: float, G: Tensor, ridge: float, norm2: Tensor) -> float:
    """Relative regularised objective ``sqrt(err^2 + ridge ||G||^2 / ||X||^2)`` (``err`` when no ridge)."""
    if ridge == 0:
        return err
    return (err**2 + ridge * float((G * G).sum() / norm2)) ** 0.5


def _evaluate(X, C, B, G, norm2, XB=None):
    """``X B`` (computed unless given), ``B^T B`` and the relative error of the model ``(C, B, G)``."""
    K, n, so, si = G.shape
    if XB is None:
        XB = X @ B
    CC, BB = C.t() @ C, B.t() @ B
    T = _core_rhs(C, XB, n, so, si)
    return XB, BB, _error_from_normal(X, C, B, G, T, CC, BB, norm2)


def _error_from_normal(X, C, B, G, T, CC, BB, norm2) -> float:
    """Relative error from ``||X||^2 - 2 <T, G> + <A(G), G>`` (direct when small)."""
    AG = _core_operator(CC, BB, G)
    err2 = float((norm2 - 2 * (T * G).sum() + (AG * G).sum()) / norm2)
    if err2 < _DIRECT_ERROR_BELOW:
        return _relative_error(X, C, B, G, norm2.sqrt())
    return err2**0.5


def _core_step(X, C, B, G, norm2, ridge=0.0, CC=None):
    """Core update; returns the new core, ``X B``, ``B^T B`` and the relative error (``CC = C^T C`` if known)."""
    K, n, so, si = G.shape
    XB = X @ B
    CC = C.t() @ C if CC is None else CC
    BB = B.t() @ B
    T = _core_rhs(C, XB, n, so, si)
    G = _solve_core(T, CC, BB, G, ridge)
    err = _error_from_normal(X, C, B, G, T, CC, BB, norm2)
    return G, XB, BB, err


def _als(X: Tensor, blocks, tol: float, max_iter: int, seed: int, ridge: float = 0.0, on_sweep=None):
    """ALS sweeps; ``errors`` holds relative errors, the stopping rules use the objective.

    ``blocks = (n, so, si)``: ``n`` blocks of rank ``so`` (output channels, ``C``) by
    ``si`` (input channels, ``B``); ``so == si == s`` for the symmetric bottleneck.

    The objective is ``sqrt(err^2 + ridge ||G||^2 / ||X||^2)``, which equals the
    relative error when ``ridge == 0``. Each factor update is its exact minimiser and
    each core update is exact or a few CG steps towards it (see :func:`_solve_core`);
    the per-block orthonormalisation of ``C`` and ``B`` leaves the fit unchanged (and
    makes ``||G||`` the scale of the model) but can change ``||G||``,
    so with a ridge a sweep that does not decrease the objective ends the iteration,
    keeping the best factors. ``on_sweep(sweep, error)``, if given, is called after
    the initialisation (sweep 0) and every completed sweep.
    """
    report = on_sweep or (lambda sweep, error: None)
    n, so, si = blocks
    norm2 = (X * X).sum()
    if float(norm2) == 0.0:
        K, u, t = X.shape
        zeros = X.new_zeros
        return zeros(u, n * so), zeros(t, n * si), zeros(K, n, so, si), [0.0]
    C, B = _init_factors(X, n, so, seed, s_in=si)
    G = X.new_zeros(X.shape[0], n, so, si)
    G, XB, BB, err = _core_step(X, C, B, G, norm2, ridge)
    errors = [err]
    report(0, err)
    objective = [_objective(err, G, ridge, norm2)]
    step = _EXTRAPOLATION[0]
    for _ in range(max_iter):
        previous = (C, B, G, XB)
        C = _update_left(XB, G, BB)
        C, G = _orthonormalise(C, G, "left")
        CC = C.t() @ C
        B = _update_right(X.transpose(1, 2) @ C, G, CC)
        B, G = _orthonormalise(B, G, "right")
        G, XB, BB, err = _core_step(X, C, B, G, norm2, ridge, CC=CC)
        obj = _objective(err, G, ridge, norm2)
        if not obj <= objective[-1]:  # numerical noise at convergence (or NaN): keep the best
            C, B, G, XB = previous
            break
        if step > 0:
            # Extrapolate the factors along the last sweep; keep the result only if it is
            # better than the plain ALS sweep. X B is linear in B, so X B_e needs no new
            # pass over the tensor: X B_e = X B + step (X B - X B_prev).
            Ce = C + step * (C - previous[0])
            Be = B + step * (B - previous[1])
            Ge = G + step * (G - previous[2])
            XBe, BBe, err_e = _evaluate(X, Ce, Be, Ge, norm2, XB=XB + step * (XB - previous[3]))
            obj_e = _objective(err_e, Ge, ridge, norm2)
            if obj_e < obj:
                C, B, G, XB, BB, err, obj = Ce, Be, Ge, XBe, BBe, err_e, obj_e
                step = min(step * _EXTRAPOLATION[1], _EXTRAPOLATION[3])
            else:
                step = max(step / _EXTRAPOLATION[2], _EXTRAPOLATION[0])
        errors.append(err)
        report(len(errors) - 1, err)
        objective.append(obj)
        if objective[-2] - objective[-1] < tol:
            break
    return C, B, G, errors
