"""statsmodels line fits cross-checked against numpy least squares and textbook formulas."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from embedrobust.regression import bin_points, fit_logit, fit_ols


def _design(x):
    return np.column_stack([np.ones_like(x), x])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 40))
def test_ols_estimates_equal_numpy_lstsq(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    y = 0.9 - 0.7 * x + 0.1 * rng.normal(size=n)
    fit = fit_ols(x, y)
    (a, b), *_ = np.linalg.lstsq(_design(x), y, rcond=None)
    r2 = 1 - np.sum((y - a - b * x) ** 2) / np.sum((y - y.mean()) ** 2)
    np.testing.assert_allclose([fit["intercept"], fit["slope"], fit["r2"]], [a, b, r2], rtol=1e-8, atol=1e-10)


def test_ols_standard_errors_ci_and_p_follow_the_textbook_formulas():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 30)
    y = 1 - 0.5 * x + 0.05 * rng.normal(size=30)
    fit = fit_ols(x, y, ci_level=0.9)
    X = _design(x)
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    e = y - X @ beta
    se = np.sqrt(np.diag(e @ e / 28 * np.linalg.inv(X.T @ X)))
    t = stats.t.ppf(0.95, 28)
    np.testing.assert_allclose([fit["intercept_se"], fit["slope_se"]], se, rtol=1e-8)
    np.testing.assert_allclose([fit["slope_ci_low"], fit["slope_ci_high"]], beta[1] + np.array([-t, t]) * se[1])
    np.testing.assert_allclose(fit["slope_p"], 2 * stats.t.sf(abs(beta[1] / se[1]), 28), rtol=1e-6)


def test_hc3_standard_errors_equal_the_sandwich_with_leverage_scaled_residuals():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 25)
    y = (rng.uniform(size=25) < 1 - 0.8 * x).astype(float)  # binary outcome: linear probability model
    fit = fit_ols(x, y, cov_type="HC3")
    X = _design(x)
    bread = np.linalg.inv(X.T @ X)
    e = y - X @ bread @ X.T @ y
    h = np.einsum("ij,jk,ik->i", X, bread, X)
    cov = bread @ (X.T * (e / (1 - h)) ** 2) @ X @ bread
    np.testing.assert_allclose([fit["intercept_se"], fit["slope_se"]], np.sqrt(np.diag(cov)), rtol=1e-8)


def test_ols_durbin_watson_uses_residuals_sorted_by_x():
    x = np.array([3.0, 0.0, 2.0, 1.0, 4.0])
    y = x**2  # curvature: residuals +, -, -, -, + along x
    fit = fit_ols(x, y)
    order = np.argsort(x)
    b, a = np.polyfit(x, y, 1)
    e = (y - a - b * x)[order]
    np.testing.assert_allclose(fit["durbin_watson"], np.sum(np.diff(e) ** 2) / np.sum(e**2))


def test_ols_with_constant_robustness_reports_no_estimate():
    fit = fit_ols([0.2, 0.2, 0.2, 0.2], [1, 0, 1, 0])
    assert np.isnan(fit["slope"]) and not fit["converged"] and "constant" in fit["note"]


def test_logit_matches_a_direct_newton_solve():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, 200)
    y = (rng.uniform(size=200) < 1 / (1 + np.exp(-(2 - 4 * x)))).astype(float)
    fit = fit_logit(x, y)
    X, beta = _design(x), np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ beta))
        beta += np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
    assert fit["converged"]
    np.testing.assert_allclose([fit["intercept"], fit["slope"]], beta, rtol=1e-6)


def test_logit_with_perfect_separation_is_not_reported():
    fit = fit_logit([0.1, 0.2, 0.3, 0.6, 0.7, 0.8], [1, 1, 1, 0, 0, 0])
    assert not fit["converged"] and np.isnan(fit["slope"])


def test_bins_are_quantiles_and_small_bins_are_flagged():
    x = np.arange(10.0)
    y = (x < 5).astype(float)
    b = bin_points(x, y, n_bins=3, min_bin_size=4)
    # quantile edges at 3 and 6: bins {0..3}, {4,5,6}, {7,8,9}
    assert b["n"].tolist() == [4, 3, 3]
    np.testing.assert_allclose(b["x_mean"], [1.5, 5.0, 8.0])
    np.testing.assert_allclose(b["accuracy"], [1.0, 1 / 3, 0.0])
    assert b["kept"].tolist() == [True, False, False]


@pytest.mark.parametrize("n_bins", [1, 4])
def test_tied_robustness_shares_one_bin(n_bins):
    b = bin_points([0.5] * 6, [1, 0, 1, 1, 0, 1], n_bins=n_bins, min_bin_size=1)
    assert len(b) == 1 and b["accuracy"].iloc[0] == pytest.approx(4 / 6)
