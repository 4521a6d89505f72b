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

Two solvers are provided. ``method="hooi"`` is the reference the paper describes
(block-coordinate descent with tensorly, each block a ``partial_tucker`` (HOOI) of the
residual of the other blocks). ``method="als"`` (default) is an alternating
least-squares solver that updates all ``C`` at once, all ``B`` at once and then the
block-diagonal core, the factors by exact least squares and the core exactly when a
direct solve is cheap, otherwise by a few warm-started preconditioned conjugate-gradient
iterations (in float32, as a correction to the float64 residual); one sweep costs about
two passes over the tensor instead of one HOOI per block.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["BTDResult", "METHODS", "btd", "reconstruct"]

#: Solvers accepted by :func:`btd`.
METHODS = ("als", "hooi")

# HOOI iterations per block visit of the reference solver.
_HOOI_INNER_ITERATIONS = 10
# Core systems with at most this many unknowns (width * s) per kernel tap are solved
# directly (Cholesky of the normal matrix); larger ones by warm-started PCG.
_DIRECT_CORE_UNKNOWNS = 256
# Diagonal cores (group size 1): the normal matrix is C^T C o B^T B, (width, width).
_DIRECT_CORE_UNKNOWNS_DIAGONAL = 4096
# CG iterations per core update. The solve is warm-started at the previous core, so an
# inexact update suffices: on random 128- and 256-channel 3x3 layers (s = 4, 16, 32,
# tol 1e-5) 4 iterations per sweep reached final errors within +-0.001 of 10 iterations
# (lower in 5 of 6 cases) in 10-25 % less time.
_CG_MAX_ITER = 4
_CG_RTOL = 1e-10
# Rounds of (full-precision residual -> float32 PCG correction) per core update.
_CG_REFINEMENTS = 1
# Below this squared relative error the cheap (expanded) error formula loses
# precision to cancellation and the error is recomputed from the dense model.
_DIRECT_ERROR_BELOW = 1e-4
# Relative eigenvalue cut-off of pseudo-inverses of Gram matrices.
_PINV_RCOND = 1e-13
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
        ``(width, s, kh, kw)`` weight of the grouped convolution with
        ``groups = width // s`` (block-diagonal core).
    Q : Tensor
        ``(u, width, 1, 1)`` weight of the last 1x1 convolution (factor ``C``).
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
        ``(width, s, kh, kw)`` grouped convolution weight, ``groups = width // s``.
    Q : Tensor
        ``(u, width, 1, 1)`` last 1x1 convolution weight.

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
    width, s = R.shape[0], R.shape[1]
    if P.shape[0] != width or Q.shape[1] != width:
        raise ValueError(
            f"bottleneck widths disagree: P has {P.shape[0]} output channels, R has {width} "
            f"output channels and Q has {Q.shape[1]} input channels; all must be equal"
        )
    if s < 1 or width % s:
        raise ValueError(
            f"R has {width} output channels and group size {s}: group size {s} must divide "
            f"the width {width}"
        )
    n = width // s
    # Dense (width, width, kh, kw) weight of the grouped convolution.
    dense_r = R.new_zeros((width, width) + tuple(R.shape[2:]))
    for group in range(n):
        block = slice(group * s, (group + 1) * s)
        dense_r[block, block] = R[block]
    return torch.einsum("oa,abhw,bi->oihw", Q[:, :, 0, 0], dense_r, P[:, :, 0, 0])


