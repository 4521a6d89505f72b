r"""Empirical variational Bayesian matrix factorisation (EVBMF) and VBMF rank selection.

:func:`evbmf` implements the global analytic solution of fully-observed
empirical VBMF (Nakajima, Sugiyama, Babacan & Tomioka, JMLR 2013), with the
noise variance estimated by minimising the free energy over :math:`\sigma^2`
(Nakajima, Tomioka, Sugiyama & Babacan, 2015). This is the rank estimator used
by Kim et al. (2015) for one-shot Tucker rank selection and by the GroSS paper
as its "VBMF" baseline (Tables 2 and 3).

Notation. ``Y`` is ``L x M`` with ``L <= M`` (transposed otherwise),
:math:`\alpha = L / M`, :math:`\gamma_h` its singular values and
:math:`x_h = \gamma_h^2 / (M\sigma^2)`. With

.. math::

    \tau(x) = \tfrac12\left(x - (1+\alpha) + \sqrt{(x - (1+\alpha))^2 - 4\alpha}\right),\qquad
    \Psi_1(x) = \log(\tau + 1) + \alpha \log(\tau/\alpha + 1) - \tau,

the EVB threshold is :math:`\underline{x} = (1+\underline\tau)(1+\alpha/\underline\tau)`,
where :math:`\underline\tau > 0` is the zero of
:math:`\log(\tau+1) + \alpha\log(\tau/\alpha+1) - \tau` (so that
:math:`\Psi_1(\underline x) = 0`; :math:`\underline\tau = 2.5129` for
:math:`\alpha = 1` and :math:`\approx 2.5129\sqrt\alpha` in general -- we solve
for it exactly instead of using that approximation). A component is kept iff
:math:`x_h > \underline x`, and then estimated by

.. math::

    \breve\gamma_h = \frac{\gamma_h}{2}\left(1 - \frac{(L+M)\sigma^2}{\gamma_h^2}
        + \sqrt{\left(1 - \frac{(L+M)\sigma^2}{\gamma_h^2}\right)^2
        - \frac{4LM\sigma^4}{\gamma_h^4}}\right).

The noise variance minimises (up to constants, ``2F/M``)

.. math::

    \sum_{h} \left(x_h - \log x_h\right) + \sum_{h: x_h > \underline x}\Psi_1(x_h)
    + \frac{\|Y\|_F^2 - \sum_h \gamma_h^2}{M\sigma^2} + (L - H)\log\sigma^2

over the interval
:math:`[\max(\gamma_{\bar H+1}^2/(M\underline x),\ \sum_{h>\bar H}\gamma_h^2/(M(L-\bar H))),\ \|Y\|_F^2/(LM)]`
with :math:`\bar H = \lceil L/(1+\alpha)\rceil - 1` (an upper bound of the EVB
rank). We evaluate the objective on a logarithmic grid and refine the best
grid point with a bounded scalar search, which guards against the local minima
that a single bounded search can stop in.

:func:`select_config` maps EVBMF ranks of each decomposable layer's
input-channel unfolding to group sizes (see its docstring for the rule).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq, minimize_scalar
from torch import nn

from gross.method.decomposition import decomposable_layers, default_group_sizes, gross_layers
from gross.method.expansion import expand_grouped_weight

__all__ = [
    "VBMFResult",
    "evbmf",
    "evb_threshold",
    "input_unfolding",
    "nearest_group_size",
    "vbmf_table",
    "select_config",
]


class VBMFResult(NamedTuple):
    """Result of :func:`evbmf`.

    Attributes
    ----------
    rank : int
        Number of components kept.
    sigma2 : float
        Estimated noise variance.
    singular_values : numpy.ndarray
        EVB estimates of the singular values, length ``min(L, M)``, descending;
        zero beyond ``rank``.
    """

    rank: int
    sigma2: float
    singular_values: np.ndarray


# ----------------------------------------------------------------------------- EVBMF


def evb_threshold(alpha: float) -> tuple[float, float]:
    r"""EVB threshold :math:`(\underline\tau, \underline x)` for aspect ratio ``alpha = L/M`` in (0, 1].

    :math:`\underline\tau` is the positive zero of
    :math:`\log(\tau+1) + \alpha\log(\tau/\alpha+1) - \tau` and
    :math:`\underline x = (1+\underline\tau)(1+\alpha/\underline\tau)`.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha = L/M must lie in (0, 1], got {alpha!r}")

    def f(tau):
        return math.log1p(tau) + alpha * math.log1p(tau / alpha) - tau

    lo = 1e-3 * math.sqrt(alpha)  # f > 0 near 0 (f'(0) = 1)
    hi = 4.0 * math.sqrt(alpha) + 1.0
    while f(hi) > 0:
        hi *= 2.0
    tau = brentq(f, lo, hi, xtol=1e-14, rtol=1e-14)
    return tau, (1.0 + tau) * (1.0 + alpha / tau)


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    b = x - (1.0 + alpha)
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4.0 * alpha, 0.0)))


