"""Figure builders for the GroSS reproduction (paper Figs. 2-5 and tutorial figures).

Every builder takes plain values or tidy :class:`pandas.DataFrame` objects, draws
into the axes given as ``ax=`` (or into a new figure when ``ax`` is None) and
returns the :class:`matplotlib.figure.Figure`; nothing is shown or saved here
(use :func:`gross.utils.save_figure`).  Composite figures are assembled from axes
(:func:`facet`, :func:`panel_axes`, or a builder's ``by=``), never by pasting
rendered figures, so line and scatter plots stay vector graphics in PDFs.  New
figures are created through pyplot and then released from pyplot's figure manager
(``plt.close``): a notebook cell that ends with the figure displays it exactly
once, and building many figures in a script leaks nothing.

On a Linux machine without a display, importing this package switches a GUI
backend (Qt, Tk, GTK, wx) or an unset backend to Agg; Jupyter's inline backend
and an explicitly chosen non-GUI backend are left alone.

Configurations (tuples of group sizes, one per decomposed layer) may be given as
tuples, lists or strings such as ``"(32, 16, 64)"`` or ``"32 16 64"`` (e.g. read
back from CSV); they are labelled like the paper, ``"32 16 64"``.

Figure styles: a figure is drawn for notebooks (today's sizes) unless built inside
:func:`figure_style` (``screen``, ``lncs``, ``ieee``, ``neurips``; :data:`STYLES`), which sizes it
to the target's column or text width with its fonts and type sizes, wrapping panels into rows
rather than shrinking text; :func:`redraw` draws a figure made by a :func:`figure_builder` again
for a style (what :func:`gross.utils.save_figure` is given for the PDF).  Colours:
:data:`PALETTE`, checked for colour-blind readers by :mod:`~gross.report.plots.palette`.

Modules: :mod:`~gross.report.plots.style` (palette, figure styles, rc style, axes handling),
:mod:`~gross.report.plots.palette` (colour-blind checks),
:mod:`~gross.report.plots.tutorial` (Fig. 2, grouped-convolution costs),
:mod:`~gross.report.plots.training` (BTD error, fine-tuning curves),
:mod:`~gross.report.plots.searches` (Figs. 3-5), :mod:`~gross.report.plots.latency` (notebook 06), :mod:`~gross.report.plots.pareto` (notebook 08), :mod:`~gross.report.plots.composite` (:func:`facet`).
"""

from gross.report.plots.style import (PALETTE, OTHER, ORDINAL_CMAP, SPACE_TITLES, STYLE, STYLES,  # first: chooses
                                      FigureStyle, can_redraw, current_style, figure_builder, figure_style,  # the backend
                                      get_style, panel_axes, redraw)
from gross.report.plots.composite import facet  # noqa: I001
from gross.report.plots.searches import fig3_exhaustive_search, fig4_bfs, fig5_search_vs_true
from gross.report.plots.training import btd_error_figure, finetuning_curves
from gross.report.plots.tutorial import fig2_expansion, grouped_conv_cost_figure
from gross.report.plots.latency import latency_vs_macs_figure
from gross.report.plots.pareto import pareto_figure

__all__ = [
    "PALETTE",
    "OTHER",
    "ORDINAL_CMAP",
    "SPACE_TITLES",
    "STYLE",
    "STYLES",
    "FigureStyle",
    "get_style",
    "current_style",
    "figure_style",
    "figure_builder",
    "can_redraw",
    "redraw",
    "panel_axes",
    "facet",
    "fig2_expansion",
    "grouped_conv_cost_figure",
    "btd_error_figure",
    "finetuning_curves",
    "fig3_exhaustive_search",
    "fig4_bfs",
    "fig5_search_vs_true",
    "latency_vs_macs_figure",
    "pareto_figure",
]
