"""Report pages "Text robustness" (issue #17): how far the CLIP models' class text embeddings move under prompt
perturbations, what that costs zero-shot accuracy, and which tower limits accuracy more.

Every number is read from the text_robustness stage's artifacts: data/text_robustness/<dataset>/<model>.parquet
(metrics, zero-shot accuracy, the cross grid and its tower comparison) and <model>.regression/ (the fits).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from .. import stages
from ..config import text_robustness_plan
from . import regression_figures as rf
from .palette import Palette, palette_for, study_palette

POOLED = "pooled"
NOTE = """\
Each class's zero-shot embedding is the prompt ensemble of downstream.zero_shot.templates (unit prompt embeddings
averaged and re-normalised, the text stage's). A text condition rebuilds it from perturbed prompts: the family
edits each prompt (scope prompt: the filled prompt; template: the template's words only; class_name: the class
name only), draws seeded per (seed, family, level, class, template). Level 0 is the clean prompt.

Metrics (L2-normalised embeddings, as the image side; 0 = robust):
  divergence_radius, cosine, euclidean   per class and family: the ensemble embedding clean and at each level
                                         (level rows: clean and that level only; two points, DR = sin(angle/2))
  prompt_divergence_radius               mean over template slots of the DR of one clean prompt and its
                                         perturbed versions (NaN for template_shift: its prompts pair with none)
  changed_prompts                        fraction of perturbed prompts whose text differs from the clean one

Zero-shot accuracy: the test split's CLEAN images (the image store's clean condition) classified by the
downstream stage's zero-shot classifier against each condition's class embeddings; clean prompts give the
downstream stage's zero-shot accuracy exactly. The regression is the image side's (fit_all): each test image's
robustness under a text family is its class's DR, its outcome its correctness under that family's prompts.

Cross grid (text_robustness.cross): image family x text family, both perturbed at once. Towers: at the k-th
level of each family, the accuracy drop from clean when only the images, only the prompts, or both are
perturbed; limiting_tower is the one whose perturbation alone costs more.