def _free_energy(sigma2: float, L: int, M: int, s: np.ndarray, residual: float, x_thr: float) -> float:
    """``2F/M`` (up to constants) of EVBMF as a function of the noise variance."""
    alpha = L / M
    x = s**2 / (M * sigma2)
    kept = x > x_thr
    value = float(np.sum(x - np.log(x)))
    if np.any(kept):
        tau = _tau(x[kept], alpha)
        value += float(np.sum(np.log1p(tau) + alpha * np.log1p(tau / alpha) - tau))
    value += residual / (M * sigma2) + (L - len(s)) * math.log(sigma2)
    return value


def _shrink(s: np.ndarray, sigma2: float, L: int, M: int) -> np.ndarray:
    a = 1.0 - (L + M) * sigma2 / s**2
    return 0.5 * s * (a + np.sqrt(np.maximum(a * a - 4.0 * L * M * sigma2**2 / s**4, 0.0)))


def _as_matrix(matrix) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().to("cpu", torch.float64).numpy()
    y = np.asarray(matrix, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"evbmf expects a 2-D matrix, got an array of shape {tuple(y.shape)}")
    if min(y.shape) < 1:
        raise ValueError(f"evbmf expects a non-empty matrix, got shape {tuple(y.shape)}")
    if not np.all(np.isfinite(y)):
        raise ValueError("evbmf expects a finite matrix (found NaN or inf)")
    return y


def evbmf(matrix, sigma2: float | None = None, grid: int = 200) -> VBMFResult:
    """Empirical VBMF of a fully observed matrix (global analytic solution).

    Parameters
    ----------
    matrix : array-like or Tensor, 2-D
        The observed matrix ``Y`` (converted to float64; transposed internally
        so that ``L <= M``).
    sigma2 : float, optional
        Known noise variance. By default it is estimated by minimising the
        free energy (see the module docstring).
    grid : int, default 200
        Points of the logarithmic grid used to locate the global minimum of the
        free energy before refinement.

    Returns
    -------
    VBMFResult
        ``(rank, sigma2, singular_values)``.

    Raises
    ------
    ValueError
        If ``matrix`` is not a non-empty finite 2-D array, or ``sigma2`` is not positive.
    """
    y = _as_matrix(matrix)
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    alpha = L / M
    s = np.linalg.svd(y, compute_uv=False)
    total = float(np.sum(y * y))
    residual = max(total - float(np.sum(s**2)), 0.0)
    _, x_thr = evb_threshold(alpha)

    if sigma2 is None:
        if total == 0.0:
            return VBMFResult(0, 0.0, np.zeros(L))
        H = len(s)
        h_ub = min(math.ceil(L / (1.0 + alpha)) - 1, H - 1)
        upper = (total) / (L * M)
        tail = s[h_ub:] ** 2
        lower = max(s[h_ub] ** 2 / (M * x_thr), (float(np.sum(tail)) + residual) / (M * (L - h_ub)))
        lower = max(min(lower, upper), upper * 1e-12)
        if upper <= lower * (1 + 1e-12):
            sigma2 = upper
        else:
            grid_points = np.geomspace(lower, upper, grid)
            values = [_free_energy(v, L, M, s, residual, x_thr) for v in grid_points]
            i = int(np.argmin(values))
            a, b = grid_points[max(i - 1, 0)], grid_points[min(i + 1, grid - 1)]
            res = minimize_scalar(
                lambda v: _free_energy(v, L, M, s, residual, x_thr),
                bounds=(a, b), method="bounded", options={"xatol": 1e-12 * b},
            )
            sigma2 = float(res.x) if res.fun <= values[i] else float(grid_points[i])
    else:
        sigma2 = float(sigma2)
        if not sigma2 > 0:
            raise ValueError(f"sigma2 must be positive, got {sigma2!r}")

    threshold = math.sqrt(M * sigma2 * x_thr)
    rank = int(np.sum(s > threshold))
    estimates = np.zeros(L)
    if rank:
        estimates[:rank] = _shrink(s[:rank], sigma2, L, M)
    return VBMFResult(rank, float(sigma2), estimates)


# ----------------------------------------------------------------------------- rank selection


def input_unfolding(weight: torch.Tensor) -> torch.Tensor:
    """Input-channel (mode-t) unfolding ``(t, u*kh*kw)`` of a conv weight ``(u, t, kh, kw)``."""
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight of shape (u, t, kh, kw), got shape {tuple(weight.shape)}")
    return weight.transpose(0, 1).reshape(weight.shape[1], -1)


def nearest_group_size(rank: int, sizes: Sequence[int]) -> int:
    """The size in ``sizes`` nearest to ``rank`` on a log2 scale (ties -> the smaller size).

    ``rank <= 0`` maps to the smallest size.
    """
    sizes = sorted(int(s) for s in sizes)
    if not sizes or sizes[0] < 1:
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes}")
    if rank <= 0:
        return sizes[0]
    target = math.log2(rank)
    # sorted ascending + strict '<' keeps the smaller size on ties
    best = sizes[0]
    for s in sizes[1:]:
        if abs(math.log2(s) - target) < abs(math.log2(best) - target) - 1e-12:
            best = s
    return best


