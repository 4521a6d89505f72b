"""The experiment pipeline behind notebooks 00-08: one module per paper result.

=====================  ==================================================  ===========================
module                 steps (outputs declared with :func:`outputs.step`)  notebook
=====================  ==================================================  ===========================
:mod:`.tutorial`       ``conv_costs``, ``expansion_figure``, ``psi_check``  00_grouped_convolutions
:mod:`.base`           ``base_models``                                     01_decomposition
:mod:`.decomposition`  ``btd_error_table``, ``mac_table``                  01_decomposition
:mod:`.finetune`       ``finetune_gross_models``, ``uniform_before_after``,  02_finetuning
                       ``individual_finetunes``
:mod:`.table2`         ``exhaustive_search`` (Table 2, Fig. 3)             03_exhaustive_search
:mod:`.table3`         ``bfs_vgg16`` (Table 3, Fig. 4)                     04_breadth_first_search
:mod:`.table4`         ``imagenet_bfs`` (Table 4, optional)                04_breadth_first_search
:mod:`.table5`         ``ap_comparison`` (Table 5, Fig. 5)                 05_ap_comparison
:mod:`.timing`         ``inference_timing``                                05_ap_comparison
:mod:`.latency`        ``predictor_validation``, ``latency_vs_macs``,      06_latency_aware_search
                       ``latency_search`` (beyond the paper)
:mod:`.claims`         ``claims_table`` (the paper's claims vs noise)      06_latency_aware_search
:mod:`.own_network`    ``own_base_network``, ``own_decomposition``,        07_gross_on_your_network
                       ``own_finetuning``, ``own_search``, ``own_export``
                       (beyond the paper: a CIFAR ResNet-18)
:mod:`.pareto`         ``four_layer_fronts``, ``vgg16_fronts``             08_pareto_fronts
                       (beyond the paper: Pareto fronts, NSGA-II vs BFS)
=====================  ==================================================  ===========================

Support modules: :mod:`gross.runs.store` (``runs/<profile>/`` artefacts with fingerprints, the
run lock), :mod:`.outputs` (step declarations, table and figure writer,
:data:`EXPECTED_OUTPUTS`), :mod:`.common` (config → device, data, recipes,
networks), :mod:`.rows` (rows of Tables 2-3), :mod:`.reproduce` (``make reproduce``).

Artefacts in ``runs/<profile>/`` (each with the settings it read and their fingerprint):

===============================================  =============================  ===================
file                                             written by                     notebook
===============================================  =============================  ===================
``<model>_base.pt``                              :func:`.base.base_state`       01_decomposition
``<model>_gross_init_<repeat>.pt``               :func:`.decomposition.gross_decompose`  01
``btd/<model>/<layer>-s<size>-<hash>.pt``       one BTD job (+ ``weights/``)   01 (:func:`.decomposition.decomposition_jobs`)
``<model>_gross_<repeat>.pt``                    :func:`.finetune.finetune_gross`  02_finetuning
``true/<model>/<kind>_<config>_r<repeat>.json``  :func:`.finetune.true_accuracy`  02, 03, 04, 05
``checkpoints/...``                              training checkpoints (resume)  all
``latency/<arch>-<mode>-b<batch>-<hash>.json``   :func:`gross.search.latency.latency_table`  06, 08
``pareto/four_layer_accuracy.json``              :func:`.pareto.four_layer_accuracy`  08_pareto_fronts
===============================================  =============================  ===================

Choices where the paper is silent (documented in the outputs too)
------------------------------------------------------------------
* Searches (exhaustive and breadth-first) and every model selection use the
  **validation** split. The GroSS and true accuracies printed in Tables 2 and 3 are
  **test** accuracies of the (GroSS or individually fine-tuned) model at the
  configuration; Table 5 / Fig. 5 compare **validation** accuracies (Sec. 5.2).
* Table 2's exhaustive search ranks configurations by their GroSS validation
  accuracy **averaged over the repeats**; the GroSS and true accuracies of each row
  are mean (std) over repeats.
* A fine-tuned model is the one after the last epoch of its schedule.
* The base networks are trained once ("Full" reports that single network).
* True repeat ``r`` fine-tunes the decomposition of GroSS repeat ``r mod repeats``
  with seed ``seed + r``.
* The VBMF row is grouped with the cheapest uniform baseline whose MACs are not
  below its own (as in Tables 2 and 3).
* Uniform baselines at a group size a layer does not have (reduced-width VGG-16)
  use the layer's largest size instead.
"""

