"""The report's first page: what was run and what was found, written as sentences from the artifacts.

Every number in a sentence is read from an artifact -- the regression stage's summary.json (which reports/
metrics.json repeats per dataset), its CSVs, the fine-tuning and attack tables the report also writes to
reports/metrics.json -- and printed by :mod:`embedrobust.report.formatting`, so a test can recompute each
printed string from reports/metrics.json. Nothing here fits or tests anything.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from . import formatting as F
from .regression_figures import metric_label, task_label

POOLED = "pooled"
HEADLINE_GRANULARITY = "bin"  # the fits the sentences quote: quantile bins of images, per model, pooled families
TASK_PREFERENCE = ("linear_probe", "knn", "zero_shot")


def primary_task(tasks) -> str:
    """The task the headline numbers are about: the linear probe where it ran (every model has it)."""
    tasks = list(tasks)
    for t in TASK_PREFERENCE:
        if t in tasks:
            return t
    return sorted(tasks)[0]


def model_key(summary: dict, ds: str, model: str) -> str:
    """summary.json's key of a model: "<dataset>/<model>" (the regression stage keys by both), else the model."""
    key = f"{ds}/{model}"
    return key if key in summary.get("pooled_r2", {}) else model


def _get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _names(items: list[str]) -> str:
    items = [escape(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# -- tables behind the sentences ------------------------------------------------------------------------------
def dr_intervals(rob: pd.DataFrame, n_boot: int, seed: int, ci_level: float, metric: str = "divergence_radius"
                 ) -> pd.DataFrame:
    """Per (dataset, model): the mean over test images and families of ``metric`` and its image-bootstrap
    percentile interval. The resamples are the regression stage's (the same test images in sorted order, the
    study seed, ``regression.bootstrap`` draws), so this interval sits beside the drop intervals of
    model_family.csv on the same resamples."""
    from ..regression.bootstrap import cluster_counts, percentile_ci

    d = rob[rob["split"] == "test"] if "split" in rob.columns else rob
    rows = []
    for ds, g in d.groupby("dataset", sort=True):
        images = np.sort(g["image"].unique())
        w = cluster_counts(len(images), n_boot, seed)
        for model, h in g.groupby("model", sort=True):
            per_image = h.groupby("image")[metric].mean().reindex(images)
            x = per_image.to_numpy(dtype=np.float64)
            present = np.isfinite(x)
            xz = np.where(present, x, 0.0)
            est = float(xz.sum() / present.sum()) if present.any() else np.nan
            with np.errstate(all="ignore"):
                reps = (w @ xz) / (w @ present) if n_boot else np.zeros(0)
            ci = percentile_ci(reps, ci_level)
            rows.append({"dataset": ds, "model": model, "estimate": est, "ci_low": ci["ci_low"],
                         "ci_high": ci["ci_high"], "n_images": int(present.sum()), "n_boot": n_boot})
    return pd.DataFrame(rows)


def leaderboard(model_family: pd.DataFrame, dr_ci: pd.DataFrame, task: str, metric: str = "divergence_radius"
                ) -> pd.DataFrame:
    """Models of one dataset ranked by mean robustness (most robust first) with the task's clean accuracy, mean
    accuracy drop (with its interval) and the family that costs the most accuracy."""
    mf = model_family[model_family["task"] == task]
    pooled = mf[mf["family"] == POOLED].set_index("model")
    fams = mf[mf["family"] != POOLED]
    ci = dr_ci.set_index("model")
    rows = []
    nan = pd.Series({"family": "", "drop_points": np.nan, "drop_ci_low": np.nan, "drop_ci_high": np.nan})
    for model, r in pooled.iterrows():
        mine = fams[fams["model"] == model].sort_values(["drop_points", "family"], ascending=[False, True],
                                                        kind="stable")
        w = mine.iloc[0] if len(mine) else nan
        rows.append({"model": model, "mean_dr": r[f"mean_{metric}"],
                     "dr_ci_low": ci.loc[model, "ci_low"] if model in ci.index else np.nan,
                     "dr_ci_high": ci.loc[model, "ci_high"] if model in ci.index else np.nan,
                     "clean_%": 100 * r["clean_accuracy"], "drop": r["drop_points"], "drop_ci_low": r["drop_ci_low"],
                     "drop_ci_high": r["drop_ci_high"], "worst_family": w["family"], "worst_drop": w["drop_points"],
                     "worst_ci_low": w["drop_ci_low"], "worst_ci_high": w["drop_ci_high"]})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.sort_values(["mean_dr", "model"], kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["drop_rank"] = out["drop"].rank(method="min").astype(int)
    return out


def leaderboard_cells(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard as the report prints it (rounded to its intervals)."""
    def cis(est, lo, hi, kind):
        return [F.ci(e, a, b, kind) for e, a, b in zip(board[est], board[lo], board[hi])]

    worst = cis("worst_drop", "worst_ci_low", "worst_ci_high", "points")
    return pd.DataFrame({
        "rank": board["rank"].astype(str),
        "model": board["model"],
        "mean DR": cis("mean_dr", "dr_ci_low", "dr_ci_high", "dr"),
        "clean": [F.unit(v, "percent") for v in board["clean_%"]],
        "drop": cis("drop", "drop_ci_low", "drop_ci_high", "points"),
        "drop rank": board["drop_rank"].astype(str),
        "worst family": [f"{f} ({c})" if f else F.DASH for f, c in zip(board["worst_family"], worst)],
    })


# -- sentences ------------------------------------------------------------------------------------------------
def metric_sentences(summary: dict, ds: str, models: list[str], task: str, gran: str = HEADLINE_GRANULARITY
                     ) -> list[str]:
    """Per metric: the range over models of the pooled R² of accuracy on robustness and of the held-out-family
    MAE, each with its image-bootstrap interval; then the metric with the lowest MAE and the paired R² differences."""
    boot = summary.get("bootstrap", {})
    out = []
    for metric in summary.get("metrics", []):
        r2 = {m: _get(boot, "r2", model_key(summary, ds, m), task, metric, gran) for m in models}
        mae = {m: _get(boot, "heldout_mae_points", model_key(summary, ds, m), task, metric, gran) for m in models}
        r2 = {m: v for m, v in r2.items() if v and F.finite(v["estimate"])}
        mae = {m: v for m, v in mae.items() if v and F.finite(v["estimate"])}
        if not r2:
            continue
        parts = [f"<b>{escape(metric_label(metric))}</b>: R² " + _span(r2, "r2")]
        if mae:
            parts.append("held-out-family MAE " + _span(mae, "points") + " points")
        out.append("; ".join(parts) + ".")
    best = _get(summary, "best_metric_by_mae", task, gran)
    if best:
        out.append(f"Lowest held-out-family MAE, averaged over the models: <b>{escape(metric_label(best))}</b>.")
    for pair, _diffs in sorted((_get(boot, "r2_difference") or {}).get(model_key(summary, ds, models[0]), {})
                              .get(task, {}).items()):
        vals = [_get(boot, "r2_difference", model_key(summary, ds, m), task, pair, gran) for m in models]
        vals = [v for v in vals if v and F.finite(v["ci_low"]) and F.finite(v["ci_high"])]
        if not vals:
            continue
        a, b = pair.split("-", 1)
        above = sum(v["ci_low"] > 0 for v in vals)
        below = sum(v["ci_high"] < 0 for v in vals)
        out.append(f"R² of {escape(metric_label(a))} minus R² of {escape(metric_label(b))} (paired resamples): "
                   f"interval above 0 for {above}, below 0 for {below}, covering 0 for {len(vals) - above - below} "
                   f"of {len(vals)} models.")
    return out


def _span(values: dict, kind: str) -> str:
    """'0.28 [0.05, 0.61] (model a) to 0.95 [0.90, 0.98] (model b)' over models, or the one value."""
    order = sorted(values, key=lambda m: (values[m]["estimate"], m))
    lo, hi = order[0], order[-1]

    def one(m):
        v = values[m]
        return f"{F.ci(v['estimate'], v['ci_low'], v['ci_high'], kind)} ({escape(m)})"

    return one(lo) if lo == hi else f"{one(lo)} to {one(hi)}"


def damaging_sentence(summary: dict, model_family: pd.DataFrame, ds: str, models: list[str], task: str) -> str:
    """The family with the largest mean accuracy drop, per model, with its interval."""
    parts = []
    mf = model_family[(model_family["task"] == task) & (model_family["family"] != POOLED)]
    mf = mf.set_index(["model", "family"])
    for m in models:
        drops = _get(summary, "accuracy_drop_points", model_key(summary, ds, m), task) or {}
        drops = {f: v for f, v in drops.items() if F.finite(v)}
        if not drops:
            continue
        fam = sorted(drops, key=lambda f: (-drops[f], f))[0]
        r = mf.loc[(m, fam)] if (m, fam) in mf.index else None
        lo, hi = (r["drop_ci_low"], r["drop_ci_high"]) if r is not None else (np.nan, np.nan)
        parts.append(f"{escape(m)}: {escape(fam)}, {F.ci(drops[fam], lo, hi, 'points')} points")
    if not parts:
        return ""
    return (f"<b>Most damaging family</b> (mean accuracy drop over its levels, {task_label(task)}): "
            + "; ".join(parts) + ".")


def ranking_sentence(summary: dict, board: pd.DataFrame, task: str, metric: str = "divergence_radius") -> str:
    if board.empty:
        return ""
    by_dr = list(board["model"])
    by_drop = list(board.sort_values(["drop", "model"], kind="stable")["model"])
    text = (f"<b>Ranking</b> by mean DivergenceRadius (most robust first): {_names(by_dr)}; by mean accuracy drop, "
            f"{task_label(task)} (smallest first): {_names(by_drop)}.")
    rc = _get(summary, "rank_correlation", task, metric, POOLED)
    if rc:
        if rc.get("note") or not F.finite(_get(rc, "spearman", "estimate")):
            text += f" No rank correlation: {escape(str(rc.get('note') or 'not defined'))}."
        else:
            s, k = rc["spearman"], rc["kendall"]
            text += (f" Spearman's ρ between the two = {F.ci(s['estimate'], s['ci_low'], s['ci_high'], 'rho', True)}, "
                     f"Kendall's τ-b = {F.ci(k['estimate'], k['ci_low'], k['ci_high'], 'rho', True)} over "
                     f"{int(rc['n_models'])} models (positive: the less robust models lose more accuracy).")
    return text


def finetune_sentences(tradeoff: pd.DataFrame, utility: pd.DataFrame, task: str) -> list:
    """Per (base, method): a bullet, then per alpha a sub-bullet ``(1, text)``: the change of mean DR on trained
    and held-out families against the base, and the clean accuracy it cost."""
    out: list = []
    if tradeoff is None or tradeoff.empty:
        return out
    acc = f"{task}_clean_%"
    for (ds, base, method, fam), g in tradeoff.groupby(["dataset", "base", "method", "family"], sort=True):
        g = g.sort_values("alpha")
        b = g[g["alpha"] == 0]
        if b.empty:
            continue
        b = b.iloc[0]
        parts = []
        for _, r in g[g["alpha"] > 0].iterrows():
            s = f"α = {r['alpha']:g}: mean DR on trained families {_change(b['dr_trained'], r['dr_trained'])}"
            if F.finite(r["dr_held_out"]):
                s += f", on held-out families {_change(b['dr_held_out'], r['dr_held_out'])}"
            u = utility[(utility["dataset"] == ds) & (utility["model"] == r["model"]) & (utility["task"] == task)]
            if len(u):
                s += (f"; clean {task_label(task)} accuracy {F.unit(u['clean_acc_base_%'].iloc[0], 'percent')}% → "
                      f"{F.unit(r[acc], 'percent')}% ({F.unit(u['clean_acc_change_pt'].iloc[0], 'points', True)} "
                      "points)")
            parts.append((1, s + "."))
        if parts:
            what = f"{escape(base)}, method {escape(method)}" + ("" if fam == "all" else f", {escape(fam)}")
            out.append(f"<b>Fine-tuning</b> ({what}, {escape(ds)}), against the base:")
            out += parts
    return out


def _change(before, after) -> str:
    if not (F.finite(before) and F.finite(after)):
        return F.DASH
    rel = f" ({F.num(100 * (after - before) / before, 0, True)}%)" if before > 0 else ""
    return f"{F.unit(before, 'dr')} → {F.unit(after, 'dr')}{rel}"


def worst_case_sentences(worst: pd.DataFrame) -> list[str]:
    """At the largest eps both attacks ran at: the probe's accuracy under embed_attack and under PGD."""
    out = []
    if worst is None or worst.empty:
        return out
    for ds, g in worst.groupby("dataset", sort=True):
        both = g.dropna(subset=["embed_attack_%", "pgd_%"])
        if both.empty:
            one = g.dropna(subset=["pgd_%"]) if g["pgd_%"].notna().any() else g.dropna(subset=["embed_attack_%"])
            col = "pgd_%" if g["pgd_%"].notna().any() else "embed_attack_%"
            if one.empty:
                continue
            eps = one["eps_value"].max()
            e = one[np.isclose(one["eps_value"], eps)]
            out.append(f"<b>Worst case</b> ({escape(ds)}, eps {F.eps_label(eps)}): linear-probe accuracy under "
                       f"{'PGD on the probe' if col == 'pgd_%' else 'embed_attack'} {_range(e, col)}.")
            continue
        eps = both["eps_value"].max()
        e = both[np.isclose(both["eps_value"], eps)]
        stronger = int((e["pgd_%"] < e["embed_attack_%"]).sum())
        out.append(f"<b>Worst case</b> ({escape(ds)}, eps {F.eps_label(eps)}): linear-probe accuracy under PGD on "
                   f"the probe {_range(e, 'pgd_%')}, against {_range(e, 'embed_attack_%')} under embed_attack "
                   f"(clean: {_range(e, 'clean_%')}); PGD is the stronger attack for {stronger} of {len(e)} models.")
    return out


def _range(df: pd.DataFrame, col: str) -> str:
    lo, hi = df.loc[df[col].idxmin()], df.loc[df[col].idxmax()]
    if len(df) == 1 or F.unit(lo[col], "percent") == F.unit(hi[col], "percent"):
        return F.unit(lo[col], "percent") + "%"
    return (f"{F.unit(lo[col], 'percent')}% ({escape(lo['model'])}) to {F.unit(hi[col], 'percent')}% "
            f"({escape(hi['model'])})")
