"""Benchmark group ``btd``: block term decomposition time per layer, 4-layer network and CIFAR VGG-16."""

from __future__ import annotations


import torch

from gross.method.decomposition import decomposable_layers, default_group_sizes
from gross.bench.common import VGG_GROUP_SIZES, _build, _label
from gross.bench.core import Settings, _Budget, _row, register
from gross.utils.timing import timed

__all__ = ['bench_btd']


@register("btd")
def bench_btd(settings: Settings, device) -> list[dict]:
    """BTD time per layer (all its group sizes) and in total, 4-layer net and VGG-16."""
    from gross.method.btd import btd

    device = torch.device(device)
    torch.manual_seed(settings.seed)
    btd(torch.randn(4, 4, 3, 3, device=device), 2, max_iter=2)  # warm-up (imports, kernels)
    return _four_layer_rows(settings, device) + _vgg_rows(settings, device)


def _four_layer_rows(settings: Settings, device: torch.device) -> list[dict]:
    """4-layer network: every size, the cpu profile's stopping rule."""
    from gross.method.btd import btd

    rows = []
    budget = _Budget(settings.btd_budget_s)
    model = _build("four_layer")
    names = decomposable_layers(model)[: settings.btd_four_layer_layers]
    total, sweeps_total, done = 0.0, 0, []
    for name in names:
        if done and budget.spent():
            break
        done.append(name)
        weight = model.get_submodule(name).weight.detach().to(device)
        sizes = default_group_sizes(weight.shape[1])
        seconds, info = 0.0, []
        for s in sizes:
            res, dt = timed(lambda: btd(weight, s, tol=settings.btd_four_layer_tol,
                                        max_iter=settings.btd_four_layer_max_iter, seed=settings.seed), device)
            seconds += dt
            sweeps_total += len(res.errors) - 1
            info.append(f"s={s}: {dt:.2f} s, {len(res.errors) - 1} sweeps, error {res.errors[-1]:.3f}")
        total += seconds
        rows.append(_row("btd", f"four_layer {name} {tuple(weight.shape)}", f"BTD at sizes {sizes}", seconds,
                         device=device, note="; ".join(info)))
    skipped = [n for n in names if n not in done]
    rows.append(_row(
        "btd", "four_layer total", f"BTD of {len(done)} layers, all sizes", total, device=device,
        note=f"tol {settings.btd_four_layer_tol:g}, max {settings.btd_four_layer_max_iter} sweeps, "
             f"{sweeps_total} sweeps in all; random (untrained) weights, single run per decomposition"
             + (f"; not measured (budget {settings.btd_budget_s:g} s spent): {', '.join(skipped)}" if skipped else ""),
    ))
    return rows


def _vgg_rows(settings: Settings, device: torch.device) -> list[dict]:
    """VGG-16: sizes (1, 4, 16, 32), a capped number of sweeps; distinct layer shapes first."""
    from gross.method.btd import btd

    rows = []
    budget = _Budget(settings.btd_budget_s)
    model = _build("vgg16", settings.btd_vgg_width)
    names = decomposable_layers(model)
    shapes = {n: tuple(model.get_submodule(n).weight.shape) for n in names}
    first_of_shape = list(dict.fromkeys(shapes.values()))
    order = [next(n for n in names if shapes[n] == sh) for sh in first_of_shape]
    order += [n for n in names if n not in order]
    measured, capped = {}, []
    for name in order:
        if measured and budget.spent():
            break
        weight = model.get_submodule(name).weight.detach().to(device)
        sizes = tuple(s for s in VGG_GROUP_SIZES if weight.shape[1] % s == 0)
        results, measured[name] = timed(lambda: [btd(weight, s, tol=settings.btd_vgg_tol, max_iter=settings.btd_vgg_max_iter,
                                                     seed=settings.seed) for s in sizes], device)
        sweeps = [len(res.errors) - 1 for res in results]
        capped += [f"{name} s={s}" for s, n in zip(sizes, sweeps) if n >= settings.btd_vgg_max_iter]
        rows.append(_row("btd", f"{_label('vgg16', settings.btd_vgg_width)} {name} {shapes[name]}",
                         f"BTD at sizes {sizes}", measured[name], device=device,
                         note=f"{sweeps} sweeps (max {settings.btd_vgg_max_iter})"))
    by_shape = {}
    for n, sec in measured.items():
        by_shape.setdefault(shapes[n], sec)
    estimated = [n for n in names if n not in measured and shapes[n] in by_shape]
    missing = [n for n in names if n not in measured and shapes[n] not in by_shape]
    total = sum(measured.values()) + sum(by_shape[shapes[n]] for n in estimated)
    stopping = (f"{len(capped)} decompositions stopped at the cap of {settings.btd_vgg_max_iter} sweeps before "
                f"reaching tol {settings.btd_vgg_tol:g} (the paper allows 5e5), so converged BTDs take longer"
                if capped else f"every decomposition converged (tol {settings.btd_vgg_tol:g})")
    note = (f"{len(measured)} of {len(names)} layers measured (budget {settings.btd_budget_s:g} s)"
            + (f"; {', '.join(estimated)} estimated from the measured layer of the same shape" if estimated else "")
            + (f"; not measured and not estimated: {', '.join(missing)}" if missing else "")
            + f"; {stopping}; random (He-initialised) weights")
    rows.append(_row("btd", f"{_label('vgg16', settings.btd_vgg_width)} total",
                     f"BTD of {len(names)} layers x sizes {VGG_GROUP_SIZES}", total, device=device, note=note))
    return rows
