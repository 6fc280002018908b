"""Figures of the regression stage: accuracy vs robustness, metric comparison table, accuracy drops.

Each function takes tables of :class:`embedrobust.regression.RegressionResult` and returns a
``matplotlib.figure.Figure`` built without pyplot (no global state, no display: Agg canvas), so the same
tables always draw the same figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

POOLED = "pooled"


def _figure(n_rows: int, n_cols: int, width: float = 3.6, height: float = 3.0):
    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, axes


def _model_label(df: pd.DataFrame) -> pd.Series:
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        return df["dataset"].astype(str) + "/" + df["model"].astype(str)
    return df["model"].astype(str)


def _colors(families):
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {f: cmap(i % 10) for i, f in enumerate(sorted(families))}


def accuracy_vs_robustness(binned: pd.DataFrame, fits: pd.DataFrame, metric: str = "divergence_radius") -> Figure:
    """Binned accuracy (points, kept bins only) against mean robustness, with the bin-granularity OLS line
    per family (coloured) and pooled over families (black, dashed). One panel per (model, task)."""
    b = binned[(binned["metric"] == metric) & binned["kept"].astype(bool)].assign(_m=lambda d: _model_label(d))
    f = fits[(fits["metric"] == metric) & (fits["granularity"] == "bin")].assign(_m=lambda d: _model_label(d))
    models, tasks = sorted(b["_m"].unique()), sorted(b["task"].unique())
    fig, axes = _figure(max(len(models), 1), max(len(tasks), 1))
    colors = _colors(b.loc[b["family"] != POOLED, "family"].unique())
    for i, m in enumerate(models):
        for j, t in enumerate(tasks):
            ax = axes[i, j]
            pts = b[(b["_m"] == m) & (b["task"] == t)]
            lines = f[(f["_m"] == m) & (f["task"] == t)]
            xs = np.linspace(0, max(float(pts["x_mean"].max()), 1e-3) if len(pts) else 1, 50)
            for fam, grp in pts.groupby("family", sort=True):
                if fam == POOLED:
                    continue
                ax.scatter(grp["x_mean"], grp["accuracy"], s=14, color=colors[fam], label=fam)
            for _, r in lines.sort_values("family").iterrows():
                if np.isfinite(r["slope"]):
                    pooled = r["family"] == POOLED
                    ax.plot(
                        xs, r["intercept"] + r["slope"] * xs,
                        color="black" if pooled else colors.get(r["family"], "grey"),
                        ls="--" if pooled else "-", lw=1.6 if pooled else 0.9,
                        label=f"pooled (R²={r['r2']:.2f})" if pooled else None,
                    )
            ax.set(title=f"{m} · {t}", xlabel=f"{metric} (0 = robust)", ylabel="accuracy", ylim=(-0.02, 1.02))
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="lower left")
    return fig


def metric_table(fits: pd.DataFrame, predictions: pd.DataFrame) -> Figure:
    """Table of pooled R^2 (bin and level fits) and held-out-family MAE (accuracy points) per task and
    metric, averaged over models; the best (lowest) MAE per task and granularity is bold."""
    pooled = fits[(fits["family"] == POOLED) & fits["granularity"].isin(["bin", "level"])]
    r2 = pooled.pivot_table(index=["task", "metric"], columns="granularity", values="r2", aggfunc="mean")
    mae = predictions.pivot_table(
        index=["task", "metric"], columns="granularity", values="abs_error_points", aggfunc="mean"
    )
    tab = pd.concat({"R²": r2, "MAE (pts)": mae}, axis=1).sort_index()
    tab.columns = [f"{a} {b}" for a, b in tab.columns]
    fig, axes = _figure(1, 1, width=1.6 * (len(tab.columns) + 2), height=0.35 * (len(tab) + 2))
    ax = axes[0, 0]
    ax.axis("off")
    cells = [[f"{v:.3f}" if np.isfinite(v) else "–" for v in row] for row in tab.to_numpy(dtype=float)]
    table = ax.table(
        cellText=cells, rowLabels=[f"{t} · {m}" for t, m in tab.index], colLabels=list(tab.columns), loc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for j, col in enumerate(tab.columns):
        if not col.startswith("MAE"):
            continue
        for task, grp in tab[col].groupby(level=0, sort=True):
            if grp.notna().any():
                i = tab.index.get_loc(grp.idxmin())
                table[i + 1, j].set_text_props(fontweight="bold")
    return fig


def accuracy_drop_figure(accuracy_drop: pd.DataFrame) -> Figure:
    """Accuracy drop from clean (percentage points) per family and level: grouped bars, one group per
    family, its levels in ascending value (each bar labelled with its level, since units differ by
    family). One panel per (model, task)."""
    d = accuracy_drop.assign(_m=lambda x: _model_label(x))
    models, tasks = sorted(d["_m"].unique()), sorted(d["task"].unique())
    fig, axes = _figure(max(len(models), 1), max(len(tasks), 1), width=5.0)
    colors = _colors(d["family"].unique())
    for i, m in enumerate(models):
        for j, t in enumerate(tasks):
            ax = axes[i, j]
            fams = d[(d["_m"] == m) & (d["task"] == t)].groupby("family", sort=True)
            for g, (fam, grp) in enumerate(fams):
                grp = grp.sort_values("level", kind="stable")
                width = 0.8 / len(grp)
                xs = g - 0.4 + width * (np.arange(len(grp)) + 0.5)
                bars = ax.bar(xs, grp["drop_points"], width=width, color=colors[fam])
                ax.bar_label(bars, labels=[f"{v:g}" for v in grp["level"]], fontsize=5, rotation=90, padding=1)
            ax.set_xticks(range(fams.ngroups), [f for f, _ in fams], rotation=45, ha="right", fontsize=7)
            ax.axhline(0, color="grey", lw=0.6)
            ax.set(title=f"{m} · {t}", ylabel="accuracy drop vs clean (points)")
            ax.grid(alpha=0.3, axis="y")
    return fig
