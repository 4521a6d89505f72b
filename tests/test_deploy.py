"""ONNX export of a GroSS configuration (:mod:`gross.method.deploy`)."""

import pytest
import torch

from gross.method import deploy
from gross.method.decomposition import random_gross
from gross.method.decomposition import search_space
from gross.models import four_layer_net


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return random_gross(four_layer_net(), seed=0).eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    config = (4, 8, 16)
    path = deploy.export_onnx(model, config, tmp_path_factory.mktemp("onnx") / "net.onnx")
    return config, path


def test_grouped_convolutions_are_kept_as_group_attributes(model, exported):
    config, path = exported
    assert path.is_file() and not list(path.parent.glob(".*.tmp.onnx"))
    # independent expectation: first conv dense; per decomposed layer P (1), R (width / s), Q (1)
    widths = [model.get_submodule(n).in_channels for n in search_space(model)]
    expected = [1] + [g for w, s in zip(widths, config) for g in (1, w // s, 1)]
    assert deploy.onnx_conv_groups(path) == expected
    assert deploy.torch_conv_groups(deploy._plain(model, config)) == expected


def test_onnxruntime_matches_pytorch_on_random_inputs(model, exported):
    config, path = exported
    df = deploy.check_onnx(model, config, path, batch_sizes=(1, 3), n_inputs=2, seed=1)
    assert len(df) == 4 and set(df["batch_size"]) == {1, 3}  # dynamic batch works
    assert df["groups_match"].all()
    assert (df["max_abs_diff"] <= 1e-5 * df["max_abs_output"].clip(lower=1)).all()


def test_check_onnx_detects_a_different_network(model, exported):
    config, path = exported
    df = deploy.check_onnx(model, (1, 1, 1), path, batch_sizes=(2,), n_inputs=1)
    assert not df["groups_match"].all() and df["max_abs_diff"].max() > 1e-4


def test_export_refuses_a_graph_without_the_groups(model, tmp_path, monkeypatch):
    monkeypatch.setattr(deploy, "onnx_conv_groups", lambda path: [1] * 10)
    with pytest.raises(RuntimeError, match="lost grouped convolutions"):
        deploy.export_onnx(model, (4, 8, 16), tmp_path / "bad.onnx")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


@pytest.mark.parametrize("input_size", [(3, 0, 32), "3x32x32", (), (3.0, 32, 32)])
def test_bad_input_size(model, tmp_path, input_size):
    with pytest.raises(ValueError, match="input_size"):
        deploy.export_onnx(model, (4, 8, 16), tmp_path / "x.onnx", input_size)


def test_config_for_a_plain_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no GroSS layers"):
        deploy.export_onnx(four_layer_net(), (4, 8, 16), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="nn.Module"):
        deploy.export_onnx("net", None, tmp_path / "x.onnx")


def test_asymmetric_bottlenecks_export_with_their_groups(tmp_path):
    """ONNX export of asymmetric layers (width=(in, out)): R keeps in/s groups, onnxruntime matches PyTorch."""
    from gross.method.decomposition import decompose

    torch.manual_seed(0)
    widths = {"conv2": (8, 16), "conv3": (16, 8), "conv4": (12, 24)}
    model = decompose(four_layer_net(), group_sizes={"conv2": (2, 4), "conv3": (4, 8), "conv4": (3, 6)},
                      width=widths, max_iter=2, progress=False).eval()
    config = (2, 8, 3)
    path = deploy.export_onnx(model, config, tmp_path / "asym.onnx")
    expected = [1] + [g for (w, _), s in zip(widths.values(), config) for g in (1, w // s, 1)]
    assert deploy.onnx_conv_groups(path) == expected == [1, 1, 4, 1, 1, 2, 1, 1, 4, 1]
    df = deploy.check_onnx(model, config, path, batch_sizes=(2,), n_inputs=1)
    assert df["groups_match"].all() and (df["max_abs_diff"] <= 1e-5 * df["max_abs_output"].clip(lower=1)).all()
