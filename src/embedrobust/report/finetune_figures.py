"""Figures of the fine-tuning comparison (tables from ``embedrobust.finetune.compare``), drawn like the
regression figures: without pyplot, at the page's width, in the study's model colours."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .palette import Palette, palette_for
from .regression_figures import WIDTH, _rc, _style, new_figure, task_label


def tradeoff_figure(curve: pd.DataFrame, palette: Palette | None = None, task: str = "linear_probe") -> Figure:
    """Clean accuracy against mean DivergenceRadius through the alphas of each (base, method) (alpha 0 = the
    base): trained families left, held-out families right. Each point is a model, in its colour."""
    acc = f"{task}_clean_%"
    palette = palette or palette_for(curve["model"])
    held = curve["dr_held_out"].notna().any()
    panels = [("dr_trained", "trained families")] + ([("dr_held_out", "held-out families")] if held else [])
    with _rc():
        fig = new_figure(3.2, WIDTH if held else WIDTH * 0.55)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (col, title) in zip(axes, panels):
            for _, g in curve.groupby(["base", "method", "family"], sort=True):
                g = g.sort_values("alpha")
                ax.plot(g[col], g[acc], color="#999999", lw=0.8, zorder=1)
                for _, r in g.iterrows():
                    ax.scatter(r[col], r[acc], s=26, color=palette.model(r["model"]), zorder=3, edgecolor="white",
                               linewidth=0.4)
                    ax.annotate(f"α={r['alpha']:g}", (r[col], r[acc]), textcoords="offset points", xytext=(4, 3),
                                fontsize=6.3)
            ax.set_xlabel(f"mean DivergenceRadius, {title}\n(test split; lower = more robust)")
            ax.set_ylabel(f"clean {task_label(task)} accuracy (%)")
            ax.set_title(title)
            ax.margins(x=0.15, y=0.15)
            _style(ax)
        models = list(dict.fromkeys(curve.sort_values("alpha")["model"]))
        handles = [Line2D([], [], marker="o", ls="", markersize=5, color=palette.model(m), label=m) for m in models]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False)
    return fig


def per_family_figure(change: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Mean DivergenceRadius per family, base against each fine-tuned model; held-out families marked."""
    palette = palette or palette_for(pd.concat([change["base"], change["model"]]), change["family"])
    fams = [f for f in palette.families if f in set(change["family"])] or sorted(change["family"].unique())
    trained = change.groupby("family")["trained"].all()
    bases = list(dict.fromkeys(change["base"]))
    tuned = list(dict.fromkeys(change.sort_values(["base", "alpha"])["model"]))
    models = bases + tuned
    value = {}
    for _, r in change.iterrows():
        value[(r["base"], r["family"])] = r["dr_base"]
        value[(r["model"], r["family"])] = r["dr_finetuned"]
    width = 0.8 / len(models)
    with _rc():
        fig = new_figure(3.0)
        ax = fig.subplots()
        for k, m in enumerate(models):
            xs = [i - 0.4 + width * (k + 0.5) for i, f in enumerate(fams) if (m, f) in value]
            ys = [value[(m, f)] for f in fams if (m, f) in value]
            ax.bar(xs, ys, width=width * 0.95, color=palette.model(m), label=m + (" (base)" if m in bases else ""))
        labels = [f + ("" if trained.get(f, True) else "\n(held out)") for f in fams]
        ax.set_xticks(range(len(fams)), labels, rotation=0)
        for tick, f in zip(ax.get_xticklabels(), fams):
            if not trained.get(f, True):
                tick.set_fontweight("bold")
        ax.set_xlabel("perturbation family (bold: held out of fine-tuning)")
        ax.set_ylabel("mean DivergenceRadius\n(test split; 0 = robust)")
        ax.set_xlim(-0.6, len(fams) - 0.4)
        _style(ax)
        fig.legend(loc="outside upper center", ncols=min(len(models), 4), frameon=False)
        if np.isfinite(ax.get_ylim()[1]):
            ax.set_ylim(bottom=0)
    return fig
