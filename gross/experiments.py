"""Deprecated alias of :mod:`gross.pipeline` (the pipeline behind the notebooks), kept for old scripts.

New code imports the step modules: :mod:`gross.pipeline.base`, ``.decomposition``,
``.finetune``, ``.table2``, ``.table3``, ``.table4``, ``.table5``, ``.timing``.
"""

from .pipeline import EXPECTED_OUTPUTS, StepResult, expected_paths
from .pipeline.base import base_model, base_models
from .pipeline.common import (MODELS, NOTEBOOKS, build_model, data_summary, prepare_data, recipe, resolve_device,
                              setup)
from .pipeline.decomposition import btd_error_table, gross_decompose, load_gross, mac_table
from .pipeline.finetune import finetune_gross_models, individual_finetunes, true_accuracy, uniform_before_after
from .pipeline.store import require
from .pipeline.table2 import exhaustive_search
from .pipeline.table3 import bfs_vgg16
from .pipeline.table4 import imagenet_bfs
from .pipeline.table5 import ap_comparison
from .pipeline.timing import inference_timing

__all__ = [
    "MODELS", "NOTEBOOKS", "EXPECTED_OUTPUTS", "StepResult", "expected_paths", "require", "setup", "resolve_device",
    "prepare_data", "data_summary", "recipe", "build_model", "base_model", "base_models", "gross_decompose",
    "load_gross", "btd_error_table", "mac_table", "finetune_gross_models", "uniform_before_after", "true_accuracy",
    "individual_finetunes", "exhaustive_search", "bfs_vgg16", "imagenet_bfs", "ap_comparison", "inference_timing",
]
