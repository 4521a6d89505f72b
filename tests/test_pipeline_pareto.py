"""gross.pipeline.pareto (notebook 08) on the smoke profile: fronts, equal evaluations, steps = verbs."""

import pandas as pd
import pytest

pytest.importorskip("optuna", reason="optuna is a pinned requirement (requirements.txt); install it")

from gross.pipeline import EXPECTED_OUTPUTS, NOTEBOOK_ORDER, PIPELINE, STEPS  # noqa: E402
from gross.pipeline import base, decomposition, finetune, pareto  # noqa: E402
from gross.runs import config  # noqa: E402
from gross.search.pareto import dominated  # noqa: E402

NB = "08_pareto_fronts"
#: Columns that hold timings (machine dependent).
TIMING = ["measured_ms"]


@pytest.fixture(scope="module")
def cfg(prepared):
    cfg = config.load("smoke", device="cpu")
    base.base_models(cfg, models=["vgg16"])
    decomposition.btd_error_table(cfg, models=["vgg16"])
    finetune.finetune_gross_models(cfg, models=["vgg16"])
    cfg.take_reads()  # the preparation's reads belong to no step of notebook 08
    return cfg


@pytest.fixture(scope="module")
def four_layer(cfg):
    cfg.take_reads()  # what earlier tests read belongs to no step
    model = decomposition.load_gross(cfg, "four_layer", 0)
    every = pareto.four_layer_table(cfg, model=model)
    front = pareto.measure_front(cfg, model, pareto.fronts_table(every))
    searches = pareto.four_layer_searches(cfg, every, model)
    summary = pareto.four_layer_summary(cfg, every, searches, model)
    step = pareto.four_layer_fronts(cfg, table=every, front=front, searches=searches, summary=summary)
    return dict(model=model, every=every, front=front, searches=searches, summary=summary, step=step)


@pytest.fixture(scope="module")
def vgg16(cfg):
    cfg.take_reads()
    model = decomposition.load_gross(cfg, "vgg16", 0)
    evaluated = pareto.vgg16_searches(cfg, model)
    seeds = pareto.hypervolume_table(evaluated, pareto.hypervolume_ranges(model, evaluated["accuracy"]))
    step = pareto.vgg16_fronts(cfg, model=model, evaluated=evaluated, seeds=seeds,
                               summary=pareto.hypervolume_summary(seeds))
    return dict(model=model, evaluated=evaluated, seeds=seeds, step=step)


def test_notebook_is_registered():
    assert NOTEBOOK_ORDER[-1] == NB == pareto.NOTEBOOK
    assert [s.__name__ for s in PIPELINE[-2:]] == ["four_layer_fronts", "vgg16_fronts"]
    assert {STEPS[s].notebook for s in ("four_layer_fronts", "vgg16_fronts")} == {NB}
    assert "pareto_vgg16_hypervolume.csv" in EXPECTED_OUTPUTS[NB] and "fig_pareto_vgg16.pdf" in EXPECTED_OUTPUTS[NB]


def test_four_layer_table_holds_every_configuration(four_layer):
    every = four_layer["every"]
    assert len(every) == 252 and every["config"].nunique() == 252
    assert every["accuracy"].between(0, 100).all() and (every["predicted_ms"] > 0).all()


def test_front_table_is_the_union_of_the_exact_fronts(four_layer):
    every, front = four_layer["every"], four_layer["front"]
    on_macs = set(every["config"][~dominated(every, pareto.PAIR)])
    on_lat = set(every["config"][~dominated(every, pareto.LATENCY_PAIR)])
    assert set(front["config"]) == on_macs | on_lat
    assert set(front.loc[front["on_macs_front"], "config"]) == on_macs
    assert set(front.loc[front["on_latency_front"], "config"]) == on_lat
    assert (front["measured_ms"] > 0).all()


