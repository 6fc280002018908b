"""Figures of robustness and of accuracy against robustness, from the regression stage's tables.

Each function takes artifact tables (data/metrics rows, data/regression/<dataset>/*.csv) and returns a
``matplotlib.figure.Figure`` built without pyplot (no global state, no display: Agg canvas), drawn at the
width it is printed at (:data:`WIDTH` inches), so that its 7-8 pt text is 7-8 pt on the page. Colours come from
one :class:`~embedrobust.report.palette.Palette`: a model or a family has the same colour in every figure.

Fit lines are drawn only over the x range their points cover (a line is evidence only there), with the
confidence band of the fitted mean; legends sit outside the axes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon

from .palette import POOLED_COLOUR, Palette, palette_for

POOLED = "pooled"
WIDTH = 7.0  # inches: the text width of the page (typeset.FIG_WIDTH_IN), kept here so figures need no reportlab
METRIC_LABELS = {"divergence_radius": "DivergenceRadius", "cosine": "cosine metric", "euclidean": "Euclidean metric"}
TASK_LABELS = {"linear_probe": "linear probe", "knn": "k-NN", "zero_shot": "zero-shot"}
RC = {"font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5, "xtick.labelsize": 6.8, "ytick.labelsize": 6.8,
      "legend.fontsize": 6.8, "legend.title_fontsize": 7, "axes.linewidth": 0.6, "grid.linewidth": 0.4,
      "lines.linewidth": 1.1, "patch.linewidth": 0.5}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task.replace("_", " "))


def new_figure(height: float, width: float = WIDTH) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.grid(True, alpha=0.35)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def wrap_grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) of a facet grid of ``n`` panels at most ``max_cols`` wide."""
    cols = max(1, min(max_cols, n))
    return -(-max(n, 1) // cols), cols


def _model_label(df: pd.DataFrame) -> pd.Series:
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        return df["dataset"].astype(str) + "/" + df["model"].astype(str)
    return df["model"].astype(str)


def _order(names, declared) -> list[str]:
    names = list(dict.fromkeys(names))
    return [n for n in declared if n in names] + sorted(n for n in names if n not in declared)


def fit_band(x, y, xs, ci_level: float = 0.95, cov_type: str = "HC3"):
    """Confidence band of the fitted mean of an OLS line of ``y`` on ``x`` at ``xs``: (low, high), or None when
    the line or its covariance is not estimable (fewer than 3 points, constant x, HC3 undefined at a leverage-1
    point). The regression stage fits its bin and level lines with HC3 and t intervals on n - 2 df: so does
    the band."""
    import statsmodels.api as sm

    pair = _fittable(x, y)
    if pair is None:
        return None
    x, y = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.OLS(y, sm.add_constant(x, has_constant="add")).fit(cov_type=cov_type, use_t=True)
        frame = res.get_prediction(sm.add_constant(np.asarray(xs, dtype=np.float64), has_constant="add"))
        lo, hi = np.asarray(frame.conf_int(alpha=1 - ci_level)).T
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return None
    return lo, hi


def draw_fit(ax, x, y, slope: float, intercept: float, colour, ci_level: float, gid: str, label=None, lw=1.0,
             ls="-", scale: float = 1.0) -> bool:
    """The line ``intercept + slope * x`` over the observed range of ``x`` only, and its confidence band.
    ``scale`` multiplies the y values (fractions drawn as %)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not (np.isfinite(slope) and np.isfinite(intercept)) or len(x) < 2:
        return False
    xs = np.linspace(x.min(), x.max(), 40)
    band = fit_band(x, y, xs, ci_level)
    if band is not None:
        # a patch, not a collection: the axes' collections stay one per scatter of points
        outline = np.column_stack([np.concatenate([xs, xs[::-1]]),
                                   np.concatenate([band[0], band[1][::-1]]) * scale])
        # the alpha goes into the colour: SVG converters honour fill-opacity, not a patch's overall opacity
        ax.add_patch(Polygon(outline, closed=True, facecolor=to_rgba(colour, 0.14), lw=0, gid=f"band:{gid}"))
    (line,) = ax.plot(xs, (intercept + slope * xs) * scale, color=colour, lw=lw, ls=ls, label=label)
    line.set_gid(f"fit:{gid}")
    return True


def robustness_per_family(rob: pd.DataFrame, palette: Palette | None = None,
                          metrics=("divergence_radius", "cosine", "euclidean")) -> Figure:
    """Per-image robustness per perturbation family, one box per model, one panel per metric (0 = robust).
    Every panel names its families on the x axis; the model legend sits above the panels."""
    import seaborn as sns

    palette = palette or palette_for(rob["model"], rob["family"])
    d = rob[rob["split"] == "test"] if "split" in rob.columns else rob
    metrics = [m for m in metrics if m in d.columns]
    fams = _order(d["family"], palette.families)
    models = _order(d["model"], palette.models)
    with _rc():
        fig = new_figure(1.0 + 2.45 * len(metrics))
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
        for ax, metric in zip(axes, metrics):
            sns.boxplot(data=d, x="family", y=metric, hue="model", order=fams, hue_order=models,
                        palette=palette.model_map(models), ax=ax, fliersize=1.0, linewidth=0.55, width=0.8,
                        flierprops={"alpha": 0.5}, legend=False)
            ax.set_xticks(range(len(fams)), fams, rotation=25, ha="right", rotation_mode="anchor")
            ax.set_xlabel("perturbation family")
            ax.set_ylabel(f"{metric_label(metric)}\n(per image; 0 = robust)")
            ax.set_ylim(bottom=0)
            _style(ax)
        handles = [Line2D([], [], marker="s", ls="", markersize=6, color=palette.model(m), label=m) for m in models]
        fig.legend(handles=handles, title="model", loc="outside upper center", ncols=min(len(models), 5),
                   frameon=False)
    return fig


def robustness_vs_accuracy(model_family: pd.DataFrame, palette: Palette | None = None,
                           metric: str = "divergence_radius", tasks=None, ci_level: float = 0.95) -> Figure:
    """The central plot: one point per (model, family), its mean robustness over the test images against its
    accuracy (mean over the family's levels), one colour per model and one marker per family, with the OLS
    line pooled over every point (and its band) per task panel."""
    mf = model_family[model_family["family"] != POOLED].assign(_m=lambda d: _model_label(d))
    palette = palette or palette_for(mf["_m"], mf["family"])
    tasks = [t for t in (tasks or sorted(mf["task"].unique())) if t in set(mf["task"])]
    models = _order(mf["_m"], palette.models)
    fams = _order(mf["family"], palette.families)
    x_col = f"mean_{metric}"
    rows, cols = wrap_grid(len(tasks), 3)
    with _rc():
        fig = new_figure(1.1 + 2.9 * rows)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, task in zip(axes.flat, tasks):
            g = mf[mf["task"] == task]
            for _, r in g.iterrows():
                ax.scatter(r[x_col], 100 * r["accuracy"], s=22, color=palette.model(r["_m"]),
                           marker=palette.marker(r["family"]), edgecolor="white", linewidth=0.4, zorder=3)
            fit = pooled_line(g[x_col], g["accuracy"])
            title = task_label(task)
            if fit is not None:
                draw_fit(ax, g[x_col], g["accuracy"], fit["slope"], fit["intercept"], POOLED_COLOUR, ci_level,
                         gid=f"pooled:{task}", ls="--", scale=100.0)
                title += f"\npooled OLS: R² = {fit['r2']:.2f}, n = {fit['n']}"
            ax.set_title(title)
            ax.set_xlabel(f"mean {metric_label(metric)} (0 = robust)")
            ax.set_ylabel("accuracy under the family (%)")
            _style(ax)
        for ax in list(axes.flat)[len(tasks):]:
            ax.axis("off")
        handles = [Line2D([], [], marker="o", ls="", markersize=5, color=palette.model(m), label=m) for m in models]
        handles += [Line2D([], [], marker=palette.marker(f), ls="", markersize=5, color="#666666", label=f)
                    for f in fams]
        handles.append(Line2D([], [], ls="--", color=POOLED_COLOUR, label=f"pooled OLS ({ci_level:.0%} band)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False)
    return fig


def _fittable(x, y) -> tuple[np.ndarray, np.ndarray] | None:
    """The finite (x, y) pairs as float64, or None where no line is estimable (fewer than 3, constant x)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    return (x, y) if len(x) >= 3 and np.ptp(x) > 0 else None


def pooled_line(x, y) -> dict | None:
    """OLS of ``y`` on ``x`` over every point: slope, intercept, R², n (None with fewer than 3 points)."""
    pair = _fittable(x, y)
    if pair is None:
        return None
    x, y = pair
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    tss = float(((y - y.mean()) ** 2).sum())
    return {"slope": float(slope), "intercept": float(intercept), "n": int(len(x)),
            "r2": 1 - float((resid ** 2).sum()) / tss if tss > 0 else np.nan}


def accuracy_vs_robustness(binned: pd.DataFrame, fits: pd.DataFrame, metric: str = "divergence_radius",
                           palette: Palette | None = None, ci_level: float = 0.95, tasks=None, max_cols: int = 3
                           ) -> Figure:
    """Binned accuracy (points: the kept bins of each family) against mean robustness, with each family's bin
    OLS line (its colour) and the line pooled over families (black, dashed), each only over the x range of its
    own bins and with its confidence band. One panel per (model, task), wrapped ``max_cols`` wide."""
    b = binned[(binned["metric"] == metric) & binned["kept"].astype(bool)].assign(_m=lambda d: _model_label(d))
    f = fits[(fits["metric"] == metric) & (fits["granularity"] == "bin")]
    if "estimator" in f.columns:
        f = f[f["estimator"] == "ols"]
    f = f.assign(_m=lambda d: _model_label(d))
    palette = palette or palette_for(b["_m"], b.loc[b["family"] != POOLED, "family"])
    models = _order(b["_m"], palette.models)
    tasks = [t for t in (tasks or sorted(b["task"].unique())) if t in set(b["task"])]
    panels = [(m, t) for m in models for t in tasks if ((b["_m"] == m) & (b["task"] == t)).any()]
    fams = _order(b.loc[b["family"] != POOLED, "family"], palette.families)
    rows, cols = wrap_grid(len(panels), max_cols)
    with _rc():
        fig = new_figure(0.8 + 2.05 * rows, WIDTH if cols > 1 else WIDTH * 0.5)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (m, t) in zip(axes.flat, panels):
            pts = b[(b["_m"] == m) & (b["task"] == t)]
            lines = f[(f["_m"] == m) & (f["task"] == t)].set_index("family")
            for fam in fams + [POOLED]:
                grp = pts[pts["family"] == fam]
                if grp.empty:
                    continue
                pooled = fam == POOLED
                colour = POOLED_COLOUR if pooled else palette.family(fam)
                if not pooled:
                    ax.scatter(grp["x_mean"], 100 * grp["accuracy"], s=9, color=colour, zorder=3, linewidth=0)
                if fam in lines.index:
                    r = lines.loc[fam]
                    draw_fit(ax, grp["x_mean"], grp["accuracy"], float(r["slope"]), float(r["intercept"]), colour,
                             ci_level, gid=fam, lw=1.3 if pooled else 0.8, ls="--" if pooled else "-", scale=100.0)
            if POOLED in lines.index and np.isfinite(lines.loc[POOLED, "r2"]):
                ax.text(0.98, 0.97, f"pooled R² = {lines.loc[POOLED, 'r2']:.2f}", transform=ax.transAxes,
                        ha="right", va="top", fontsize=6.5)
            ax.set_title(f"{m} · {task_label(t)}")
            ax.set_xlabel(f"{metric_label(metric)} (bin mean)")
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(-2, 102)
            _style(ax)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        handles = [Line2D([], [], marker="o", ls="-", lw=0.8, markersize=4, color=palette.family(fam), label=fam)
                   for fam in fams]
        handles.append(Line2D([], [], ls="--", lw=1.3, color=POOLED_COLOUR, label="pooled over families"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False,
                   title=f"bin OLS fits with their {ci_level:.0%} confidence bands")
    return fig


def accuracy_drop_figure(model_family: pd.DataFrame, palette: Palette | None = None, tasks=None,
                         ci_level: float = 0.95) -> Figure:
    """Accuracy drop from clean (points, mean over the family's levels) per family, one dot per model with its
    paired image-bootstrap interval (model_family.csv); one panel per task. The per-level accuracy_drop table
    works too: its levels are averaged, without intervals."""
    mf = model_family[model_family["family"] != POOLED].assign(_m=lambda d: _model_label(d))
    if "level" in mf.columns:
        # the per-level accuracy_drop table: a family's drop is the mean over its levels (no interval for it)
        mf = (mf.groupby(["_m", "task", "family"], sort=True)["drop_points"].mean().reset_index()
              .assign(drop_ci_low=np.nan, drop_ci_high=np.nan))
    palette = palette or palette_for(mf["_m"], mf["family"])
    tasks = [t for t in (tasks or sorted(mf["task"].unique())) if t in set(mf["task"])]
    models = _order(mf["_m"], palette.models)
    fams = _order(mf["family"], palette.families)
    width = 0.8 / max(len(models), 1)
    with _rc():
        fig = new_figure(0.9 + 2.0 * len(tasks))
        axes = fig.subplots(len(tasks), 1, squeeze=False)[:, 0]
        for ax, task in zip(axes, tasks):
            g = mf[mf["task"] == task].set_index(["_m", "family"])
            for k, m in enumerate(models):
                xs, ys, lo, hi = [], [], [], []
                for i, fam in enumerate(fams):
                    if (m, fam) not in g.index:
                        continue
                    r = g.loc[(m, fam)]
                    xs.append(i - 0.4 + width * (k + 0.5))
                    ys.append(r["drop_points"])
                    lo.append(r["drop_points"] - r["drop_ci_low"] if np.isfinite(r["drop_ci_low"]) else 0)
                    hi.append(r["drop_ci_high"] - r["drop_points"] if np.isfinite(r["drop_ci_high"]) else 0)
                if xs:
                    ax.errorbar(xs, ys, yerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)], fmt="o", ms=3.2,
                                color=palette.model(m), elinewidth=0.8, capsize=1.5, label=m)
            ax.axhline(0, color="#888888", lw=0.6)
            ax.set_xticks(range(len(fams)), fams, rotation=25, ha="right", rotation_mode="anchor")
            ax.set_xlim(-0.6, len(fams) - 0.4)
            ax.set_title(task_label(task))
            ax.set_xlabel("perturbation family")
            ax.set_ylabel("accuracy drop vs clean\n(points)")
            _style(ax)
        handles = [Line2D([], [], marker="o", ls="", markersize=4, color=palette.model(m), label=m) for m in models]
        fig.legend(handles=handles, title=f"model (bars: {ci_level:.0%} image-bootstrap interval)",
                   loc="outside upper center", ncols=min(len(models), 5), frameon=False)
    return fig


def metric_table(fits: pd.DataFrame, predictions: pd.DataFrame) -> Figure:
    """Table of pooled R^2 (bin and level fits) and held-out-family MAE (accuracy points) per task and
    metric, averaged over models; the best (lowest) MAE per task and granularity is bold. (The report itself
    typesets these numbers as a table; the text-robustness pages draw this one.)"""
    pooled = fits[(fits["family"] == POOLED) & fits["granularity"].isin(["bin", "level"])]
    r2 = pooled.pivot_table(index=["task", "metric"], columns="granularity", values="r2", aggfunc="mean")
    mae = predictions.pivot_table(
        index=["task", "metric"], columns="granularity", values="abs_error_points", aggfunc="mean"
    )
    tab = pd.concat({"R²": r2, "MAE (pts)": mae}, axis=1).sort_index()
    tab.columns = [f"{a} {b}" for a, b in tab.columns]
    fig = new_figure(0.25 * (len(tab) + 2) + 0.3, min(WIDTH, 1.3 * (len(tab.columns) + 2)))
    ax = fig.subplots()
    ax.axis("off")
    cells = [[f"{v:.3f}" if np.isfinite(v) else "–" for v in row] for row in tab.to_numpy(dtype=float)]
    table = ax.table(
        cellText=cells, rowLabels=[f"{t} · {m}" for t, m in tab.index], colLabels=list(tab.columns),
        loc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for j, col in enumerate(tab.columns):
        if not col.startswith("MAE"):
            continue
        for _task, grp in tab[col].groupby(level=0, sort=True):
            if grp.notna().any():
                i = tab.index.get_loc(grp.idxmin())
                table[i + 1, j].set_text_props(fontweight="bold")
    return fig


def _rc():
    import matplotlib as mpl

    return mpl.rc_context(RC)
