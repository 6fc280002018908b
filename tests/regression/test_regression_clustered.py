"""Image-clustered standard errors: the CRV1 sandwich, the Moulton factor, and where fit_all uses them."""

import numpy as np
import pytest
from scipy import stats

from embedrobust.regression import fit_all, fit_logit, fit_ols


def _moulton_data(G, m, rho, seed):
    """y_ij = 1 + 0.5 x_i + u_i + e_ij, x constant within image i, Var(u) = rho, Var(e) = 1 - rho."""
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.normal(size=G), m)
    u = np.repeat(rng.normal(scale=np.sqrt(rho), size=G), m)
    y = 1 + 0.5 * x + u + rng.normal(scale=np.sqrt(1 - rho), size=G * m)
    return x, y, np.repeat(np.arange(G), m)


def test_clustered_se_and_interval_are_the_crv1_sandwich_with_g_minus_1_df():
    x, y, g = _moulton_data(G=40, m=3, rho=0.4, seed=0)
    fit = fit_ols(x, y, ci_level=0.9, groups=np.array([f"img{k}" for k in g]))
    X = np.column_stack([np.ones_like(x), x])
    bread = np.linalg.inv(X.T @ X)
    e = y - X @ bread @ X.T @ y
    scores = np.stack([X[g == k].T @ e[g == k] for k in range(40)])
    n, G = len(y), 40
    cov = G / (G - 1) * (n - 1) / (n - 2) * bread @ scores.T @ scores @ bread
    se = np.sqrt(np.diag(cov))
    np.testing.assert_allclose([fit["intercept_se"], fit["slope_se"]], se, rtol=1e-10)
    t = stats.t.ppf(0.95, G - 1)
    np.testing.assert_allclose([fit["slope_ci_low"], fit["slope_ci_high"]], fit["slope"] + np.array([-t, t]) * se[1])
    assert (fit["cov_type"], fit["df_inference"], fit["n_clusters"]) == ("cluster(image)", G - 1, G)


def test_clustered_se_matches_the_moulton_formula_where_hc3_is_too_small():
    G, m, rho = 4000, 5, 0.5
    x, y, g = _moulton_data(G, m, rho, seed=1)
    fit = fit_ols(x, y, groups=g)
    # Var(slope) = sigma^2 (1 + (m - 1) rho) / sum (x - mean x)^2 with sigma^2 = Var(u + e) = 1
    analytic = np.sqrt((1 + (m - 1) * rho) / np.sum((x - x.mean()) ** 2))
    assert fit["slope_se"] == pytest.approx(analytic, rel=0.05)
    assert fit["slope_se"] / fit["slope_se_hc3"] == pytest.approx(np.sqrt(1 + (m - 1) * rho), rel=0.05)


def test_clustered_logit_se_is_the_score_sandwich():
    x, y, g = _moulton_data(G=60, m=4, rho=0.5, seed=2)
    yb = (y > 1).astype(float)
    fit = fit_logit(x, yb, groups=g)
    X = np.column_stack([np.ones_like(x), x])
    beta = np.array([fit["intercept"], fit["slope"]])
    p = 1 / (1 + np.exp(-X @ beta))
    bread = np.linalg.inv((X * (p * (1 - p))[:, None]).T @ X)
    scores = np.stack([X[g == k].T @ (yb - p)[g == k] for k in range(60)])
    n, G = len(yb), 60
    cov = G / (G - 1) * (n - 1) / (n - 2) * bread @ scores.T @ scores @ bread
    np.testing.assert_allclose([fit["intercept_se"], fit["slope_se"]], np.sqrt(np.diag(cov)), rtol=1e-6)
    assert fit["cov_type"] == "cluster(image)" and fit["df_inference"] == G - 1


def test_every_image_fit_is_clustered_by_image_and_aggregated_fits_use_hc3_t(toy):
    res = fit_all(*toy.tables(), {**toy.CFG, "logit": True, "bootstrap": 0})
    f = res.fits
    img = f[f["granularity"] == "image"]
    assert set(img["estimator"]) == {"ols", "logit"} and set(img["family"]) == set(toy.K) | {"pooled"}
    assert (img["cov_type"] == "cluster(image)").all() and (img["n_clusters"] == 10).all()
    assert (img["df_inference"] == 9).all()
    agg = f[f["granularity"].isin(["bin", "level"]) & f["converged"].astype(bool)]
    assert (agg["cov_type"] == "HC3").all()
    np.testing.assert_array_equal(agg["df_inference"], agg["n"] - 2)
    assert res.summary["cov_type"]["image"].startswith("cluster(image)")


def test_pooled_image_fit_records_both_ses_for_the_widening_ratio(toy):
    res = fit_all(*toy.tables(), {**toy.CFG, "outcome": "p_true", "bootstrap": 0})
    ols = res.fits[(res.fits["granularity"] == "image") & (res.fits["family"] == "pooled")]
    ratio = res.summary["se_ratio_cluster_hc3"]["toy/m"]["knn"]
    for _, r in ols.iterrows():
        assert np.isfinite(r["slope_se_hc3"])
        if r["slope_se_hc3"] > 0:
            assert ratio[r["metric"]] == pytest.approx(r["slope_se"] / r["slope_se_hc3"])
