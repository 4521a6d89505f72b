"""Every figure of a run drawn again from its stored tables, for any figure style (no recomputation).

``python -m gross.pipeline.figures --style ieee`` redraws the committed ``cpu`` figures from
``results/*.csv`` into ``figures/``: the PNG as the notebooks draw it, the PDF at the style's true
size (:mod:`gross.report.plots`, :data:`gross.report.plots.STYLES`) with TrueType fonts. Each
figure's ``.meta.json`` keeps the provenance of the run that computed its tables and records the
redraw (``figure``, ``redrawn``). :data:`FIGURES` maps each figure to the tables it is drawn from
and to the pipeline verb that draws it, the one its notebook uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from gross import utils
from gross.pipeline import finetune, own_network, pareto, table5
from gross.pipeline.outputs import save_figure_styled
from gross.report import plots
from gross.utils import paths

__all__ = ["FIGURES", "paper_table_searches", "draw", "regenerate", "pdf_facts", "check_pdfs", "main"]


def pdf_facts(path: Path | str) -> dict:
    """What a camera-ready check looks at in a one-page PDF: page size, font types, smallest text.

    Read with ``pypdf`` (independent of matplotlib): the page's MediaBox, the ``/Subtype`` of
    every font in its resources, and the size of every shown string (the font size times the
    scale of the text and current transformation matrices).

    Returns
    -------
    dict
        ``width_in``, ``height_in``, ``font_types`` (sorted, e.g. ``["/Type0"]``; ``"/Type3"``
        for Type 3 fonts), ``fonts`` (base font names) and ``min_text_pt`` (inf without text).
    """
    from pypdf import PdfReader

    page = PdfReader(str(path)).pages[0]
    fonts = page["/Resources"].get("/Font", {})
    objs = [f.get_object() for f in fonts.values()]
    sizes: list[float] = []

    def visit(text, cm, tm, font_dict, font_size):
        if text.strip():
            scale = (abs(tm[0] * tm[3] - tm[1] * tm[2]) * abs(cm[0] * cm[3] - cm[1] * cm[2])) ** 0.5
            sizes.append(float(font_size) * scale)

    page.extract_text(visitor_text=visit)
    return {"width_in": float(page.mediabox.width) / 72, "height_in": float(page.mediabox.height) / 72,
            "font_types": sorted({str(f["/Subtype"]) for f in objs}),
            "fonts": sorted({str(f.get("/BaseFont", "")) for f in objs}),
            "min_text_pt": min(sizes) if sizes else float("inf")}


def paper_table_searches(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Baselines and found configurations of a search table as printed (Tables 2-4, first column).

    Each ``"Baseline: <config>"`` row is paired with the first following row that is a bare
    configuration (no ``"Label: "``), before the next baseline.

    Returns
    -------
    (list of str, list of str)
        Baseline configurations and the found ones, paired by position.

    Raises
    ------
    ValueError
        If a baseline has no found configuration or the table has no baseline.
    """
    labels = [str(v) for v in table.iloc[:, 0]]
    baselines, found, waiting = [], [], False
    for label in labels:
        if label.startswith("Baseline: "):
            if waiting:
                break
            baselines.append(label.split(": ", 1)[1])
            waiting = True
        elif waiting and ":" not in label and label[:1].isdigit():
            found.append(label)
            waiting = False
    if not baselines or waiting or len(found) != len(baselines):
        raise ValueError(f"cannot pair baselines with found configurations in the table's first column {labels}: "
                         "expected 'Baseline: <config>' rows each followed by a bare configuration row")
    return baselines, found


def _fig2(tables: Mapping, meta: Mapping):
    params = meta.get("notebook_parameters", {})
    return plots.fig2_expansion(group_size=1, new_sizes=tuple(params.get("fig2_sizes", (2, 4))),
                                channels=int(params.get("fig2_channels", 4)), seed=int(meta["config"]["seed"]))