def test_four_layer_searches_get_the_configured_evaluations(cfg, four_layer):
    searches, summary = four_layer["searches"], four_layer["summary"]
    n = cfg["pareto"]["four_layer_evaluations"]
    assert searches.groupby(["method", "seed"]).size().eq(n).all()
    assert sorted(searches["seed"].unique()) == list(range(cfg["seed"], cfg["seed"] + cfg["pareto"]["seeds"]))
    exact = summary[summary["method"] == "exact"].iloc[0]
    assert exact["ratio"] == pytest.approx(1.0) and exact["n_evaluations"] == 252
    assert (summary["ratio"] <= 1 + 1e-12).all()  # no search beats the exact front


def test_vgg16_searches_have_equal_evaluations_per_seed(cfg, vgg16):
    counts = vgg16["evaluated"].groupby(["seed", "method"])["config"].nunique().unstack()
    assert list(counts.columns) == ["bfs", "nsga2", "random"]
    assert (counts["bfs"] == counts["nsga2"]).all() and (counts["bfs"] == counts["random"]).all()
    assert len(counts) == cfg["pareto"]["seeds"]


def test_vgg16_front_is_non_dominated_among_everything_evaluated(vgg16):
    front = vgg16["step"].tables["pareto_vgg16_front"]
    distinct = vgg16["evaluated"].drop_duplicates("config")
    best = distinct["accuracy"].max()
    assert front["accuracy"].max() == pytest.approx(best)
    macs_front = front[front["on_macs_front"]]
    for _, row in macs_front.iterrows():  # no evaluated configuration dominates a front one
        assert not ((distinct["accuracy"] >= row["accuracy"]) & (distinct["macs"] <= row["macs"])
                    & ((distinct["accuracy"] > row["accuracy"]) | (distinct["macs"] < row["macs"]))).any()
    assert {"macs", "predicted_ms", "measured_ms", "accuracy", "found_by"} <= set(front.columns)


def test_hypervolume_summary_names_the_target(vgg16):
    summary = vgg16["step"].tables["pareto_vgg16_hypervolume"]
    assert list(summary["method"]) == ["bfs", "nsga2", "random"]
    assert summary["hypervolume_mean"].between(0, 1).all()
    row = summary.set_index("method")
    assert row.loc["bfs", "nsga2_ge"] == (row.loc["nsga2", "hypervolume_mean"] >= row.loc["bfs", "hypervolume_mean"])


def _drop_timing(df):
    return df.drop(columns=[c for c in TIMING if c in df.columns])


def test_steps_with_the_verbs_results_equal_the_bare_steps(cfg, four_layer, vgg16):
    for bare, verbs in ((pareto.four_layer_fronts(cfg), four_layer["step"]), (pareto.vgg16_fronts(cfg), vgg16["step"])):
        assert set(bare.tables) == set(verbs.tables)
        for name in bare.tables:
            pd.testing.assert_frame_equal(_drop_timing(bare.tables[name]), _drop_timing(verbs.tables[name]),
                                          obj=name)


def test_steps_with_the_verbs_read_what_the_bare_steps_read(cfg, four_layer, vgg16):
    # A step's reads are the keys read during the call plus those read since the previous step (cell by cell in
    # a notebook), so each bare call starts from a clean slate: what the fixtures or other tests read is not its.
    for name, verbs in (("four_layer_fronts", four_layer["step"]), ("vgg16_fronts", vgg16["step"])):
        cfg.take_reads()
        bare = getattr(pareto, name)(cfg)
        assert bare.reads == verbs.reads, (name, sorted(set(bare.reads) ^ set(verbs.reads)))


def test_vgg16_data_cuts_the_validation_split(cfg):
    assert len(pareto.vgg16_data(cfg).val) == cfg["vgg16"]["n_val"]  # smoke: pareto.n_val = 0 keeps it whole
    cut = config.load("smoke", device="cpu", pareto__n_val=16)
    assert len(pareto.vgg16_data(cut).val) == 16
