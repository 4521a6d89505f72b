"""Tests for gross.report.plots.palette: CAM02-UCS distances under simulated colour-vision deficiency,
checked against colorspacious' own ΔE, known values and palettes that must fail."""

import colorspacious
import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from gross.report import plots
from gross.report.plots import palette

#: seaborn's "colorblind" palette, the package's palette before issue 26: named colour-blind safe, but its
#: green and tan are ΔE 5.8 apart for a protanope.
SEABORN_COLORBLIND = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
                      "#ece133", "#56b4e9"]


def test_normal_vision_distance_is_colorspacious_delta_e():
    colors = ["#332288", "#CC6677", "#117733", "#000000", "#ffffff"]
    table = palette.delta_e_table(colors)
    assert len(table) == 10
    for _, row in table.iterrows():
        want = colorspacious.deltaE(matplotlib.colors.to_rgb(row["a"]), matplotlib.colors.to_rgb(row["b"]),
                                    input_space="sRGB1", uniform_space="CAM02-UCS")
        assert row["normal"] == pytest.approx(float(want), rel=1e-9)
        assert row["min"] == min(row["normal"], row["deuteranopia"], row["protanopia"])
    black_white = table[(table["a"] == "#000000") & (table["b"] == "#ffffff")].iloc[0]
    assert black_white["normal"] == pytest.approx(100.0, abs=0.5)  # J' runs 0 (black) .. 100 (white)
    assert list(table["min"]) == sorted(table["min"])


def test_simulation_keeps_greys_and_merges_red_and_green():
    grey = palette.simulate(["#808080"], "deuteranopia")[0]
    np.testing.assert_allclose(grey, matplotlib.colors.to_rgb("#808080"), atol=2e-3)
    table = palette.delta_e_table(["#d62728", "#2ca02c"])  # matplotlib's red and green
    row = table.iloc[0]
    assert row["normal"] > 40 and row["deuteranopia"] < 0.5 * row["normal"] and row["protanopia"] < 0.5 * row["normal"]
    with pytest.raises(ValueError, match="unknown vision 'tritanopia'"):
        palette.simulate(["#000000"], "tritanopia")


def test_package_palette_passes_and_the_old_one_fails():
    colors = list(plots.PALETTE) + [plots.OTHER, "#000000"]  # categories, "everything else", black paths
    assert palette.check_colors(colors) >= palette.MIN_DELTA_E
    with pytest.raises(ValueError, match=r"#029e73 and #ca9161 are only ΔE 5\.8 apart .*protanopia"):
        palette.check_colors(SEABORN_COLORBLIND)
    assert palette.check_colors(["#123456", "#123456"]) == float("inf")  # one distinct colour
    with pytest.raises(ValueError, match="matplotlib colours"):
        palette.check_colors(["not-a-colour", "#000000"])


def test_ordinal_colour_map_lightness_increases_under_every_vision():
    lightness = palette.ordinal_lightness(plots.ORDINAL_CMAP, 16)
    assert list(lightness.columns) == list(palette.VISIONS)
    assert (np.diff(lightness.to_numpy(), axis=0) > 0).all()
    jet = palette.ordinal_lightness("jet", 16)  # rises then falls: the check can fail
    assert not (np.diff(jet.to_numpy(), axis=0) > 0).all()
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        palette.ordinal_lightness("cividis", 1)


def test_figure_category_colors_leaves_out_colour_maps_and_white():
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#332288", marker="o", markerfacecolor="white")
    ax.axvline(0.5, color="#CC6677")
    ax.scatter([0, 1], [1, 0], color="#117733", edgecolors="black")
    ax.scatter([0, 1], [0, 0], c=[0.0, 1.0], cmap="cividis")  # an ordered quantity
    ax.imshow(np.eye(2))
    assert palette.figure_category_colors(fig) == ["#332288", "#cc6677", "#117733", "#000000"]
