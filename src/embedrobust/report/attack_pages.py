"""Report sections of the worst case (issue #8): attacks beside the common perturbations, and dense tasks.

Every number is read from artifacts: the grid's ``embed_attack`` family from data/metrics and data/downstream,
cross-entropy PGD on the linear probe from data/task_attack, dense heads from data/dense.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import stages
from ..config import dense_plan, task_attack_plan
from ..manifest import relpath
from . import formatting as F
from .palette import Palette, palette_for
from .regression_figures import _order, _rc, _style, new_figure

ATTACK_TAGS = ("embed_attack",)  # grid families that are attacks (their levels are eps)
WORST_CASE_NOTE = (
    "Attacks are L-inf PGD with a random start, sign steps and projection in [0, 1] pixel space (before the "
    "model's normalisation); eps in units of 1/255. embed_attack is a family of the perturbation grid: PGD pushing "
    "each image's embedding away from its clean one (the benchmark's EmbedAttack), embedded, scored "
    "(DivergenceRadius over clean and every eps) and fed to the downstream tasks and the regression exactly like "
    "JPEG or noise; the downstream heads are not attacked, so it measures how far the representation itself can be "
    "moved. PGD is a task attack: cross-entropy PGD through the encoder and the linear probe (fitted on clean train "
    "embeddings, C chosen on val), on the whole test split (data/task_attack). A representation robust to "
    "embed_attack can still be broken there; the two side by side show it.")
DENSE_NOTE = (
    "A linear head on the frozen encoder's patch tokens (segmentation: per-token classes, upsampled, mIoU over the "
    "classes present; depth: [pooled, patch tokens] to depth, upsampled, RMSE in metres over valid pixels), fitted "
    "on clean train images, its learning rate and number of steps chosen on the val split, scored on the whole test "
    "split: clean, under every condition of the grid (embed_attack on the patch tokens) and under the task attack "
    "(SegPGD for segmentation, DepthPGD for depth).")


_eps_label = F.eps_label


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


def worst_case_figure(table: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Linear-probe accuracy against eps, one line per model (its colour): under EmbedAttack (left) and under
    PGD (right); a side whose attack did not run says so."""
    palette = palette or palette_for(table["model"])
    with _rc():
        fig = new_figure(2.9)
        axes = fig.subplots(1, 2)
        for ax, col, clean_col, title in zip(axes, ["embed_attack_%", "pgd_%"], ["clean_%", "pgd_clean_%"],
                                             ["embed_attack (the embedding is pushed)",
                                              "PGD on the probe (the task is attacked)"]):
            for model in _order(table["model"], palette.models):
                g = table[table["model"] == model].dropna(subset=[col]).sort_values("eps_value")
                if g.empty:
                    continue
                x = np.concatenate([[0.0], g["eps_value"].to_numpy() * 255])
                y = np.concatenate([[g[clean_col].iloc[0]], g[col].to_numpy()])
                ax.plot(x, y, marker="o", ms=3.5, color=palette.model(model), label=model)
            ax.set_xlabel("eps (× 1/255, L-inf; 0 = clean)")
            ax.set_title(title)
            _style(ax)
            if not ax.lines:
                ax.text(0.5, 0.5, "not run (see params)", ha="center", va="center", transform=ax.transAxes)
        # one y range for both sides, each with its own tick labels
        lo = min(ax.get_ylim()[0] for ax in axes)
        hi = max(ax.get_ylim()[1] for ax in axes)
        for ax in axes:
            ax.set_ylim(lo, hi)
            ax.set_ylabel("linear-probe accuracy,\ntest split (%)")
        handles = [Line2D([], [], marker="o", color=palette.model(m), label=m, ms=3.5)
                   for m in _order(table["model"], palette.models)]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False)
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


def dense_figure(g: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """One dense dataset: the head's score per family (mean over levels; clean dashed) and under the task attack
    against eps, one colour per model."""
    metric = g["metric"].iloc[0]
    models = _order(g["model"], (palette or palette_for(g["model"])).models)
    palette = palette or palette_for(g["model"], g.loc[g["kind"] == "perturbation", "family"])
    pert = g[g["kind"] == "perturbation"].groupby(["model", "family"], sort=False)["metric_value"].mean()
    fams = _order([f for _, f in pert.index], palette.families)
    width = 0.8 / max(len(models), 1)
    with _rc():
        fig = new_figure(3.0)
        axes = fig.subplots(1, 2, width_ratios=[2.2, 1])
        for k, m in enumerate(models):
            xs = [i - 0.4 + width * (k + 0.5) for i, f in enumerate(fams) if (m, f) in pert.index]
            ys = [pert[(m, f)] for f in fams if (m, f) in pert.index]
            axes[0].bar(xs, ys, width=width * 0.95, color=palette.model(m))
        for m in models:
            h = g[g["model"] == m]
            clean = h.loc[h["kind"] == "clean", "metric_value"].iloc[0]
            axes[0].axhline(clean, ls="--", lw=0.8, color=palette.model(m))
            a = h[h["kind"] == "attack"].sort_values("value")
            if not a.empty:
                axes[1].plot(np.concatenate([[0.0], a["value"].to_numpy() * 255]),
                             np.concatenate([[clean], a["metric_value"].to_numpy()]), marker="o", ms=3.5,
                             color=palette.model(m))
        axes[0].set_xticks(range(len(fams)), fams, rotation=25, ha="right", rotation_mode="anchor")
        axes[0].set_xlim(-0.6, len(fams) - 0.4)
        axes[0].set_xlabel("perturbation family")
        unit = " (m)" if metric == "rmse" else ""
        axes[0].set_ylabel(f"{metric}{unit} (test split)")
        axes[0].set_title("perturbation families (mean over levels; dashed: clean)")
        attack = g.loc[g["kind"] == "attack", "family"]
        axes[1].set_title(f"task attack: {attack.iloc[0] if not attack.empty else 'not run'}")
        axes[1].set_xlabel("eps (× 1/255, L-inf; 0 = clean)")
        axes[1].set_ylabel(f"{metric}{unit}")
        for ax in axes:
            _style(ax)
        handles = [Line2D([], [], marker="s", ls="", ms=5, color=palette.model(m), label=m) for m in models]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False)
    return fig


