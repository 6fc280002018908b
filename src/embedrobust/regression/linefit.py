"""Straight-line fits of performance on robustness (statsmodels), flattened to one table row each."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

FIT_STATS = [
    "n", "slope", "intercept", "slope_se", "intercept_se", "slope_ci_low", "slope_ci_high",
    "intercept_ci_low", "intercept_ci_high", "slope_p", "intercept_p", "r2", "r2_adj", "rmse",
    "jarque_bera_p", "breusch_pagan_p", "durbin_watson", "cov_type", "df_inference", "n_clusters",
    "slope_se_hc3", "converged", "note",
]
CLUSTER = "cluster(image)"  # the cov_type label of fits whose SEs are clustered by image (CRV1)


def _empty(n: int, note: str, cov_type: str = "") -> dict:
    row = {k: np.nan for k in FIT_STATS}
    row.update(n=n, converged=False, note=note, cov_type=cov_type)
    return row


def _clean_xy(x, y, groups=None):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if groups is None:
        return x[keep], y[keep], None
    # integer codes: statsmodels' cluster sandwich wants them, and they make the group order irrelevant
    codes = pd.factorize(np.asarray(groups)[keep], sort=True)[0]
    return x[keep], y[keep], codes


def _cov_args(cov_type: str, groups) -> tuple[dict, str]:
    """statsmodels fit() keywords and the label written to ``cov_type``.

    Every fit reports t intervals: with n - 2 df unclustered, with G - 1 df clustered (statsmodels' df
    correction for CRV1), which is what keeps few-point and few-cluster intervals honest.
    """
    if groups is not None:
        return {"cov_type": "cluster", "cov_kwds": {"groups": groups}, "use_t": True}, CLUSTER
    return {"cov_type": cov_type, "use_t": True}, cov_type


def _unestimable(x, y) -> str:
    if len(x) < 3:
        return "fewer than 3 points"
    if np.ptp(x) == 0:
        return "robustness is constant"
    return ""


def _inference(res, label: str, groups) -> dict:
    df = getattr(res, "df_resid_inference", None)
    return {
        "cov_type": label,
        "df_inference": float(res.df_resid if df is None else df),
        "n_clusters": np.nan if groups is None else int(groups.max()) + 1,
    }


def _params(res, ci_level: float) -> dict:
    ci = np.asarray(res.conf_int(alpha=1 - ci_level))
    bse, p, params = np.asarray(res.bse), np.asarray(res.pvalues), np.asarray(res.params)
    return {
        "slope": params[1], "intercept": params[0], "slope_se": bse[1], "intercept_se": bse[0],
        "slope_ci_low": ci[1, 0], "slope_ci_high": ci[1, 1],
        "intercept_ci_low": ci[0, 0], "intercept_ci_high": ci[0, 1],
        "slope_p": p[1], "intercept_p": p[0],
    }


def fit_ols(x, y, ci_level: float = 0.95, cov_type: str = "nonrobust", groups=None) -> dict:
    """OLS of ``y`` on ``[1, x]`` (n points each) with residual diagnostics.

    ``cov_type`` "HC3" gives heteroskedasticity-robust SEs (the linear probability model's errors are
    heteroskedastic by construction). ``groups`` (n,) cluster labels (image ids) override it with the
    cluster-robust CRV1 sandwich (statsmodels' small-sample factor G/(G-1) (n-1)/(n-2)) and t(G-1)
    intervals; ``slope_se_hc3`` then holds the HC3 SE of the same fit, so the widening clustering brings is
    readable. Intervals are t intervals in every case (``df_inference`` gives the df). Diagnostics: Jarque-Bera
    normality p-value, Breusch-Pagan p-value (heteroskedasticity in x) and Durbin-Watson on the residuals
    ordered by x, which flags curvature (runs of same-sign residuals) rather than time correlation. Non-finite pairs are dropped; fewer than 3 points or
    constant x give a row of NaNs with a note.
    """
    import statsmodels.api as sm
    from statsmodels.stats.diagnostic import het_breuschpagan
    from statsmodels.stats.stattools import durbin_watson, jarque_bera

    x, y, groups = _clean_xy(x, y, groups)
    kwargs, label = _cov_args(cov_type, groups)
    note = _unestimable(x, y)
    if not note and groups is not None and groups.max() < 1:
        note = "one cluster"
    if note:
        return _empty(len(x), note, label)
    X = np.column_stack([np.ones_like(x), x])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # exact or constant-y fits divide by zero in R^2 and the diagnostics; NaN is the honest answer there
        warnings.simplefilter("ignore")
        model = sm.OLS(y, X)
        res = model.fit(**kwargs)
        resid = np.asarray(res.resid)
        row = {"n": len(x), **_params(res, ci_level), **_inference(res, label, groups)}
        row["slope_se_hc3"] = float(model.fit(cov_type="HC3").bse[1]) if groups is not None else np.nan
        constant = np.ptp(y) == 0  # no variance to explain: statsmodels' R^2 would be rounding noise
        row.update(
            r2=np.nan if constant else res.rsquared, r2_adj=np.nan if constant else res.rsquared_adj,
            rmse=float(np.sqrt(np.mean(resid**2))),
            jarque_bera_p=jarque_bera(resid)[1],
            breusch_pagan_p=het_breuschpagan(resid, X)[1] if np.any(resid != 0) else np.nan,
            durbin_watson=durbin_watson(resid[np.argsort(x, kind="stable")]),
            converged=True, note="constant performance" if constant else "",
        )
    return {k: row[k] for k in FIT_STATS}


def fit_logit(x, y, ci_level: float = 0.95, maxiter: int = 100, groups=None) -> dict:
    """Logistic regression of binary ``y`` (n,) on ``[1, x]``; slope in log-odds per unit robustness.

    ``groups`` (n,) cluster labels (image ids): SEs from the CRV1 sandwich, t(G-1) intervals; without them the
    inverse-Hessian SEs with t(n-2) intervals.

    ``r2`` is McFadden's pseudo R^2. Estimates are reported only when Newton's method converges without
    (quasi-)perfect separation; otherwise the row holds NaNs, ``converged`` False and a note.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

    x, y, groups = _clean_xy(x, y, groups)
    kwargs, label = _cov_args("nonrobust", groups)
    note = _unestimable(x, y)
    if not note and np.ptp(y) == 0:
        note = "all outcomes equal"
    if not note and groups is not None and groups.max() < 1:
        note = "one cluster"
    if note:
        return _empty(len(x), note, label)
    X = np.column_stack([np.ones_like(x), x])
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            res = sm.Logit(y, X).fit(disp=0, maxiter=maxiter, method="newton", **kwargs)
        except (PerfectSeparationError, np.linalg.LinAlgError) as exc:
            return _empty(len(x), f"did not converge: {type(exc).__name__}", label)
        if any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
            return _empty(len(x), "did not converge: perfect separation", label)
        if not res.mle_retvals.get("converged", False):
            return _empty(len(x), "did not converge", label)
        row = {"n": len(x), **_params(res, ci_level), **_inference(res, label, groups), "slope_se_hc3": np.nan}
        p = res.predict(X)
        row.update(
            r2=res.prsquared, r2_adj=np.nan, rmse=float(np.sqrt(np.mean((y - p) ** 2))),
            jarque_bera_p=np.nan, breusch_pagan_p=np.nan, durbin_watson=np.nan, converged=True, note="",
        )
    return {k: row[k] for k in FIT_STATS}
