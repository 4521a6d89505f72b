"""Latency predictors fitted on measured whole networks, beside the additive table.

:class:`gross.search.latency.LatencyTable` predicts ``fixed + Σ_l T_l(s_l)`` from each
layer's bottleneck timed *alone* (the ``"additive"`` predictor, the baseline). Two
predictors here are instead fitted by least squares (:func:`numpy.linalg.lstsq`) on
the measured latencies of whole exported networks at random configurations:

``"regression"``
    ``T(c) = b + Σ_l w_l[c_l]``: still additive, but every layer's term is its cost
    *inside the network* (input produced by the previous layer, caches as in a real
    forward), not alone.
``"context"``
    ``T(c) = b + Σ_l w_l[c_l] + Σ_{l≥1} v_l[c_{l-1}, c_l]``: each layer's entry keyed by
    its own and its predecessor's group size (the neighbour interaction: a layer's
    cost depending on the layout of the tensor the previous layer leaves behind).

Features are treatment-coded one-hots (:func:`design_matrix`): the smallest size of
every layer is the reference, so the columns are linearly independent and a fit needs
at least as many configurations as columns (:func:`n_features`); fewer, or
configurations that never vary some feature, raise ``ValueError`` (:func:`validate_predictors`
adds configurations until they do: :func:`complete_fit`). Fit and validation
configurations are disjoint (:func:`split_configs`): a predictor is never scored on a
configuration it was fitted to.

:func:`holds` is the per-row target of issue #28: where two repeated measurements of
the validation configurations agree within 10 % (median relative difference), median
error ≤ 10 % and Spearman ≥ the repeat-measurement ceiling − 0.05.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gross.method.decomposition import search_space
from gross.method.macs import count_macs
from gross.method.space import SearchSpace
from gross.search import latency as L

__all__ = [
    "PREDICTORS",
    "FITTED",
    "FittedPredictor",
    "check_predictor",
    "n_features",
    "feature_names",
    "design_matrix",
    "fit_predictor",
    "split_configs",
    "cover_pairs",
    "complete_fit",
    "holds",
    "default_n_fit",
    "validate_predictors",
]

#: Latency predictors: the additive table (:class:`gross.search.latency.LatencyTable`) and the fitted ones.
PREDICTORS = ("additive", "regression", "context")
#: The fitted predictors and whether their features include neighbour pairs.
FITTED = {"regression": False, "context": True}


def check_predictor(name) -> str:
    """``name`` if it is one of :data:`PREDICTORS`, else ``ValueError`` naming the choices."""
    if not isinstance(name, str) or name not in PREDICTORS:
        raise ValueError(f"unknown latency predictor {name!r}: expected one of {PREDICTORS}")
    return name


def _fitted(name) -> bool:
    check_predictor(name)
    if name not in FITTED:
        raise ValueError(f"predictor {name!r} is not fitted on whole networks (it is the measured table, "
                         f"gross.search.latency.LatencyTable); fitted predictors are {tuple(FITTED)}")
    return FITTED[name]


def _sizes(space) -> list[tuple[int, ...]]:
    return [tuple(v) for v in SearchSpace(dict(space)).as_dict().values()]


def feature_names(space: Mapping, predictor: str) -> list[str]:
    """Column names of :func:`design_matrix`: ``"1"``, ``"<layer>=<s>"`` and ``"<prev>=<a>,<layer>=<b>"``."""
    pairs = _fitted(predictor)
    names, sizes = list(dict(space)), _sizes(space)
    out = ["1"] + [f"{n}={s}" for n, allowed in zip(names, sizes) for s in allowed[1:]]
    if pairs:
        out += [f"{names[l - 1]}={a},{names[l]}={b}" for l in range(1, len(sizes))
                for a in sizes[l - 1][1:] for b in sizes[l][1:]]
    return out


def n_features(space: Mapping, predictor: str) -> int:
    """Number of coefficients of a fitted predictor: the fewest fit configurations it needs."""
    return len(feature_names(space, predictor))


def design_matrix(configs: Sequence, space: Mapping, predictor: str) -> np.ndarray:
    """Float64 one-hot features of ``configs`` (rows) for a fitted predictor (columns: :func:`feature_names`).

    Treatment coding: column ``"<layer>=<s>"`` is 1 where the layer has size ``s`` (the
    layer's smallest size is the reference and has no column); with neighbour pairs
    (``"context"``), ``"<prev>=<a>,<layer>=<b>"`` is 1 where both hold.
    """
    pairs = _fitted(predictor)
    check = SearchSpace(dict(space))
    sizes = _sizes(space)
    configs = [check.validate(c) for c in configs]
    index = [{s: j for j, s in enumerate(allowed)} for allowed in sizes]
    x = np.zeros((len(configs), n_features(space, predictor)), dtype=np.float64)
    x[:, 0] = 1.0
    single = np.cumsum([1] + [len(a) - 1 for a in sizes])  # first column of each layer
    pair0 = single[-1]
    pair_start = np.cumsum([pair0] + [(len(sizes[l - 1]) - 1) * (len(sizes[l]) - 1) for l in range(1, len(sizes))])
    for r, config in enumerate(configs):
        js = [index[l][s] for l, s in enumerate(config)]
        for l, j in enumerate(js):
            if j:
                x[r, single[l] + j - 1] = 1.0
        if pairs:
            for l in range(1, len(js)):
                if js[l - 1] and js[l]:
                    x[r, pair_start[l - 1] + (js[l - 1] - 1) * (len(sizes[l]) - 1) + js[l] - 1] = 1.0
    return x


@dataclasses.dataclass
class FittedPredictor:
    """A latency predictor fitted on measured whole networks (:func:`fit_predictor`).

    Attributes
    ----------
    predictor : {"regression", "context"}
    space : dict of str to tuple of int
        The search space (layer -> group sizes) the features are coded on.
    coef : numpy.ndarray
        Seconds per feature (:func:`feature_names` order).
    n_fit : int
        Configurations it was fitted on.
    fit_rms_rel : float
        Root-mean-square relative residual on the fit configurations.
    """

    predictor: str
    space: dict
    coef: np.ndarray
    n_fit: int
    fit_rms_rel: float

    def predict(self, config) -> float:
        """Predicted seconds per forward of one configuration."""
        return float(design_matrix([config], self.space, self.predictor)[0] @ self.coef)

    __call__ = predict

    def predict_many(self, configs: Sequence) -> np.ndarray:
        """Predicted seconds of several configurations (one matrix product)."""
        return design_matrix(configs, self.space, self.predictor) @ self.coef

    def to_frame(self) -> pd.DataFrame:
        """Columns ``feature, seconds``: the fitted coefficients."""
        return pd.DataFrame({"feature": feature_names(self.space, self.predictor), "seconds": self.coef})


def fit_predictor(predictor: str, configs: Sequence, seconds: Sequence[float], space: Mapping) -> FittedPredictor:
    """Least-squares fit of a ``"regression"`` or ``"context"`` predictor to measured whole networks.

    Parameters
    ----------
    predictor : {"regression", "context"}
    configs : sequence of configurations
        The fit configurations (never the validation ones: :func:`split_configs`).
    seconds : sequence of float
        Their measured seconds per forward (positive).
    space : mapping of str to sequence of int
        Layer -> group sizes (e.g. :func:`gross.method.decomposition.search_space`).

    Raises
    ------
    ValueError
        Unknown or non-fitted predictor; ``configs`` and ``seconds`` of different
        lengths or non-positive times; fewer configurations than features
        (:func:`n_features`); configurations that leave some feature undetermined (the
        design matrix is rank-deficient: some size or pair of sizes never occurs).
    """
    _fitted(predictor)
    space = {k: tuple(v) for k, v in SearchSpace(dict(space)).as_dict().items()}
    y = np.asarray(seconds, dtype=np.float64)
    if y.ndim != 1 or len(y) != len(configs):
        raise ValueError(f"need one measured time per configuration, got {len(configs)} configurations and "
                         f"times of shape {y.shape}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("measured times must be finite and positive (seconds per forward)")
    p = n_features(space, predictor)
    if len(y) < p:
        raise ValueError(f"predictor {predictor!r} has {p} coefficients for this search space and needs at least "
                         f"{p} fit configurations (more for a stable fit), got {len(y)}; measure more "
                         f"(latency.n_fit) or use a predictor with fewer features ('regression')")
    x = design_matrix(configs, space, predictor)
    rank = int(np.linalg.matrix_rank(x))
    if rank < p:
        raise ValueError(f"the {len(y)} fit configurations determine only {rank} of the {p} coefficients of "
                         f"predictor {predictor!r} (some group size, or pair of neighbouring sizes, never occurs "
                         f"or always occurs together); use more, or more varied, random configurations")
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    rms = float(np.sqrt(np.mean(((x @ coef - y) / y) ** 2)))
    return FittedPredictor(predictor, space, coef, len(y), rms)


def split_configs(space: Mapping, n_validation: int, n_fit: int, seed=0) -> tuple[list, list]:
    """Disjoint random validation and fit configurations: ``(validation, fit)``.

    One seeded draw of ``n_validation + n_fit`` distinct configurations
    (:meth:`gross.method.space.SearchSpace.random`, nested in ``n``): the first
    ``n_validation`` validate (the same configurations as a validation without fitting),
    the rest fit. Raises ``ValueError`` when the space has fewer configurations.
    """
    for name, value in (("n_validation", n_validation), ("n_fit", n_fit)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    drawn = SearchSpace(dict(space)).random(int(n_validation) + int(n_fit), seed)
    return drawn[:n_validation], drawn[n_validation:]


def cover_pairs(space: Mapping, configs: Sequence, exclude: Sequence = (), seed=0) -> list:
    """``configs`` plus random configurations until every pair of neighbouring sizes occurs.

    For each layer ``l ≥ 1`` and sizes ``(a, b)`` of layers ``l-1, l`` that no
    configuration of ``configs`` has, one configuration with those two sizes and the
    other layers drawn at random (seeded) is appended, never one of ``configs`` or
    ``exclude`` (the validation configurations). A ``"context"`` fit needs every pair at
    least once; random draws alone miss some when a layer pair has many size pairs.
    """
    sizes = _sizes(space)
    rng = np.random.default_rng(seed)
    out = [tuple(c) for c in configs]
    taken = set(out) | {tuple(c) for c in exclude}
    seen = {(l, c[l - 1], c[l]) for c in out for l in range(1, len(sizes))}
    for l in range(1, len(sizes)):
        for a in sizes[l - 1]:
            for b in sizes[l]:
                if (l, a, b) in seen:
                    continue
                for _ in range(1000):
                    c = tuple(int(rng.choice(v)) for v in sizes)
                    c = c[:l - 1] + (a, b) + c[l + 1:]
                    if c not in taken:
                        break
                else:  # every configuration with this pair is taken (tiny spaces): fit_predictor's rank check tells
                    continue
                out.append(c)
                taken.add(c)
                seen.update((k, c[k - 1], c[k]) for k in range(1, len(sizes)))
    return out


def complete_fit(space: Mapping, configs: Sequence, predictor: str, exclude: Sequence = (), seed=0,
                 tries: int = 10_000) -> list:
    """``configs`` plus random configurations until they determine every coefficient of ``predictor``.

    A random draw of as many configurations as a fitted predictor has coefficients can
    leave some undetermined: a group size that never occurs, or two features that always
    occur together (the design matrix is rank-deficient, and :func:`fit_predictor`
    refuses it). Seeded random configurations, never one of ``configs`` or ``exclude``
    (the validation configurations), are appended one at a time where they raise the rank
    of :func:`design_matrix`, until it is full (or ``tries`` draws are spent: then
    :func:`fit_predictor` names what is missing). Full rank for ``"context"`` implies
    full rank for ``"regression"`` (its features are a subset).
    """
    _fitted(predictor)
    p = n_features(space, predictor)
    sizes = _sizes(space)
    out = [tuple(c) for c in configs]
    taken = set(out) | {tuple(c) for c in exclude}
    x = design_matrix(out, space, predictor) if out else np.zeros((0, p))
    rank = int(np.linalg.matrix_rank(x)) if out else 0
    rng = np.random.default_rng(seed)
    for _ in range(int(tries)):
        if rank >= p:
            break
        c = tuple(int(rng.choice(v)) for v in sizes)
        if c in taken:
            continue
        taken.add(c)
        grown = np.vstack([x, design_matrix([c], space, predictor)])
        r = int(np.linalg.matrix_rank(grown))
        if r > rank:
            out.append(c)
            x, rank = grown, r
    return out


def holds(row: Mapping, agreement: float = 0.10, target_error: float = 0.10, margin: float = 0.05) -> str:
    """Whether a validation row meets issue #28's target: ``"yes"``, ``"no"`` or ``"not applicable: ..."``.

    The target applies where two repeated measurements agree within ``agreement``
    (``repeat_rel_diff`` ≤ 10 %): then it holds when ``median_abs_rel_error`` ≤
    ``target_error`` and ``spearman`` ≥ ``spearman_repeat − margin``. Elsewhere the
    machine is too noisy to judge: ``"not applicable: repeats disagree by x %"``.
    """
    noise = float(row["repeat_rel_diff"])
    if not noise <= agreement:
        return f"not applicable: repeats disagree by {100 * noise:.1f} %"
    ok = row["median_abs_rel_error"] <= target_error and row["spearman"] >= row["spearman_repeat"] - margin
    return "yes" if ok else "no"



def default_n_fit(space: Mapping, predictors: Sequence[str], n_validation: int = 0) -> int:
    """Fit configurations to draw for ``predictors``: 1.5 × the largest fitted one's coefficients.

    Capped at the configurations the space has left after ``n_validation``; 0 when no
    predictor of ``predictors`` is fitted (the additive table needs none).
    """
    fitted = [p for p in map(check_predictor, predictors) if p in FITTED]
    if not fitted:
        return 0
    want = math.ceil(1.5 * max(n_features(space, p) for p in fitted))
    return max(0, min(want, SearchSpace(dict(space)).num_configs - int(n_validation)))


def _check_predictors(predictors) -> list[str]:
    if isinstance(predictors, str) or not isinstance(predictors, Sequence) or not predictors:
        raise ValueError(f"predictors must be a non-empty list of names from {PREDICTORS}, got {predictors!r}")
    names = [check_predictor(p) for p in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"predictors must not repeat a name, got {list(predictors)!r}")
    return names


def validate_predictors(model, table, predictors: Sequence[str] = PREDICTORS, n_validation: int = 30,
                        n_fit: int | None = None, seed: int = 0, input_size=None, device="cpu",
                        **kwargs) -> pd.DataFrame:
    """Held-out validation of several latency predictors on the same measured configurations.

    ``n_validation`` random validation configurations and ``n_fit`` disjoint fit
    configurations (:func:`split_configs`, seeded by ``seed``; with ``"context"``, plus
    :func:`cover_pairs`, so every pair of neighbouring sizes is fitted; then plus
    :func:`complete_fit`, so the fit determines every coefficient) are exported and timed
    in **one** round-robin (:func:`gross.search.latency.measure_configs`, ``kwargs``),
    so no drift between passes separates the fit from the validation; the validation
    configurations are then timed a second time, independently (the repeat ceiling).
    ``"additive"`` predicts from ``table``; ``"regression"`` and ``"context"`` are
    fitted (:func:`fit_predictor`) on the fit configurations only.

    Parameters
    ----------
    model : nn.Module
        The GroSS model ``table`` was measured for.
    table : gross.search.latency.LatencyTable
        Its table on this device (checked: same fingerprint and architecture).
    predictors : sequence of str
        Names from :data:`PREDICTORS`, each once.
    n_validation : int
    n_fit : int, optional
        Default :func:`default_n_fit` (0 when no fitted predictor is asked for).
    seed : int
        Seed of the configurations and of the random input.
    input_size : tuple of int, optional
        Default the table's.
    device : str or torch.device
    **kwargs
        Timing settings of :func:`gross.search.latency.measure_configs`.

    Returns
    -------
    pandas.DataFrame
        One row per predictor and validation configuration: ``predictor, n_fit,
        config, macs, predicted_s, measured_s, rel_error, measured_repeat_s``
        (summarise a predictor's rows with :func:`gross.search.latency.predictor_summary`).
    """
    names = _check_predictors(predictors)
    space = search_space(model)
    n_fit = default_n_fit(space, names, n_validation) if n_fit is None else n_fit
    if not any(p in FITTED for p in names):
        n_fit = 0
    val, fit = split_configs(space, n_validation, n_fit, seed)
    if "context" in names:
        fit = cover_pairs(space, fit, exclude=val, seed=seed)
    fitted = [p for p in names if p in FITTED]
    if fitted and n_fit:  # every coefficient determined (a random draw can miss a size): see complete_fit
        fit = complete_fit(space, fit, max(fitted, key=lambda p: n_features(space, p)), exclude=val, seed=seed)
    input_size = tuple(table.settings.get("input_size", (3, 32, 32))) if input_size is None else tuple(input_size)
    batch = table.fingerprint["batch_size"]
    table.check(L.device_fingerprint(device, batch, kwargs.get("num_threads")),
                L._architecture(model, L._input_size(input_size)))
    times = L.measure_configs(model, val + fit, input_size, batch, device, seed=seed, **kwargs)
    measured, fit_s = np.array(times[:len(val)]), times[len(val):]
    repeat = L.measure_configs(model, val, input_size, batch, device, seed=seed, **kwargs)
    macs = [count_macs(model, input_size, config=c).total for c in val]
    frames = []
    for name in names:
        if name == "additive":
            predicted = np.array([table.predict(c) for c in val])
        else:
            predicted = fit_predictor(name, fit, fit_s, space).predict_many(val)
        frames.append(pd.DataFrame({
            "predictor": name, "n_fit": 0 if name == "additive" else len(fit), "config": val, "macs": macs,
            "predicted_s": predicted, "measured_s": measured, "rel_error": (predicted - measured) / measured,
            "measured_repeat_s": repeat}))
    return pd.concat(frames, ignore_index=True)
