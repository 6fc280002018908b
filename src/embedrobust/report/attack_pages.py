"""Report pages of the worst case (issue #8): attacks beside the common perturbations, and dense tasks.

Every number is read from artifacts: the grid's ``embed_attack`` family from data/metrics and data/downstream,
cross-entropy PGD on the linear probe from data/task_attack, dense heads from data/dense.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_pdf import PdfPages

from .. import stages
from ..config import dense_plan, task_attack_plan

ATTACK_TAGS = ("embed_attack",)  # grid families that are attacks (their levels are eps)
WORST_CASE_NOTE = """\
Attacks are L-inf PGD with a random start, sign steps and projection in [0, 1] pixel space (before the model's
normalisation); eps in units of 1/255. Two kinds:

embed_attack  a family of the perturbation grid: PGD pushing each image's embedding away from its clean one
              (the benchmark's EmbedAttack). It is embedded, scored (DivergenceRadius over {clean, every eps})
              and fed to the downstream tasks and the regression exactly like JPEG or noise. The downstream
              heads are not attacked: it measures how far the representation itself can be moved.
pgd           a task attack: cross-entropy PGD through the encoder and the linear probe (fitted on clean
              train embeddings, C chosen on val), on the whole test split (data/task_attack). A representation
              robust to embed_attack can still be broken here; the two columns side by side show it.
"""
DENSE_NOTE = """\
A linear head on the frozen encoder's patch tokens (segmentation: per-token classes, upsampled, mIoU over the
classes present; depth: [pooled, patch tokens] -> depth, upsampled, RMSE in metres over valid pixels), fitted on
clean train images, its learning rate and number of steps chosen on the val split, scored on the whole test
split: clean, under every condition of the grid (embed_attack on the patch tokens) and under the task attack
(SegPGD for segmentation, DepthPGD for depth). mIoU: higher is better; RMSE: lower is better.
target_aligned = False: a geometric family moved the pixels and the targets could not follow (scored against
the untransformed targets).
"""


def _eps_label(eps: float) -> str:
    return f"{eps * 255:g}/255"


def _read(paths: list[Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths if p.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def worst_case_table(rob: pd.DataFrame, outcomes: pd.DataFrame, task_attack: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x model x eps: the embed_attack family's DivergenceRadius (mean over images, one value per
    model: the ball spans every eps), the linear probe's accuracy under it and under cross-entropy PGD, and the
    clean accuracy; NaN where that attack was not run."""
    rows = []
    probe = outcomes[outcomes["task"] == "linear_probe"] if not outcomes.empty else outcomes
    keys = set()
    if not probe.empty:
        keys |= {(d, m) for d, m in probe[["dataset", "model"]].drop_duplicates().itertuples(index=False)}
    for (ds, model) in sorted(keys):
        p = probe[(probe["dataset"] == ds) & (probe["model"] == model)]
        clean = p.loc[p["family"] == "clean", "correct"].mean() * 100
        emb = p[p["family"].isin(ATTACK_TAGS)]
        r = rob[(rob["dataset"] == ds) & (rob["model"] == model) & rob["family"].isin(ATTACK_TAGS)]
        dr = r["divergence_radius"].mean() if not r.empty else np.nan
        mine = (task_attack[(task_attack["dataset"] == ds) & (task_attack["model"] == model)]
                if not task_attack.empty else task_attack)
        ta = mine[mine["kind"] == "attack"] if not mine.empty else mine
        # the attacked probe is task_attack's own (C chosen on its val split): its clean accuracy goes beside
        pgd_clean = float(mine.loc[mine["kind"] == "clean", "metric_value"].iloc[0]) * 100 if not mine.empty else np.nan
        eps_values = sorted({float(v) for v in emb["level"]} | ({float(v) for v in ta["value"]} if not ta.empty else set()))
        for eps in eps_values:
            e = emb[np.isclose(emb["level"].astype(float), eps)]
            t = ta[np.isclose(ta["value"].astype(float), eps)] if not ta.empty else ta
            rows.append({"dataset": ds, "model": model, "eps": _eps_label(eps), "eps_value": eps,
                         "clean_%": clean,
                         "embed_attack_DR": dr if not e.empty else np.nan,
                         "embed_attack_%": e["correct"].mean() * 100 if not e.empty else np.nan,
                         "pgd_clean_%": pgd_clean if not t.empty else np.nan,
                         "pgd_%": float(t["metric_value"].iloc[0]) * 100 if not t.empty else np.nan})
    return pd.DataFrame(rows, columns=["dataset", "model", "eps", "eps_value", "clean_%", "embed_attack_DR",
                                       "embed_attack_%", "pgd_clean_%", "pgd_%"])