CLIP's tokenizer lower-cases and collapses whitespace runs: case is an exact no-op on its embeddings (DR 0,
changed_prompts > 0), and whitespace counts only where it splits or joins words.
"""


def _panels(n: int, max_cols: int, panel_height: float, extra: float = 0.5):
    """A figure of ``n`` panels at the page's text width (printed size: 8 pt is 8 pt on paper) and its axes."""
    rows, cols = rf.wrap_grid(n, max_cols)
    fig = rf.new_figure(extra + panel_height * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def _style(ax, axis: str = "both") -> None:
    ax.grid(True, alpha=0.35, axis=axis)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(pdf: PdfPages, fig: Figure, title: str) -> None:
    fig.suptitle(title)  # the report turns a figure's suptitle into its caption
    pdf.savefig(fig)


def _colours(names, palette: Palette | None) -> dict[str, str]:
    palette = palette or palette_for(sorted(names))
    return {n: palette.model(n) for n in names}


def dr_per_level_figure(rob: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Mean two-point DivergenceRadius over classes against the level (0 = the clean prompts), one panel per text
    family, one line per model."""
    fams = list(dict.fromkeys(rob["family"]))
    models = list(dict.fromkeys(rob["model"]))
    colours = _colours(models, palette)
    with mpl.rc_context(rf.RC):
        fig, axes = _panels(len(fams), 3, 1.75)
        for ax, fam in zip(axes, fams):
            g = rob[(rob["family"] == fam) & rob["level"].notna()]
            for m in models:
                lv = g[g["model"] == m].groupby("level", sort=True)["divergence_radius"].mean()
                ax.plot(np.concatenate([[0.0], lv.index.to_numpy()]), np.concatenate([[0.0], lv.to_numpy()]),
                        marker="o", markersize=3, color=colours[m], label=m)
            ax.set(title=fam, xlabel="level", ylabel="DR (clean, level)", ylim=(-0.02, 1.02))
            _style(ax)
        fig.legend(handles=axes[0].get_lines(), loc="outside lower center", ncols=min(len(models), 4),
                   frameon=False)
    return fig


def accuracy_figure(zs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Zero-shot accuracy (%) of the clean test images per text condition, one panel per model; the dashed line
    is the clean prompts' accuracy."""
    models = list(dict.fromkeys(zs["model"]))
    colours = _colours(models, palette)
    n_conds = int(zs.groupby("model").size().max())
    with mpl.rc_context(rf.RC):
        fig, axes = _panels(len(models), 2, 0.13 * n_conds + 0.7, extra=0.2)
        for ax, m in zip(axes, models):
            g = zs[zs["model"] == m]
            y = np.arange(len(g))
            clean = float(g.loc[g["family"] == "clean", "accuracy"].iloc[0]) * 100
            ax.barh(y, g["accuracy"] * 100, color=["#999999" if f == "clean" else colours[m] for f in g["family"]])
            ax.axvline(clean, ls="--", lw=0.8, color="black")
            ax.set_yticks(y, g["condition"])
            ax.invert_yaxis()
            # near-chance accuracies (an untrained model) would be a row of equal stubs on a 0-100 axis
            ax.set(title=m, xlabel="zero-shot accuracy, test split (%)",
                   xlim=(0, min(100.0, float(g["accuracy"].max()) * 125 + 1)))
            _style(ax, "x")
    return fig


def accuracy_vs_dr_figure(drops: pd.DataFrame, fits: pd.DataFrame, metric: str = "divergence_radius") -> Figure:
    """Zero-shot accuracy per (text family, level) against the family's mean text robustness (the level
    granularity of the regression), with the pooled level OLS line; one panel per model."""
    models = list(dict.fromkeys(drops["model"]))
    fams = sorted(drops["family"].unique())
    cmap = colormaps["tab10"]
    with mpl.rc_context(rf.RC):
        fig, axes = _panels(len(models), 2, 2.1)
        for ax, m in zip(axes, models):
            d = drops[drops["model"] == m]
            for i, fam in enumerate(fams):
                g = d[d["family"] == fam]
                ax.scatter(g[f"mean_{metric}"], 100 * g["accuracy"], s=10, color=cmap(i % 10), label=fam, zorder=3)
            f = fits[(fits["model"] == m) & (fits["metric"] == metric) & (fits["granularity"] == "level")
                     & (fits["family"] == POOLED) & (fits["estimator"] == "ols")]
            if len(f) and np.isfinite(f["slope"].iloc[0]):
                r = f.iloc[0]
                xs = np.linspace(float(d[f"mean_{metric}"].min()), float(d[f"mean_{metric}"].max()), 50)
                ax.plot(xs, 100 * (r["intercept"] + r["slope"] * xs), ls="--", color="black", lw=1.1,
                        label="level OLS fit")
                ax.text(0.98, 0.97, f"R² = {r['r2']:.2f}", transform=ax.transAxes, ha="right", va="top")
            if len(d):
                ax.axhline(100 * float(d["clean_accuracy"].iloc[0]), ls=":", color="grey", lw=0.8,
                           label="clean prompts")
            ax.set(title=m, xlabel=f"text {rf.metric_label(metric)} of the family", ylabel="zero-shot accuracy (%)",
                   ylim=(-2, 102))
            _style(ax)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False)
    return fig


def towers_figure(towers: pd.DataFrame) -> Figure:
    """Accuracy drop from clean (points) at each shared level index k: images only, prompts only, both; one
    panel per (model, cross pair). Tick labels: k, then the image level / the text level."""
    keys = list(towers.groupby(["model", "image_family", "family"], sort=False).groups)
    with mpl.rc_context(rf.RC):
        fig, axes = _panels(len(keys), 2, 1.9)
        for ax, (m, img, txt) in zip(axes, keys):
            g = towers[(towers["model"] == m) & (towers["image_family"] == img) & (towers["family"] == txt)]
            x = np.arange(len(g))
            for j, (col, label) in enumerate([("image_drop_points", "images only"),
                                              ("text_drop_points", "prompts only"), ("both_drop_points", "both")]):
                ax.bar(x + (j - 1) * 0.27, g[col], width=0.27, color=f"C{j}", label=label)
            ax.set_xticks(x, [f"k={k}: {il:g} / {tl:g}" for k, il, tl in
                              zip(g["level_index"], g["image_level"], g["level"])])
            ax.axhline(0, color="grey", lw=0.6)
            ax.set(title=f"{m}\n{img} x {txt}", ylabel="drop vs clean (points)")
            _style(ax, "y")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    return fig


def _fit_table(fits: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """Per model and metric: pooled R² of the bin and level fits and the held-out-family MAE (points)."""
    pooled = fits[(fits["family"] == POOLED) & fits["granularity"].isin(["bin", "level"])
                  & (fits["estimator"] == "ols")]
    r2 = pooled.pivot_table(index=["model", "metric"], columns="granularity", values="r2", aggfunc="first")
    mae = preds.pivot_table(index=["model", "metric"], columns="granularity", values="abs_error_points",
                            aggfunc="mean")
    tab = pd.concat({"R2": r2, "MAE_points": mae}, axis=1)
    tab.columns = [f"{a}_{b}" for a, b in tab.columns]
    return tab.reset_index()


def _read_regression(d: Path) -> dict:
    return {**{name: pd.read_csv(d / f"{name}.csv") for name in ("fits", "binned", "predictions", "accuracy_drop")},
            "summary": json.loads((d / "summary.json").read_text())}


def _definitions(config: dict, plan: dict) -> str:
    from ..textperturb import ALTERNATIVE_TEMPLATES, get_text_perturbation

    lines = [NOTE, "Families (params text_robustness.families):"]
    for name, spec in plan["families"].items():
        p = get_text_perturbation(name)
        opts = dict(spec["options"])
        if p.kind == "text":
            opts.setdefault("scope", p.scope)
        lines.append(f"  {name}: {p.param}, domain {p.domain}; levels {', '.join(f'{v:g}' for v in spec['levels'])}"
                     + (f"; options {json.dumps(opts, sort_keys=True)}" if opts else ""))
        lines.append(f"    {p.description}")
        if p.kind == "templates":
            n = int(max(spec["levels"]))
            lines.append("    alternative templates, in order (minus any the clean set has): "
                         + " | ".join(ALTERNATIVE_TEMPLATES[:n]))
    lines += ["", f"Models: {', '.join(plan['models'])}; datasets: {', '.join(plan['datasets'])}; clean templates: "
              f"{config['downstream'].get('zero_shot', {}).get('templates', 'imagenet')}.", "",
              "Cross pairs: " + (", ".join(f"{c['image']} x {c['text']}" for c in plan["cross"]) or "none")]
    return "\n".join(lines)


def text_robustness_pages(pdf: PdfPages, config: dict, root: Path, text_pages, table_page) -> dict:
    """The "Text robustness" pages, when the text_robustness stage ran. Returns its numbers for
    reports/metrics.json: per dataset and model the clean and per-condition zero-shot accuracy, the mean
    DivergenceRadius per family, the regression's pooled R^2 and held-out MAE, and the tower comparison."""
    plan = text_robustness_plan(config)
    pairs = [(d, m) for d in plan["datasets"] for m in plan["models"]]
    if not pairs:
        return {}
    df = pd.concat([pd.read_parquet(stages.text_robustness_path(root, d, m)) for d, m in pairs], ignore_index=True)
    reg = {(d, m): _read_regression(stages.text_robustness_regression_dir(root, d, m)) for d, m in pairs}
    palette = study_palette(config)
    text_pages(pdf, "Text robustness: prompts under perturbation", _definitions(config, plan))
    out: dict = {}
    for ds in plan["datasets"]:
        sub = df[df["dataset"] == ds]
        rob = sub[sub["table"] == "robustness"]
        zs = sub[sub["table"] == "zero_shot"]
        towers = sub[sub["table"] == "towers"]
        _save(pdf, dr_per_level_figure(rob, palette),
              f"{ds}: text DivergenceRadius between the clean and the perturbed class embedding, per family and "
              "level (mean over classes).")
        summary = (rob[rob["level"].isna()].groupby(["model", "family"], sort=False)
                   [["divergence_radius", "cosine", "euclidean", "prompt_divergence_radius", "changed_prompts"]]
                   .mean().reset_index())
        table_page(pdf, f"Text robustness: {ds}: mean over classes, all levels of each family", summary,
                   "divergence_radius / cosine / euclidean: the class ensemble embedding, clean and every level.\n"
                   "prompt_divergence_radius: one prompt at a time; changed_prompts: prompts whose text changed.")
        _save(pdf, accuracy_figure(zs, palette),
              f"{ds}: zero-shot accuracy of the clean test images, clean prompts (grey, dashed) against perturbed "
              "prompts.")
        parts = [reg[(ds, m)] for m in plan["models"]]
        drops = pd.concat([p["accuracy_drop"] for p in parts], ignore_index=True)
        fits = pd.concat([p["fits"] for p in parts], ignore_index=True)
        binned = pd.concat([p["binned"] for p in parts], ignore_index=True)
        preds = pd.concat([p["predictions"] for p in parts], ignore_index=True)
        _save(pdf, accuracy_vs_dr_figure(drops, fits),
              f"{ds}: zero-shot accuracy per text family and level against the family's text DivergenceRadius, "
              "with the pooled level fit.")
        _save(pdf, rf.accuracy_vs_robustness(binned, fits),
              f"{ds}: zero-shot accuracy of images binned by their class's text DivergenceRadius, with bin fits.")
        table_page(pdf, f"Text robustness: {ds}: how well text robustness predicts zero-shot accuracy",
                   _fit_table(fits, preds),
                   "R²: pooled OLS fits of accuracy on the text metric (bins of images; (family, level) points). "
                   "MAE: held-out-family prediction error in accuracy points (mean over the families left out).")
        acc = zs[["model", "condition", "accuracy", "p_true", "n_images", "divergence_radius"]]
        table_page(pdf, f"Text robustness: {ds}: zero-shot accuracy per text condition", acc,
                   "accuracy: fraction of the clean test images classified correctly; divergence_radius: mean over\n"
                   "the test images of their class's DR between the clean and this condition's class embedding.")
        if not towers.empty:
            _save(pdf, towers_figure(towers), f"{ds}: which tower limits accuracy (cross grid, shared levels)")
            cols = ["model", "image_condition", "condition", "clean_accuracy", "image_accuracy", "text_accuracy",
                    "accuracy", "image_divergence_radius", "divergence_radius", "limiting_tower"]
            table_page(pdf, f"Text robustness: {ds}: image tower vs text tower", towers[cols],
                       "k-th level of the image family (image_condition) and of the text family (condition).\n"
                       "image_ / text_accuracy: only that tower perturbed; accuracy: both; DRs: mean two-point DRs.")
        for m in plan["models"]:
            s = reg[(ds, m)]["summary"]
            mz = zs[zs["model"] == m]
            mt = towers[towers["model"] == m]
            out.setdefault(ds, {})[m] = {
                "clean_accuracy": float(mz.loc[mz["family"] == "clean", "accuracy"].iloc[0]),
                "zero_shot_accuracy": dict(zip(mz["condition"], mz["accuracy"].astype(float))),
                "divergence_radius": summary[summary["model"] == m].set_index("family")["divergence_radius"].to_dict(),
                "pooled_r2": s.get("pooled_r2", {}).get(f"{ds}/{m}", {}),
                "heldout_mae_points": s.get("heldout_mae_points", {}).get(f"{ds}/{m}", {}),
                "towers": mt[["image_condition", "condition", "level_index", "image_drop_points", "text_drop_points",
                              "both_drop_points", "limiting_tower"]].to_dict("records"),
            }
    return out
