"""Notebook 04, last part: Table 4 (ImageNet), skipped unless ``imagenet.root`` is set."""

from __future__ import annotations

from collections.abc import Mapping

from .outputs import StepResult, step

__all__ = ["imagenet_bfs"]


@step("04_breadth_first_search", tables=("table4_imagenet",), optional=True)
def imagenet_bfs(cfg: Mapping) -> StepResult | None:
    """Table 4 (ImageNet). Returns ``None`` when ``imagenet.root`` is empty (the default).

    Raises
    ------
    NotImplementedError
        When a root is given: the ImageNet pipeline (pretrained torchvision weights,
        decomposition, 4/8-epoch GroSS fine-tunes, search) is not wired into the
        notebooks yet.
    """
    # TODO(merge imagenet): call gross.imagenet / gross.distributed (helper I) here.
    if not cfg["imagenet"]["root"]:
        return None
    raise NotImplementedError(
        "Table 4 needs pretrained ImageNet VGG-16/ResNet-18 weights and GPU-scale fine-tuning; the ImageNet "
        f"pipeline is not wired into gross.pipeline yet (imagenet.root={cfg['imagenet']['root']!r}). "
        "Leave imagenet_root empty to skip Table 4."
    )
