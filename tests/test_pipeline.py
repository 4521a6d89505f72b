"""The pipeline as a whole (gross.pipeline): results unchanged, every setting with an effect, by use.

One smoke run of every step of notebooks 01-05 (~30 s on 2 cores) backs these tests:

* its tables equal ``tests/data/smoke_reference/`` (timing columns aside): configurations, counts
  and strings exactly, floating-point columns within ``FLOAT_RTOL`` (see there why);
* every key of ``configs/paper.toml`` is read by some step (a dead key fails; ``[imagenet]``:
  ``tests/test_table4.py``);
* changing a key re-makes exactly the existing artefacts whose recorded settings hold it;
* a table's reductions line lists only keys its step read.
"""

import json
import shutil

import pandas as pd
import pytest

from gross.runs import config
from gross.utils import paths
from gross.pipeline import EXPECTED_OUTPUTS, PIPELINE, STEPS, run_pipeline
from gross.runs import store

REFERENCE = paths.ROOT / "tests" / "data" / "smoke_reference"
#: Columns holding wall-clock times (or ratios of them): machine dependent.
TIMING = {"train_time_s", "decomposition_s", "seconds", "images_per_s", "switching_s", "rebuild_s", "ratio"}
#: Relative tolerance for floating-point columns of the smoke tables. Float64 results such as the BTD
#: error norms depend on the CPU's BLAS kernels and thread scheduling (summation order): on another
#: 2-core machine ``btd_errors.csv`` differed from the reference by up to 1.6e-9 relative while every
#: other table was identical. 1e-6 leaves ample room for that and still catches any real change.
#: ``FLOAT_ATOL`` only covers values that are zero in the reference (rounding noise around 0).
FLOAT_RTOL = 1e-6
FLOAT_ATOL = 1e-12


def assert_table_matches(new: pd.DataFrame, ref: pd.DataFrame, name: str) -> None:
    """``new`` equals ``ref``: non-float columns exactly, float columns within ``FLOAT_RTOL``."""
    assert list(new.columns) == list(ref.columns), name
    floats = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c])]
    exact = [c for c in ref.columns if c not in floats]
    pd.testing.assert_frame_equal(new[exact], ref[exact], check_exact=True, obj=f"{name} (exact columns)")
    pd.testing.assert_frame_equal(new[floats], ref[floats], check_exact=False, rtol=FLOAT_RTOL,
                                  atol=FLOAT_ATOL, obj=f"{name} (float columns, rtol {FLOAT_RTOL:g})")


def test_assert_table_matches_tolerates_rounding_and_nothing_more():
    ref = pd.DataFrame({"config": ["1 2", "4 8"], "n": [3, 4], "error": [0.25, 1e-3]})
    assert_table_matches(ref.assign(error=ref.error * (1 + 1.6e-9)), ref, "t")  # observed spread: passes
    with pytest.raises(AssertionError, match="float columns"):
        assert_table_matches(ref.assign(error=ref.error * (1 + 1e-5)), ref, "t")
    with pytest.raises(AssertionError, match="exact columns"):
        assert_table_matches(ref.assign(config=["1 2", "4 16"]), ref, "t")
    with pytest.raises(AssertionError, match="exact columns"):
        assert_table_matches(ref.assign(n=[3, 5]), ref, "t")


