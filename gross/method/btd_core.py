"""Core update of the ALS BTD solver: the block-diagonal least-squares problem and its linear algebra.

Given the factors ``C (u, width)`` and ``B (t, width)`` of :func:`gross.method.btd.btd`, the
block-diagonal core ``G (K, n, so, si)`` (``so = width_out / n`` rows, ``si = width / n``
columns per block; ``so == si == s`` for the symmetric bottleneck) minimising
``sum_k ||X_k - C blockdiag(G[k]) B^T||^2 + ridge ||G||^2`` is found exactly when a
direct solve is cheap, otherwise by a few warm-started block-Jacobi preconditioned
conjugate-gradient iterations in float32, as a correction to the float64 residual.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []

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
# Relative eigenvalue cut-off of pseudo-inverses of Gram matrices.
_PINV_RCOND = 1e-13


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


def _core_operator(CC: Tensor, BB: Tensor, G: Tensor) -> Tensor:
    """Normal operator of the core LS: block-diagonal part of ``C^T C D_k B^T B`` per tap.

    ``CC = C^T C`` is ``(width_out, width_out)``, ``BB = B^T B`` is ``(width, width)``;
    returns ``(K, n, so, si)`` like ``G``.
    """
    K, n, so, si = G.shape
    if so == si == 1:  # (C^T C o B^T B) g_k
        return (G.reshape(K, n) @ (CC * BB)).reshape(K, n, 1, 1)
    Y = torch.einsum("kmcd,mdnb->kmcnb", G, BB.reshape(n, si, n, si))
    return torch.einsum("namc,kmcnb->knab", CC.reshape(n, so, n, so), Y)


def _solve_core(T: Tensor, CC: Tensor, BB: Tensor, G0: Tensor, ridge: float = 0.0) -> Tensor:
    """Core minimising ``sum_k ||X_k - C D_k B^T||^2 + ridge ||G||^2`` given ``T = blockdiag(C^T X_k B)``.

    Single block: closed form (pseudo-inverses; eigenbases with a ridge). Few unknowns: Cholesky of the
    (``n*so*si``)-square normal matrix shared by all kernel taps. Otherwise ``G0``
    plus a block-Jacobi preconditioned CG correction computed in float32 from the
    float64 residual of ``G0`` (:func:`_pcg`).
    """
    K, n, so, si = T.shape
    idx = torch.arange(n, device=T.device)
    CC4 = CC.reshape(n, so, n, so)
    BB4 = BB.reshape(n, si, n, si)
    if n == 1 and ridge == 0:
        return (_sym_pinv(CC) @ T[:, 0] @ _sym_pinv(BB)).unsqueeze(1)
    if n == 1:  # (CC (x) BB + ridge I) vec(G) = vec(T) in the eigenbases of CC and BB
        ec, Uc = torch.linalg.eigh(CC)
        eb, Ub = torch.linalg.eigh(BB)
        core = (Uc.t() @ T[:, 0] @ Ub) / (ec.clamp_min(0)[:, None] * eb.clamp_min(0)[None, :] + ridge)
        return (Uc @ core @ Ub.t()).unsqueeze(1)
    if so == si == 1 and n <= _DIRECT_CORE_UNKNOWNS_DIAGONAL:  # one (n, n) system for all taps
        sol = _psd_solve(CC * BB + ridge * torch.eye(n, dtype=CC.dtype, device=CC.device), T.reshape(K, n).t())
        return sol.t().reshape(K, n, 1, 1)
    if n * so * si <= _DIRECT_CORE_UNKNOWNS:
        N = torch.einsum("namc,nbmd->nabmcd", CC4, BB4).reshape(n * so * si, n * so * si)
        N = N + ridge * torch.eye(n * so * si, dtype=N.dtype, device=N.device)
        sol = _psd_solve(N, T.reshape(K, -1).t())
        return sol.t().reshape(K, n, so, si)
    # Mixed-precision iterative refinement: the residual of the warm start is formed in
    # the working precision and the correction ``A d = r`` is solved by block-Jacobi PCG
    # in float32 (the core operator is memory-bound, so this halves its cost). G's
    # accuracy is set by the full-precision residual; the low-precision solve only limits
    # how much of the residual one sweep removes, and the next sweep refines it further.
    low = torch.float32 if T.dtype == torch.float64 else T.dtype
    Cinv = _sym_pinv(CC4[idx, :, idx, :]).to(low)  # (n, so, so) and (n, si, si): inverse of (C_r^T C_r) (x) (B_r^T B_r) per block
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
    """One inner product per kernel tap of two ``(K, n, so, si)`` cores, shape ``(K, 1, 1, 1)``."""
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


def _core_rhs(C: Tensor, XB: Tensor, n: int, s: int, s_in: int | None = None) -> Tensor:
    """``T[k, r] = C_r^T X_k B_r`` (the block-diagonal part of ``C^T X_k B``), ``(K, n, s, s_in)``.

    ``s`` columns of ``C`` and ``s_in`` (default ``s``) columns of ``B`` per block.
    """
    K, u, _ = XB.shape
    si = s if s_in is None else s_in
    if s == si == 1:
        return (XB * C.unsqueeze(0)).sum(1).reshape(K, n, 1, 1)
    return torch.einsum("una,kunb->knab", C.reshape(u, n, s), XB.reshape(K, u, n, si))
