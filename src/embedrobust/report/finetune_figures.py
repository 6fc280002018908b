"""Report pages of the fine-tuning comparison (tables from ``embedrobust.finetune.compare``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def tradeoff_figure(curve: pd.DataFrame, task: str = "linear_probe") -> plt.Figure:
    """Clean accuracy against mean DivergenceRadius, one line per (base, method) through its alphas (alpha 0 =
    the base); trained families left, held-out families right."""
    acc = f"{task}_clean_%"
    held = curve["dr_held_out"].notna().any()
    fig, axes = plt.subplots(1, 2 if held else 1, figsize=(11 if held else 6.5, 4.6), squeeze=False)
    for ax, col, title in zip(axes[0], ["dr_trained", "dr_held_out"], ["trained families", "held-out families"]):
        for (base, method, fam), g in curve.groupby(["base", "method", "family"], sort=True):
            g = g.sort_values("alpha")
            label = f"{base} / {method}" + ("" if fam == "all" else f" / {fam}")
            ax.plot(g[col], g[acc], marker="o", label=label)
            for _, r in g.iterrows():
                ax.annotate(f"a={r['alpha']:g}", (r[col], r[acc]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        ax.set_xlabel(f"mean DivergenceRadius, {title} (test split; lower = more robust)")
        ax.set_ylabel(f"clean {task.replace('_', ' ')} accuracy (%)")
        ax.set_title(f"robustness-utility trade-off: {title}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def per_family_figure(change: pd.DataFrame) -> plt.Figure:
    """Mean DivergenceRadius per family, base against each fine-tuned model; held-out families marked."""
    rows = []
    for _, r in change.iterrows():
        fam = r["family"] + ("" if r["trained"] else "\n(held out)")
        rows.append({"family": fam, "model": r["base"] + " (base)", "DR": r["dr_base"]})
        rows.append({"family": fam, "model": r["model"], "DR": r["dr_finetuned"]})
    long = pd.DataFrame(rows).drop_duplicates(["family", "model"])
    fig, ax = plt.subplots(figsize=(11, 4.8))
    sns.barplot(data=long, x="family", y="DR", hue="model", ax=ax)
    ax.set_ylabel("mean DivergenceRadius (test split)")
    ax.set_title("robustness per family before and after fine-tuning")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
