"""Tests of gross.pipeline.timing: the timing verbs of notebook 05 and the step composed of them.

A GroSS 4-layer network with random factors (:func:`gross.method.decomposition.random_gross`)
stands in for the stored fine-tune: timing does not depend on the weights' values.
"""

import pandas as pd
import pytest
import torch

from gross.method.decomposition import random_gross, search_space
from gross.models import four_layer_net
from gross.pipeline import table5, timing
from gross.runs import config

COLUMNS = ["device", "n_configs", "switching_s", "rebuild_s", "ratio", "max_abs_diff", "n_images"]


def _smoke(**overrides):
    return config.load("smoke", device="cpu", **overrides)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return random_gross(four_layer_net()).eval()


def test_timing_configs_are_the_first_of_table5s_draw(model):
    cfg = _smoke(timing__n_configs=3)
    drawn = table5.ap_configs(cfg, search_space(model))
    assert timing.timing_configs(cfg, model) == drawn[:3]
    cfg = _smoke(timing__n_configs=50)  # more than ap.n_configs: all of Table 5's configurations
    assert timing.timing_configs(cfg, model) == table5.ap_configs(cfg, search_space(model))


def test_time_inference_one_row_on_the_first_images(model):
    cfg = _smoke(timing__n_images=16)
    configs = timing.timing_configs(cfg, model)[:2]
    df = timing.time_inference(cfg, model, configs)
    assert list(df.columns) == COLUMNS and len(df) == 1
    row = df.iloc[0]
    assert row["n_configs"] == 2 and row["n_images"] == 16 and row["device"] == "cpu"
    assert row["max_abs_diff"] == 0.0 and row["switching_s"] > 0 and row["rebuild_s"] > 0
    capped = timing.time_inference(_smoke(timing__n_images=10_000), model, configs[:1])
    assert capped.loc[0, "n_images"] == _smoke()["data"]["n_val"]  # at most the validation split


def test_timing_model_needs_notebook_02(gross_runs):
    with pytest.raises(FileNotFoundError, match="02_finetuning"):
        timing.timing_model(_smoke())


def test_step_takes_the_timed_table_and_times_nothing(gross_runs, monkeypatch):
    timed = pd.DataFrame([{"device": "cpu", "n_configs": 3, "switching_s": 1.0, "rebuild_s": 4.0, "ratio": 4.0,
                           "max_abs_diff": 0.0, "n_images": 16}])
    monkeypatch.setattr(timing, "time_inference", lambda *a, **k: pytest.fail("timed again"))
    monkeypatch.setattr(timing, "timing_model", lambda *a, **k: pytest.fail("model loaded again"))
    result = timing.inference_timing(_smoke(), timed=timed)
    pd.testing.assert_frame_equal(result.tables["inference_timing"], timed)
    assert result.notes == ["3 configurations x 16 validation images"]
    written = pd.read_csv(gross_runs / "smoke" / "results" / "inference_timing.csv")
    assert list(written.columns) == COLUMNS


def test_bare_step_is_the_composition_of_the_verbs(gross_runs, monkeypatch, model):
    monkeypatch.setattr(timing, "timing_model", lambda cfg: model)  # no stored fine-tune needed
    bare = timing.inference_timing(_smoke(timing__n_configs=2, timing__n_images=16))
    cfg = _smoke(timing__n_configs=2, timing__n_images=16)
    timed = timing.time_inference(cfg, model, timing.timing_configs(cfg, timing.timing_model(cfg)))
    composed = timing.inference_timing(cfg, timed=timed)
    keep = ["device", "n_configs", "max_abs_diff", "n_images"]  # not the wall-clock columns
    pd.testing.assert_frame_equal(composed.tables["inference_timing"][keep], bare.tables["inference_timing"][keep])
    assert composed.notes == bare.notes == ["2 configurations x 16 validation images"]
    assert composed.reads == bare.reads
