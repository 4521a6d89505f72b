"""Reference BTD solver: block-coordinate descent with tensorly's ``partial_tucker`` (HOOI).

Used by :func:`gross.method.btd.btd` with ``method="hooi"``: the solver the paper describes,
each block of the decomposition a HOOI of the residual of the other blocks.  Slower
than the ALS default; kept as the reference the ALS solver is tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []

# HOOI iterations per block visit of the reference solver.
_HOOI_INNER_ITERATIONS = 10


def _report(on_sweep, errors: list) -> None:
    """Tell ``on_sweep`` (if any) the sweep number and error of the last entry of ``errors``."""
    if on_sweep is not None:
        on_sweep(len(errors) - 1, float(errors[-1]))


def _hooi(X: Tensor, blocks, tol: float, max_iter: int, seed: int, on_sweep=None):
    """Block-coordinate descent over the ``n`` blocks, each a HOOI of the residual of the others.

    ``blocks = (n, so, si)``: each block has multilinear rank ``(so, si)`` in the
    (output, input) channel modes (``so == si == s`` for the symmetric bottleneck).
    Returns ``C (u, n so)``, ``B (t, n si)``, ``G (K, n, so, si)`` and the relative errors
    (initialisation first); ``on_sweep(sweep, error)`` is called after each entry.
    """
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    K, u, t = X.shape
    n, so, si = blocks
    su, st = min(so, u), min(si, t)
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
    _report(on_sweep, errors)
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
            _report(on_sweep, errors)
            if errors[-2] - errors[-1] < tol:
                break
    # Assemble factors, zero-padding blocks whose rank was clipped to a channel dimension.
    C = X.new_zeros(u, n, so)
    B = X.new_zeros(t, n, si)
    G = X.new_zeros(K, n, so, si)
    for r, block in enumerate(blocks):
        if block is None:
            continue
        core, U, V = block
        C[:, r, :su] = U
        B[:, r, :st] = V
        G[:, r, :su, :st] = core.permute(2, 0, 1)
    return C.reshape(u, n * so), B.reshape(t, n * si), G, errors