def _fig3(tables: Mapping, meta: Mapping):
    baselines, found = paper_table_searches(tables["table2_exhaustive_search"])
    return plots.fig3_exhaustive_search(tables["exhaustive_search_all"], baselines, found)


def _fig4(tables: Mapping, meta: Mapping):
    baselines, found = paper_table_searches(tables["table3_bfs_vgg16"])
    return plots.fig4_bfs(tables["bfs_vgg16_trace"], baselines, found)


#: Figure name -> (tables it is drawn from, ``draw(tables, meta) -> Figure``); ``meta`` is the figure's stored
#: ``.meta.json`` (for settings that are not in a table: Fig. 2's sizes and seed).
FIGURES: dict[str, tuple[tuple[str, ...], Callable]] = {
    "fig_grouped_conv_costs": (("grouped_conv_costs",), lambda t, m: plots.grouped_conv_cost_figure(
        t["grouped_conv_costs"])),
    "fig2_expansion": ((), _fig2),
    "fig_btd_error": (("btd_errors",), lambda t, m: plots.btd_error_figure(t["btd_errors"], by="model")),
    "fig_finetuning_curves": (("finetune_history",), lambda t, m: finetune.finetuning_curves(t["finetune_history"])),
    "fig3_exhaustive_search": (("exhaustive_search_all", "table2_exhaustive_search"), _fig3),
    "fig4_bfs_vgg16": (("bfs_vgg16_trace", "table3_bfs_vgg16"), _fig4),
    "fig5_search_vs_true": (("ap_configs",), lambda t, m: table5.fig5(t["ap_configs"])),
    "fig_latency_vs_macs": (("latency_all_configs",), lambda t, m: plots.latency_vs_macs_figure(
        t["latency_all_configs"])),
    "fig_own_network_btd_error": (("own_network_btd_errors",), lambda t, m: own_network.btd_error_figure(
        t["own_network_btd_errors"])),
    "fig_own_network_finetuning": (("own_network_finetune_history",), lambda t, m: plots.finetuning_curves(
        t["own_network_finetune_history"])),
    "fig_own_network_search": (("own_network_search", "own_network_evaluated"), lambda t, m: own_network.search_figure(
        t["own_network_search"], t["own_network_evaluated"])),
    "fig_pareto_four_layer": (("pareto_four_layer_all", "pareto_four_layer_evaluations"),
                              lambda t, m: pareto.four_layer_figure(t["pareto_four_layer_all"],
                                                                    t["pareto_four_layer_evaluations"])),
    "fig_pareto_vgg16": (("pareto_vgg16_evaluations", "pareto_vgg16_distinct"), lambda t, m: pareto.vgg16_figure(
        t["pareto_vgg16_evaluations"], t["pareto_vgg16_distinct"])),
}


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (as committed metadata should name it)."""
    try:
        return str(path.resolve().relative_to(paths.ROOT.resolve()))
    except ValueError:
        return str(path)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def draw(name: str, results: Path | str | None = None, figures: Path | str | None = None):
    """The notebook figure ``name`` drawn from the tables in ``results`` (a redrawable Figure).

    Parameters
    ----------
    name : str
        A key of :data:`FIGURES`.
    results, figures : path, optional
        Folders of the tables and of the figure's stored ``.meta.json``; default the ``cpu``
        run's (``results/``, ``figures/``).

    Raises
    ------
    ValueError
        If ``name`` is unknown or a table it needs is missing.
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}: figures drawn from tables are {sorted(FIGURES)}")
    results = Path(results or paths.results_dir("cpu"))
    figures = Path(figures or paths.figures_dir("cpu"))
    needs, build = FIGURES[name]
    missing = [t for t in needs if not (results / f"{t}.csv").exists()]
    if missing:
        raise ValueError(f"figure {name!r} needs tables {missing} in {results}: run its notebook first")
    tables = {t: pd.read_csv(results / f"{t}.csv") for t in needs}
    return build(tables, _read_json(figures / f"{name}.meta.json"))


