"""Model surgery: decompose, search space, config switching, export."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from gross.method.decomposition import (
    decomposable_layers,
    decompose,
    default_group_sizes,
    enumerate_configs,
    export,
    get_config,
    gross_layers,
    num_configs,
    search_space,
    set_config,
)
from gross.method.layers import GroSSConv2d


def tiny_net(c=8):
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, c, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(c, c, 3, padding=1),
            relu2=nn.ReLU(),
            down=nn.Conv2d(c, 2 * c, 1),
            conv3=nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(2 * c, 5),
        )
    ).double()


def test_decomposable_layers_skip_first_and_pointwise():
    assert decomposable_layers(tiny_net()) == ["conv2", "conv3"]
    assert decomposable_layers(tiny_net(), layers=["conv3", "conv1"]) == ["conv1", "conv3"]


@pytest.mark.parametrize(
    "layers, match",
    [(["nope"], "unknown layer 'nope'"), (["down"], "not an ungrouped k×k"), (["fc"], "Linear")],
)
def test_decomposable_layers_errors(layers, match):
    with pytest.raises(ValueError, match=match):
        decomposable_layers(tiny_net(), layers=layers)


def test_default_group_sizes():
    assert default_group_sizes(32) == (1, 2, 4, 8, 16, 32)
    assert default_group_sizes(64) == (1, 2, 4, 8, 16, 32, 64)
    assert default_group_sizes(12) == (1, 2, 4, 8)
    with pytest.raises(ValueError, match="positive"):
        default_group_sizes(0)


@pytest.fixture(scope="module")
def decomposed():
    model = tiny_net()
    reference = tiny_net()
    with pytest.warns(UserWarning, match=r"group sizes \[32\] divide no decomposed layer's bottleneck width"):
        decompose(model, group_sizes=(1, 4, 8, 32), tol=1e-8, max_iter=20, drop_unused=True)
    return model, reference


def test_decompose_replaces_layers_and_space(decomposed):
    model, _ = decomposed
    assert isinstance(model.conv2, GroSSConv2d) and isinstance(model.conv3, GroSSConv2d)
    assert isinstance(model.conv1, nn.Conv2d) and isinstance(model.down, nn.Conv2d)
    # sizes that do not divide the width are dropped: conv2 width 8, conv3 width 16 (32: none, drop_unused)
    assert search_space(model) == OrderedDict(conv2=(1, 4, 8), conv3=(1, 4, 8))
    assert list(gross_layers(model)) == ["conv2", "conv3"]
    assert model.conv2.name == "conv2"
    assert num_configs(search_space(model)) == 9
    assert len(enumerate_configs(search_space(model))) == 9


def test_full_size_reproduces_original(decomposed):
    """At group size = width with u <= t the BTD is exact, so the network is unchanged."""
    model, reference = decomposed
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    set_config(model, (8, 8))
    # conv3: u = t = width = 16 but the largest size offered is 8, so only conv2 is exact.
    layer = model.conv2
    y = layer(torch.randn(2, 8, 6, 6, dtype=torch.float64))
    assert y.shape == (2, 8, 6, 6)
    h = reference.relu1(reference.conv1(x))
    torch.testing.assert_close(model.conv2(h), reference.conv2(h), rtol=1e-8, atol=1e-8)


def test_set_get_config_and_dict(decomposed):
    model, _ = decomposed
    set_config(model, (1, 4))
    assert get_config(model) == (1, 4)
    set_config(model, {"conv3": 8})
    assert get_config(model) == (1, 8)


@pytest.mark.parametrize(
    "config, match",
    [
        ((1,), "config has 1 group sizes but the model has 2 decomposed layers"),
        ((1, 4, 8), "config has 3 group sizes"),
        ((2, 4), r"group size 2 is not valid for layer 'conv2': allowed sizes are \(1, 4, 8\)"),
        ({"conv9": 4}, r"unknown layer\(s\) \['conv9'\]"),
    ],
)
def test_set_config_errors(decomposed, config, match):
    model, _ = decomposed
    with pytest.raises(ValueError, match=match):
        set_config(model, config)


def test_export_equals_gross_model(decomposed):
    model, _ = decomposed
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    model.eval()
    for config in enumerate_configs(search_space(model)):
        plain = export(model, config)
        assert not any(isinstance(m, GroSSConv2d) for m in plain.modules())
        assert plain.conv2.R.groups == 8 // config[0]
        assert plain.conv3.R.stride == (2, 2)
        set_config(model, config)
        torch.testing.assert_close(plain(x), model(x), rtol=1e-10, atol=1e-10)


def test_export_does_not_modify_model(decomposed):
    model, _ = decomposed
    set_config(model, (4, 4))
    export(model, (1, 1))
    assert get_config(model) == (4, 4)


def test_decompose_errors():
    with pytest.raises(ValueError, match="none of the group sizes"):
        decompose(tiny_net(), group_sizes=(3, 5), max_iter=2)
    with pytest.raises(ValueError, match="do not divide the bottleneck width 8"):
        decompose(tiny_net(), group_sizes={"conv2": (3,), "conv3": (1,)}, max_iter=2)
    with pytest.raises(ValueError, match="no group sizes given for layer 'conv3'"):
        decompose(tiny_net(), group_sizes={"conv2": (1,)}, max_iter=2)
    with pytest.raises(ValueError, match="no GroSS layers"):
        set_config(tiny_net(), (1, 1))
    flat = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="no decomposable convolution"):
        decompose(flat)


def test_decompose_already_decomposed_model_is_refused():
    model = decompose(tiny_net(), group_sizes=(1, 2), max_iter=2)
    with pytest.raises(ValueError, match=r"already decomposed: it holds GroSS layers \['conv2', 'conv3'\]"
                                         r".*gross.set_config"):
        decompose(model, max_iter=2)
    partly = decompose(tiny_net(), group_sizes=(1, 2), layers=["conv3"], max_iter=2)
    with pytest.raises(ValueError, match="already decomposed"):
        decompose(partly, max_iter=2)  # the default would pick the wrong layers
    decompose(partly, group_sizes=(1, 2), layers=["conv2"], max_iter=2)  # naming plain layers is fine
    assert list(search_space(partly)) == ["conv2", "conv3"]


def test_decompose_progress_silent_off_a_terminal_and_counts_every_btd(capfd, monkeypatch):
    import tqdm

    import gross.method.decomposition as dm

    bars = []

    class Recording(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.shown = not self.disable
            bars.append(self)

    monkeypatch.setattr(dm, "tqdm", Recording)
    options = {"group_sizes": (1, 2, 4), "max_iter": 3}
    quiet = decompose(tiny_net(), **options)  # progress=None: stderr is captured (not a terminal)
    assert capfd.readouterr().err == "" and not bars[-1].shown
    shown = decompose(tiny_net(), progress=True, **options)
    err = capfd.readouterr().err
    assert bars[-1].shown and (bars[-1].n, bars[-1].total) == (6, 6)  # 3 sizes x 2 layers, each BTD once
    assert "BTD" in err and "conv2 s=1 sweep 0 error" in err and "conv3 s=4 sweep 0 error" in err
    for a, b in zip(gross_layers(quiet).values(), gross_layers(shown).values()):  # same factors
        assert a.btd_errors == b.btd_errors
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_decompose_custom_width():
    model = decompose(tiny_net(), group_sizes=(1, 2, 4), layers=["conv2"], width=4, max_iter=20)
    assert model.conv2.width == 4
    assert search_space(model) == OrderedDict(conv2=(1, 2, 4))
    assert export(model, (2,)).conv2.P.weight.shape == (4, 8, 1, 1)


def test_per_layer_values_from_sequences_and_mappings():
    from gross.method.decomposition import per_layer

    names = ["a", "b", "c"]
    assert list(per_layer((1, 2, 3), names, "config").items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert list(per_layer({"c": 4, "a": 2}, names, "width").items()) == [("a", 2), ("c", 4)]
    with pytest.raises(ValueError, match=r"config has 2 group sizes but the model has 3 decomposed layers \['a', 'b', 'c'\]"):
        per_layer((1, 2), names, "config", unit="group sizes")
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['d'\] in width; decomposable layers are"):
        per_layer({"d": 1}, names, "width", kind="decomposable layers")


def test_planned_space_and_skeleton_match_decompose():
    """planned_space predicts decompose's space; skeleton rebuilds the architecture for a saved state dict."""
    import copy

    from gross.method.decomposition import planned_space, skeleton
    from gross.models import four_layer_net

    torch.manual_seed(0)
    plain = four_layer_net()
    for sizes in (None, (1, 4, 16, 32)):
        model = decompose(copy.deepcopy(plain), group_sizes=sizes, tol=1e-2, max_iter=1)
        assert planned_space(plain, group_sizes=sizes) == search_space(model)
    rebuilt = skeleton(four_layer_net(), search_space(model))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for config in [(1, 1, 1), (4, 16, 32)]:
        set_config(model, config)
        set_config(rebuilt, config)
        torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match=r"unknown layer 'conv9'"):
        skeleton(four_layer_net(), {"conv9": (1, 2)})