def btd(
    weight: Tensor,
    group_size: int,
    width: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 500_000,
    seed: int = 0,
    method: str = "als",
    ridge: float = 0.0,
    n_init: int = 1,
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
    width : int, optional
        Bottleneck width (channels between P and Q); defaults to ``t``. May be
        smaller or larger than ``t``; must be a multiple of ``group_size``.
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

    Returns
    -------
    BTDResult
        ``P (width, t, 1, 1)``, ``R (width, s, kh, kw)``, ``Q (u, width, 1, 1)``
        (float64, CPU) and the non-increasing relative-error history ``errors``
        (initialisation first, then one entry per sweep; with ``ridge > 0`` the
        regularised objective, not the error, is the non-increasing quantity).

    Raises
    ------
    ValueError
        On a weight that is not 4-D or empty, a group size or width that is not a
        positive integer, a group size that does not divide the width, a
        non-positive ``tol``, a negative ``max_iter``, an unknown ``method`` or a
        negative ``ridge`` (or a positive one with ``method="hooi"``) or an ``n_init``
        that is not a positive integer (or above 1 with ``method="hooi"``).

    Notes
    -----
    Stride and padding of the original convolution belong to the grouped
    convolution ``R`` and its bias to ``Q`` (paper Table 1).
    """
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a 4-D conv weight (u, t, kh, kw), got {shape}")
    if weight.numel() == 0:
        raise ValueError(f"weight must be non-empty, got shape {tuple(weight.shape)}")
    if not (weight.is_floating_point()):
        raise ValueError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
    u, t = weight.shape[0], weight.shape[1]
    width = t if width is None else width
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if width % group_size:
        valid = tuple(d for d in range(1, width + 1) if width % d == 0)
        raise ValueError(
            f"group size {group_size} does not divide the bottleneck width {width}: "
            f"allowed group sizes are {valid}"
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
        raise ValueError(f"ridge={ridge!r} is supported by method='als' only (the reference HOOI is unregularised); use ridge=0 "
            "(config: btd_ridge = 0) with method='hooi'")

    kh, kw = weight.shape[2], weight.shape[3]
    # (K, u, t): one (u, t) matrix per kernel tap.
    X = weight.detach().to(torch.float64).permute(2, 3, 0, 1).reshape(kh * kw, u, t).contiguous()
    n = width // group_size
    if method == "als":
        best, norm2 = None, (X * X).sum()
        for start in range(n_init):
            run = _als(X, n, group_size, tol, max_iter, seed + start, float(ridge))
            objective = _objective(run[3][-1], run[2], float(ridge), norm2)
            if best is None or objective < best[0]:
                best = (objective, run)
        C, B, G, errors = best[1]
    else:
        C, B, G, errors = _hooi(X, n, group_size, tol, max_iter, seed)
    P, R, Q = _to_bottleneck(C, B, G, kh, kw)
    return BTDResult(P.cpu(), R.cpu(), Q.cpu(), [float(e) for e in errors])


# ---------------------------------------------------------------------------------
# layout helpers
# ---------------------------------------------------------------------------------


def _to_bottleneck(C: Tensor, B: Tensor, G: Tensor, kh: int, kw: int):
    """Factors ``C (u, width)``, ``B (t, width)``, core ``G (K, n, s, s)`` -> P, R, Q."""
    K, n, s, _ = G.shape
    width = n * s
    P = B.t().reshape(width, B.shape[0], 1, 1).contiguous()
    R = G.permute(1, 2, 3, 0).reshape(width, s, kh, kw).contiguous()
    Q = C.reshape(C.shape[0], width, 1, 1).contiguous()
    return P, R, Q


def _model(C: Tensor, B: Tensor, G: Tensor) -> Tensor:
    """Dense ``(K, u, t)`` tensor ``C D_k B^T`` with ``D_k = blockdiag(G[k])``."""
    K, n, s, _ = G.shape
    CD = torch.einsum("una,knab->kunb", C.reshape(-1, n, s), G).reshape(K, -1, n * s)
    return CD @ B.t()


def _relative_error(X: Tensor, C: Tensor, B: Tensor, G: Tensor, norm: Tensor) -> float:
    return float(torch.linalg.vector_norm(X - _model(C, B, G)) / norm)


# ---------------------------------------------------------------------------------
# linear algebra helpers
# ---------------------------------------------------------------------------------


def _sym_pinv(A: Tensor) -> Tensor:
    """Pseudo-inverse of (a batch of) symmetric positive semi-definite matrices."""
    evals, evecs = torch.linalg.eigh(A)
    cutoff = _PINV_RCOND * evals.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)
    inv = torch.where(evals > cutoff, 1.0 / evals.clamp_min(torch.finfo(A.dtype).tiny), 0.0)
    return (evecs * inv.unsqueeze(-2)) @ evecs.transpose(-1, -2)


def _psd_solve(A: Tensor, rhs: Tensor) -> Tensor:
    """Least-squares solution of ``A x = rhs`` for symmetric PSD ``A`` (Cholesky or pinv)."""
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        d = torch.diagonal(L)
        if float(d.min()) > float(d.max()) * 1e-7:  # condition number below ~1e14
            return torch.cholesky_solve(rhs, L)
    return _sym_pinv(A) @ rhs


# ---------------------------------------------------------------------------------
# ALS solver
# ---------------------------------------------------------------------------------


def _init_factors(X: Tensor, n: int, s: int, seed: int):
    """Seeded SVD-based initial factors ``C (u, width)`` and ``B (t, width)``.

    The leading singular subspaces of the two channel unfoldings are rotated by a
    seeded random orthogonal matrix and dealt out to the blocks; when the width
    exceeds a channel dimension the remaining columns are seeded Gaussian.
    """
    K, u, t = X.shape
    width = n * s
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def basis(unfolding: Tensor) -> Tensor:
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

    C = basis(X.permute(1, 0, 2).reshape(u, K * t))
    B = basis(X.permute(2, 0, 1).reshape(t, K * u))
    return C, B


def _orthonormalise(F: Tensor, G: Tensor, side: str):
    """QR of each block of factor ``F`` with the triangular factor moved into ``G``.

    Leaves the model unchanged; skipped when a block has more columns than rows.
    """
    K, n, s, _ = G.shape
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
    K, n, s, _ = G.shape
    if s == 1:  # diagonal cores: Hadamard products, O(K width^2) with no small-matrix batches
        g = G.reshape(K, n)
        rhs = (XB * g.unsqueeze(1)).sum(0)
        gram = BB * (g.t() @ g)
    else:
        rhs = torch.einsum("kunb,knab->una", XB.reshape(K, -1, n, s), G).reshape(-1, n * s)
        Y = torch.einsum("knab,nbmd->knamd", G, BB.reshape(n, s, n, s))
        gram = torch.einsum("knamd,kmcd->namc", Y, G).reshape(n * s, n * s)
    return _psd_solve(gram, rhs.t()).t()


def _update_right(XtC: Tensor, G: Tensor, CC: Tensor) -> Tensor:
    """Exact LS update of ``B`` given ``XtC[k] = X_k^T C``, the core and ``CC = C^T C``.

    By symmetry this is the ``C`` update with every block core transposed.
    """
    return _update_left(XtC, G.transpose(2, 3), CC)


def _core_operator(CC: Tensor, BB: Tensor, G: Tensor) -> Tensor:
    """Normal operator of the core LS: block-diagonal part of ``C^T C D_k B^T B`` per tap.

    ``CC = C^T C`` and ``BB = B^T B`` are ``(width, width)``; returns ``(K, n, s, s)``.
    """
    K, n, s, _ = G.shape
    if s == 1:  # (C^T C o B^T B) g_k
        return (G.reshape(K, n) @ (CC * BB)).reshape(K, n, 1, 1)
    Y = torch.einsum("kmcd,mdnb->kmcnb", G, BB.reshape(n, s, n, s))
    return torch.einsum("namc,kmcnb->knab", CC.reshape(n, s, n, s), Y)


def _solve_core(T: Tensor, CC: Tensor, BB: Tensor, G0: Tensor, ridge: float = 0.0) -> Tensor:
    """Core minimising ``sum_k ||X_k - C D_k B^T||^2 + ridge ||G||^2`` given ``T = blockdiag(C^T X_k B)``.

    Single block: closed form (pseudo-inverses; eigenbases with a ridge). Few unknowns: Cholesky of the
    (``width*s``)-square normal matrix shared by all kernel taps. Otherwise ``G0``
    plus a block-Jacobi preconditioned CG correction computed in float32 from the
    float64 residual of ``G0`` (:func:`_pcg`).
    """
    K, n, s, _ = T.shape
    idx = torch.arange(n, device=T.device)
    CC4 = CC.reshape(n, s, n, s)
    BB4 = BB.reshape(n, s, n, s)
    if n == 1 and ridge == 0:
        return (_sym_pinv(CC) @ T[:, 0] @ _sym_pinv(BB)).unsqueeze(1)
    if n == 1:  # (CC (x) BB + ridge I) vec(G) = vec(T) in the eigenbases of CC and BB
        ec, Uc = torch.linalg.eigh(CC)
        eb, Ub = torch.linalg.eigh(BB)
        core = (Uc.t() @ T[:, 0] @ Ub) / (ec.clamp_min(0)[:, None] * eb.clamp_min(0)[None, :] + ridge)
        return (Uc @ core @ Ub.t()).unsqueeze(1)
    if s == 1 and n <= _DIRECT_CORE_UNKNOWNS_DIAGONAL:  # one (n, n) system for all taps
        sol = _psd_solve(CC * BB + ridge * torch.eye(n, dtype=CC.dtype, device=CC.device), T.reshape(K, n).t())
        return sol.t().reshape(K, n, 1, 1)
    if n * s * s <= _DIRECT_CORE_UNKNOWNS:
        N = torch.einsum("namc,nbmd->nabmcd", CC4, BB4).reshape(n * s * s, n * s * s)
        N = N + ridge * torch.eye(n * s * s, dtype=N.dtype, device=N.device)
        sol = _psd_solve(N, T.reshape(K, -1).t())
        return sol.t().reshape(K, n, s, s)
    # Mixed-precision iterative refinement: the residual of the warm start is formed in
    # the working precision and the correction ``A d = r`` is solved by block-Jacobi PCG
    # in float32 (the core operator is memory-bound, so this halves its cost). G's
    # accuracy is set by the full-precision residual; the low-precision solve only limits
    # how much of the residual one sweep removes, and the next sweep refines it further.
    low = torch.float32 if T.dtype == torch.float64 else T.dtype
    Cinv = _sym_pinv(CC4[idx, :, idx, :]).to(low)  # (n, s, s): inverse of (C_r^T C_r) (x) (B_r^T B_r) per block
    Binv = _sym_pinv(BB4[idx, :, idx, :]).to(low)
    CCl, BBl = CC.to(low), BB.to(low)
    stop2 = _CG_RTOL**2 * _tap_dot(T, T)
    G = G0
    for _ in range(_CG_REFINEMENTS):
        r = T - _core_operator(CC, BB, G) - ridge * G
        if bool((_tap_dot(r, r) <= stop2).all()):
            break
        G = G + _pcg(CCl, BBl, r.to(low), ridge, Cinv, Binv, stop2.to(low)).to(T.dtype)
    return G


def _tap_dot(a: Tensor, b: Tensor) -> Tensor:
    """One inner product per kernel tap of two ``(K, n, s, s)`` cores, shape ``(K, 1, 1, 1)``."""
    return (a * b).sum(dim=(1, 2, 3), keepdim=True)


def _pcg(CC: Tensor, BB: Tensor, rhs: Tensor, ridge: float, Cinv: Tensor, Binv: Tensor, stop2: Tensor) -> Tensor:
    """Block-Jacobi preconditioned CG for ``(A + ridge I) d = rhs`` from ``d = 0``, one system per kernel tap.

    ``A`` is :func:`_core_operator`; at most ``_CG_MAX_ITER`` iterations, fewer once
    every tap's squared residual is below ``stop2``. In exact arithmetic every
    iterate decreases the (ridge) least-squares objective.
    """

    def precond(Rk: Tensor) -> Tensor:
        return Cinv.unsqueeze(0) @ Rk @ Binv.unsqueeze(0)

    d = torch.zeros_like(rhs)
    r = rhs
    z = precond(r)
    p = z
    rz = _tap_dot(r, z)
    tiny = torch.finfo(rhs.dtype).tiny
    for _ in range(_CG_MAX_ITER):
        if bool((_tap_dot(r, r) <= stop2).all()):
            break
        Ap = _core_operator(CC, BB, p) + ridge * p
        pAp = _tap_dot(p, Ap)
        alpha = torch.where(pAp > tiny, rz / pAp.clamp_min(tiny), 0.0)
        d = d + alpha * p
        r = r - alpha * Ap
        z = precond(r)
        rz_new = _tap_dot(r, z)
        beta = torch.where(rz > tiny, rz_new / rz.clamp_min(tiny), 0.0)
        p = z + beta * p
        rz = rz_new
    return d


def _core_rhs(C: Tensor, XB: Tensor, n: int, s: int) -> Tensor:
    """``T[k, r] = C_r^T X_k B_r`` (the block-diagonal part of ``C^T X_k B``)."""
    K, u, _ = XB.shape
    if s == 1:
        return (XB * C.unsqueeze(0)).sum(1).reshape(K, n, 1, 1)
    return torch.einsum("una,kunb->knab", C.reshape(u, n, s), XB.reshape(K, u, n, s))


def _objective(err: float, G: Tensor, ridge: float, norm2: Tensor) -> float:
    """Relative regularised objective ``sqrt(err^2 + ridge ||G||^2 / ||X||^2)`` (``err`` when no ridge)."""
    if ridge == 0:
        return err
    return (err**2 + ridge * float((G * G).sum() / norm2)) ** 0.5


def _evaluate(X, C, B, G, norm2, XB=None):
    """``X B`` (computed unless given), ``B^T B`` and the relative error of the model ``(C, B, G)``."""
    K, n, s, _ = G.shape
    if XB is None:
        XB = X @ B
    CC, BB = C.t() @ C, B.t() @ B
    T = _core_rhs(C, XB, n, s)
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
    K, n, s, _ = G.shape
    XB = X @ B
    CC = C.t() @ C if CC is None else CC
    BB = B.t() @ B
    T = _core_rhs(C, XB, n, s)
    G = _solve_core(T, CC, BB, G, ridge)
    err = _error_from_normal(X, C, B, G, T, CC, BB, norm2)
    return G, XB, BB, err


def _als(X: Tensor, n: int, s: int, tol: float, max_iter: int, seed: int, ridge: float = 0.0):
    """ALS sweeps; ``errors`` holds relative errors, the stopping rules use the objective.

    The objective is ``sqrt(err^2 + ridge ||G||^2 / ||X||^2)``, which equals the
    relative error when ``ridge == 0``. Each factor update is its exact minimiser and
    each core update is exact or a few CG steps towards it (see :func:`_solve_core`);
    the per-block orthonormalisation of ``C`` and ``B`` leaves the fit unchanged (and
    makes ``||G||`` the scale of the model) but can change ``||G||``,
    so with a ridge a sweep that does not decrease the objective ends the iteration,
    keeping the best factors.
    """
    norm2 = (X * X).sum()
    if float(norm2) == 0.0:
        K, u, t = X.shape
        zeros = X.new_zeros
        return zeros(u, n * s), zeros(t, n * s), zeros(K, n, s, s), [0.0]
    C, B = _init_factors(X, n, s, seed)
    G = X.new_zeros(X.shape[0], n, s, s)
    G, XB, BB, err = _core_step(X, C, B, G, norm2, ridge)
    errors = [err]
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
        objective.append(obj)
        if objective[-2] - objective[-1] < tol:
            break
    return C, B, G, errors


# ---------------------------------------------------------------------------------
# reference solver: per-block HOOI (tensorly partial_tucker) of the residual
# ---------------------------------------------------------------------------------


def _hooi(X: Tensor, n: int, s: int, tol: float, max_iter: int, seed: int):
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    K, u, t = X.shape
    su, st = min(s, u), min(s, t)
    Xt = X.permute(1, 2, 0).contiguous()  # (u, t, K) for tensorly
    norm = torch.linalg.vector_norm(Xt)
    blocks: list = [None] * n  # (core (su, st, K), U (u, su), V (t, st))

    def dense(block) -> Tensor:
        core, U, V = block
        return torch.einsum("abk,ua,tb->utk", core, U, V)

    model = torch.zeros_like(Xt)
    errors = [1.0 if float(norm) > 0 else 0.0]
    if float(norm) == 0:
        max_iter = 0
    with tl.backend_context("pytorch"):
        for _ in range(max_iter):
            previous = list(blocks)
            for r in range(n):
                old = dense(blocks[r]) if blocks[r] is not None else torch.zeros_like(Xt)
                residual = Xt - (model - old)
                init = "svd" if blocks[r] is None else (blocks[r][0], [blocks[r][1], blocks[r][2]])
                (core, (U, V)), _ = partial_tucker(
                    residual,
                    rank=[su, st],
                    modes=[0, 1],
                    n_iter_max=_HOOI_INNER_ITERATIONS,
                    init=init,
                    tol=0,
                    random_state=seed,
                )
                new = dense((core, U, V))
                if blocks[r] is None or torch.linalg.vector_norm(residual - new) <= torch.linalg.vector_norm(
                    residual - old
                ):
                    blocks[r] = (core, U, V)
                    model = model - old + new
            model = sum(dense(b) for b in blocks)  # no drift from the running updates
            err = float(torch.linalg.vector_norm(Xt - model) / norm)
            if not err <= errors[-1]:  # rounding noise at convergence: keep the best
                blocks = previous
                break
            errors.append(err)
            if errors[-2] - errors[-1] < tol:
                break
    # Assemble factors, zero-padding blocks whose rank was clipped to a channel dimension.
    C = X.new_zeros(u, n, s)
    B = X.new_zeros(t, n, s)
    G = X.new_zeros(K, n, s, s)
    for r, block in enumerate(blocks):
        if block is None:
            continue
        core, U, V = block
        C[:, r, :su] = U
        B[:, r, :st] = V
        G[:, r, :su, :st] = core.permute(2, 0, 1)
    return C.reshape(u, n * s), B.reshape(t, n * s), G, errors
