"""Fits of downstream performance on embedding robustness, held-out-family prediction and accuracy drops.

Joins (see docs/ARCHITECTURE.md for the two input tables):

- robustness rows (one per image and family, computed over *all* levels of the family) are joined to the
  outcome rows of the same (dataset, model, image, family) on the test split; the clean condition has no
  robustness and is left out of every fit (it only serves as the baseline of the accuracy drop);
- **image** granularity: performance of an image under a family = the mean of the ``outcome`` column
  (default ``correct``, i.e. the image's fraction of the family's levels classified correctly) against that
  image's robustness. Linear probability model (OLS, HC3 SEs); plus a logistic regression of the binary
  correctness of every (image, level) on the image's robustness;
- **bin** granularity: images sorted into ``n_bins`` quantile bins of robustness; the bin's accuracy (mean
  performance of its images) against its mean robustness; bins with fewer than ``min_bin_size`` images are
  kept in ``binned`` (``kept`` False) but left out of the fit;
- **level** granularity: one point per (family, level): accuracy at that level against the mean robustness of
  the images evaluated there. Since robustness does not vary with the level, points of one family share
  their x, so only the fit pooled over families exists at this granularity.

"pooled" in the ``family`` column means the fit stacks all families.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embedrobust.errors import ConfigError, DataError, unknown_name
from embedrobust.regression.linefit import FIT_STATS, fit_logit, fit_ols

POOLED = "pooled"
DEFAULTS = {
    "metrics": ["divergence_radius", "cosine", "euclidean"],
    "n_bins": 10,
    "ci_level": 0.95,
    "min_bin_size": 5,
    "outcome": "correct",
    "logit": True,
}


def regression_config(cfg: dict) -> dict:
    """The ``regression`` section (or the whole params dict holding one) merged over the defaults."""
    sec = cfg.get("regression", cfg) if cfg else {}
    out = {**DEFAULTS, **sec}
    if out["outcome"] not in ("correct", "p_true"):
        raise ConfigError(
            f"regression.outcome is {out['outcome']!r}; use 'correct' (fraction correct) or 'p_true'."
        )
    if not 0 < float(out["ci_level"]) < 1:
        raise ConfigError(f"regression.ci_level is {out['ci_level']}; give a level in (0, 1), e.g. 0.95.")
    if int(out["n_bins"]) < 1 or int(out["min_bin_size"]) < 1:
        raise ConfigError("regression.n_bins and regression.min_bin_size must be at least 1.")
    return out


@dataclass
class RegressionResult:
    """Tables of one regression run; ``summary`` is the small JSON-able dict DVC shows as metrics."""

    fits: pd.DataFrame
    binned: pd.DataFrame
    predictions: pd.DataFrame
    accuracy_drop: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def save(self, out_dir: Path) -> None:
        """Write fits.csv, binned.csv, predictions.csv, accuracy_drop.csv and summary.json to ``out_dir``.

        Same inputs give the same bytes: fixed row order, 12 significant digits, sorted JSON keys.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("fits", "binned", "predictions", "accuracy_drop"):
            getattr(self, name).to_csv(
                out_dir / f"{name}.csv", index=False, lineterminator="\n", float_format="%.12g"
            )
        text = json.dumps(_jsonable(self.summary), indent=2, sort_keys=True, allow_nan=False)
        (out_dir / "summary.json").write_text(text + "\n", encoding="utf-8")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(obj) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _group_keys(robustness: pd.DataFrame, outcomes: pd.DataFrame) -> list[str]:
    for name, df in (("robustness", robustness), ("outcome", outcomes)):
        if "model" not in df.columns:
            raise DataError(f"the {name} table has no 'model' column; add it (the pipeline stages write it).")
    return ["dataset", "model"] if "dataset" in robustness.columns and "dataset" in outcomes.columns else ["model"]


