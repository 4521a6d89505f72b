"""gross.experiments is a thin alias of gross.pipeline (kept for old scripts)."""

from gross import experiments, pipeline
from gross.pipeline import base, decomposition, finetune, table2, table3, table4, table5, timing


def test_experiments_reexports_the_pipeline_steps():
    assert experiments.EXPECTED_OUTPUTS is pipeline.EXPECTED_OUTPUTS
    for module in (base, decomposition, finetune, table2, table3, table4, table5, timing):
        for name in module.__all__:
            if name in experiments.__all__:
                assert getattr(experiments, name) is getattr(module, name), name
    assert {"exhaustive_search", "bfs_vgg16", "ap_comparison", "inference_timing"} <= set(experiments.__all__)