# ----------------------------------------------------------------------------- BTD jobs


def _small(name):
    from gross.data import imagenet as inet

    torch.manual_seed(3)
    kw = {"hidden": 16} if name == "vgg16" else {}
    return inet.build(name, num_classes=5, width_mult=1 / 16, **kw).eval()


@pytest.mark.parametrize("name,executor", [("vgg16", "serial"), ("resnet18", {"name": "local", "workers": 2})])
def test_btd_jobs_assemble_the_model_decompose_builds_bitwise(tmp_path, name, executor):
    import copy

    from gross.runs.btd_jobs import decompose_jobs

    opts = dict(group_sizes=(1, 2, 4), tol=1e-3, max_iter=3, seed=5)
    base = _small(name)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # jobs run with ExecutorSettings.threads = 1; float64 BTD error norms depend on it
    try:
        ref = decompose(copy.deepcopy(base), **opts)
    finally:
        torch.set_num_threads(before)
    got = decompose_jobs(copy.deepcopy(base), tmp_path, executor=executor, **opts)
    a, b = ref.state_dict(), got.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    for (n1, l1), (n2, l2) in zip(gross_layers(ref).items(), gross_layers(got).items()):
        assert n1 == n2 and l1.group_sizes == l2.group_sizes and l1.btd_errors == l2.btd_errors
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ref(x), got(x))


