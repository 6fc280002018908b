"""Fine-tuned models against their base: robustness per family (trained and held out), utility, trade-off.

Inputs are the pipeline's own tables, test split only (the train split is what the models were tuned on):
``robustness`` rows of data/metrics (dataset, model, split, family, divergence_radius, ...), ``outcomes`` rows of
data/downstream (dataset, model, task, condition, family, correct), and the embedding drift per fine-tuned model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC = "divergence_radius"


def embedding_drift(base, tuned) -> float:
    """Mean over images of 1 - cos(e_tuned, e_base) of the clean embeddings, (N, D) each (same images, same
    order). 0 = the fine-tuned model embeds clean images as its base does."""
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(tuned, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-30)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-30)
    return float(np.mean(1.0 - np.sum(a * b, axis=1)))


def robustness_change(runs: dict, families: list[str], robustness: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, fine-tuned model, family of the grid): the mean DivergenceRadius of the base and of
    the fine-tuned model over test images, their difference, and whether training used the family."""
    rob = robustness[robustness["split"] == "test"] if "split" in robustness.columns else robustness
    mean = rob.groupby(["dataset", "model", "family"])[METRIC].mean()
    rows = []
    for ds in sorted(rob["dataset"].unique()):
        for name, run in runs.items():
            trained = set(run["train"]["families"] or ())
            for fam in families:
                key_b, key_f = (ds, run["base"], fam), (ds, name, fam)
                if key_b not in mean.index or key_f not in mean.index:
                    continue
                b, f = float(mean[key_b]), float(mean[key_f])
                rows.append({"dataset": ds, "model": name, "base": run["base"], "method": run["method"],
                             "alpha": run["alpha"], "family": fam, "trained": fam in trained,
                             "dr_base": b, "dr_finetuned": f, "dr_change": f - b,
                             "dr_change_%": 100 * (f - b) / b if b > 0 else np.nan})
    return pd.DataFrame(rows)


def utility_change(runs: dict, outcomes: pd.DataFrame, drift: dict) -> pd.DataFrame:
    """One row per (dataset, fine-tuned model, task): clean test accuracy (%) of base and fine-tuned model, the
    change in points, and the embedding drift ``drift[(dataset, model)]`` (see :func:`embedding_drift`)."""
    clean = outcomes[outcomes["condition"] == "clean"]
    acc = clean.groupby(["dataset", "model", "task"])["correct"].agg(["mean", "size"])
    rows = []
    for (ds, model, task), _ in acc.iterrows():
        if model not in runs:
            continue
        run = runs[model]
        if (ds, run["base"], task) not in acc.index:
            continue
        b = 100 * float(acc.loc[(ds, run["base"], task), "mean"])
        f = 100 * float(acc.loc[(ds, model, task), "mean"])
        rows.append({"dataset": ds, "model": model, "base": run["base"], "method": run["method"],
                     "alpha": run["alpha"], "task": task, "n_test": int(acc.loc[(ds, model, task), "size"]),
                     "clean_acc_base_%": b, "clean_acc_finetuned_%": f, "clean_acc_change_pt": f - b,
                     "drift_1_minus_cos": drift.get((ds, model), np.nan)})
    return pd.DataFrame(rows)


def tradeoff(runs: dict, rob_change: pd.DataFrame, util_change: pd.DataFrame, task: str = "linear_probe") -> pd.DataFrame:
    """The robustness-utility curve: per (dataset, base, method[, family]) and alpha, the mean DR over trained
    and over held-out families, and the clean accuracy of ``task``; alpha 0 is the base model itself."""
    if rob_change.empty:
        return pd.DataFrame()
    rows = []
    for (ds, model), g in rob_change.groupby(["dataset", "model"], sort=False):
        run = runs[model]
        u = util_change[(util_change["dataset"] == ds) & (util_change["model"] == model) & (util_change["task"] == task)]
        acc_b = float(u["clean_acc_base_%"].iloc[0]) if len(u) else np.nan
        acc_f = float(u["clean_acc_finetuned_%"].iloc[0]) if len(u) else np.nan
        tr, ho = g[g["trained"]], g[~g["trained"]]
        curve = {"dataset": ds, "base": run["base"], "method": run["method"], "family": run.get("family") or "all"}
        for alpha, dr_t, dr_h, acc, name in (
            (0.0, tr["dr_base"].mean(), ho["dr_base"].mean() if len(ho) else np.nan, acc_b, run["base"]),
            (run["alpha"], tr["dr_finetuned"].mean(), ho["dr_finetuned"].mean() if len(ho) else np.nan, acc_f, model),
        ):
            rows.append({**curve, "alpha": alpha, "model": name, "dr_trained": dr_t, "dr_held_out": dr_h,
                         f"{task}_clean_%": acc})
    out = pd.DataFrame(rows).drop_duplicates(["dataset", "base", "method", "family", "alpha"])
    return out.sort_values(["dataset", "base", "method", "family", "alpha"]).reset_index(drop=True)