def worst_case_figure(table: pd.DataFrame) -> plt.Figure:
    """Linear-probe accuracy against eps, one line per model: under EmbedAttack (left) and under PGD (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, col, clean_col, title in zip(axes, ["embed_attack_%", "pgd_%"], ["clean_%", "pgd_clean_%"],
                                         ["embed_attack (the embedding is pushed)",
                                          "PGD on the probe (the task is attacked)"]):
        for model, g in table.groupby("model", sort=True):
            g = g.dropna(subset=[col]).sort_values("eps_value")
            if g.empty:
                continue
            x = np.concatenate([[0.0], g["eps_value"].to_numpy() * 255])
            y = np.concatenate([[g[clean_col].iloc[0]], g[col].to_numpy()])
            ax.plot(x, y, marker="o", label=model)
        ax.set_xlabel("eps (x 1/255, L-inf)")
        ax.set_title(title, fontsize=9)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not run (see params)", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("linear-probe accuracy, test split (%)")
    fig.tight_layout()
    return fig


def dense_summary(dense: pd.DataFrame) -> pd.DataFrame:
    """Per dense dataset x model: the clean score, the mean over each family's levels and each attack eps."""
    rows = []
    for (ds, model, task), g in dense.groupby(["dataset", "model", "task"], sort=True):
        metric = g["metric"].iloc[0]
        for (kind, family), h in g.groupby(["kind", "family"], sort=False):
            if kind == "attack":
                for _, r in h.iterrows():
                    rows.append({"dataset": ds, "task": task, "model": model, "metric": metric,
                                 "condition": f"{family} eps {_eps_label(r['value'])}",
                                 "value": r["metric_value"], "target_aligned": bool(r["target_aligned"])})
            else:
                rows.append({"dataset": ds, "task": task, "model": model, "metric": metric,
                             "condition": family if kind == "clean" else f"{family} (mean of {len(h)} levels)",
                             "value": h["metric_value"].mean(), "target_aligned": bool(h["target_aligned"].all())})
    return pd.DataFrame(rows, columns=["dataset", "task", "model", "metric", "condition", "value", "target_aligned"])


