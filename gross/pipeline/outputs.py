"""Pipeline steps and the output writer: every step declares the tables and figures it writes.

A *step* is a function ``step(cfg, ...) -> StepResult`` decorated with :func:`step`,
which names its notebook and its outputs. The decorator runs the step inside a
:func:`gross.runs.config.recording`, then writes each declared output of the result:

* tables: ``<name>.csv`` (tidy), ``<name>.md`` (first line: the profile and the
  reductions vs the paper among the keys the step read, then the notes) and
  ``<name>.meta.json`` (provenance, the keys read, the reductions, wall time);
* figures: ``<name>.png`` (the figure as the notebook drew it), ``<name>.pdf`` (drawn again
  at the true size of the profile's figure style, ``figure.style``: fonts embedded as TrueType)
  and ``<name>.meta.json``.

:func:`expected_outputs` lists the files of every notebook from these
declarations (nothing is kept by hand).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from gross.runs import config as _config
from gross import utils
from gross.utils import paths

__all__ = [
    "NOTEBOOK_ORDER",
    "Step",
    "StepResult",
    "STEPS",
    "step",
    "write_table",
    "write_figure",
    "save_figure_styled",
]

#: Pipeline notebooks in ``make reproduce`` order (stems of ``notebooks/0*.ipynb``).
NOTEBOOK_ORDER = ("00_grouped_convolutions", "01_decomposition", "02_finetuning", "03_exhaustive_search",
                  "04_breadth_first_search", "05_ap_comparison", "06_latency_aware_search")
NOTEBOOK_ORDER += ("07_gross_on_your_network", "08_pareto_fronts")

TABLE_FILES = (".csv", ".md", ".meta.json")
FIGURE_FILES = (".png", ".pdf", ".meta.json")


@dataclasses.dataclass
class StepResult:
    """Tables and figures produced by one step, by output name (declared ones already written).

    ``notes`` apply to every output; ``output_notes`` (name -> notes) replace them for
    one output. ``reads`` is filled by :func:`step`: the dotted config keys the step read.
    """

    tables: dict = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    output_notes: dict = dataclasses.field(default_factory=dict)
    reads: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Step:
    """Declaration of a step: its notebook and the outputs it writes (``optional``: only sometimes)."""

    name: str
    notebook: str
    tables: tuple = ()
    figures: tuple = ()
    optional: bool = False


#: Every declared step, by function name (filled by :func:`step` when its module is imported).
STEPS: dict[str, Step] = {}


def step(notebook: str, tables: Sequence[str] = (), figures: Sequence[str] = (),
         optional: bool = False) -> Callable:
    """Declare a pipeline step of ``notebook`` writing ``tables`` and ``figures``.

    The decorated function must return a :class:`StepResult` holding every declared
    output (or ``None`` when ``optional``, e.g. Table 4 without ImageNet). The step's
    settings (its tables' reductions line and ``settings_read``) are the config keys read
    during the call plus those read from the same config since the previous step
    (:meth:`gross.runs.config.Profile.take_reads`): a notebook may run a step's parts cell by
    cell and then call the step with their results.

    Raises
    ------
    ValueError
        At call time, when the result lacks a declared output.
    """
    if notebook not in NOTEBOOK_ORDER:
        raise ValueError(f"unknown notebook {notebook!r}: expected one of {NOTEBOOK_ORDER}")

    def decorate(func):
        decl = Step(func.__name__, notebook, tuple(tables), tuple(figures), optional)
        STEPS[func.__name__] = decl

        @functools.wraps(func)
        def run(cfg, *args, **kwargs):
            t0 = time.perf_counter()
            with _config.recording() as reads:
                result = func(cfg, *args, **kwargs)
            if hasattr(cfg, "take_reads"):  # keys read before the call, since the previous step: the
                reads |= cfg.take_reads()   # parts of this step a notebook ran cell by cell
            if result is None and optional:
                return None
            _write_declared(cfg, decl, result, sorted(reads), time.perf_counter() - t0)
            if hasattr(cfg, "take_reads"):
                cfg.take_reads()  # the writer's own reads (provenance) belong to no step
            return result

        run.declaration = decl
        return run

    return decorate


def _write_declared(cfg, decl: Step, result: StepResult, reads: list, wall: float) -> None:
    missing = [n for n in decl.tables if n not in result.tables]
    missing += [n for n in decl.figures if n not in result.figures]
    if missing:
        raise ValueError(f"step {decl.name} declares outputs {missing} but did not return them")
    result.reads = reads
    for name in decl.tables:
        write_table(cfg, result.tables[name], name, reads, wall, result.output_notes.get(name, result.notes))
    for name in decl.figures:
        write_figure(cfg, result.figures[name], name, reads, wall, result.output_notes.get(name, result.notes))


def _meta(cfg, reads: Sequence[str], wall_time_s: float | None, notes: Sequence[str]) -> dict:
    from gross.pipeline.common import resolve_device

    with _config.recording():  # provenance reads are not the step's
        device = resolve_device(cfg)
    extra = getattr(cfg, "notebook_parameters", None)
    return utils.provenance(
        cfg["profile"], cfg.to_dict(), device, wall_time_s=wall_time_s, settings_read=list(reads),
        reductions_vs_paper=_config.reductions(cfg, keys=reads), recipe=_config.recipe_name(cfg, keys=reads),
        notes=list(notes),
        **({"notebook_parameters": extra} if extra else {}),
    )


def write_table(cfg: Mapping, df: pd.DataFrame, name: str, reads: Sequence[str], wall_time_s: float | None = None,
                notes: Sequence[str] = ()) -> Path:
    """Write table ``name`` of this profile (CSV, Markdown with the reductions line, ``.meta.json``).

    Parameters
    ----------
    cfg : Profile
    df : DataFrame
    name : str
    reads : sequence of str
        The config keys the step read: only their reductions vs the paper are listed.
    wall_time_s : float, optional
    notes : sequence of str
        Printed under the reductions line and kept in the ``.meta.json``.

    Returns
    -------
    Path
        The CSV.
    """
    directory = paths.results_dir(cfg["profile"])
    meta = _meta(cfg, reads, wall_time_s, notes)
    csv = utils.save_table(df, name, meta, directory=directory)
    md = directory / f"{name}.md"
    reds = meta["reductions_vs_paper"]
    recipe = f", recipe: {meta['recipe']}" if meta["recipe"] else ""  # docs/differences.md
    head = f"Profile `{cfg['profile']}`{recipe}: " + (
        "reduced vs the paper: " + "; ".join(reds) if reds else "the paper's settings") + "."
    lines = [head] + [f"Note: {n}" for n in notes]
    utils.atomic_write_text("\n\n".join(lines) + "\n\n" + md.read_text(), md)
    return csv


def write_figure(cfg: Mapping, fig, name: str, reads: Sequence[str], wall_time_s: float | None = None,
                 notes: Sequence[str] = ()) -> Path:
    """Write figure ``name`` of this profile (PNG, PDF, ``.meta.json`` with the reductions); returns the PNG.

    The PNG is ``fig`` as drawn (the notebook's look); the PDF is ``fig`` drawn again for the
    profile's figure style (``figure.style``, :func:`gross.report.plots.redraw`) when it was made by
    a :func:`gross.report.plots.figure_builder`, else ``fig`` itself. The ``.meta.json`` records the
    style and the PDF's size (``figure``).
    """
    with _config.recording():  # the writer's reads are not the step's
        style = cfg["figure"]["style"]
    meta = _meta(cfg, reads, wall_time_s, notes)
    return save_figure_styled(fig, name, meta, paths.figures_dir(cfg["profile"]), style)


def save_figure_styled(fig, name: str, meta: dict, directory: Path, style: str) -> Path:
    """:func:`gross.utils.save_figure` with the PDF drawn for ``style``; ``meta["figure"]`` says how.

    Returns the PNG.
    """
    from gross.report import plots

    pdf = plots.redraw(fig, style) if plots.can_redraw(fig) else None
    drawn = fig if pdf is None else pdf
    width, height = (float(v) for v in drawn.get_size_inches())
    meta = dict(meta, figure={
        "style": style if pdf is not None else None,
        "pdf": (f"drawn for figure style {style!r} at its true size" if pdf is not None
                else "the figure as given (not made by a figure_builder, so not redrawn for a style)"),
        "pdf_size_in": [round(width, 4), round(height, 4)],
        "png": "the notebook figure, cropped to its content, 150 dpi",
    })
    return utils.save_figure(fig, name, meta, directory=directory, pdf_figure=pdf)
