"""Straight-line fits of performance on robustness (statsmodels), flattened to one table row each."""

from __future__ import annotations

import warnings

import numpy as np

FIT_STATS = [
    "n", "slope", "intercept", "slope_se", "intercept_se", "slope_ci_low", "slope_ci_high",
    "intercept_ci_low", "intercept_ci_high", "slope_p", "intercept_p", "r2", "r2_adj", "rmse",
    "jarque_bera_p", "breusch_pagan_p", "durbin_watson", "converged", "note",
]


def _empty(n: int, note: str) -> dict:
    row = {k: np.nan for k in FIT_STATS}
    row.update(n=n, converged=False, note=note)
    return row


def _clean_xy(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _unestimable(x, y) -> str:
    if len(x) < 3:
        return "fewer than 3 points"
    if np.ptp(x) == 0:
        return "robustness is constant"
    return ""


def _params(res, ci_level: float) -> dict:
    ci = np.asarray(res.conf_int(alpha=1 - ci_level))
    bse, p, params = np.asarray(res.bse), np.asarray(res.pvalues), np.asarray(res.params)
    return {
        "slope": params[1], "intercept": params[0], "slope_se": bse[1], "intercept_se": bse[0],
        "slope_ci_low": ci[1, 0], "slope_ci_high": ci[1, 1],
        "intercept_ci_low": ci[0, 0], "intercept_ci_high": ci[0, 1],
        "slope_p": p[1], "intercept_p": p[0],
    }


def fit_ols(x, y, ci_level: float = 0.95, cov_type: str = "nonrobust") -> dict:
    """OLS of ``y`` on ``[1, x]`` (n points each) with residual diagnostics.

    ``cov_type`` "HC3" gives heteroskedasticity-robust SEs (the linear probability model's errors are
    heteroskedastic by construction). Diagnostics: Jarque-Bera normality p-value, Breusch-Pagan p-value
    (heteroskedasticity in x) and Durbin-Watson on the residuals ordered by x, which flags curvature (runs of
    same-sign residuals) rather than time correlation. Non-finite pairs are dropped; fewer than 3 points or
    constant x give a row of NaNs with a note.
    """
    import statsmodels.api as sm
    from statsmodels.stats.diagnostic import het_breuschpagan
    from statsmodels.stats.stattools import durbin_watson, jarque_bera

    x, y = _clean_xy(x, y)
    note = _unestimable(x, y)
    if note:
        return _empty(len(x), note)
    X = np.column_stack([np.ones_like(x), x])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # exact or constant-y fits divide by zero in R^2 and the diagnostics; NaN is the honest answer there
        warnings.simplefilter("ignore")
        res = sm.OLS(y, X).fit(cov_type=cov_type)
        resid = np.asarray(res.resid)
        row = {"n": len(x), **_params(res, ci_level)}
        row.update(
            r2=res.rsquared, r2_adj=res.rsquared_adj, rmse=float(np.sqrt(np.mean(resid**2))),
            jarque_bera_p=jarque_bera(resid)[1],
            breusch_pagan_p=het_breuschpagan(resid, X)[1] if np.any(resid != 0) else np.nan,
            durbin_watson=durbin_watson(resid[np.argsort(x, kind="stable")]),
            converged=True, note="constant performance" if np.ptp(y) == 0 else "",
        )
    return {k: row[k] for k in FIT_STATS}


def fit_logit(x, y, ci_level: float = 0.95, maxiter: int = 100) -> dict:
    """Logistic regression of binary ``y`` (n,) on ``[1, x]``; slope in log-odds per unit robustness.

    ``r2`` is McFadden's pseudo R^2. Estimates are reported only when Newton's method converges without
    (quasi-)perfect separation; otherwise the row holds NaNs, ``converged`` False and a note.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

    x, y = _clean_xy(x, y)
    note = _unestimable(x, y)
    if not note and np.ptp(y) == 0:
        note = "all outcomes equal"
    if note:
        return _empty(len(x), note)
    X = np.column_stack([np.ones_like(x), x])
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            res = sm.Logit(y, X).fit(disp=0, maxiter=maxiter, method="newton")
        except (PerfectSeparationError, np.linalg.LinAlgError) as exc:
            return _empty(len(x), f"did not converge: {type(exc).__name__}")
        if any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
            return _empty(len(x), "did not converge: perfect separation")
        if not res.mle_retvals.get("converged", False):
            return _empty(len(x), "did not converge")
        row = {"n": len(x), **_params(res, ci_level)}
        p = res.predict(X)
        row.update(
            r2=res.prsquared, r2_adj=np.nan, rmse=float(np.sqrt(np.mean((y - p) ** 2))),
            jarque_bera_p=np.nan, breusch_pagan_p=np.nan, durbin_watson=np.nan, converged=True, note="",
        )
    return {k: row[k] for k in FIT_STATS}