def dense_figure(g: pd.DataFrame) -> plt.Figure:
    """One dense dataset: the head's score per family (mean over levels, clean dashed) and under the task attack
    against eps, one colour per model."""
    metric = g["metric"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [2, 1]})
    pert = g[g["kind"] == "perturbation"].groupby(["model", "family"], sort=False)["metric_value"].mean().reset_index()
    models = sorted(g["model"].unique())  # one colour per model on both panels: C0, C1, ... in this order
    if not pert.empty:
        sns.barplot(data=pert, x="family", y="metric_value", hue="model", hue_order=models, ax=axes[0],
                    palette=[f"C{i}" for i in range(len(models))])
        axes[0].tick_params(axis="x", rotation=30)
        axes[0].legend(fontsize=6, loc="lower left")
    for i, (model, h) in enumerate(g.groupby("model", sort=True)):
        clean = h.loc[h["kind"] == "clean", "metric_value"].iloc[0]
        axes[0].axhline(clean, ls="--", lw=0.8, color=f"C{i}")
        a = h[h["kind"] == "attack"].sort_values("value")
        if not a.empty:
            axes[1].plot(np.concatenate([[0.0], a["value"].to_numpy() * 255]),
                         np.concatenate([[clean], a["metric_value"].to_numpy()]), marker="o", color=f"C{i}",
                         label=model)
    axes[0].set_ylabel(f"{metric} (test split)")
    axes[0].set_xlabel("")
    axes[0].set_title("perturbation families (mean over levels; dashed: clean)", fontsize=9)
    attack = g.loc[g["kind"] == "attack", "family"]
    axes[1].set_title(f"task attack: {attack.iloc[0] if not attack.empty else 'none'}", fontsize=9)
    axes[1].set_xlabel("eps (x 1/255, L-inf)")
    axes[1].set_ylabel(metric)
    if not attack.empty:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _save(pdf: PdfPages, fig: plt.Figure, title: str) -> None:
    fig.suptitle(title, y=1.0)
    pdf.savefig(fig)
    plt.close(fig)


def attack_pages(pdf: PdfPages, config: dict, root: Path, rob: pd.DataFrame, outcomes: pd.DataFrame,
                 text_pages, table_page) -> dict:
    """The "Worst case" pages (when the grid has an attack family or task_attack runs) and the "Dense tasks"
    pages (when dense runs). Returns their tables as JSON-able records for reports/metrics.json."""
    ta_plan, dense_cfg = task_attack_plan(config), dense_plan(config)
    task_attack = _read([stages.task_attack_path(root, d, m) for d in ta_plan["datasets"] for m in ta_plan["models"]])
    out = {}
    table = worst_case_table(rob, outcomes, task_attack)
    if not table.empty:
        text_pages(pdf, "Worst case: attacks", WORST_CASE_NOTE)
        for ds, g in table.groupby("dataset", sort=True):
            _save(pdf, worst_case_figure(g), f"dataset: {ds}: linear-probe accuracy under attack")
        for ds, g in table.groupby("dataset", sort=True):
            table_page(pdf, f"Worst case: {ds}: robustness and accuracy under attack",
                       g.drop(columns=["dataset", "eps_value"]),
                       "embed_attack_DR: mean DivergenceRadius of the embed_attack family (one ball over clean and\n"
                       "every eps). clean_% / embed_attack_%: the downstream stage's linear probe, clean and under\n"
                       "embed_attack; pgd_clean_% / pgd_%: the probe task_attack attacks (the same one unless\n"
                       "task_attack.options changes it), clean and under PGD. Test split, %. NaN: not run at that eps.")
        out["worst_case"] = table.to_dict("records")
    dense = _read([stages.dense_path(root, d, m) for d in dense_cfg["datasets"] for m in dense_cfg["models"]])
    if not dense.empty:
        text_pages(pdf, "Dense tasks", DENSE_NOTE)
        for ds, g in dense.groupby("dataset", sort=True):
            _save(pdf, dense_figure(g), f"dense dataset: {ds} ({g['task'].iloc[0]})")
        summary = dense_summary(dense)
        for (ds, task, metric), g in summary.groupby(["dataset", "task", "metric"], sort=True):
            better = "higher" if metric == "miou" else "lower"
            table_page(pdf, f"Dense tasks: {ds} ({task}, {metric}; {better} is better)",
                       g.drop(columns=["dataset", "task", "metric"]),
                       f"value: {metric} on the test split{' (metres)' if metric == 'rmse' else ''}. Every level: "
                       f"data/dense/{ds}/<model>.parquet.")
        heads = dense.groupby(["dataset", "model"], sort=True)[["head_lr", "head_steps", "val_metric"]].first()
        table_page(pdf, "Dense tasks: heads selected on val", heads.reset_index(),
                   "The head's Adam learning rate and number of steps, chosen by the val split's score.")
        out["dense"] = summary.to_dict("records")
    return out