def bin_points(x, y, n_bins: int, min_bin_size: int) -> pd.DataFrame:
    """Quantile bins of ``x`` (n,): per bin the mean x, x range, mean ``y`` ("accuracy"), count and ``kept``.

    Tied x values always share a bin, so heavy ties give fewer than ``n_bins`` bins.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    cols = ["bin", "x_mean", "x_low", "x_high", "accuracy", "n", "kept"]
    if x.size == 0:
        return pd.DataFrame({c: [] for c in cols})
    if np.ptp(x) == 0 or n_bins == 1:
        codes = np.zeros(x.size, dtype=np.int64)
    else:
        codes = np.asarray(pd.qcut(x, n_bins, labels=False, duplicates="drop"), dtype=np.int64)
    _, codes = np.unique(codes, return_inverse=True)  # qcut may leave empty codes out
    n = np.bincount(codes)
    out = pd.DataFrame(
        {
            "bin": np.arange(len(n), dtype=np.int64),
            "x_mean": np.bincount(codes, weights=x) / n,
            "x_low": [x[codes == b].min() for b in range(len(n))],
            "x_high": [x[codes == b].max() for b in range(len(n))],
            "accuracy": np.bincount(codes, weights=y) / n,
            "n": n.astype(np.int64),
        }
    )
    out["kept"] = out["n"] >= min_bin_size
    return out


def _fit_row(ident: dict, granularity: str, estimator: str, stats: dict) -> dict:
    return {**ident, "granularity": granularity, "estimator": estimator, **stats}


def _family_subsets(df: pd.DataFrame):
    for fam in sorted(df["family"].unique()):
        yield fam, df[df["family"] == fam]
    yield POOLED, df


def _predict(fit: dict, x) -> np.ndarray:
    # accuracies live in [0, 1]; a line extrapolated beyond it is certainly wrong there
    return np.clip(fit["intercept"] + fit["slope"] * np.asarray(x, dtype=np.float64), 0.0, 1.0)


def fit_all(robustness: pd.DataFrame, outcomes: pd.DataFrame, cfg: dict) -> RegressionResult:
    """Fit performance on robustness for every (dataset, model, task, metric, family) and predict held-out families.

    ``robustness``: one row per (image, family) with the metric columns (in [0, 1], 0 = robust);
    ``outcomes``: one row per (task, condition, image) from :func:`embedrobust.downstream.evaluate_store`
    with dataset and model columns; ``cfg``: the ``regression`` params section (or the dict holding it).
    Accuracies are fractions in [0, 1]; columns ending in ``_points`` are percentage points.
    """
    cfg = regression_config(cfg)
    metrics = list(cfg["metrics"])
    for m in metrics:
        if m not in robustness.columns:
            raise unknown_name("robustness metric", m, [c for c in ("cosine", "euclidean", "divergence_radius")])
    keys = _group_keys(robustness, outcomes)
    outcome = cfg["outcome"]
    rob = robustness
    if "split" in rob.columns:
        rob = rob[rob["split"] == "test"]
    rob = rob[keys + ["image", "family"] + metrics]
    if rob.duplicated(keys + ["image", "family"]).any():
        raise DataError("the robustness table has repeated (model, image, family) rows; re-run the metrics stage.")
    perturbed = outcomes[outcomes["family"] != "clean"]
    rows = perturbed[keys + ["task", "family", "level", "image", "correct", "p_true"]].merge(
        rob, on=keys + ["image", "family"], how="inner"
    )
    if rows.empty:
        raise DataError(
            "the robustness and outcome tables share no (model, image, family) on the test split; run the "
            "metrics and downstream stages on the same embedding store."
        )
    rows["correct"] = rows["correct"].astype(bool)
    rows["y"] = rows[outcome].astype(np.float64)
    gk = keys + ["task"]
    img = (
        rows.groupby(gk + ["family", "image"], sort=True)
        .agg(performance=("y", "mean"), n_levels=("y", "size"), **{m: (m, "first") for m in metrics})
        .reset_index()
    )
    lvl = (
        rows.groupby(gk + ["family", "level"], sort=True)
        .agg(accuracy=("y", "mean"), n=("y", "size"), **{m: (m, "mean") for m in metrics})
        .reset_index()
    )
    ci, nb, mb = float(cfg["ci_level"]), int(cfg["n_bins"]), int(cfg["min_bin_size"])

    rows_by = dict(iter(rows.groupby(gk, sort=True)))
    lvl_by = dict(iter(lvl.groupby(gk, sort=True)))
    fits, binned, preds = [], [], []
    for gvals, g_img in img.groupby(gk, sort=True):
        base = dict(zip(gk, gvals))
        g_rows, g_lvl = rows_by[gvals], lvl_by[gvals]
        for m in metrics:
            for fam, sub in _family_subsets(g_img):
                ident = {**base, "metric": m, "family": fam}
                fits.append(_fit_row(ident, "image", "ols_hc3", fit_ols(sub[m], sub["performance"], ci, "HC3")))
                if cfg["logit"]:
                    r = g_rows if fam == POOLED else g_rows[g_rows["family"] == fam]
                    fits.append(_fit_row(ident, "image", "logit", fit_logit(r[m], r["correct"], ci)))
                b = bin_points(sub[m], sub["performance"], nb, mb)
                binned.append(b.assign(**ident)[list(ident) + list(b.columns)])
                k = b[b["kept"]]
                fits.append(_fit_row(ident, "bin", "ols", fit_ols(k["x_mean"], k["accuracy"], ci)))
            fits.append(
                _fit_row({**base, "metric": m, "family": POOLED}, "level", "ols", fit_ols(g_lvl[m], g_lvl["accuracy"], ci))
            )
            preds.extend(_held_out(base, m, g_img, g_lvl, ci, nb, mb))

    fits_df = pd.DataFrame(fits)[gk + ["metric", "family", "granularity", "estimator"] + FIT_STATS]
    binned_df = pd.concat(binned, ignore_index=True)
    pred_df = pd.DataFrame(preds)
    drop_df = accuracy_drop(outcomes, keys, lvl, metrics)
    summary = _summary(fits_df, pred_df, drop_df, keys, outcome, metrics)
    return RegressionResult(fits_df, binned_df, pred_df, drop_df, summary)


def _held_out(base: dict, metric: str, g_img: pd.DataFrame, g_lvl: pd.DataFrame, ci, nb, mb) -> list[dict]:
    """Leave-one-family-out: fit bin and level lines on the other families, predict the held-out accuracy.

    The held-out family's accuracy is predicted at its mean robustness (for a line, the mean of the
    per-image predictions); ``bin_mae_points`` also scores the line on the held-out family's own bins.
    """
    out = []
    for fam in sorted(g_img["family"].unique()):
        tr_img, te_img = g_img[g_img["family"] != fam], g_img[g_img["family"] == fam]
        tr_lvl, te_lvl = g_lvl[g_lvl["family"] != fam], g_lvl[g_lvl["family"] == fam]
        b = bin_points(tr_img[metric], tr_img["performance"], nb, mb)
        b = b[b["kept"]]
        hb = bin_points(te_img[metric], te_img["performance"], nb, mb)
        hb = hb[hb["kept"]]
        for gran, fit, x_mean, measured in (
            ("bin", fit_ols(b["x_mean"], b["accuracy"], ci), te_img[metric].mean(), te_img["performance"].mean()),
            ("level", fit_ols(tr_lvl[metric], tr_lvl["accuracy"], ci), te_lvl[metric].mean(), te_lvl["accuracy"].mean()),
        ):
            pred = float(_predict(fit, x_mean))
            bin_mae = (
                100 * float(np.mean(np.abs(_predict(fit, hb["x_mean"]) - hb["accuracy"])))
                if gran == "bin" and len(hb)
                else np.nan
            )
            out.append(
                {
                    **base, "metric": metric, "granularity": gran, "held_out_family": fam,
                    "n_train_points": fit["n"], "slope": fit["slope"], "intercept": fit["intercept"],
                    "train_r2": fit["r2"], "robustness_mean": x_mean, "predicted_accuracy": pred,
                    "measured_accuracy": measured, "abs_error_points": 100 * abs(pred - measured),
                    "bin_mae_points": bin_mae,
                }
            )
    return out


def accuracy_drop(outcomes: pd.DataFrame, keys: list[str], lvl: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Accuracy per (model, task, family, level) over all test images and its drop from the clean condition.

    ``drop_points`` = 100 * (clean accuracy - accuracy); ``relative_drop`` = drop / clean accuracy; the
    ``mean_<metric>`` columns are the level-granularity robustness of the fits (NaN without robustness rows).
    """
    gk = keys + ["task"]
    acc = (
        outcomes.assign(c=outcomes["correct"].astype(np.float64), c5=outcomes["correct_top5"].astype(np.float64))
        .groupby(gk + ["family", "level", "condition"], sort=True, dropna=False)
        .agg(accuracy=("c", "mean"), top5_accuracy=("c5", "mean"), n=("c", "size"))
        .reset_index()
    )
    clean = acc[acc["family"] == "clean"][gk + ["accuracy", "top5_accuracy"]].rename(
        columns={"accuracy": "clean_accuracy", "top5_accuracy": "clean_top5_accuracy"}
    )
    if clean.duplicated(gk).any():
        raise DataError("the outcome table has more than one clean condition per model and task; re-run downstream.")
    df = acc[acc["family"] != "clean"].merge(clean, on=gk, how="left")
    df["drop_points"] = 100 * (df["clean_accuracy"] - df["accuracy"])
    df["top5_drop_points"] = 100 * (df["clean_top5_accuracy"] - df["top5_accuracy"])
    with np.errstate(divide="ignore", invalid="ignore"):
        df["relative_drop"] = (df["clean_accuracy"] - df["accuracy"]) / df["clean_accuracy"]
    means = lvl[gk + ["family", "level"] + metrics].rename(columns={m: f"mean_{m}" for m in metrics})
    df = df.merge(means, on=gk + ["family", "level"], how="left")
    return df.sort_values(gk + ["family", "level"], kind="stable").reset_index(drop=True)


