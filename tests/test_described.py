"""gross.training.described: a network as plain data rebuilds to the same function (float64, exact)."""

import pytest
import torch

from gross.data import imagenet as inet
from gross.training.described import build_described, describe_model


@pytest.mark.parametrize("config", [None, (1, 2) * 8])
def test_a_described_model_rebuilds_equal(tmp_path, config):
    """describe_model -> torch.save -> torch.load(weights_only=True) -> build_described gives the same function (float64)."""
    from gross.method.decomposition import export, search_space

    torch.manual_seed(0)
    arch = dict(name="resnet18", num_classes=5, width_mult=1 / 16)
    model = inet.build(**arch)
    inet.decompose_imagenet(model, (1, 2), tol=1e-2, max_iter=1)
    model = model.double().eval()
    space = search_space(model)
    net = model if config is None else export(model, config).eval()
    torch.save(describe_model(net, arch, space, config), tmp_path / "m.pt")
    back = build_described(torch.load(tmp_path / "m.pt", weights_only=True)).eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert type(back) is type(net) and next(back.parameters()).dtype == torch.float64


@pytest.mark.parametrize("config", [None, (11, 10, 14, 9, 15, 32, 64, 58, 3, 56, 7, 7)])
def test_a_described_asymmetric_model_rebuilds_equal(tmp_path, config):
    """The [26] structure (asymmetric widths) survives describe_model -> build_described, GroSS and exported (float64)."""
    from gross.method.decomposition import decompose, export, search_space
    from gross.method.structures import WANG_ET_AL, layout

    torch.manual_seed(0)
    arch = dict(name="vgg16", num_classes=4, width_mult=0.125, hidden=8)
    model = inet.build(**arch).double()
    lay = layout(model, WANG_ET_AL)
    decompose(model, group_sizes=lay["group_sizes"], width=lay["width"], max_iter=1, progress=False)
    model = model.eval()
    space = search_space(model)
    net = model if config is None else export(model, config).eval()
    description = describe_model(net, arch, space, config)
    assert description["widths"]["features.2"] == [11, 18] and len(description["widths"]) == 12
    torch.save(description, tmp_path / "m.pt")
    back = build_described(torch.load(tmp_path / "m.pt", weights_only=True)).eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))


def test_a_description_that_does_not_fit_its_architecture_is_refused():
    with pytest.raises(ValueError, match="model description does not rebuild: KeyError"):
        build_described({"space": {}, "config": None, "state_dict": {}})