from __future__ import annotations

from pathlib import Path

from gross.pipeline import (base, claims, decomposition, finetune, latency, table2, table3, table4,  # noqa: F401
                            table5, timing, tutorial)  # their @step decorators fill STEPS
from gross.pipeline import own_network  # noqa: F401,E402  (notebook 07: its @step decorators fill STEPS)
from gross.pipeline import pareto  # noqa: F401,E402  (notebook 08: its @step decorators fill STEPS)
from gross.pipeline.common import setup
from gross.pipeline.outputs import FIGURE_FILES, TABLE_FILES, NOTEBOOK_ORDER, STEPS, Step, StepResult, step
from gross.utils import paths

__all__ = ["STEPS", "Step", "StepResult", "step", "expected_outputs", "expected_paths", "EXPECTED_OUTPUTS",
           "PIPELINE", "run_pipeline"]


def expected_outputs(include_optional: bool = False) -> dict[str, list[str]]:
    """Files every notebook writes, derived from the step declarations.

    Tables are relative to :func:`gross.utils.paths.results_dir`, figures to
    :func:`gross.utils.paths.figures_dir` (see :func:`expected_paths`). Outputs of optional
    steps (Table 4, written only with an ImageNet root) are left out unless asked for.
    """
    out: dict[str, list[str]] = {nb: [] for nb in NOTEBOOK_ORDER}
    for decl in STEPS.values():
        if decl.optional and not include_optional:
            continue
        out[decl.notebook] += [n + e for n in decl.tables for e in TABLE_FILES]
        out[decl.notebook] += [n + e for n in decl.figures for e in FIGURE_FILES]
    return out


def expected_paths(profile: str) -> dict[str, list[Path]]:
    """:func:`expected_outputs` as absolute paths for ``profile``."""
    res, fig = paths.results_dir(profile), paths.figures_dir(profile)
    figures = {n for d in STEPS.values() for n in d.figures}
    out = {}
    for nb, files in expected_outputs().items():
        out[nb] = [(fig if f.split(".")[0] in figures else res) / f for f in files]
    return out


#: Files each notebook writes, derived from the step declarations (:func:`expected_outputs`).
EXPECTED_OUTPUTS: dict[str, list[str]] = expected_outputs()


def _pipeline():
    return (base.base_models, decomposition.btd_error_table, decomposition.mac_table,
            finetune.finetune_gross_models, finetune.uniform_before_after, finetune.individual_finetunes,
            table2.exhaustive_search, table3.bfs_vgg16, table5.ap_comparison, timing.inference_timing,
            latency.predictor_validation, latency.latency_vs_macs, latency.latency_search, claims.claims_table)


#: The steps of notebooks 01-08 in notebook order (what the notebooks call, minus display).
PIPELINE = _pipeline()
PIPELINE += (own_network.own_base_network, own_network.own_decomposition, own_network.own_finetuning,
             own_network.own_search, own_network.own_export)  # notebook 07
PIPELINE += (pareto.four_layer_fronts, pareto.vgg16_fronts)  # notebook 08


def run_pipeline(cfg, steps=PIPELINE) -> dict:
    """Run ``steps`` in order on ``cfg`` (after :func:`.common.setup`); their results by step name.

    The notebooks call the same functions one by one; this is for scripts and tests.
    """
    setup(cfg)
    return {s.__name__: s(cfg) for s in steps}