def regenerate(style: str, results: Path | str | None = None, figures: Path | str | None = None,
               names: Sequence[str] | None = None) -> pd.DataFrame:
    """Draw every figure (or ``names``) from ``results`` again and write it to ``figures`` for ``style``.

    PNG: the notebook figure; PDF: drawn at ``style``'s true size (TrueType fonts). The
    ``.meta.json`` keeps the stored provenance (the run that computed the tables) and adds
    ``figure`` (style, PDF size) and ``redrawn`` (this commit, the tables used). Figures whose
    tables are missing are skipped when ``names`` is None.

    Returns
    -------
    pandas.DataFrame
        One row per figure: ``name, style, pdf_width_in, pdf_height_in, png, pdf`` (``png``
        empty and ``skipped`` set for a figure whose tables are missing).
    """
    plots.get_style(style)  # unknown style: ValueError before drawing anything
    results = Path(results or paths.results_dir("cpu"))
    figures = Path(figures or paths.figures_dir("cpu"))
    rows = []
    for name in (names or list(FIGURES)):
        needs = FIGURES[name][0] if name in FIGURES else ()
        absent = [t for t in needs if not (results / f"{t}.csv").exists()]
        if absent and names is None:
            rows.append({"name": name, "style": style, "skipped": f"missing tables {absent}"})
            continue
        fig = draw(name, results, figures)
        stored = _read_json(figures / f"{name}.meta.json")
        now = utils.provenance(stored.get("profile"))
        meta = dict(stored, redrawn={"git": now.get("git"), "timestamp": now.get("timestamp"),
                                     "from_tables": [_shown(results / f"{t}.csv") for t in needs],
                                     "command": f"python -m gross.pipeline.figures --style {style}"})
        png = save_figure_styled(fig, name, meta, figures, style)
        size = _read_json(figures / f"{name}.meta.json")["figure"]["pdf_size_in"]
        rows.append({"name": name, "style": style, "pdf_width_in": size[0], "pdf_height_in": size[1],
                     "png": str(png), "pdf": str(png.with_suffix(".pdf")), "skipped": ""})
    return pd.DataFrame(rows, columns=["name", "style", "pdf_width_in", "pdf_height_in", "png", "pdf", "skipped"])


def check_pdfs(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`pdf_facts` of every PDF :func:`regenerate` wrote: ``name, width_in, height_in, font_types, min_text_pt``."""
    rows = []
    for _, r in df[df["skipped"] == ""].iterrows():
        facts = pdf_facts(r["pdf"])
        rows.append({"name": r["name"], "width_in": round(facts["width_in"], 3), "height_in": round(facts["height_in"], 3),
                     "font_types": " ".join(facts["font_types"]), "min_text_pt": round(facts["min_text_pt"], 2)})
    return pd.DataFrame(rows, columns=["name", "width_in", "height_in", "font_types", "min_text_pt"])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m gross.pipeline.figures --style lncs [--profile cpu] [--only NAME ...]``."""
    parser = argparse.ArgumentParser(prog="python -m gross.pipeline.figures", description=__doc__.split("\n")[0])
    parser.add_argument("--style", required=True, choices=sorted(plots.STYLES), help="figure style of the PDFs")
    parser.add_argument("--profile", default="cpu", help="run whose tables and figures to use (default cpu)")
    parser.add_argument("--results", type=Path, help="folder of the tables (default: the profile's)")
    parser.add_argument("--figures", type=Path, help="folder to write the figures to (default: the profile's)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(FIGURES), help="figures to draw")
    args = parser.parse_args(argv)
    results = args.results or paths.results_dir(args.profile)
    figures = args.figures or paths.figures_dir(args.profile)
    df = regenerate(args.style, results, figures, args.only)
    skipped = df[df["skipped"] != ""]
    print(check_pdfs(df).to_string(index=False))
    if not skipped.empty:
        print("skipped:\n" + skipped[["name", "skipped"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
