"""Fits of downstream performance on embedding robustness, held-out-family prediction, accuracy drops, image
bootstrap intervals and the cross-model analysis.

Joins (see docs/ARCHITECTURE.md for the two input tables):

- robustness rows (one per image and family, computed over *all* levels of the family) are joined to the
  outcome rows of the same (dataset, model, image, family) on the test split; the clean condition has no
  robustness and is left out of every fit (it only serves as the baseline of the accuracy drop);
- **image** granularity: performance of an image under a family = the mean of the ``outcome`` column
  (default ``correct``, i.e. the image's fraction of the family's levels classified correctly) against that
  image's robustness. Linear probability model (OLS); plus a logistic regression of the binary correctness of
  every (image, level) on the image's robustness. Every image-level fit, per family and pooled, OLS and logit,
  has standard errors clustered by image (CRV1, ``cov_type`` "cluster(image)", t intervals with G - 1 df,
  G = images): an image's rows share its difficulty, and in the pooled fits it appears once per family, so
  rows are not independent. ``slope_se_hc3`` keeps the HC3 SE of the same OLS fit for comparison;
- **bin** granularity: images sorted into ``n_bins`` quantile bins of robustness; the bin's accuracy (mean
  performance of its images) against its mean robustness; bins with fewer than ``min_bin_size`` images are
  kept in ``binned`` (``kept`` False) but left out of the fit;
- **level** granularity: one point per (family, level): accuracy at that level against the mean robustness of
  the images evaluated there. Since robustness does not vary with the level, points of one family share
  their x, so only the fit pooled over families exists at this granularity.
- bin and level fits have few points (``n`` in each row): HC3 SEs with t intervals on n - 2 df.

"pooled" in the ``family`` column means the fit stacks all families.

Held-out-family prediction (``predictions``), exactly what is held out: for each family F of a (model, task,
metric), every outcome row of F (all its levels) and F's images' robustness rows are removed before
anything is fitted: the bins (their quantile edges too) and the bin line are built from the other
families' (image, family) rows only, the level line from the other families' (family, level) points only.
F then enters only as the test case: its mean robustness (a label-free property of the embeddings) is the
input of the fitted line, its measured accuracy the target. Not held out: the images -- every family is
evaluated on the same test images, so this predicts accuracy under an unseen perturbation type, not on unseen
images. Upstream, nothing fitted saw the test split or any perturbation: the k-NN index, the linear probe and
its C (chosen on a seeded validation part of the clean *train* split) use clean train embeddings only.

Bootstrap (``bootstrap``): B (``regression.bootstrap``) cluster resamples of the test images, drawn once per
run from the study seed and shared by every model, task, metric and statistic, so differences between
metrics and models are paired. Percentile intervals for: the pooled R^2 per metric and granularity, the
held-out-family MAE per metric and granularity, and the R^2 differences divergence_radius - cosine and
divergence_radius - euclidean. The same resamples give the accuracy drops' intervals (``accuracy_drop``,
``model_family``) and the cross-model intervals (``rank_correlation``, ``panel_fits``); see
:mod:`embedrobust.regression.panel`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embedrobust.errors import ConfigError, DataError, unknown_name
from embedrobust.forked import ForkPool
from embedrobust.regression.bootstrap import (
    binned_line,
    cluster_counts,
    line_fit,
    percentile_ci,
    weighted_bins,
    weighted_line_r2,
)
from embedrobust.regression.cube import Cube, build_cube
from embedrobust.regression.linefit import CLUSTER, FIT_STATS, fit_logit, fit_ols

POOLED = "pooled"
DEFAULTS = {
    "metrics": ["divergence_radius", "cosine", "euclidean"],
    "n_bins": 10,
    "ci_level": 0.95,
    "min_bin_size": 5,
    "outcome": "correct",
    "logit": True,
    "bootstrap": 200,
}
AGGREGATED_COV = "HC3"  # bin and level fits: few points, heteroskedastic accuracies
COV_TYPES = {
    "image": f"{CLUSTER}: CRV1 sandwich clustered by image, t intervals on G - 1 df (G = images)",
    "logit": f"{CLUSTER}: CRV1 sandwich clustered by image, t intervals on G - 1 df",
    "bin": f"{AGGREGATED_COV}: t intervals on n - 2 df (n = kept bins)",
    "level": f"{AGGREGATED_COV}: t intervals on n - 2 df (n = (family, level) points)",
    "panel_ols_fe": "cluster(model,family): CRV1 clustered by (model, family) cell, t intervals on G - 1 df; "
                    "plus an image-bootstrap percentile interval",
    "panel_mixedlm": "MixedLM REML: model-based SEs, normal intervals",
    "bootstrap": "percentile intervals over cluster resamples of the test images (multinomial counts as weights)",
}
DIFFERENCES = (("divergence_radius", "cosine"), ("divergence_radius", "euclidean"))
TABLES = ("fits", "binned", "predictions", "accuracy_drop", "bootstrap", "model_family", "rank_correlation",
          "panel_fits", "seed_spread")
SPREAD_COLUMNS = ["task", "statistic", "metric", "family", "granularity", "n_seeds", "seeds", "values", "mean", "std",
                  "min", "max"]


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
    if int(out["bootstrap"]) < 0:
        raise ConfigError(f"regression.bootstrap is {out['bootstrap']}; give a number of resamples >= 0 (0: none).")
    return out


@dataclass
class RegressionResult:
    """Tables of one regression run; ``summary`` is the small JSON-able dict DVC shows as metrics.

    ``fits``: one row per (model, task, metric, family, granularity, estimator) with :data:`FIT_STATS`
    (``cov_type``, ``df_inference``, ``n_clusters`` and ``slope_se_hc3`` say how its intervals were made).
    ``binned``: the bins behind the bin fits. ``predictions``: held-out-family predictions (module docstring).
    ``accuracy_drop``: accuracy per (model, task, family, level), its drop from clean in points and the
    drop's paired image-bootstrap interval (``drop_ci_low`` / ``drop_ci_high``, points).
    ``bootstrap``: per (model, task, statistic, metric, granularity) the point estimate (``estimate``, equal to
    the fits' value) and its image bootstrap: ``boot_mean``, ``boot_se``, percentile ``ci_low`` / ``ci_high``
    over the ``n_valid`` of ``n_boot`` resamples where the statistic is defined, ``ci_level``, ``seed``.
    Statistics: "r2" (pooled fits; granularity image, bin or level), "heldout_mae_points" (mean over held-out
    families of ``abs_error_points``; bin or level) and "r2_difference" (metric e.g.
    "divergence_radius-cosine": R^2 of the first minus R^2 of the second, on the same resamples).
    ``model_family``, ``rank_correlation``, ``panel_fits``: the cross-model analysis
    (:mod:`embedrobust.regression.panel`), over the primary models only (a seed replicate is not another model).
    ``seed_spread``: per model with seed replicates, each headline statistic across its seeds (:func:`seed_spread`);
    empty without replicates.
    """

    fits: pd.DataFrame
    binned: pd.DataFrame
    predictions: pd.DataFrame
    accuracy_drop: pd.DataFrame
    bootstrap: pd.DataFrame = field(default_factory=pd.DataFrame)
    model_family: pd.DataFrame = field(default_factory=pd.DataFrame)
    rank_correlation: pd.DataFrame = field(default_factory=pd.DataFrame)
    panel_fits: pd.DataFrame = field(default_factory=pd.DataFrame)
    seed_spread: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SPREAD_COLUMNS))
    summary: dict = field(default_factory=dict)

    def save(self, out_dir: Path) -> None:
        """Write one ``<name>.csv`` per table of :data:`TABLES` and summary.json to ``out_dir``.

        Same inputs give the same bytes: fixed row order, 12 significant digits, sorted JSON keys.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
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

    Tied x values always share a bin, so heavy ties give fewer than ``n_bins`` bins. The bins are those of
    :func:`embedrobust.regression.bootstrap.weighted_bins` with unit weights, so the bootstrap re-bins each
    resample exactly as the point estimate bins the data. They are :func:`pandas.qcut`'s, except that a value
    sitting exactly on a quantile edge always stays in the lower (right-closed) bin, where qcut's float
    percentile can fall an ulp short of it and move it up.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0:  # typed, so that b[b["kept"]] stays a row filter (an untyped empty column selects columns)
        return pd.DataFrame({"bin": np.zeros(0, np.int64), **{c: np.zeros(0) for c in ("x_mean", "x_low", "x_high",
                             "accuracy")}, "n": np.zeros(0, np.int64), "kept": np.zeros(0, bool)})
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    b = weighted_bins(xs, ys, np.ones((1, xs.size)), n_bins)
    n = b["n"][0]
    has = n > 0
    start, end = b["start"][0][has], b["end"][0][has]
    out = pd.DataFrame(
        {
            "bin": np.arange(int(has.sum()), dtype=np.int64),
            "x_mean": b["x_mean"][0][has],
            "x_low": xs[start],
            "x_high": xs[end - 1],
            "accuracy": b["accuracy"][0][has],
            "n": n[has].astype(np.int64),
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


def _cluster_codes(outcomes: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The bootstrap's clusters: one code per evaluated (dataset, image), in sorted order, and its stratum
    (the dataset: a resample keeps each dataset's number of images)."""
    ck = [k for k in keys if k == "dataset"] + ["image"]
    ids = outcomes[ck].drop_duplicates().sort_values(ck, kind="stable").reset_index(drop=True)
    ids["code"] = np.arange(len(ids), dtype=np.int64)
    ids["stratum"] = pd.factorize(ids["dataset"], sort=True)[0] if "dataset" in ck else 0
    return ids


# what the fits import lazily (linefit, panel, bootstrap): preloaded once before worker processes fork
FIT_MODULES = ("scipy.stats", "statsmodels.api", "statsmodels.formula.api", "statsmodels.stats.diagnostic",
               "statsmodels.stats.stattools")


def _fit_group(base: dict, g_img: pd.DataFrame, g_rows: pd.DataFrame, g_lvl: pd.DataFrame, metrics: list[str],
               logit: bool, ci: float, nb: int, mb: int) -> tuple[list, list, list]:
    """One (dataset, model, task)'s fits (rows), binned points (frames) and held-out predictions (rows), every
    metric and family: the image, bin and level fits of :func:`fit_all`."""
    fits, binned, preds = [], [], []
    for m in metrics:
        for fam, sub in _family_subsets(g_img):
            ident = {**base, "metric": m, "family": fam}
            fits.append(_fit_row(ident, "image", "ols", fit_ols(sub[m], sub["performance"], ci,
                                                                groups=sub["image"])))
            if logit:
                r = g_rows if fam == POOLED else g_rows[g_rows["family"] == fam]
                fits.append(_fit_row(ident, "image", "logit", fit_logit(r[m], r["correct"], ci,
                                                                        groups=r["image"])))
            b = bin_points(sub[m], sub["performance"], nb, mb)
            binned.append(b.assign(**ident)[list(ident) + list(b.columns)])
            k = b[b["kept"]]
            fits.append(_fit_row(ident, "bin", "ols", fit_ols(k["x_mean"], k["accuracy"], ci, AGGREGATED_COV)))
        fits.append(
            _fit_row({**base, "metric": m, "family": POOLED}, "level", "ols",
                     fit_ols(g_lvl[m], g_lvl["accuracy"], ci, AGGREGATED_COV))
        )
        preds.extend(_held_out(base, m, g_img, g_lvl, ci, nb, mb))
    return fits, binned, preds


def fit_all(robustness: pd.DataFrame, outcomes: pd.DataFrame, cfg: dict, seed: int = 0,
            replicates: dict | None = None, workers: int = 1) -> RegressionResult:
    """Fit performance on robustness for every (dataset, model, task, metric, family), predict held-out families,
    bootstrap the headline statistics over images and compare models.

    ``robustness``: one row per (image, family) with the metric columns (in [0, 1], 0 = robust);
    ``outcomes``: one row per (task, condition, image) from :func:`embedrobust.downstream.evaluate_store`
    with dataset and model columns; ``cfg``: the ``regression`` params section (or the dict holding it);
    ``seed``: the study seed, which fixes the bootstrap resamples; ``replicates``: model name -> (the model it
    repeats, its seed) for seed replicates (``config.replicates``), which are fitted like any model, summarised
    across seeds in ``seed_spread`` and left out of the cross-model comparison; ``workers``: processes sharing the
    per-(model, task) fits and bootstraps (:mod:`embedrobust.forked`; the result does not depend on it).
    Accuracies are fractions in [0, 1]; columns ending in ``_points`` are percentage points.
    """
    from embedrobust.regression import panel

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
    pool = ForkPool(workers, preload=FIT_MODULES)
    with pool:
        pieces = [pool.submit(_fit_group, dict(zip(gk, gvals)), g_img, rows_by[gvals], lvl_by[gvals], metrics,
                              bool(cfg["logit"]), ci, nb, mb, what=f"the fits of {gvals}")
                  for gvals, g_img in img.groupby(gk, sort=True)]
        for piece in pieces:
            f, b, p = piece.result()
            fits.extend(f)
            binned.extend(b)
            preds.extend(p)

    fits_df = pd.DataFrame(fits)[gk + ["metric", "family", "granularity", "estimator"] + FIT_STATS]
    binned_df = pd.concat(binned, ignore_index=True)
    pred_df = pd.DataFrame(preds)

    # One set of resamples for everything: paired comparisons across metrics, models and conditions.
    codes = _cluster_codes(outcomes, keys)
    ck = [c for c in codes.columns if c not in ("code", "stratum")]
    codes = codes[ck + ["code"]].assign(stratum=codes["stratum"])
    n_boot = int(cfg["bootstrap"])
    counts = cluster_counts(len(codes), n_boot, seed, strata=codes["stratum"].to_numpy())
    weights = np.vstack([np.ones((1, len(codes))), counts]).astype(np.float64)
    codes = codes.drop(columns="stratum")
    coded_out = outcomes[keys + ["task", "family", "level", "image", "correct"]].merge(codes, on=ck, how="inner")
    coded_rows = rows.merge(codes, on=ck, how="inner")
    coded_rob = rob.merge(codes, on=ck, how="inner")
    out_by = dict(iter(coded_out.groupby(gk, sort=True)))
    crow_by = dict(iter(coded_rows.groupby(gk, sort=True)))
    rob_by = dict(iter(coded_rob.groupby(keys, sort=True)))
    cubes: dict[tuple, Cube] = {}
    for gvals in sorted(out_by):
        if gvals not in crow_by:
            continue
        cubes[gvals] = build_cube(out_by[gvals], crow_by[gvals], rob_by[gvals[:-1]], metrics, len(codes))
    boot_rows = []
    meta = {"n_boot": n_boot, "ci_level": ci, "seed": int(seed)}
    with pool:
        resampled = [(gvals, pool.submit(_resampled_stats, cube, metrics, weights, nb, mb,
                                         what=f"the bootstrap of {gvals}")) for gvals, cube in cubes.items()]
        resampled = [(gvals, piece.result()) for gvals, piece in resampled]
    for gvals, stats in resampled:
        base = dict(zip(gk, gvals))
        for (stat, metric, gran), reps in stats.items():
            boot_rows.append({**base, "statistic": stat, "metric": metric, "granularity": gran,
                              "estimate": reps[0], **percentile_ci(reps[1:], ci), **meta})
    boot_df = pd.DataFrame(boot_rows)
    if len(boot_df):
        boot_df = boot_df.sort_values(gk + ["statistic", "metric", "granularity"], kind="stable").reset_index(drop=True)

    replicates = {str(k): (str(v[0]), int(v[1])) for k, v in (replicates or {}).items()}
    at = keys.index("model")
    cross = panel.cross_model({g: c for g, c in cubes.items() if g[at] not in replicates}, keys, metrics, weights, ci,
                                workers=workers)
    drop_df = accuracy_drop(outcomes, keys, lvl, metrics)
    drop_df = drop_df.merge(cross.level_drops, on=gk + ["family", "level"], how="left")
    summary = _summary(fits_df, pred_df, drop_df, keys, outcome, metrics)
    summary.update(_bootstrap_summary(fits_df, boot_df, cross, keys, meta))
    spread = seed_spread(fits_df, pred_df, drop_df, boot_df, keys, replicates, int(seed))
    if len(spread):
        summary["seed_spread"] = _spread_summary(spread, keys)
    return RegressionResult(fits_df, binned_df, pred_df, drop_df, boot_df, cross.model_family,
                            cross.rank_correlation, cross.panel_fits, spread, summary)


def seed_spread(fits: pd.DataFrame, preds: pd.DataFrame, drops: pd.DataFrame, boot: pd.DataFrame, keys: list[str],
                replicates: dict, seed: int) -> pd.DataFrame:
    """The headline statistics of every model with seed replicates, across its seeds.

    One row per (model, task, statistic, metric, family, granularity), ``model`` the primary's name:
    ``n_seeds``, ``seeds`` and ``values`` (";"-joined, seed order), ``mean``, ``std`` (sample, ddof 1), ``min``,
    ``max``. Statistics: "clean_accuracy" (fraction), "accuracy_drop_points" (mean over the family's levels;
    family "all": over every (family, level)), "r2" (pooled OLS fits, granularity image / bin / level),
    "heldout_mae_points" (bin / level) and "r2_difference" (metric e.g. "divergence_radius-cosine"). ``metric``,
    ``family`` and ``granularity`` are "" where a statistic has none. Empty without replicates.
    """
    if not replicates:
        return pd.DataFrame(columns=[*keys, *SPREAD_COLUMNS])
    gk = keys + ["task"]
    cols = gk + ["statistic", "metric", "family", "granularity", "value"]
    parts = []
    pooled = fits[(fits["family"] == POOLED) & (fits["estimator"] == "ols")]
    parts.append(pooled.assign(statistic="r2", family="", value=pooled["r2"]))
    if len(preds):
        mae = preds.groupby(gk + ["metric", "granularity"], sort=True)["abs_error_points"].mean().reset_index()
        parts.append(mae.assign(statistic="heldout_mae_points", family="", value=mae["abs_error_points"]))
    if len(boot):
        diff = boot[boot["statistic"] == "r2_difference"]
        parts.append(diff.assign(value=diff["estimate"], family=""))
    clean = drops.drop_duplicates(gk)
    parts.append(clean.assign(statistic="clean_accuracy", metric="", family="", granularity="",
                              value=clean["clean_accuracy"]))
    fam = drops.groupby(gk + ["family"], sort=True)["drop_points"].mean().reset_index()
    parts.append(fam.assign(statistic="accuracy_drop_points", metric="", granularity="", value=fam["drop_points"]))
    every = drops.groupby(gk, sort=True)["drop_points"].mean().reset_index()
    parts.append(every.assign(statistic="accuracy_drop_points", metric="", family="all", granularity="",
                              value=every["drop_points"]))
    long = pd.concat([p[cols] for p in parts], ignore_index=True)
    repeated = {p for p, _ in replicates.values()}
    long["seed"] = [replicates[m][1] if m in replicates else seed for m in long["model"]]
    long["model"] = [replicates[m][0] if m in replicates else m for m in long["model"]]
    long = long[long["model"].isin(repeated)].sort_values([*gk, "statistic", "metric", "family", "granularity",
                                                           "seed"], kind="stable")
    rows = []
    for idx, g in long.groupby([*gk, "statistic", "metric", "family", "granularity"], sort=True):
        v = g["value"].to_numpy(np.float64)
        ok = np.isfinite(v)
        rows.append({**dict(zip([*gk, "statistic", "metric", "family", "granularity"], idx)),
                     "n_seeds": int(ok.sum()), "seeds": ";".join(str(s) for s in g["seed"]),
                     "values": ";".join(f"{x:.12g}" for x in v),
                     "mean": v[ok].mean() if ok.any() else np.nan,
                     "std": v[ok].std(ddof=1) if ok.sum() > 1 else np.nan,
                     "min": v[ok].min() if ok.any() else np.nan, "max": v[ok].max() if ok.any() else np.nan})
    return pd.DataFrame(rows, columns=[*keys, *SPREAD_COLUMNS])


def _spread_summary(spread: pd.DataFrame, keys: list[str]) -> dict:
    """summary.json's ``seed_spread``: model -> task -> statistic -> label -> {mean, std, min, max, n_seeds}, the
    label "metric/granularity" (R^2, MAE, R^2 differences), the family (drops) or "all" (clean accuracy)."""
    out: dict = {}
    for _, r in spread.iterrows():
        label = "/".join(x for x in (r["metric"], r["granularity"]) if x) or r["family"] or "all"
        out.setdefault(_model_key(r, keys), {}).setdefault(r["task"], {}).setdefault(r["statistic"], {})[label] = {
            "mean": r["mean"], "std": r["std"], "min": r["min"], "max": r["max"], "n_seeds": r["n_seeds"],
            "seeds": r["seeds"]}
    return out


def _resampled_stats(cube: Cube, metrics: list[str], w: np.ndarray, nb: int, mb: int) -> dict:
    """The bootstrapped statistics of one (model, task) under counts ``w`` (B, n): {(statistic, metric,
    granularity): (B,)}. Row 0 of ``w`` being all ones makes row 0 of every array the point estimate, equal to
    the value in ``fits`` / ``predictions`` (the held-out MAE: the mean of ``abs_error_points`` over families).
    """
    out: dict = {}
    fam_of_point = cube.points["fam"].to_numpy()
    r2: dict = {}
    # NaN is the statistic's honest value where a resample leaves it undefined; percentile_ci counts those out
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for m in metrics:
            ir = cube.image_rows(m)
            fams = np.unique(ir["fam"].to_numpy())
            # image granularity: weighted moments of the (image, family) rows, each row weighted by its image's count
            code, fam = ir["code"].to_numpy(), ir["fam"].to_numpy()
            xv, pv = ir["x"].to_numpy(), ir["performance"].to_numpy()
            dx, dp = xv - xv.mean(), pv - pv.mean()  # shifting first keeps the centred moments exact
            per = np.zeros((w.shape[1], 6))
            np.add.at(per, code, np.column_stack([np.ones_like(dx), dx, dp, dx * dx, dx * dp, dp * dp]))
            distinct = (w > 0).astype(np.float64) @ per[:, 0]
            r2[(m, "image")] = np.where(distinct >= 3, weighted_line_r2(w @ per), np.nan)

            # bin granularity: re-bin each resample, pooled and without each family
            order = np.argsort(xv, kind="stable")
            xs, ps, cs, fs = xv[order], pv[order], code[order], fam[order]
            r2[(m, "bin")] = binned_line(xs, ps, w, cs, nb, mb)["r2"]
            bin_err = []
            for f in fams:
                line = binned_line(xs, ps, w, cs, nb, mb, row_mask=fs != f)
                te = fam == f
                wt = w[:, code[te]]
                xt, meas = (wt @ xv[te]) / wt.sum(1), (wt @ pv[te]) / wt.sum(1)
                bin_err.append(_abs_error(line, xt, meas))

            # level granularity: weighted accuracies and robustness of the (family, level) points
            acc, xl = cube.level_means(w, m)
            r2[(m, "level")] = line_fit(xl, acc)["r2"]
            lvl_err = []
            for f in fams:
                tr = fam_of_point != f
                line = line_fit(xl[:, tr], acc[:, tr])
                lvl_err.append(_abs_error(line, np.nanmean(xl[:, ~tr], 1), np.nanmean(acc[:, ~tr], 1)))
            for gran, errs in (("bin", bin_err), ("level", lvl_err)):
                out[("heldout_mae_points", m, gran)] = (
                    np.nanmean(np.column_stack(errs), 1) if errs else np.full(w.shape[0], np.nan)
                )
    for (m, gran), v in r2.items():
        out[("r2", m, gran)] = v
    for a, b in DIFFERENCES:
        if a in metrics and b in metrics:
            for gran in ("image", "bin", "level"):
                out[("r2_difference", f"{a}-{b}", gran)] = r2[(a, gran)] - r2[(b, gran)]
    return out


def _abs_error(line: dict, x, measured) -> np.ndarray:
    pred = np.clip(line["intercept"] + line["slope"] * x, 0.0, 1.0)
    return 100 * np.abs(pred - measured)


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


def _interval(r) -> dict:
    return {"estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


def _bootstrap_summary(fits, boot, cross, keys, meta) -> dict:
    """Summary entries of the inference: covariance types, the clustered / HC3 SE ratio of the pooled image
    fits, the bootstrap intervals and the cross-model rank correlations and panel slopes."""
    ratio: dict = {}
    pooled = fits[(fits["family"] == POOLED) & (fits["granularity"] == "image") & (fits["estimator"] == "ols")]
    for _, r in pooled.iterrows():
        ratio.setdefault(_model_key(r, keys), {}).setdefault(r["task"], {})[r["metric"]] = (
            r["slope_se"] / r["slope_se_hc3"] if r["slope_se_hc3"] > 0 else np.nan
        )
    tables: dict = {"r2": {}, "heldout_mae_points": {}, "r2_difference": {}}
    for _, r in boot.iterrows():
        tables[r["statistic"]].setdefault(_model_key(r, keys), {}).setdefault(r["task"], {}).setdefault(
            r["metric"], {})[r["granularity"]] = _interval(r)
    panel_keys = [k for k in keys if k != "model"]
    multi = len(panel_keys) and len(cross.rank_correlation) and cross.rank_correlation[panel_keys[0]].nunique() > 1

    def where(r) -> str:
        return f"{r[panel_keys[0]]}/{r['task']}" if multi else r["task"]

    ranks: dict = {}
    for _, r in cross.rank_correlation.iterrows():
        ranks.setdefault(where(r), {}).setdefault(r["metric"], {})[r["family"]] = {
            "n_models": r["n_models"], "note": r["note"],
            "spearman": {"estimate": r["spearman"], "ci_low": r["spearman_ci_low"], "ci_high": r["spearman_ci_high"]},
            "kendall": {"estimate": r["kendall"], "ci_low": r["kendall_ci_low"], "ci_high": r["kendall_ci_high"]},
        }
    slopes: dict = {}
    for _, r in cross.panel_fits.iterrows():
        slopes.setdefault(where(r), {}).setdefault(r["metric"], {})[r["estimator"]] = {
            "slope": r["slope"], "ci_low": r["slope_ci_low"], "ci_high": r["slope_ci_high"],
            "boot_ci_low": r["slope_boot_ci_low"], "boot_ci_high": r["slope_boot_ci_high"],
            "cov_type": r["cov_type"], "converged": bool(r["converged"]), "note": r["note"],
        }
    return {
        "cov_type": dict(COV_TYPES),
        "se_ratio_cluster_hc3": ratio,
        "bootstrap": {**meta, "method": "percentile intervals, cluster bootstrap over test images",
                      **tables},
        "rank_correlation": ranks,
        "panel_slopes_points_per_unit": slopes,
    }
