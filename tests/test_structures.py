"""Named decomposition structures (:mod:`gross.method.structures`): Wang et al. [26]."""

import copy
import dataclasses

import pytest
import torch

from gross.method.decomposition import decompose, export, search_space, set_config
from gross.method.layers import gross_layers
from gross.method.structures import (STRUCTURES, WANG_ET_AL, Structure, layout, mac_comparison, scaled,
                                     structure_table)
from gross.models import build, four_layer_net


def test_wang_et_al_facts_from_the_authors_configuration():
    s = WANG_ET_AL
    assert s.layers[0] == "conv1_2" and s.layers[-1] == "conv5_3" and len(s.layers) == 12
    assert s.widths[0] == (11, 18) and s.widths[3] == (36, 48) and s.widths[-1] == (224, 224)
    assert s.group_sizes[2] == (1, 7, 14, 28) and s.group_sizes[8] == (3, 33, 66)
    assert s.configs["original"] == (11, 10, 14, 9, 15, 16, 16, 29, 33, 56, 56, 56)
    assert s.configs["found"] == (11, 10, 14, 9, 15, 32, 64, 58, 3, 56, 7, 7)
    assert STRUCTURES["wang_et_al"] is s and "decompose.yaml" in s.source


def test_layout_maps_onto_the_imagenet_vgg16():
    with torch.device("meta"):
        net = build("vgg16_imagenet")
    lay = layout(net, "wang_et_al")
    assert list(lay["width"])[0] == "features.2" and lay["width"]["features.28"] == (224, 224)
    assert lay["names"]["features.2"] == "conv1_2" and lay["group_sizes"]["features.5"] == (5, 10)


def test_decompose_with_the_structure_builds_its_layers():
    # the narrowed VGG-16 of the smoke profile: the [26] widths at full size (gross.method.structures.scaled)
    from gross.data.imagenet import build as build_imagenet

    net = build_imagenet("vgg16", num_classes=4, width_mult=0.125, hidden=8).double()
    lay = layout(net, scaled(WANG_ET_AL, 0.125))
    g = decompose(copy.deepcopy(net), group_sizes=lay["group_sizes"], width=lay["width"], max_iter=1,
                  progress=False)
    layers = list(gross_layers(g).values())
    assert [m.widths for m in layers] == list(WANG_ET_AL.widths)
    assert tuple(search_space(g).values()) == WANG_ET_AL.group_sizes
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    g.eval()  # before exporting: the exported copy keeps the mode (dropout would differ between the two)
    for label in ("original", "found"):
        set_config(g, lay["configs"][label])
        torch.testing.assert_close(export(g, lay["configs"][label]).eval()(x), g(x), rtol=1e-9, atol=1e-9)


def test_structure_errors():
    with pytest.raises(ValueError, match=r"unknown structure 'zhang': known structures are \['wang_et_al'\]"):
        layout(four_layer_net(), "zhang")
    with pytest.raises(ValueError, match=r"structure 'wang_et_al' is for vgg16_imagenet with 12 decomposable layers"):
        layout(four_layer_net(), WANG_ET_AL)
    with pytest.raises(ValueError, match=r"layer 'conv1_2': group sizes \[5\] are not valid for widths \(11, 18\)"):
        dataclasses.replace(WANG_ET_AL, group_sizes=((5,),) + WANG_ET_AL.group_sizes[1:])
    with pytest.raises(ValueError, match=r"configuration 'found'"):
        dataclasses.replace(WANG_ET_AL, configs={"found": (3,) * 12})
    with pytest.raises(ValueError, match="1 layers but 2 widths"):
        Structure("x", "m", ("a",), ((2, 2), (2, 2)), ((1,),))
    with pytest.raises(ValueError, match="width_mult must be > 0"):
        scaled(WANG_ET_AL, 0)


def test_decompose_errors_name_the_layer_and_valid_values():
    net = four_layer_net().double()
    with pytest.raises(ValueError, match=r"group sizes \[1\] of layer 'conv2' .* output width 6: valid sizes for widths \(8, 6\) are \(4, 8\)"):
        decompose(copy.deepcopy(net), group_sizes={"conv2": (1, 8)}, layers=["conv2"], width={"conv2": (8, 6)})
    with pytest.raises(ValueError, match=r"width names layer\(s\) \['conv9'\] that are not in the model"):
        decompose(copy.deepcopy(net), group_sizes=(4,), width={"conv9": (8, 8)})
    with pytest.raises(ValueError, match=r"group sizes \[3\] do not divide the bottleneck width 8 of layer 'conv2'"):
        decompose(copy.deepcopy(net), group_sizes={"conv2": (3,)}, layers=["conv2"], width={"conv2": (8, 16)})


def test_structure_table_and_mac_comparison():
    table = structure_table(WANG_ET_AL)
    assert list(table["layer"])[:2] == ["conv1_2", "conv2_1"] and table.loc[3, ["in", "out"]].tolist() == [36, 48]
    assert table.loc[3, "original_groups"] == 4 and table.loc[8, "found_groups"] == 44  # 132 / 3
    with torch.device("meta"):
        net = build("vgg16_imagenet")
    df = mac_comparison(net, "wang_et_al")
    assert list(df["configuration"]) == ["original", "found"]
    assert list(df["macs"]) == [1_417_490_816, 1_430_445_632]
    assert list(df["macs_authors_rule"]) == [1_162_185_136, 1_157_674_000]
    assert df["gconv_change_pct"].iloc[1] == pytest.approx(3.7286, abs=1e-3)
    assert df["gconv_change_pct_authors_rule"].iloc[1] == pytest.approx(-4.8965, abs=1e-3)
