"""Tests for gross.report.plots: every builder returns a Figure with the expected panels and artists
(checked against the input data), saves to PNG and PDF headless, and rejects bad input."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from gross.report import plots
from gross.method.expansion import expand_grouped_weight
from gross.method.grouped import grouped_conv_costs


# ----------------------------------------------------------------------------- helpers


def _by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _offsets(artists):
    return np.concatenate([a.get_offsets() for a in artists]) if artists else np.empty((0, 2))


def _save_both(fig, tmp_path, name):
    for ext in ("png", "pdf"):
        path = tmp_path / f"{name}.{ext}"
        fig.savefig(path)
        assert path.stat().st_size > 1000
    with open(tmp_path / f"{name}.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / f"{name}.pdf", "rb") as fh:
        assert fh.read(5) == b"%PDF-"


@pytest.fixture
def exhaustive_table():
    """27 configurations of a 3-layer space with MACs increasing in every group size."""
    rng = np.random.default_rng(0)
    rows = []
    for a in (1, 2, 4):
        for b in (1, 2, 4):
            for c in (1, 2, 4):
                macs = 1_000_000 + 10_000 * (a + 2 * b + 3 * c)
                rows.append({"config": (a, b, c), "macs": macs, "gconv_macs": macs - 900_000,
                             "accuracy": 80 + 0.1 * (a + b + c) + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def _budget(table, config):
    return float(table.loc[table["config"] == config, "macs"].iloc[0])


def _best_within(table, budget):
    sub = table[table["macs"] <= budget]
    return sub.loc[sub["accuracy"].idxmax(), "config"]


@pytest.fixture
def bfs_trace(exhaustive_table):
    """Two searches (baselines 2 2 2 and 4 4 4), two runs each, 3 steps of 2 evaluations."""
    rows = []
    for base in ((2, 2, 2), (4, 4, 4)):
        budget = _budget(exhaustive_table, base)
        pool = exhaustive_table[exhaustive_table["macs"] <= budget].reset_index(drop=True)
        for run in range(2):
            sample = pool.sample(6, random_state=run)
            for i, (_, r) in enumerate(sample.iterrows()):
                rows.append({"baseline": " ".join(map(str, base)), "budget": int(budget), "run": run,
                             "step": i // 2, "config": r["config"], "macs": r["macs"],
                             "gconv_macs": r["gconv_macs"], "accuracy": r["accuracy"],
                             "selected": i % 2 == 0})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- backend


def _backend_after_import(mplbackend):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    if mplbackend:
        env["MPLBACKEND"] = mplbackend
    code = "import matplotlib, gross.report.plots; print(matplotlib.get_backend().lower())"
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="headless switch is Linux-only")
def test_headless_backend_switch():
    pytest.importorskip("matplotlib_inline")  # Jupyter's inline backend (installed by make env)
    procs = {name: _backend_after_import(name) for name in (None, "TkAgg",
                                                            "module://matplotlib_inline.backend_inline")}
    out = {name: p.communicate(timeout=120)[0].strip().splitlines()[-1] for name, p in procs.items()}
    assert out[None] == "agg"  # unset backend, no display -> Agg
    assert out["TkAgg"] == "agg"  # a GUI backend without display -> Agg
    assert out["module://matplotlib_inline.backend_inline"] == "module://matplotlib_inline.backend_inline"


# ----------------------------------------------------------------------------- tutorial figures


def test_fig2_expansion_content(tmp_path):
    fig = plots.fig2_expansion(group_size=1, new_sizes=(2, 4), channels=4, seed=0)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6  # stored weights (top) and dense equivalents (bottom), 3 sizes
    top, bottom = fig.axes[:3], fig.axes[3:]
    w1 = np.ma.filled(top[0].images[0].get_array(), 0.0)
    assert w1.shape == (4, 1) and np.all(w1 != 0)
    weight = torch.from_numpy(w1).reshape(4, 1, 1, 1)
    for ax, h in zip(top[1:], (2, 4)):
        shown = np.ma.filled(ax.images[0].get_array(), 0.0)
        np.testing.assert_allclose(shown, expand_grouped_weight(weight, 1, h)[:, :, 0, 0].numpy())
        assert sum(t.get_text() != "" for t in ax.texts) == 4  # one label per non-zero weight
    dense = [np.ma.filled(ax.images[0].get_array(), 0.0) for ax in bottom]
    for d in dense:  # Eq. 4: every expansion is the same dense (here diagonal) convolution
        np.testing.assert_allclose(d, np.diag(w1[:, 0]))
    _save_both(fig, tmp_path, "fig2")


def test_fig2_without_dense_and_bad_sizes():
    fig = plots.fig2_expansion(group_size=2, new_sizes=(4, 8), channels=8, dense=False)
    assert len(fig.axes) == 3
    assert [ax.images[0].get_array().shape for ax in fig.axes] == [(8, 2), (8, 4), (8, 8)]
    with pytest.raises(ValueError, match="multiple"):
        plots.fig2_expansion(group_size=2, new_sizes=(3,), channels=6)
    with pytest.raises(ValueError, match="group_size"):
        plots.fig2_expansion(group_size=3, channels=4)


def test_grouped_conv_cost_figure(tmp_path):
    costs = grouped_conv_costs(16, 16, 3, 8, 8)
    fig = plots.grouped_conv_cost_figure(costs)
    assert len([ax for ax in fig.axes if ax.get_ylabel()]) == 2
    for ax, col in zip(fig.axes[:2], ("params", "macs")):
        lines = ax.get_lines()
        assert len(lines) == 2  # ideal dense / G and the measured cost
        np.testing.assert_allclose(lines[1].get_ydata(), costs[col])
        np.testing.assert_allclose(lines[0].get_ydata(), costs[col].iloc[0] / costs["groups"])
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    _save_both(fig, tmp_path, "costs")
    with pytest.raises(ValueError, match="missing columns"):
        plots.grouped_conv_cost_figure(costs.drop(columns="macs"))


def test_btd_error_figure(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame([{"layer": layer, "group_size": s, "repeat": r, "error": 1 / s + rng.normal(0, 0.01)}
                       for layer in ("conv2", "conv3") for s in (1, 2, 4, 8) for r in range(3)])
    fig = plots.btd_error_figure(df)
    (ax,) = fig.axes
    assert len(ax.containers) == 2  # one errorbar per layer
    mean = df[df["layer"] == "conv3"].groupby("group_size")["error"].mean()
    line = ax.containers[1].lines[0]
    np.testing.assert_allclose(line.get_xdata(), mean.index)
    np.testing.assert_allclose(line.get_ydata(), mean.to_numpy())
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["conv2", "conv3"]
    _save_both(fig, tmp_path, "btd")
    # a single repeat (no std) works too
    assert len(plots.btd_error_figure(df[df["repeat"] == 0].drop(columns="repeat")).axes) == 1


def test_finetuning_curves_wide_and_long(tmp_path):
    wide = pd.DataFrame({"epoch": [1, 2, 3], "val_acc": [60.0, 65, 70], "val_acc_largest": [62.0, 68, 72],
                         "val_acc_smallest": [58.0, 62, 68], "train_loss": [1.5, 1.0, 0.8],
                         "best_val_acc": [60.0, 65, 70]})
    fig = plots.finetuning_curves(wide)
    assert len(fig.axes) == 2
    acc_ax, loss_ax = fig.axes
    labels = [line.get_label() for line in acc_ax.get_lines()]
    assert labels == ["mean", "largest", "smallest"]  # best_val_acc is not a val_acc* column
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), wide["val_acc_largest"])
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), wide["train_loss"])
    _save_both(fig, tmp_path, "ft")

    long = pd.DataFrame({"epoch": [1, 2, 1, 2], "config_label": ["1 1 1", "1 1 1", "4 4 4", "4 4 4"],
                         "val_acc": [50.0, 55, 60, 66]})
    fig = plots.finetuning_curves(long)
    assert len(fig.axes) == 1
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["1 1 1", "4 4 4"]
    with pytest.raises(ValueError, match="val_acc"):
        plots.finetuning_curves(pd.DataFrame({"epoch": [1], "train_loss": [1.0]}))


# ----------------------------------------------------------------------------- search figures


def test_fig3_regions_baselines_found(exhaustive_table, tmp_path):
    baselines = [(4, 4, 4), (1, 1, 1), (2, 2, 2)]  # unsorted on purpose
    found = [_best_within(exhaustive_table, _budget(exhaustive_table, b)) for b in baselines]
    fig = plots.fig3_exhaustive_search(exhaustive_table, baselines, found)
    (ax,) = fig.axes
    budgets = sorted(_budget(exhaustive_table, b) for b in baselines)
    lower = -np.inf
    total = 0
    for b, budget in zip(sorted(baselines, key=lambda c: _budget(exhaustive_table, c)), budgets):
        pts = _offsets(_by_gid(ax, f"region:{' '.join(map(str, b))}"))
        expected = exhaustive_table[(exhaustive_table["macs"] <= budget) & (exhaustive_table["macs"] > lower)]
        assert len(pts) == len(expected)
        assert np.all(pts[:, 0] <= budget) and np.all(pts[:, 0] > lower)
        lower, total = budget, total + len(pts)
    grey = _offsets(_by_gid(ax, "configs"))
    assert total + len(grey) == len(exhaustive_table)
    assert np.all(grey[:, 0] > budgets[-1])
    base_pts = _offsets(_by_gid(ax, "baselines"))
    np.testing.assert_allclose(np.sort(base_pts[:, 0]), budgets)
    star_pts = _offsets(_by_gid(ax, "found"))
    assert len(star_pts) == 3
    for f in found:
        row = exhaustive_table[exhaustive_table["config"] == f].iloc[0]
        assert any(np.allclose(p, (row["macs"], row["accuracy"])) for p in star_pts)
    _save_both(fig, tmp_path, "fig3")


def test_fig3_accepts_search_results_and_csv_configs(exhaustive_table):
    budget = _budget(exhaustive_table, (2, 2, 2))
    best = _best_within(exhaustive_table, budget)
    results = [{"baseline": "2 2 2", "budget": int(budget), "config": best, "macs": 0, "accuracy": 0,
                "baseline_accuracy": 1.0}]
    results[0].update(macs=float(exhaustive_table.loc[exhaustive_table["config"] == best, "macs"].iloc[0]),
                      accuracy=float(exhaustive_table.loc[exhaustive_table["config"] == best, "accuracy"].iloc[0]))
    csv_table = exhaustive_table.assign(config=[str(c) for c in exhaustive_table["config"]])  # "(1, 2, 4)"
    fig = plots.fig3_exhaustive_search(csv_table, results)
    ax = fig.axes[0]
    np.testing.assert_allclose(_offsets(_by_gid(ax, "baselines")), [[budget, 1.0]])
    np.testing.assert_allclose(_offsets(_by_gid(ax, "found")), [[results[0]["macs"], results[0]["accuracy"]]])
    # role DataFrame, x = G.Conv MACs
    roles = pd.DataFrame({"config": [(2, 2, 2), best], "role": ["baseline", "found"]})
    fig = plots.fig3_exhaustive_search(exhaustive_table, roles, x="gconv_macs")
    assert fig.axes[0].get_xlabel() == "G.Conv MACs"
    assert len(_offsets(_by_gid(fig.axes[0], "found"))) == 1


def test_fig3_bad_input(exhaustive_table):
    with pytest.raises(ValueError, match="accuracy"):
        plots.fig3_exhaustive_search(exhaustive_table.drop(columns="accuracy"), [(1, 1, 1)])
    with pytest.raises(ValueError, match="not in the table"):
        plots.fig3_exhaustive_search(exhaustive_table, [(1, 1, 1)], [(8, 8, 8)])
    with pytest.raises(ValueError, match="MACs of baseline"):
        plots.fig3_exhaustive_search(exhaustive_table, [(8, 8, 8)])
    with pytest.raises(ValueError, match="one configuration per baseline"):
        plots.fig3_exhaustive_search(exhaustive_table, [(1, 1, 1), (2, 2, 2)], [(1, 1, 1)])


def test_fig4_bfs_panels_paths_found(bfs_trace, exhaustive_table, tmp_path):
    fig = plots.fig4_bfs(bfs_trace, [(4, 4, 4), (2, 2, 2)])
    assert len(fig.axes) == 2
    for ax, base in zip(fig.axes, ("2 2 2", "4 4 4")):  # ordered by budget
        part = bfs_trace[bfs_trace["baseline"] == base]
        assert ax.get_title() == f"baseline {base}"
        assert len(_offsets(_by_gid(ax, "evaluated"))) == len(part)
        paths = _by_gid(ax, "path")
        assert len(paths) == part[part["selected"]]["run"].nunique()
        np.testing.assert_allclose(paths[0].get_xdata(),
                                   part[part["selected"] & (part["run"] == 0)].sort_values("step")["macs"])
        best = part.loc[part["accuracy"].idxmax()]
        np.testing.assert_allclose(_offsets(_by_gid(ax, "found")), [[best["macs"], best["accuracy"]]])
        base_cfg = tuple(int(s) for s in base.split())
        if base_cfg in set(part["config"]):  # baseline circle only when its accuracy is known
            assert len(_offsets(_by_gid(ax, "baseline"))) == 1
    _save_both(fig, tmp_path, "fig4")


def test_fig4_bfs_with_search_results(bfs_trace):
    results = pd.DataFrame({"baseline": ["4 4 4", "2 2 2"], "budget": [2_000_000, 1_050_000],
                            "config": [(1, 1, 1), (1, 1, 2)], "macs": [1_060_000, 1_070_000],
                            "accuracy": [80.3, 80.4], "baseline_accuracy": [80.5, 80.1]})
    fig = plots.fig4_bfs(bfs_trace, results)
    ax_small, ax_large = fig.axes
    np.testing.assert_allclose(_offsets(_by_gid(ax_small, "baseline")), [[1_050_000, 80.1]])
    np.testing.assert_allclose(_offsets(_by_gid(ax_large, "found")), [[1_060_000, 80.3]])
    # default: every baseline of the trace, budgets from its budget column
    fig = plots.fig4_bfs(bfs_trace)
    assert [ax.get_title() for ax in fig.axes] == ["baseline 2 2 2", "baseline 4 4 4"]
    with pytest.raises(ValueError, match="no rows for baseline"):
        plots.fig4_bfs(bfs_trace[bfs_trace["baseline"] == "2 2 2"], results)


def test_fig5_long_and_wide(tmp_path):
    rng = np.random.default_rng(2)
    configs = [(a, b) for a in (1, 2, 4) for b in (1, 2, 4)]
    true = 80 + rng.normal(0, 1, len(configs))
    wide = pd.DataFrame({"config": configs, "true_acc": true, "gross": true - 1, "none": true - 3,
                         "partial": true - 2})
    long = wide.melt(id_vars=["config", "true_acc"], var_name="space", value_name="search_acc")
    for df in (wide, long):
        fig = plots.fig5_search_vs_true(df)
        assert [ax.get_title() for ax in fig.axes] == ["No fine-tuning", "Partial fine-tuning", "GroSS"]
        for ax, space in zip(fig.axes, ("none", "partial", "gross")):
            pts = _offsets(_by_gid(ax, "configs"))
            assert len(pts) == len(configs)
            np.testing.assert_allclose(np.sort(pts[:, 1] - pts[:, 0]),
                                       np.sort((wide[space] - wide["true_acc"]).to_numpy()))
            (identity,) = _by_gid(ax, "identity")
            np.testing.assert_allclose(identity.get_xdata(), identity.get_ydata())
    _save_both(fig, tmp_path, "fig5")
    fig = plots.fig5_search_vs_true(long, spaces=["gross"])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="not in df"):
        plots.fig5_search_vs_true(long, spaces=["random"])


def test_save_figure_roundtrip(tmp_path, exhaustive_table):
    from gross.utils import save_figure

    fig = plots.fig3_exhaustive_search(exhaustive_table, [(2, 2, 2)])
    png = save_figure(fig, "fig3_test", {"profile": "test"}, directory=tmp_path)
    assert png.exists() and (tmp_path / "fig3_test.pdf").exists() and (tmp_path / "fig3_test.meta.json").exists()


# ----------------------------------------------------------------------------- axes, composites, vector PDFs


def _btd_errors():
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"model": m, "layer": layer, "group_size": s, "repeat": r,
                          "error": 1 / s + rng.normal(0, 0.01)}
                         for m in ("four_layer", "vgg16") for layer in ("conv2", "conv3")
                         for s in (1, 2, 4) for r in range(2)])


@pytest.fixture
def builders(exhaustive_table, bfs_trace):
    """name -> (builder taking ax=, number of axes it draws) on synthetic data, one per public builder."""
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_acc_largest": [62.0, 68, 72],
                            "val_acc_smallest": [58.0, 62, 68], "train_loss": [1.5, 1.0, 0.8]})
    fig5 = pd.DataFrame({"config": [(1, 1), (2, 2), (4, 4)], "true_acc": [70.0, 75, 80],
                         "none": [60.0, 66, 71], "partial": [65.0, 70, 74], "gross": [69.0, 74, 79]})
    latency = pd.DataFrame({"batch_size": [1, 1, 1, 8, 8, 8], "macs": [1e6, 2e6, 3e6] * 2,
                            "measured_s": [3e-3, 1e-3, 2e-3, 8e-3, 9e-3, 7e-3]})
    return {
        "fig2_expansion": (lambda ax: plots.fig2_expansion(ax=ax), 6),
        "grouped_conv_cost_figure": (lambda ax: plots.grouped_conv_cost_figure(
            grouped_conv_costs(16, 16, 3, 8, 8), ax=ax), 2),
        "btd_error_figure": (lambda ax: plots.btd_error_figure(_btd_errors(), ax=ax), 1),
        "finetuning_curves": (lambda ax: plots.finetuning_curves(history, ax=ax), 2),
        "fig3_exhaustive_search": (lambda ax: plots.fig3_exhaustive_search(
            exhaustive_table, [(2, 2, 2), (4, 4, 4)], ax=ax), 1),
        "fig4_bfs": (lambda ax: plots.fig4_bfs(bfs_trace, ax=ax), 2),
        "fig5_search_vs_true": (lambda ax: plots.fig5_search_vs_true(fig5, ax=ax), 3),
        "latency_vs_macs_figure": (lambda ax: plots.latency_vs_macs_figure(latency, ax=ax), 2),
    }


def _drawn(ax):
    """The data an axes shows: line coordinates, scatter offsets, image arrays, texts."""
    out = [np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float) for line in ax.get_lines()]
    out += [np.asarray(c.get_offsets(), dtype=float) for c in ax.collections]
    out += [np.ma.filled(im.get_array(), 0.0) for im in ax.get_images()]
    return out, sorted(t.get_text() for t in ax.texts), ax.get_xlabel(), ax.get_ylabel()


def test_every_builder_draws_into_given_axes(builders):
    public = {n for n in plots.__all__ if n.startswith(("fig", "btd", "grouped", "finetuning", "latency"))
              and n not in ("figure_builder", "figure_style")}
    assert public == set(builders)  # a new builder must be added to this test
    for name, (build, n) in builders.items():
        alone = build(None)
        fig, axes = plots.panel_axes(1, n + 1)  # one spare panel: the builder must use exactly the given ones
        assert build(list(axes[0, 1:])) is fig, name
        assert not axes[0, 0].has_data(), name
        assert len(alone.axes) == n, name
        for mine, theirs in zip(axes[0, 1:], alone.axes):
            got, want = _drawn(mine), _drawn(theirs)
            assert got[1:] == want[1:], name
            assert len(got[0]) == len(want[0]) > 0, name
            for a, b in zip(got[0], want[0]):
                np.testing.assert_allclose(a, b, err_msg=name)
        one = axes[0, 1] if n > 1 else axes[0, :2]  # wrong number of axes: one too few / too many
        with pytest.raises(ValueError, match=rf"{name} draws {n} panel\(s\): ax must be"):
            build(one)


def test_btd_error_figure_by_model_is_one_panel_per_model():
    df = _btd_errors()
    fig = plots.btd_error_figure(df, by="model")
    assert len(fig.axes) == 2
    for ax, model in zip(fig.axes, ("four_layer", "vgg16")):
        assert ax.get_title().startswith(model + "\n")
        alone = plots.btd_error_figure(df[df["model"] == model]).axes[0]
        for a, b in zip(_drawn(ax)[0], _drawn(alone)[0]):
            np.testing.assert_allclose(a, b)
    assert len(plots.facet(df, "model", plots.btd_error_figure, order=["vgg16"]).axes) == 1
    with pytest.raises(ValueError, match="order must name values of column 'model'"):
        plots.facet(df, "model", plots.btd_error_figure, order=["resnet"])
    with pytest.raises(ValueError, match="missing columns"):
        plots.btd_error_figure(df, by="network")


def test_finetuning_curves_by_model_is_one_row_per_model():
    history = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "epoch": [1, 2, 3] * 2,
                            "val_acc": [50.0, 55, 60, 40, 45, 50], "train_loss": [2.0, 1.5, 1.0] * 2})
    fig = plots.finetuning_curves(history, by="model")
    assert len(fig.axes) == 4
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[::2]] == ["a", "b"]
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_ydata(), [40.0, 45, 50])


def _pdf_images(fig, path) -> int:
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    return data.count(b"/Subtype /Image")


def test_pdfs_are_vector_except_image_plots(builders, tmp_path):
    """Line and scatter plots hold no raster image in their PDF; only Fig. 2 (weight heatmaps) does."""
    for name, (build, _) in builders.items():
        images = _pdf_images(build(None), tmp_path / f"{name}.pdf")
        if name == "fig2_expansion":
            assert images > 0  # imshow heatmaps: the check detects images
        else:
            assert images == 0, name
    composites = {"btd_by_model": plots.btd_error_figure(_btd_errors(), by="model"),
                  "finetuning_by_model": plots.finetuning_curves(
                      pd.DataFrame({"model": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2],
                                    "val_acc": [1.0, 2, 3, 4]}), by="model")}
    for name, fig in composites.items():
        assert _pdf_images(fig, tmp_path / f"{name}.pdf") == 0, name


def test_latency_vs_macs_figure_titles_hold_the_rank_correlation():
    df = pd.DataFrame({"batch_size": [1] * 4, "macs": [1.0, 2, 3, 4], "measured_s": [4.0, 3, 2, 1]})
    fig = plots.latency_vs_macs_figure(df)
    assert fig.axes[0].get_title() == "batch 1: Spearman(MACs, latency) = -1.00"
    with pytest.raises(ValueError, match="missing columns .'measured_s'."):
        plots.latency_vs_macs_figure(df.drop(columns="measured_s"))


# ----------------------------------------------------------------------------- figure styles (issue 26)


def _three_searches(exhaustive_table):
    rows = []
    for base in ((1, 1, 1), (2, 2, 2), (4, 4, 4)):
        budget = _budget(exhaustive_table, base)
        pool = exhaustive_table[exhaustive_table["macs"] <= budget].reset_index(drop=True)
        for i, (_, r) in enumerate(pool.head(4).iterrows()):
            rows.append({"baseline": " ".join(map(str, base)), "budget": int(budget), "run": 0, "step": i,
                         "config": r["config"], "macs": r["macs"], "accuracy": r["accuracy"], "selected": True})
    return pd.DataFrame(rows)


def test_styles_are_the_profile_choices_and_unknown_ones_are_named():
    from gross.runs import config

    assert config._CHOICES[("figure", "style")] == tuple(plots.STYLES)
    assert plots.STYLES["lncs"].full_width == pytest.approx(12.2 / 2.54)
    assert (plots.STYLES["ieee"].column_width, plots.STYLES["ieee"].full_width) == (3.5, 7.16)
    assert plots.STYLES["neurips"].full_width == 5.5 and plots.STYLES["screen"].full_width == 8.0
    with pytest.raises(ValueError, match=r"unknown figure style 'acm': valid styles are \['ieee', 'lncs'"):
        with plots.figure_style("acm"):
            pass
    with pytest.raises(ValueError, match="'column' or 'full'"):
        plots.STYLES["ieee"].width("half")


def test_figure_style_sets_width_fonts_and_sizes_only_inside_the_block(exhaustive_table):
    import matplotlib

    before = {k: matplotlib.rcParams[k] for k in ("pdf.fonttype", "font.family", "font.size", "axes.prop_cycle")}
    with plots.figure_style("ieee") as style:
        one = plots.fig3_exhaustive_search(exhaustive_table, [(2, 2, 2)])
        assert plots.current_style() is style
    assert plots.current_style() is None
    assert {k: matplotlib.rcParams[k] for k in before} == before  # nothing global changed
    assert tuple(one.get_size_inches()) == pytest.approx((3.5, 2.8))  # one panel: the column
    ax = one.axes[0]
    assert ax.xaxis.label.get_fontsize() == style.label_size
    assert ax.xaxis.label.get_fontfamily()[0] == "serif"
    assert one.gross_rc["font.serif"][0] == "STIXGeneral" and one.gross_rc["pdf.fonttype"] == 42
    notebook = plots.fig3_exhaustive_search(exhaustive_table, [(2, 2, 2)])
    assert tuple(notebook.get_size_inches()) == pytest.approx((5.2, 3.8))  # today's notebook size


def test_panels_wrap_into_rows_instead_of_shrinking_text(exhaustive_table):
    trace = _three_searches(exhaustive_table)
    notebook = plots.fig4_bfs(trace)
    assert tuple(notebook.get_size_inches()) == pytest.approx((12.6, 3.6))
    with plots.figure_style("lncs") as style:
        fig = plots.fig4_bfs(trace)
    assert fig.get_size_inches()[0] == pytest.approx(style.full_width)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 3
    rows = sorted({ax.get_subplotspec().rowspan.start for ax in panels})
    assert rows == [0, 1]  # 3 panels of >= 2.2 in do not fit 4.8 in: two rows (2 + 1)
    for ax in panels:
        spec = ax.get_subplotspec()
        assert spec.get_gridspec().ncols == 2
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            assert label.get_fontsize() >= style.tick_size
    assert panels[2].get_ylabel() and not panels[1].get_ylabel()  # first panel of each row holds the y label
    with plots.figure_style("ieee") as style:
        wide = plots.fig4_bfs(trace)
    assert sorted({ax.get_subplotspec().rowspan.start for ax in wide.axes if ax.has_data()}) == [0]  # 7.16 in: one row


def test_redraw_draws_the_same_data_for_a_style_and_needs_a_builder(exhaustive_table, bfs_trace):
    notebook = plots.fig4_bfs(bfs_trace)
    assert plots.can_redraw(notebook)
    for style in plots.STYLES:
        again = plots.redraw(notebook, style)
        assert again.get_size_inches()[0] == pytest.approx(plots.STYLES[style].full_width)
        for a, b in zip([ax for ax in again.axes if ax.has_data()], notebook.axes):
            for x, y in zip(_drawn(a)[0], _drawn(b)[0]):
                np.testing.assert_allclose(x, y)
    fig, axes = plots.panel_axes(1, 2)
    plots.fig4_bfs(bfs_trace, ax=list(axes[0]))  # drawn into given axes: the builder did not make the figure
    assert not plots.can_redraw(fig)
    with pytest.raises(ValueError, match="figure_builder"):
        plots.redraw(fig, "lncs")


def test_many_layers_are_coloured_by_depth_with_a_colour_bar():
    from gross.report.plots import palette

    layers = [f"conv{i}" for i in range(2, 14)]  # 12 layers: more than the palette's 9 colours
    df = pd.DataFrame([{"layer": layer, "group_size": s, "error": (i + 1) / (10 * s)}
                       for i, layer in enumerate(layers) for s in (1, 4, 16)])
    fig = plots.btd_error_figure(df)
    ax, bar = fig.axes
    assert ax.get_legend() is None
    assert [t.get_text() for t in bar.get_yticklabels()] == ["conv2", "conv4", "conv6", "conv8", "conv10", "conv12"]
    means = _by_gid(ax, "means")[0]
    np.testing.assert_allclose(means.get_offsets()[:3], [[1, 0.1], [4, 0.025], [16, 0.00625]])
    np.testing.assert_array_equal(means.get_array(), np.repeat(np.arange(12), 3))
    assert palette.figure_category_colors(fig) == []  # no category colours: an ordered colour map
    few = plots.btd_error_figure(df[df["layer"].isin(layers[:3])])
    assert [t.get_text() for t in few.axes[0].get_legend().get_texts()] == layers[:3]
    assert palette.check_colors(palette.figure_category_colors(few)) >= palette.MIN_DELTA_E
def test_pareto_figure_draws_fronts_as_running_best_staircases():
    every = pd.DataFrame({"macs": [1e6, 2e6, 3e6, 4e6], "accuracy": [50.0, 40.0, 70.0, 60.0]})
    front = every.iloc[[0, 2]]
    fig = plots.pareto_figure({"p": {"x": "macs", "all": every, "fronts": {"exact": front}}})
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [1.0, 3.0])  # MACs in millions
    np.testing.assert_allclose(line.get_ydata(), [50.0, 70.0])
    assert fig.axes[0].get_title() == "p"
    with pytest.raises(ValueError, match=r"missing columns \['accuracy'\]"):
        plots.pareto_figure({"p": {"x": "macs", "all": every.drop(columns="accuracy"), "fronts": {}}})
    with pytest.raises(ValueError, match="at least one panel"):
        plots.pareto_figure({})
