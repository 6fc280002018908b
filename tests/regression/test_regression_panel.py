"""Cross-model analysis: per (model, family) drops, rank correlations, fixed-effects and mixed models."""

import json

import numpy as np
import pandas as pd
import pytest

from embedrobust.regression import fit_all
from embedrobust.regression.panel import _fe_slopes

CFG = {"metrics": ["divergence_radius"], "n_bins": 2, "min_bin_size": 1, "logit": False, "bootstrap": 40}
R = [[0.0, 0.25, 0.5], [0.125, 0.375, 0.25], [0.5, 0.0, 0.125], [0.25, 0.5, 0.375]]  # (model, family)


def test_model_family_table_has_the_planted_drops_and_robustness(panel):
    drop = 40 * np.asarray(R)
    res = fit_all(*panel.tables(R, drop), CFG)
    mf = res.model_family.set_index(["model", "family"])
    np.testing.assert_allclose(mf.loc[("m2", "f0"), ["drop_points", "mean_divergence_radius"]], [20.0, 0.5])
    np.testing.assert_allclose(mf.loc[("m1", "pooled"), "drop_points"], np.mean(drop[1]))
    ok = mf["drop_ci_low"].notna()
    assert ((mf.loc[ok, "drop_ci_low"] <= mf.loc[ok, "drop_points"])
            & (mf.loc[ok, "drop_points"] <= mf.loc[ok, "drop_ci_high"])).all()


def test_rank_correlations_of_a_monotone_relation_are_one(panel):
    res = fit_all(*panel.tables(R, 40 * np.asarray(R)), CFG)
    rc = res.rank_correlation.set_index("family")
    assert rc["n_models"].eq(4).all() and rc.loc["pooled", "models"] == "m0;m1;m2;m3"
    np.testing.assert_allclose(rc[["spearman", "kendall"]], 1.0)
    assert (rc[["spearman_ci_low", "kendall_ci_low"]] >= -1).all().all()
    assert (rc[["spearman_ci_high", "kendall_ci_high"]] <= 1 + 1e-12).all().all()
    s = res.summary["rank_correlation"]["knn"]["divergence_radius"]["pooled"]
    assert s["spearman"]["estimate"] == pytest.approx(1.0) and s["n_models"] == 4


def test_fewer_than_three_models_give_nan_correlations_with_a_reason(panel):
    res = fit_all(*panel.tables(R[:2], 40 * np.asarray(R[:2])), CFG)
    rc = res.rank_correlation
    assert rc["spearman"].isna().all() and rc["kendall"].isna().all()
    assert rc["note"].str.contains("fewer than 3 models").all()
    mixed = res.panel_fits[res.panel_fits["estimator"] == "mixedlm"].iloc[0]
    assert not mixed["converged"] and "fewer than 3 models" in mixed["note"]


def test_fixed_effects_recover_a_planted_slope_beyond_model_and_family_effects(panel):
    a, b = np.array([0.0, 5.0, 10.0, 15.0]), np.array([0.0, 10.0, 5.0])
    drop = a[:, None] + b[None, :] + 40 * np.asarray(R)
    res = fit_all(*panel.tables(R, drop), CFG)
    fe = res.panel_fits[res.panel_fits["estimator"] == "ols_fe"].iloc[0]
    assert fe["slope"] == pytest.approx(40.0)
    assert (fe["n"], fe["n_models"], fe["n_families"], fe["n_clusters"]) == (24, 4, 3, 12)
    assert fe["cov_type"] == "cluster(model,family)" and fe["df_inference"] == 11
    assert fe["slope_boot_ci_low"] <= 40.0 + 1e-9 and fe["slope_boot_ci_high"] >= 40.0 - 1e-9


def test_frisch_waugh_slopes_equal_statsmodels_fixed_effects():
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(0)
    d = pd.DataFrame({"model": np.repeat(list("abcd"), 6), "family": np.tile(list("xyz"), 8)})
    d["robustness"] = rng.uniform(size=len(d))
    d["drop"] = 3 * d["robustness"] + rng.normal(size=len(d))
    ref = smf.ols("drop ~ robustness + C(model) + C(family)", d).fit().params["robustness"]
    dummies = pd.get_dummies(d[["model", "family"]], drop_first=True, dtype=float)
    dummies.insert(0, "const", 1.0)
    got = _fe_slopes(d["drop"].to_numpy()[None], d["robustness"].to_numpy()[None], dummies.to_numpy())
    assert got[0] == pytest.approx(ref, rel=1e-10)


def test_mixed_model_converges_on_a_random_intercept_and_says_so(panel):
    rng = np.random.default_rng(3)
    r = rng.choice(np.arange(9) / 16, size=(6, 3))
    levels = (1.0, 2.0, 3.0)
    cell = 40 * r + 5 * rng.integers(0, 4, size=(6, 1)) + 2.5 * rng.integers(-1, 2, size=(6, 3))
    drop = cell[:, :, None] + 5 * np.arange(3) + 2.5 * rng.integers(-1, 2, size=(6, 3, 3))
    res = fit_all(*panel.tables(r, np.clip(drop, 0, 95), n_images=40, levels=levels), CFG)  # steps of 2.5 points
    mixed = res.panel_fits[res.panel_fits["estimator"] == "mixedlm"].iloc[0]
    assert mixed["converged"], mixed["note"]
    assert mixed["slope_ci_low"] < 40 < mixed["slope_ci_high"] and mixed["group_var"] > 0
    assert res.summary["panel_slopes_points_per_unit"]["knn"]["divergence_radius"]["mixedlm"]["converged"]


def test_the_tables_do_not_depend_on_the_number_of_worker_processes(panel):
    """fit_all splits its per-(model, task) fits, bootstraps and panel fits over forked workers."""
    r = [row[:2] for row in R[:3]]  # 3 models (the fewest a rank correlation takes) x 2 families: small fits
    tables = panel.tables(r, 40 * np.asarray(r), levels=(1.0,))
    cfg = {**CFG, "bootstrap": 8}
    one, two = fit_all(*tables, cfg, workers=1), fit_all(*tables, cfg, workers=2)
    for name in ("fits", "binned", "predictions", "accuracy_drop", "bootstrap", "model_family", "rank_correlation",
                 "panel_fits"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), check_exact=True)
    assert json.dumps(one.summary, sort_keys=True, default=str) == json.dumps(two.summary, sort_keys=True, default=str)
