"""Tests of gross.pipeline.decomposition (and base): stored GroSS models, missing predecessors, MAC table."""

import pytest
import torch

from gross import config, paths
from gross.decomposition import decompose, search_space, set_config
from gross.pipeline import base, common, decomposition as dec, store


@pytest.fixture
def cfg(gross_runs):
    return config.load("smoke", device="cpu")


def test_missing_predecessor_gives_clear_message(cfg):
    with pytest.raises(FileNotFoundError, match=r"four_layer_gross_0\.pt is missing: run notebooks/02_finetuning"):
        dec.load_gross(cfg, "four_layer", 0)
    with pytest.raises(FileNotFoundError, match=r"run notebooks/01_decomposition\.ipynb first \(profile 'smoke'\)"):
        dec.load_gross(cfg, "four_layer", 0, tuned=False)
    with pytest.raises(FileNotFoundError, match=r"01_decomposition"):
        base.base_model(cfg, "vgg16", train=False)


def test_gross_payload_round_trip(cfg):
    torch.manual_seed(0)
    model = common.build_model(cfg, "four_layer")
    decompose(model, tol=1e-2, max_iter=1)
    loaded = dec.gross_from_payload(cfg, "four_layer", dec.gross_payload(model))
    assert search_space(loaded) == search_space(model)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    for c in [(1, 1, 1), (32, 4, 64)]:
        set_config(model, c)
        set_config(loaded, c)
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.conv2.btd_errors.keys() == model.conv2.btd_errors.keys()


def test_base_models_restricted_and_stale_after_a_change(cfg, gross_runs):
    df = base.base_models(cfg, models="four_layer").tables["base_models"]
    assert list(df["model"]) == ["four_layer"]
    assert not (gross_runs / "smoke" / "vgg16_base.pt").exists()
    other = config.load("smoke", device="cpu", four_layer__base_epochs=2)
    with pytest.raises(store.ArtefactError, match=r"differing: \['four_layer.base_epochs'\]"):
        base.base_model(other, "four_layer", train=False)
    base.base_model(config.load("smoke", device="cpu", vgg16__base_epochs=2), "four_layer", train=False)


def test_mac_table_matches_every_printed_paper_value(cfg):
    table = dec.mac_table(cfg).tables["table_macs"]
    paper_rows = table[table["width_mult"] == 1.0]
    assert len(paper_rows) == len(dec.PAPER_MACS)
    assert paper_rows["matches_paper"].all(), paper_rows[~paper_rows["matches_paper"].astype(bool)]
    reduced = table[table["width_mult"] != 1.0]
    assert list(reduced["config"])[0] == "full" and len(reduced) == 1 + len(cfg["vgg16"]["baselines"]) + 1
    assert (paths.results_dir("smoke") / "table_macs.csv").exists()