def test_btd_jobs_rerun_only_missing_and_corrupt_output_is_an_error(tmp_path):
    import copy

    from gross.runs.btd_jobs import btd_jobs, decompose_jobs
    from gross.runs.jobs import CorruptOutputError

    base = tiny_net()
    opts = dict(group_sizes=(1, 2), tol=1e-3, max_iter=2)
    jobs = btd_jobs(base, tmp_path, **opts)
    assert [(n, s) for n, s, _ in jobs] == [(n, s) for n in decomposable_layers(base) for s in (1, 2)]
    before = jobs[0][2].output
    first = decompose_jobs(copy.deepcopy(base), tmp_path, **opts)
    outputs = sorted(tmp_path.glob("*.pt"))
    assert len(outputs) == len(jobs)
    outputs[0].unlink()
    stamps = {p: p.stat().st_mtime_ns for p in outputs[1:]}
    again = decompose_jobs(copy.deepcopy(base), tmp_path, **opts)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()) and outputs[0].exists()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())
    outputs[1].write_bytes(outputs[1].read_bytes()[:100])
    with pytest.raises(CorruptOutputError, match=outputs[1].name):
        decompose_jobs(copy.deepcopy(base), tmp_path, **opts)
    changed = copy.deepcopy(base)
    with torch.no_grad():
        changed.get_submodule(decomposable_layers(base)[0]).weight.mul_(2)
    assert btd_jobs(changed, tmp_path, **opts)[0][2].output != before  # new weights: a new job


@pytest.mark.probe
@pytest.mark.parametrize("sizes, message", [
    ("32", r"group_sizes must be a sequence of positive integers such as \(1, 2, 4, 8\), got '32'"),
    (4, r"group_sizes must be a sequence of positive integers such as \(1, 2, 4, 8\), got 4"),
    ((1, 2.5), r"group_sizes must hold positive integers, got 2.5 in \(1, 2.5\)"),
    ((1, 0), r"group_sizes must hold positive integers, got 0"),
    ((), r"group_sizes is empty"),
    ({"conv2": "8"}, r"group_sizes\['conv2'\] must be a sequence of positive integers"),
])
def test_bad_group_sizes_are_named(sizes, message):
    from gross.method.decomposition import planned_space
    from gross.models import four_layer_net

    with pytest.raises(ValueError, match=message):
        planned_space(four_layer_net(), sizes)


@pytest.mark.probe
def test_sizes_that_divide_no_layer_are_an_error_unless_dropped():
    from gross.method.decomposition import planned_space
    from gross.models import four_layer_net

    with pytest.raises(ValueError, match=r"group sizes \[3, 5\] divide no decomposed layer's bottleneck width "
                                         r"\(widths \{'conv2': 32, 'conv3': 32, 'conv4': 64\}\): remove them, "
                                         r"or pass drop_unused=True"):
        planned_space(four_layer_net(), (1, 3, 5))
    with pytest.warns(UserWarning, match=r"group sizes \[3, 5\] .* dropped"):
        space = planned_space(four_layer_net(), (1, 3, 5), drop_unused=True)
    assert set(space.values()) == {(1,)}
    assert planned_space(four_layer_net(), (1, 64))["conv2"] == (1,)  # 64 is used by conv4: not an error