def _run(tmp, cfg):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROSS_RUNS", str(tmp / "runs"))
        mp.setenv("GROSS_OUTPUTS", str(tmp / "out"))
        with store.watch() as made, config.recording() as reads:
            results = run_pipeline(cfg)
    return results, made, reads


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke pipeline, run once: ``(results by step, artefacts made, every key read, folder)``."""
    tmp = tmp_path_factory.mktemp("pipeline")
    results, made, reads = _run(tmp, config.load("smoke", device="cpu"))
    return results, made, reads, tmp


def _artefact_settings(runs):
    out = {}
    for path in sorted((runs / "smoke").rglob("*")):
        if path.suffix in (".pt", ".json") and not {"checkpoints", "jobs", "btd"} & set(path.parts):  # gross.runs.jobs outputs
            env = json.loads(path.read_text()) if path.suffix == ".json" else __import__("torch").load(
                path, weights_only=True)
            out[str(path.relative_to(runs / "smoke"))] = env["settings"]
    return out


@pytest.mark.slow
def test_smoke_tables_equal_the_reference(smoke):
    *_, tmp = smoke
    references = sorted(REFERENCE.glob("*.csv"))
    assert references, f"no reference tables in {REFERENCE}"
    for ref_path in references:
        ref = pd.read_csv(ref_path)
        new = pd.read_csv(tmp / "out" / "results" / ref_path.name)
        assert set(new.columns) - TIMING == set(ref.columns), ref_path.name
        assert_table_matches(new[list(ref.columns)], ref, ref_path.name)


@pytest.mark.slow
def test_every_expected_output_is_written(smoke):
    *_, tmp = smoke
    for nb, files in EXPECTED_OUTPUTS.items():
        if nb == "00_grouped_convolutions":
            continue  # tutorial outputs: tests/test_notebooks.py
        for f in files:
            where = "figures" if f.split(".")[0] in {n for s in STEPS.values() for n in s.figures} else "results"
            assert (tmp / "out" / where / f).is_file(), f"{nb}: {f} missing"


@pytest.mark.slow
def test_every_paper_key_is_read_by_some_step(smoke):
    _, _, reads, _ = smoke
    schema = {".".join(k) for k in config.flatten(config.load("paper").to_dict()) if k != ("profile",)}
    # [imagenet] keys are read only with an ImageNet root: tests/test_table4.py::test_every_imagenet_key_is_read
    # training.tf32 / training.bf16 are read only on CUDA: tests/test_pipeline_finetune.py::test_precision_settings_*
    dead = sorted(k for k in schema - reads if not k.startswith("imagenet.") and k not in {"training.tf32",
                                                                                       "training.bf16"})
    assert not dead, f"settings no step reads (remove them or wire them up): {dead}"


@pytest.mark.slow
def test_reductions_line_lists_only_keys_the_step_read(smoke):
    results, _, _, tmp = smoke
    for name, result in results.items():
        decl = STEPS[name]
        for out in decl.tables:
            meta = json.loads((tmp / "out" / "results" / f"{out}.meta.json").read_text())
            assert meta["settings_read"] == result.reads
            listed = [r.split(" = ")[0] for r in meta["reductions_vs_paper"]]
            assert set(listed) <= set(result.reads), (out, sorted(set(listed) - set(result.reads)))
            assert meta["reductions_vs_paper"] == config.reductions(config.load("smoke"), keys=result.reads)
    macs = json.loads((tmp / "out" / "results" / "table_macs.meta.json").read_text())["reductions_vs_paper"]
    assert [r.split(" = ")[0] for r in macs] == ["vgg16.width_mult", "vgg16.baselines"]
    table3 = json.loads((tmp / "out" / "results" / "table3_bfs_vgg16.meta.json").read_text())
    assert not [r for r in table3["reductions_vs_paper"] if r.startswith(("four_layer.", "ap."))]
    table5 = (tmp / "out" / "results" / "table5_average_precision.md").read_text().splitlines()[0]
    assert "ap.n_configs = 6 (paper: 45)" in table5 and "vgg16." not in table5


@pytest.mark.slow
@pytest.mark.parametrize("key, value", [("ap.partial_epochs", 2), ("vgg16.bfs_runs", 3)])
def test_changing_a_key_remakes_exactly_the_artefacts_that_read_it(smoke, tmp_path, key, value):
    results, made, _, tmp = smoke
    shutil.copytree(tmp / "runs", tmp_path / "runs")
    settings = _artefact_settings(tmp_path / "runs")
    assert sorted(made) == sorted(settings)  # the first run made every artefact once
    expected = sorted(p for p, s in settings.items() if key in s)
    section, name = key.split(".")
    cfg = config.load("smoke", device="cpu", **{f"{section}__{name}": value})
    results2, made2, _ = _run(tmp_path, cfg)
    # re-made: existing artefacts computed again (a search may also find configurations never trained before)
    assert sorted(p for p in made2 if p in settings) == expected
    if key == "ap.partial_epochs":  # Table 5's partial fine-tunes and nothing else
        assert expected and all(p.startswith("true/four_layer/partial_") for p in expected)
    changed = sorted(n for n, r in results2.items() if key in r.reads)
    assert changed == sorted(n for n, r in results.items() if key in r.reads) and changed


@pytest.mark.slow
def test_smoke_run_pdfs_are_vector(smoke):
    """Line and scatter figures of the pipeline hold no raster image (composites are drawn on axes)."""
    *_, tmp = smoke
    pdfs = sorted((tmp / "out" / "figures").glob("*.pdf"))
    assert {p.stem for p in pdfs} == {n for s in STEPS.values() if s.notebook != "00_grouped_convolutions"
                                      and not s.optional for n in s.figures}  # optional: Table 4, no ImageNet
    for pdf in pdfs:
        assert b"/Subtype /Image" not in pdf.read_bytes(), f"{pdf.name} embeds a raster image"
