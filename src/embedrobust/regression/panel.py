"""Across models: does a more robust model lose less accuracy under perturbation?

Inputs are every model's :class:`~embedrobust.regression.cube.Cube` of one dataset (the regression stage reads
all models' metrics and downstream tables), and the image-bootstrap counts shared with the rest of the
regression (row 0 all ones: the point estimate). Accuracies here are always top-1 correctness on the test
split, whatever ``regression.outcome`` says; robustness is the test images' mean per (model, family).

Tables (``RegressionResult`` fields, files data/regression/<dataset>/<name>.csv):

- ``model_family``: one row per (model, task, family), plus family "pooled" (the mean over families):
  ``n_images``, ``mean_<metric>`` (mean robustness), ``clean_accuracy``, ``accuracy`` (mean over the family's
  levels), ``drop_points`` = 100 * (clean_accuracy - accuracy), with its paired image-bootstrap percentile
  interval ``drop_ci_low`` / ``drop_ci_high`` and ``drop_boot_se`` (points). Paired: a resample draws the same
  images for the clean and the perturbed condition.
- ``rank_correlation``: per (task, metric, family or "pooled"): Spearman's rho and Kendall's tau-b across the
  models between mean robustness and accuracy drop (both "higher = worse", so a positive value means the less
  robust models lose more accuracy), ``n_models`` and ``models``, with image-bootstrap percentile intervals
  (``*_ci_low`` / ``*_ci_high``, over ``n_valid`` of ``n_boot`` resamples). Fewer than 3 models: NaN and a
  ``note``.
- ``panel_fits``: per (task, metric) at the (model, family, level) granularity, the accuracy drop (points) on
  the model's mean robustness under that family:
  estimator "ols_fe": OLS with model and family fixed effects, ``drop ~ robustness + C(model) + C(family)``
  (the model effects absorb each model's clean accuracy, so accuracy itself gives the same slope with the
  opposite sign); SEs clustered by (model, family) cell -- the levels of a cell share its robustness -- with
  t(G - 1) intervals, and ``slope_boot_ci_*``: the image-bootstrap interval of the slope (the images are the
  sample; models and families are fixed).
  estimator "mixedlm": statsmodels MixedLM (REML), ``drop ~ robustness + C(family)`` with a random intercept
  per model (variance ``group_var``) and a variance component per (model, family) cell (``cell_var``: the
  levels of a cell share its robustness, and without it they would pass for independent evidence about the
  slope); model-based SEs, normal intervals. statsmodels' default optimizers first, then Nelder-Mead followed
  by L-BFGS (:data:`MIXED_OPTIMIZERS`); ``converged``: statsmodels' flag for the final attempt of the kept fit
  and a finite slope SE. ``note`` says what each optimizer did, with the first line of its warnings, and
  flags a variance on the boundary (0). Without a clean fit the row keeps the best likelihood's estimates
  with ``converged`` False.
  Slopes are in points of accuracy drop per unit robustness.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from embedrobust.forked import ForkPool
from embedrobust.regression.bootstrap import kendall_tau_b, percentile_ci, spearman
from embedrobust.regression.cube import Cube

POOLED = "pooled"
MIN_MODELS = 3
RANK_DECIMALS = 10  # robustness in [0, 1], drops in points: far finer than any real difference


@dataclass
class CrossModel:
    level_drops: pd.DataFrame
    model_family: pd.DataFrame
    rank_correlation: pd.DataFrame
    panel_fits: pd.DataFrame


def _means(w: np.ndarray, value: np.ndarray, present: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (w @ (value * present)) / (w @ present)


def _replicates(cube: Cube, metrics: list[str], w: np.ndarray) -> dict:
    """(B, .) replicate arrays of one (model, task): clean accuracy (B,), condition drops (B, P), family drops
    and robustness (B, F)."""
    clean = _means(w, cube.clean, cube.clean_present)
    acc = _means(w, cube.correct, cube.out_present)
    drop = 100 * (clean[:, None] - acc)
    fam = cube.points["fam"].to_numpy()
    F = len(cube.families)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fam_acc = np.column_stack([np.nanmean(acc[:, fam == f], 1) for f in range(F)])
    rob = {m: _means(w, cube.x[m], cube.x_present) for m in metrics}
    return {"clean": clean, "drop": drop, "fam_acc": fam_acc, "fam_drop": 100 * (clean[:, None] - fam_acc),
            "rob": rob}


def cross_model(cubes: dict, keys: list[str], metrics: list[str], w: np.ndarray, ci: float,
                workers: int = 1) -> CrossModel:
    """``cubes``: {(dataset?, model, task): Cube}; ``keys`` the model keys ([dataset,] model); ``w`` (1 + B, n)
    counts with row 0 all ones; ``workers``: processes sharing the panel fits (the tables do not depend on it).
    Returns the tables of the module docstring."""
    gk = keys + ["task"]
    reps = {g: _replicates(c, metrics, w) for g, c in cubes.items()}
    level, fam_rows = [], []
    for g, c in cubes.items():
        r = reps[g]
        base = dict(zip(gk, g))
        for p, (family, lv) in enumerate(zip(c.points["family"], c.points["level"])):
            iv = percentile_ci(r["drop"][1:, p], ci)
            level.append({**base, "family": family, "level": lv, "drop_ci_low": iv["ci_low"],
                          "drop_ci_high": iv["ci_high"], "drop_boot_se": iv["boot_se"]})
        n_img = c.x_present.sum(0)
        for f, family in enumerate(c.families + [POOLED]):
            pooled = family == POOLED
            fd = np.nanmean(r["fam_drop"], 1) if pooled else r["fam_drop"][:, f]
            iv = percentile_ci(fd[1:], ci)
            fam_rows.append({
                **base, "family": family, "n_images": int(n_img.max() if pooled else n_img[f]),
                **{f"mean_{m}": float(np.nanmean(r["rob"][m][0]) if pooled else r["rob"][m][0, f]) for m in metrics},
                "clean_accuracy": r["clean"][0],
                "accuracy": float(np.nanmean(r["fam_acc"][0]) if pooled else r["fam_acc"][0, f]),
                "drop_points": fd[0], "drop_ci_low": iv["ci_low"], "drop_ci_high": iv["ci_high"],
                "drop_boot_se": iv["boot_se"],
            })
    level_df = pd.DataFrame(level, columns=gk + ["family", "level", "drop_ci_low", "drop_ci_high", "drop_boot_se"])
    fam_df = pd.DataFrame(fam_rows)
    corr, fits = [], []
    by_task: dict = {}
    for g in sorted(cubes):
        by_task.setdefault(g[:-2] + g[-1:], []).append(g)
    pieces = []
    with ForkPool(workers, preload=("statsmodels.formula.api",)) as pool:
        for tk, groups in by_task.items():
            base = dict(zip([k for k in keys if k != "model"] + ["task"], tk))
            corr.extend(_rank_rows(base, groups, cubes, reps, metrics, ci, w.shape[0] - 1))
            pieces.extend(pool.submit(_panel_rows, base, groups, cubes, reps, m, ci, what=f"the panel fit of {m}")
                          for m in metrics)
        for piece in pieces:
            fits.extend(piece.result())
    return CrossModel(level_df, fam_df, pd.DataFrame(corr), pd.DataFrame(fits))


def _rank_rows(base, groups, cubes, reps, metrics, ci, n_boot) -> list[dict]:
    families = sorted(set.intersection(*(set(cubes[g].families) for g in groups)))
    models = [str(g[-2]) for g in groups]
    out = []
    for m in metrics:
        for family in families + [POOLED]:
            def column(g, kind, family=family, m=m):  # bound: used within this iteration only
                c, r = cubes[g], reps[g]
                if family == POOLED:
                    idx = [c.families.index(f) for f in families]
                    return (r["rob"][m][:, idx] if kind == "rob" else r["fam_drop"][:, idx]).mean(1)
                f = c.families.index(family)
                return r["rob"][m][:, f] if kind == "rob" else r["fam_drop"][:, f]

            row = {**base, "metric": m, "family": family, "n_models": len(groups), "models": ";".join(models)}
            if len(groups) < MIN_MODELS:
                row.update({k: np.nan for k in ("spearman", "spearman_ci_low", "spearman_ci_high", "kendall",
                                                 "kendall_ci_low", "kendall_ci_high")},
                           n_valid=0, n_boot=n_boot, note=f"fewer than {MIN_MODELS} models: no rank correlation")
                out.append(row)
                continue
            # rounded: equal means reached through different float sums must tie, not rank by rounding noise
            x = np.round(np.column_stack([column(g, "rob") for g in groups]), RANK_DECIMALS)  # (1 + B, M)
            y = np.round(np.column_stack([column(g, "drop") for g in groups]), RANK_DECIMALS)
            rho, tau = spearman(x, y), kendall_tau_b(x, y)
            ir, it = percentile_ci(rho[1:], ci), percentile_ci(tau[1:], ci)
            row.update(spearman=rho[0], spearman_ci_low=ir["ci_low"], spearman_ci_high=ir["ci_high"],
                       kendall=tau[0], kendall_ci_low=it["ci_low"], kendall_ci_high=it["ci_high"],
                       n_valid=min(ir["n_valid"], it["n_valid"]), n_boot=n_boot,
                       note="" if np.isfinite(rho[0]) else "robustness or drop constant across models")
            out.append(row)
    return out


PANEL_STATS = ["n", "n_models", "n_families", "n_clusters", "slope", "slope_se", "slope_ci_low", "slope_ci_high",
               "slope_p", "df_inference", "cov_type", "r2", "slope_boot_ci_low", "slope_boot_ci_high",
               "slope_boot_se", "n_valid", "group_var", "cell_var", "converged", "note"]


def _panel_data(groups, cubes, reps, metric):
    """Long table of (model, family, level) rows with the estimate's drop and robustness, and (1 + B, rows)
    replicate arrays of both."""
    frames, ys, xs = [], [], []
    for g in groups:
        c, r = cubes[g], reps[g]
        fam = c.points["fam"].to_numpy()
        frames.append(pd.DataFrame({"model": str(g[-2]), "family": c.points["family"].to_numpy(),
                                    "level": c.points["level"].to_numpy()}))
        ys.append(r["drop"])
        xs.append(r["rob"][metric][:, fam])
    data = pd.concat(frames, ignore_index=True)
    y, x = np.concatenate(ys, axis=1), np.concatenate(xs, axis=1)
    keep = np.isfinite(y[0]) & np.isfinite(x[0])
    data = data[keep].reset_index(drop=True)
    data["drop"], data["robustness"] = y[0, keep], x[0, keep]
    return data, y[:, keep], x[:, keep]


def _empty(note: str, **known) -> dict:
    row = {k: np.nan for k in PANEL_STATS}
    row.update(converged=False, note=note, cov_type="", **known)
    return row


def _fe_slopes(y: np.ndarray, x: np.ndarray, dummies: np.ndarray) -> np.ndarray:
    """Frisch-Waugh: the slope of x in OLS of y on [x, dummies], for every replicate row of y, x (B, rows)."""
    u, s, _ = np.linalg.svd(dummies, full_matrices=False)
    u = u[:, s > s.max() * 1e-10]
    rx = x - (x @ u) @ u.T
    ry = y - (y @ u) @ u.T
    with np.errstate(all="ignore"):
        sxx = (rx * rx).sum(1)
        tot = ((x - x.mean(1, keepdims=True)) ** 2).sum(1)
        return np.where(sxx > 1e-10 * tot, (rx * ry).sum(1) / sxx, np.nan)


def _panel_rows(base, groups, cubes, reps, metric, ci) -> list[dict]:
    import statsmodels.formula.api as smf

    data, y, x = _panel_data(groups, cubes, reps, metric)
    ident = {**base, "metric": metric}
    known = {"n": len(data), "n_models": data["model"].nunique(), "n_families": data["family"].nunique()}
    rows = []

    dummies = pd.get_dummies(data[["model", "family"]], drop_first=True, dtype=np.float64)
    dummies.insert(0, "const", 1.0)
    boot = _fe_slopes(y, x, dummies.to_numpy())
    if known["n_models"] < 2 or not np.isfinite(boot[0]):
        why = ("one model: its robustness is constant within each family, so the family effects absorb it"
               if known["n_models"] < 2 else
               "robustness is collinear with the model and family effects (it varies only additively)")
        rows.append({**ident, "estimator": "ols_fe", **_empty(why, **known)})
    else:
        cells = pd.factorize(data["model"] + "\x1f" + data["family"], sort=True)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = smf.ols("drop ~ robustness + C(model) + C(family)", data).fit(
                cov_type="cluster", cov_kwds={"groups": cells}, use_t=True)
        lo, hi = np.asarray(res.conf_int(alpha=1 - ci).loc["robustness"])
        iv = percentile_ci(boot[1:], ci)
        constant = np.ptp(data["drop"].to_numpy()) == 0  # no variance to explain: R^2 is 0/0 (NaN, no warning)
        r2 = np.nan if constant else float(res.rsquared)
        rows.append({**ident, "estimator": "ols_fe", **known, "n_clusters": int(cells.max()) + 1,
                     "slope": res.params["robustness"], "slope_se": res.bse["robustness"], "slope_ci_low": lo,
                     "slope_ci_high": hi, "slope_p": res.pvalues["robustness"],
                     "df_inference": float(res.df_resid_inference), "cov_type": "cluster(model,family)",
                     "r2": r2, "slope_boot_ci_low": iv["ci_low"], "slope_boot_ci_high": iv["ci_high"],
                     "slope_boot_se": iv["boot_se"], "n_valid": iv["n_valid"], "group_var": np.nan, "cell_var": np.nan,
                     "converged": True, "note": ""})
    rows.append({**ident, "estimator": "mixedlm", **_mixed(data, ci, known)})
    return [{k: r.get(k, np.nan) for k in list(ident) + ["estimator"] + PANEL_STATS} for r in rows]


# statsmodels' default gradient chain (bfgs, lbfgs, cg) often stalls on these small REML surfaces; Nelder-Mead
# then L-BFGS is slower but reaches the optimum there. Tried in this order; the first clean fit wins.
MIXED_OPTIMIZERS = (("default (bfgs, lbfgs, cg)", {}), ("nm then lbfgs", {"method": ["nm", "lbfgs"], "maxiter": 2000}))


def _mixed_fit(formula: str, data: pd.DataFrame, vc, kwargs: dict):
    """One MixedLM REML fit: (result or None, warning first lines, error text)."""
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = smf.mixedlm(formula, data, groups=data["model"], re_formula="1", vc_formula=vc).fit(
                reml=True, **kwargs)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return None, [], f"{type(exc).__name__}: {exc}"
    msgs = sorted({str(w.message).splitlines()[0] for w in caught
                   if issubclass(w.category, (ConvergenceWarning, RuntimeWarning, UserWarning))})
    return res, msgs, ""


def _mixed(data: pd.DataFrame, ci: float, known: dict) -> dict:
    if known["n_models"] < MIN_MODELS:
        return _empty(f"fewer than {MIN_MODELS} models: a random intercept per model is not estimable", **known)
    several = known["n_families"] > 1
    formula = "drop ~ robustness + C(family)" if several else "drop ~ robustness"
    # the levels of a (model, family) cell share its robustness: a cell variance component keeps them from
    # counting as independent evidence about the slope
    vc = {"cell": "0 + C(family)"} if several else None
    tried, best = [], None
    for name, kwargs in MIXED_OPTIMIZERS:
        res, msgs, err = _mixed_fit(formula, data, vc, kwargs)
        # converged: statsmodels' flag for the final optimizer attempt, and a finite slope SE (a singular
        # Hessian at a boundary optimum gives none)
        ok = res is not None and bool(res.converged) and bool(np.isfinite(res.bse["robustness"]))
        tried.append(f"{name}: {'converged' if ok else err or 'did not converge'}"
                     + (f" ({'; '.join(msgs)})" if msgs else ""))
        if res is not None and (best is None or ok or (not best[1] and res.llf > best[0].llf)):
            best = (res, ok)
        if ok:
            break
    if best is None:
        return _empty("did not fit: " + " | ".join(tried), **known)
    res, converged = best
    group_var = float(np.asarray(res.cov_re)[0, 0])
    cell_var = float(np.asarray(res.vcomp)[0]) if several else np.nan
    notes = [" | ".join(tried)]
    for name, v in (("random-intercept", group_var), ("cell", cell_var)):
        if np.isfinite(v) and v <= 1e-8 * max(float(res.scale), 1e-300):
            notes.append(f"{name} variance at the boundary (0)")
    lo, hi = np.asarray(res.conf_int(alpha=1 - ci).loc["robustness"])
    return {**known, "n_clusters": known["n_models"], "slope": res.params["robustness"],
            "slope_se": res.bse["robustness"], "slope_ci_low": lo, "slope_ci_high": hi,
            "slope_p": res.pvalues["robustness"], "df_inference": np.inf, "cov_type": "MixedLM REML, normal intervals",
            "r2": np.nan, "slope_boot_ci_low": np.nan, "slope_boot_ci_high": np.nan, "slope_boot_se": np.nan,
            "n_valid": 0, "group_var": group_var, "cell_var": cell_var, "converged": converged, "note": "; ".join(notes)}
