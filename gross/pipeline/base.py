"""Notebook 01, first half: the trained base networks (``runs/<profile>/<model>_base.pt``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from torch import nn

from gross.pipeline.common import (MODELS, NOTEBOOKS, build_model, check_models, evaluate, fan_out, prepare_data, recipe,
                     resolve_device)
from gross.pipeline.outputs import StepResult, step
from gross.runs.store import Store

__all__ = ["base_path", "base_model", "base_state", "base_models"]


def base_path(name: str) -> str:
    """Artefact name of base network ``name`` in the store."""
    return f"{name}_base.pt"


def _train(cfg: Mapping, store: Store, name: str) -> dict:
    from gross.training.loop import train_base

    model = build_model(cfg, name)
    data = prepare_data(cfg, name)
    rec = recipe(cfg, name, "base")
    history = train_base(model, data, rec, run_dir=store.root / "checkpoints", resume=True,
                         device=resolve_device(cfg), name=f"{name}_base_{store.fingerprint_so_far()}",
                         progress=False)
    model.cpu().eval()
    return {"state_dict": model.state_dict(), "history": history.to_dict(orient="list"),
            "val_acc": evaluate(cfg, model, data, "val"), "test_acc": evaluate(cfg, model, data, "test")}


def base_state(cfg: Mapping, name: str, train: bool = True) -> dict:
    """The stored base network ``name`` (state dict, history, accuracies), trained if needed.

    Training checkpoints every epoch under ``runs/<profile>/checkpoints`` and resumes
    from there. With ``train=False`` a missing or stale file raises an error naming
    notebook 01.
    """
    store = Store(cfg)
    if not train:
        return store.load(base_path(name), NOTEBOOKS["decomposition"])
    return store.make(base_path(name), lambda: _train(cfg, store, name), NOTEBOOKS["decomposition"])


def base_model(cfg: Mapping, name: str, train: bool = True) -> nn.Module:
    """The trained base network ``name`` (in eval mode): loaded from the store or trained (see :func:`base_state`)."""
    model = build_model(cfg, name)
    model.load_state_dict(base_state(cfg, name, train)["state_dict"])
    return model.eval()


@step("01_decomposition", tables=("base_models",))
def base_models(cfg: Mapping, models: Sequence[str] = MODELS) -> StepResult:
    """Train (or load) both base networks; table ``base_models`` (accuracy, MACs, epochs, time).

    ``models`` restricts the step to some of :data:`MODELS` (default: both).
    """
    from gross.method.macs import count_macs

    names = check_models(models)
    fan_out(cfg, "01_decomposition", [(base_state, (name,), base_path(name)) for name in names])  # independent jobs
    rows = []
    for name in names:
        model = base_model(cfg, name)
        state = base_state(cfg, name, train=False)
        rows.append({
            "model": name, "macs": count_macs(model).total, "epochs": cfg[name]["base_epochs"],
            "val_acc": state["val_acc"], "test_acc": state["test_acc"], "train_time_s": state["wall_time_s"],
        })
    return StepResult(tables={"base_models": pd.DataFrame(rows)})
