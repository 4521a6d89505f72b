"""Tests of gross.pipeline.figures: every committed figure drawn again from results/ for every figure style,
its PDF checked with pypdf (no Type 3 font, the style's width within 1 %, no text under 6 pt) and its
category colours checked for colour-blind readers (CAM02-UCS ΔE >= 10 under simulated deuteranopia and
protanopia); the stored tables are only read (figures are written to a temporary folder)."""

import json
import shutil

import matplotlib
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gross import utils
from gross.pipeline import figures as F
from gross.report import plots
from gross.report.plots import palette
from gross.utils import paths

#: Every figure the committed cpu run wrote (figures/*.pdf), each drawn from results/ here.
COMMITTED = sorted(p.stem for p in paths.FIGURES.glob("*.pdf"))


def test_every_committed_figure_is_drawn_from_stored_tables():
    assert COMMITTED and set(COMMITTED) == set(F.FIGURES)


@pytest.fixture(scope="module")
def notebook_figures():
    """name -> the notebook figure drawn from the committed tables (redrawable)."""
    return {name: F.draw(name, paths.RESULTS, paths.FIGURES) for name in COMMITTED}


@pytest.mark.parametrize("style", sorted(plots.STYLES))
def test_every_figure_pdf_is_camera_ready_for_the_style(style, notebook_figures, tmp_path):
    target = plots.STYLES[style]
    for name, fig in notebook_figures.items():
        redrawn = plots.redraw(fig, style)
        utils.save_figure(fig, name, {}, directory=tmp_path, pdf_figure=redrawn)
        facts = F.pdf_facts(tmp_path / f"{name}.pdf")
        assert "/Type3" not in facts["font_types"] and facts["font_types"], (style, name, facts)
        widths = (target.column_width, target.full_width)
        assert min(abs(facts["width_in"] / w - 1) for w in widths) <= 0.01, (style, name, facts)
        assert facts["min_text_pt"] >= 6.0, (style, name, facts)
        serif = "STIX" if target.font_family == "serif" else "DejaVuSans"
        assert any(serif in f for f in facts["fonts"]), (style, name, facts["fonts"])
        assert palette.check_colors(palette.figure_category_colors(redrawn)) >= palette.MIN_DELTA_E, (style, name)


def test_png_stays_the_notebook_figure(notebook_figures, tmp_path):
    from PIL import Image

    fig = notebook_figures["fig4_bfs_vgg16"]
    assert fig.get_size_inches()[0] == pytest.approx(12.6)  # three panels side by side, as in the notebook
    utils.save_figure(fig, "fig4", {}, directory=tmp_path, pdf_figure=plots.redraw(fig, "lncs"))
    width_px = Image.open(tmp_path / "fig4.png").size[0]
    assert 0.9 * 12.6 * 150 <= width_px <= (12.6 + 2 * 0.1) * 150  # 150 dpi, cropped to the content (+ 0.1 in pad)
    assert F.pdf_facts(tmp_path / "fig4.pdf")["width_in"] == pytest.approx(12.2 / 2.54, rel=1e-3)


def test_pdf_facts_sees_type3_fonts_and_small_text(tmp_path):
    fig = Figure(figsize=(3.0, 2.0))
    fig.text(0.1, 0.5, "five points", fontsize=5)
    fig.text(0.1, 0.2, "rotated", fontsize=8, rotation=90)
    with matplotlib.rc_context({"pdf.fonttype": 3}):
        fig.savefig(tmp_path / "t3.pdf")
    facts = F.pdf_facts(tmp_path / "t3.pdf")
    assert facts["font_types"] == ["/Type3"]
    assert facts["min_text_pt"] == pytest.approx(5.0)
    assert (facts["width_in"], facts["height_in"]) == pytest.approx((3.0, 2.0))
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig.savefig(tmp_path / "t42.pdf")
    assert "/Type3" not in F.pdf_facts(tmp_path / "t42.pdf")["font_types"]


def test_paper_table_searches_pairs_baselines_with_found_configurations():
    table2 = pd.read_csv(paths.RESULTS / "table2_exhaustive_search.csv")
    baselines, found = F.paper_table_searches(table2)
    assert baselines == ["32 32 32", "16 16 16", "8 8 8", "4 4 4"]
    assert len(found) == 4 and all(len(f.split()) == 3 for f in found)
    # the same choice as the exhaustive search's rule on the stored evaluations: most accurate within budget
    evaluated = pd.read_csv(paths.RESULTS / "exhaustive_search_all.csv")
    for b, f in zip(baselines, found):
        budget = evaluated.loc[evaluated["config"] == b, "macs"].iloc[0]
        pool = evaluated[evaluated["macs"] <= budget]
        assert pool.loc[pool["accuracy"].idxmax(), "config"] == f
    table3 = pd.read_csv(paths.RESULTS / "table3_bfs_vgg16.csv")
    labels = list(table3.iloc[:, 0])
    vbmf = next(i for i, label in enumerate(labels) if label.startswith("VBMF: "))
    assert labels[vbmf - 1] == "Baseline: " + F.paper_table_searches(table3)[0][2]
    assert F.paper_table_searches(table3)[1][2] == labels[vbmf + 1]  # the row after the VBMF row, not the VBMF one
    with pytest.raises(ValueError, match="cannot pair baselines"):
        F.paper_table_searches(pd.DataFrame({"c": ["Full", "Baseline: 4 4", "VBMF: 1 1"]}))


def test_regenerate_writes_png_pdf_and_meta_keeping_the_provenance(tmp_path):
    for name in ("fig5_search_vs_true",):
        shutil.copy(paths.FIGURES / f"{name}.meta.json", tmp_path / f"{name}.meta.json")
    df = F.regenerate("ieee", paths.RESULTS, tmp_path, names=["fig5_search_vs_true"])
    row = df.iloc[0]
    assert (row["pdf_width_in"], row["skipped"]) == (7.16, "")
    meta = json.loads((tmp_path / "fig5_search_vs_true.meta.json").read_text())
    stored = json.loads((paths.FIGURES / "fig5_search_vs_true.meta.json").read_text())
    assert meta["git"] == stored["git"] and meta["config"] == stored["config"]  # the run that computed the tables
    assert meta["figure"]["style"] == "ieee" and meta["figure"]["pdf_size_in"][0] == 7.16
    assert meta["redrawn"]["command"] == "python -m gross.pipeline.figures --style ieee"
    assert (tmp_path / "fig5_search_vs_true.png").exists()
    with pytest.raises(ValueError, match="unknown figure style"):
        F.regenerate("acm", figures=tmp_path)
    with pytest.raises(ValueError, match="needs tables"):
        F.draw("fig5_search_vs_true", results=tmp_path, figures=tmp_path)
    with pytest.raises(ValueError, match="unknown figure 'fig9'"):
        F.draw("fig9", paths.RESULTS, paths.FIGURES)