def _model_key(row, keys) -> str:
    return "/".join(str(row[k]) for k in keys)


def _summary(fits, preds, drops, keys, outcome, metrics) -> dict:
    """Small nested dict: pooled R^2 and held-out MAE per model, task, metric; clean accuracy; mean drops."""
    pooled = fits[(fits["family"] == POOLED) & (fits["estimator"] != "logit")]
    r2: dict = {}
    for _, r in pooled.iterrows():
        r2.setdefault(_model_key(r, keys), {}).setdefault(r["task"], {}).setdefault(r["metric"], {})[
            r["granularity"]
        ] = r["r2"]
    mae: dict = {}
    if len(preds):
        agg = preds.groupby(keys + ["task", "metric", "granularity"], sort=True)["abs_error_points"].mean()
        for idx, v in agg.items():
            r = dict(zip(keys + ["task", "metric", "granularity"], idx))
            mae.setdefault(_model_key(r, keys), {}).setdefault(r["task"], {}).setdefault(r["metric"], {})[
                r["granularity"]
            ] = v
    best: dict = {}
    if len(preds):
        overall = preds.groupby(["task", "granularity", "metric"], sort=True)["abs_error_points"].mean()
        for (task, gran), s in overall.groupby(level=[0, 1], sort=True):
            s = s.dropna()
            if len(s):
                best.setdefault(task, {})[gran] = s.droplevel([0, 1]).sort_values(kind="stable").index[0]
    clean: dict = {}
    drop: dict = {}
    for _, r in drops.drop_duplicates(keys + ["task"]).iterrows():
        clean.setdefault(_model_key(r, keys), {})[r["task"]] = r["clean_accuracy"]
    fam = drops.groupby(keys + ["task", "family"], sort=True)["drop_points"].mean()
    for idx, v in fam.items():
        r = dict(zip(keys + ["task", "family"], idx))
        drop.setdefault(_model_key(r, keys), {}).setdefault(r["task"], {})[r["family"]] = v
    return {
        "outcome": outcome,
        "metrics": list(metrics),
        "pooled_r2": r2,
        "heldout_mae_points": mae,
        "best_metric_by_mae": best,
        "clean_accuracy": clean,
        "accuracy_drop_points": drop,
    }
