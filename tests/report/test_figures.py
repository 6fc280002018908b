"""The report's figures: fit lines only where their points are, one colour per model and family everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd

from embedrobust.report import regression_figures as rf
from embedrobust.report.palette import Palette


def _binned_and_fits():
    """Two families of one model with disjoint robustness ranges, and their pooled bins."""
    rows, fits = [], []
    for fam, (x0, x1) in {"blur": (0.1, 0.2), "noise": (0.5, 0.9)}.items():
        xs = np.linspace(x0, x1, 5)
        acc = 0.9 - 0.5 * xs + np.array([0.01, -0.02, 0.015, -0.01, 0.005])
        rows += [{"model": "m", "task": "linear_probe", "metric": "divergence_radius", "family": fam, "bin": i,
                  "x_mean": x, "accuracy": a, "n": 10, "kept": True} for i, (x, a) in enumerate(zip(xs, acc))]
        slope, intercept = np.polyfit(xs, acc, 1)
        fits.append({"model": "m", "task": "linear_probe", "metric": "divergence_radius", "family": fam,
                     "granularity": "bin", "estimator": "ols", "slope": slope, "intercept": intercept, "r2": 0.9})
    b = pd.DataFrame(rows)
    pooled = b.assign(family="pooled")
    slope, intercept = np.polyfit(pooled["x_mean"], pooled["accuracy"], 1)
    fits.append({"model": "m", "task": "linear_probe", "metric": "divergence_radius", "family": "pooled",
                 "granularity": "bin", "estimator": "ols", "slope": slope, "intercept": intercept, "r2": 0.9})
    return pd.concat([b, pooled], ignore_index=True), pd.DataFrame(fits)


def test_fit_lines_and_bands_span_exactly_their_own_groups_x_range():
    binned, fits = _binned_and_fits()
    fig = rf.accuracy_vs_robustness(binned, fits)
    ax = fig.axes[0]
    lines = {ln.get_gid()[4:]: ln for ln in ax.lines if (ln.get_gid() or "").startswith("fit:")}
    bands = {p.get_gid()[5:]: p for p in ax.patches if (p.get_gid() or "").startswith("band:")}
    assert set(lines) == set(bands) == {"blur", "noise", "pooled"}
    for fam, line in lines.items():
        x = binned.loc[binned["family"] == fam, "x_mean"]
        xd = np.asarray(line.get_xdata())
        assert np.isclose(xd.min(), x.min()) and np.isclose(xd.max(), x.max()), fam
        bx = bands[fam].get_xy()[:, 0]
        assert bx.min() >= x.min() - 1e-12 and bx.max() <= x.max() + 1e-12, fam


def _model_family(models):
    rows = []
    for i, m in enumerate(models):
        for j, fam in enumerate(["blur", "noise"]):
            rows.append({"model": m, "task": "linear_probe", "family": fam, "mean_divergence_radius": 0.1 * (i + j + 1),
                         "accuracy": 0.5 - 0.1 * j, "drop_points": 10.0 * j, "drop_ci_low": 5.0 * j,
                         "drop_ci_high": 15.0 * j})
    return pd.DataFrame(rows)


def test_a_model_keeps_its_colour_in_every_figure_whichever_models_it_shows():
    from matplotlib.colors import to_hex

    pal = Palette(("a", "b", "c"), ("blur", "noise"))
    drop = rf.accuracy_drop_figure(_model_family(["c"]), pal)
    central = rf.robustness_vs_accuracy(_model_family(["b", "c"]), pal)
    (c_dots,) = [c for c in drop.axes[0].containers if c.get_label() == "c"]
    assert to_hex(c_dots.lines[0].get_color()) == pal.model("c")
    central_colours = {to_hex(col.get_facecolor()[0]) for col in central.axes[0].collections
                       if (col.get_gid() or "") == ""}
    assert pal.model("c") in central_colours and pal.model("a") not in central_colours
    assert pal.family("blur") not in {pal.model(m) for m in pal.models}  # families draw from another palette


def test_palettes_are_seaborns_colorblind_and_colorbrewers_set2_then_dark2():
    import seaborn as sns

    from embedrobust.report import palette

    assert palette._MODEL_COLOURS == sns.color_palette("colorblind", 10).as_hex()
    assert palette._FAMILY_COLOURS == sns.color_palette("Set2", 8).as_hex() + sns.color_palette("Dark2", 8).as_hex()