def _dense_weight(layer) -> torch.Tensor:
    """Weight ``(u, t, kh, kw)`` represented by a GroSS layer at its largest group size."""
    s = layer.group_sizes[-1]
    with torch.no_grad():
        P, R, Q = layer.weights(s)
        R_full = expand_grouped_weight(R, s, layer.width, in_channels=layer.width) if s != layer.width else R
        return torch.einsum("uw,wvhk,vt->uthk", Q[:, :, 0, 0], R_full, P[:, :, 0, 0])


def _layers_and_sizes(model: nn.Module, sizes) -> "OrderedDict[str, tuple[torch.Tensor, tuple[int, ...]]]":
    glayers = gross_layers(model)
    out: "OrderedDict[str, tuple[torch.Tensor, tuple[int, ...]]]" = OrderedDict()
    if glayers:
        for name, layer in glayers.items():
            allowed = _sizes_for(name, layer.width, sizes, default=layer.group_sizes)
            out[name] = (_dense_weight(layer), allowed)
        return out
    names = decomposable_layers(model)
    if not names:
        raise ValueError("the model has no decomposable convolution (ungrouped k×k nn.Conv2d after the first) "
                         "and no GroSS layer")
    for name in names:
        conv = model.get_submodule(name)
        allowed = _sizes_for(name, conv.in_channels, sizes, default=None)
        out[name] = (conv.weight.detach(), allowed)
    return out


def _sizes_for(name: str, width: int, sizes, default) -> tuple[int, ...]:
    if sizes is None:
        return tuple(default) if default is not None else default_group_sizes(width)
    if isinstance(sizes, Mapping):
        if name not in sizes:
            raise ValueError(f"no group sizes given for layer {name!r}; keys given: {sorted(sizes)}")
        chosen = tuple(sorted({int(s) for s in sizes[name]}))
        bad = [s for s in chosen if s < 1 or width % s]
        if bad:
            raise ValueError(f"group sizes {bad} do not divide the bottleneck width {width} of layer {name!r}")
        return chosen
    chosen = tuple(sorted({int(s) for s in sizes if 0 < int(s) <= width and width % int(s) == 0}))
    if not chosen:
        raise ValueError(f"none of the group sizes {tuple(sizes)} divides the bottleneck width {width} "
                         f"of layer {name!r}")
    return chosen


def vbmf_table(model: nn.Module, sizes=None) -> pd.DataFrame:
    """EVBMF rank of every decomposable layer and the group size it maps to.

    Parameters
    ----------
    model : nn.Module
        A plain model (its decomposable convolutions, bottleneck width = input
        channels) or a model with GroSS layers (the weight they represent at
        their largest group size, ``Q @ blockdiag(R) @ P``).
    sizes : None, sequence of int or mapping of str to sequence of int
        Available group sizes. ``None``: a GroSS layer's own ``group_sizes``,
        or, for a plain conv, the powers of two up to its input channels. A
        sequence: the same candidates for every layer (those dividing the
        width are kept, as in :func:`gross.method.decomposition.decompose`). A
        mapping: per layer name.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer``, ``t`` (rows of the unfolding), ``rank`` (EVBMF
        rank), ``sigma2``, ``sizes`` (candidates) and ``group_size``.
    """
    rows = []
    for name, (weight, allowed) in _layers_and_sizes(model, sizes).items():
        result = evbmf(input_unfolding(weight))
        rows.append((name, int(weight.shape[1]), result.rank, result.sigma2, allowed,
                     nearest_group_size(result.rank, allowed)))
    return pd.DataFrame(rows, columns=["layer", "t", "rank", "sigma2", "sizes", "group_size"])


def select_config(model: nn.Module, sizes=None) -> tuple[int, ...]:
    """One-shot VBMF group-size configuration (the paper's "VBMF [18]" baseline).

    For each decomposable layer (in configuration order) the EVBMF rank ``r``
    of the input-channel unfolding ``(t, u*k*k)`` of its weight is computed
    with :func:`evbmf`, and mapped to the available group size nearest to
    ``r`` on a log2 scale, ``argmin_s |log2 s - log2 r|``; ties go to the
    smaller size (the cheaper layer) and ``r = 0`` maps to the smallest size.
    The paper does not state its mapping rule; this one treats a group size
    ``s`` as the per-group rank of the block-term decomposition and rounds in
    the geometric sense in which the candidate sizes are spaced.

    Parameters
    ----------
    model, sizes
        As in :func:`vbmf_table`.

    Returns
    -------
    tuple of int
        One group size per decomposable layer.
    """
    return tuple(int(s) for s in vbmf_table(model, sizes)["group_size"])