def attack_pages(doc, config: dict, root: Path, rob: pd.DataFrame, outcomes: pd.DataFrame,
                 palette: Palette | None = None) -> dict:
    """The "Worst case" section (when the grid has an attack family or task_attack runs) and the "Dense tasks"
    section (when dense runs) of the report ``doc`` (:class:`~embedrobust.report.typeset.Report`). Returns
    their tables as JSON-able records for reports/metrics.json."""
    ta_plan, dense_cfg = task_attack_plan(config), dense_plan(config)
    task_attack = _read([stages.task_attack_path(root, d, m) for d in ta_plan["datasets"] for m in ta_plan["models"]])
    out = {}
    table = worst_case_table(rob, outcomes, task_attack)
    if not table.empty:
        doc.heading("Worst case: attacks")
        doc.paragraph(WORST_CASE_NOTE)
        for ds, g in table.groupby("dataset", sort=True):
            doc.figure(worst_case_figure(g, palette),
                       f"{ds}: linear-probe accuracy (test split) under embed_attack, whose PGD pushes each "
                       "embedding away from its clean one (left), and under cross-entropy PGD through the encoder "
                       "and the probe (right), against the attack budget eps.", name=f"{ds} worst case")
            shown = g.assign(
                eps=g["eps"],
                **{"clean_%": g["clean_%"].map(lambda v: F.unit(v, "percent")),
                   "embed_attack_%": g["embed_attack_%"].map(lambda v: F.unit(v, "percent")),
                   "embed_attack_DR": g["embed_attack_DR"].map(lambda v: F.unit(v, "dr")),
                   "pgd_clean_%": g["pgd_clean_%"].map(lambda v: F.unit(v, "percent")),
                   "pgd_%": g["pgd_%"].map(lambda v: F.unit(v, "percent"))})
            doc.table(shown[["model", "eps", "embed_attack_DR", "clean_%", "embed_attack_%", "pgd_clean_%", "pgd_%"]],
                      f"{ds}: robustness and linear-probe accuracy under attack.",
                      note="embed_attack DR: mean DivergenceRadius of the embed_attack family (one ball over clean "
                           "and every eps). The PGD columns use the probe task_attack fits (its own C on its val "
                           "split), with its own clean accuracy beside them. – : not run at that eps.",
                      source=f"{relpath('downstream', 'table', dataset=ds)}, "
                             f"{relpath('task_attack', 'table', dataset=ds)}",
                      header={"model": "model", "eps": "eps\n(L-inf)", "embed_attack_DR": "embed_attack\nDR",
                              "clean_%": "clean\nacc. (%)", "embed_attack_%": "embed_attack\nacc. (%)",
                              "pgd_clean_%": "PGD probe\nclean (%)", "pgd_%": "PGD\nacc. (%)"})
        out["worst_case"] = table.to_dict("records")
    dense = _read([stages.dense_path(root, d, m) for d in dense_cfg["datasets"] for m in dense_cfg["models"]])
    if not dense.empty:
        doc.heading("Dense tasks")
        doc.paragraph(DENSE_NOTE)
        summary = dense_summary(dense)
        for ds, g in dense.groupby("dataset", sort=True):
            task, metric = g["task"].iloc[0], g["metric"].iloc[0]
            better = "higher" if metric == "miou" else "lower"
            doc.figure(dense_figure(g, palette), f"{ds} ({task}): {metric} of the linear head on the frozen "
                       f"encoder's patch tokens under each perturbation family and under the task attack "
                       f"({better} is better).", name=f"{ds} dense")
            s = summary[summary["dataset"] == ds]
            wide = s.pivot_table(index="condition", columns="model", values="value", sort=False)
            models = _order(wide.columns, palette.models if palette else ())
            order = list(dict.fromkeys(s["condition"]))
            wide = wide.reindex(index=order, columns=models)
            unit = " (m)" if metric == "rmse" else ""
            cells = wide.map(lambda v: F.num(v, 3)).reset_index()
            misaligned = sorted(set(s.loc[~s["target_aligned"], "condition"]))
            doc.table(cells, f"{ds} ({task}): {metric}{unit} on the test split per condition and model "
                      f"({better} is better).",
                      note=("Targets not aligned (a geometric family moved the pixels): " + ", ".join(misaligned)
                            + ".") if misaligned else "",
                      source=relpath("dense", "table", dataset=ds), header={"condition": "condition"})
        heads = dense.groupby(["dataset", "model"], sort=True)[["head_lr", "head_steps", "val_metric"]].first()
        heads = heads.reset_index()
        doc.table(heads.assign(head_steps=heads["head_steps"].astype(int)),
                  "Dense heads selected on the val split: Adam learning rate and steps, and the val score.",
                  decimals={"head_lr": 3, "val_metric": 3},
                  header={"head_lr": "learning\nrate", "head_steps": "steps", "val_metric": "val score"})
        out["dense"] = summary.to_dict("records")
    return out
