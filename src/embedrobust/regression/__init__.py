"""Downstream performance against embedding robustness: statsmodels fits with image-clustered errors,
held-out-family prediction, an image bootstrap of the headline statistics and the cross-model analysis."""

from embedrobust.regression.fit import RegressionResult, accuracy_drop, bin_points, fit_all
from embedrobust.regression.linefit import fit_logit, fit_ols

__all__ = ["RegressionResult", "accuracy_drop", "bin_points", "fit_all", "fit_logit", "fit_ols"]
