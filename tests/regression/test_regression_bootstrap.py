"""The image bootstrap: counts, weighted bins, exactness against explicit resampling, pairing, determinism."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from embedrobust.regression import fit_all
from embedrobust.regression.bootstrap import cluster_counts, kendall_tau_b, spearman, weighted_bins
from embedrobust.regression.fit import TABLES, bin_points


def test_cluster_counts_are_seeded_resamples_of_all_clusters():
    a, b = cluster_counts(7, 50, seed=3), cluster_counts(7, 50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 7) and (a.sum(1) == 7).all() and not np.array_equal(a, cluster_counts(7, 50, seed=4))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), n_bins=st.integers(1, 6), ties=st.booleans())
def test_weighted_bins_equal_the_bins_of_the_repeated_sample(seed, n, n_bins, ties):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, n) / 4 if ties else rng.uniform(size=n)
    y = rng.uniform(size=n)
    w = rng.integers(0, 4, n)
    w[rng.integers(n)] += 1  # at least one row drawn
    order = np.argsort(x, kind="stable")
    got = weighted_bins(x[order], y[order], w[order][None, :].astype(float), n_bins)
    ref = bin_points(np.repeat(x, w), np.repeat(y, w), n_bins, 1)
    has = got["n"][0] > 0
    np.testing.assert_array_equal(got["n"][0][has], ref["n"])
    np.testing.assert_allclose(got["x_mean"][0][has], ref["x_mean"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["accuracy"][0][has], ref["accuracy"], rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 40), n_bins=st.integers(1, 8), ties=st.booleans())
def test_unit_weight_bins_partition_like_pandas_qcut(seed, n, n_bins, ties):
    # where j (n - 1) / n_bins is a whole number the edge is a data value, which stays in the lower bin here;
    # pandas' percentile of j / n_bins can land an ulp below it and move the value up, so those cases are left out
    assume(math.gcd(n - 1, n_bins) == 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, n) / 4 if ties else rng.uniform(size=n)
    b = bin_points(x, x, n_bins, 1)
    codes = pd.qcut(x, n_bins, labels=False, duplicates="drop") if np.ptp(x) > 0 else np.zeros(n, dtype=int)
    np.testing.assert_array_equal(b["n"], np.bincount(np.unique(codes, return_inverse=True)[1]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 7))
def test_vectorised_rank_correlations_equal_scipy(seed, m):
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 4, (5, m)).astype(float), rng.integers(0, 4, (5, m)).astype(float)  # with ties
    rho, tau = spearman(x, y), kendall_tau_b(x, y)
    for k in range(5):
        if np.ptp(x[k]) == 0 or np.ptp(y[k]) == 0:
            assert np.isnan(rho[k]) and np.isnan(tau[k])
        else:
            assert rho[k] == pytest.approx(spearmanr(x[k], y[k]).statistic)
            assert tau[k] == pytest.approx(kendalltau(x[k], y[k]).statistic)


def _stat(res, statistic, metric, granularity):
    b = res.bootstrap
    return b[(b["statistic"] == statistic) & (b["metric"] == metric) & (b["granularity"] == granularity)].iloc[0]


def test_point_estimates_equal_the_fits_and_the_held_out_predictions(toy):
    res = fit_all(*toy.tables(), {**toy.CFG, "bootstrap": 0})
    f, p = res.fits, res.predictions
    for metric in toy.CFG["metrics"]:
        for gran in ("image", "bin", "level"):
            fit = f[(f["metric"] == metric) & (f["granularity"] == gran) & (f["family"] == "pooled")
                    & (f["estimator"] == "ols")].iloc[0]
            assert _stat(res, "r2", metric, gran)["estimate"] == pytest.approx(fit["r2"], rel=1e-9)
        for gran in ("bin", "level"):
            mae = p[(p["metric"] == metric) & (p["granularity"] == gran)]["abs_error_points"].mean()
            assert _stat(res, "heldout_mae_points", metric, gran)["estimate"] == pytest.approx(mae, rel=1e-9, abs=1e-9)
    assert np.isnan(res.bootstrap["ci_low"]).all() and (res.bootstrap["n_valid"] == 0).all()


def test_a_replicate_equals_the_fit_on_the_explicitly_resampled_images(toy, panel):
    """The weights-by-counts bootstrap is exact: one replicate reproduces every statistic computed on the
    tables where each drawn image appears as often as it was drawn."""
    rob, out = toy.tables()
    cfg = {**toy.CFG, "bootstrap": 1}
    one = fit_all(rob, out, cfg, seed=11)
    counts = cluster_counts(10, 1, seed=11)[0]
    ref = fit_all(*panel.expand(rob, out, counts), {**cfg, "bootstrap": 0})
    for _, r in one.bootstrap.iterrows():
        want = _stat(ref, r["statistic"], r["metric"], r["granularity"])["estimate"]
        assert r["ci_low"] == pytest.approx(want, rel=1e-9, abs=1e-9), tuple(r[["statistic", "metric", "granularity"]])
    got = one.model_family.set_index("family")
    want = ref.model_family.set_index("family")
    np.testing.assert_allclose(got["drop_ci_low"], want["drop_points"], rtol=1e-12)


def test_r2_difference_of_a_metric_with_itself_has_a_zero_width_interval(toy):
    """The metrics are compared on the same resamples: a metric equal to divergence_radius differs from it by
    exactly 0 in every replicate, however much each R^2 varies."""
    rob, out = toy.tables()
    rob["euclidean"] = rob["divergence_radius"]
    res = fit_all(rob, out, {**toy.CFG, "metrics": ["divergence_radius", "cosine", "euclidean"], "bootstrap": 50})
    for gran in ("image", "bin", "level"):
        d = _stat(res, "r2_difference", "divergence_radius-euclidean", gran)
        assert d["ci_low"] == d["ci_high"] == 0.0
    c = _stat(res, "r2_difference", "divergence_radius-cosine", "image")
    assert c["ci_low"] < c["estimate"] < c["ci_high"]
    assert _stat(res, "r2", "cosine", "level")["ci_high"] > _stat(res, "r2", "cosine", "level")["ci_low"]


def test_accuracy_drop_interval_is_paired_over_images(panel):
    """An image keeps its correctness from clean to perturbed: the paired drop is 0 in every resample, while
    clean and perturbed accuracies themselves vary across resamples."""
    rob, out = panel.tables([[0.1], [0.2]], [[0.0], [50.0]])
    pert = out["family"] != "clean"
    out.loc[pert & (out["model"] == "m0"), "correct"] = out.loc[pert & (out["model"] == "m0"), "image"] < "i10"
    out.loc[~pert & (out["model"] == "m0"), "correct"] = out.loc[~pert & (out["model"] == "m0"), "image"] < "i10"
    res = fit_all(rob, out, {"metrics": ["divergence_radius"], "n_bins": 2, "min_bin_size": 1, "bootstrap": 100})
    d = res.accuracy_drop.set_index("model")
    assert (d.loc["m0", "drop_ci_low"] == 0).all() and (d.loc["m0", "drop_ci_high"] == 0).all()
    assert (d.loc["m1", "drop_ci_low"] < 50).all() and (d.loc["m1", "drop_ci_high"] > 50).all()


def test_same_seed_same_bytes_other_seed_other_intervals(toy, tmp_path):
    rob, out = toy.tables()
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        fit_all(rob, out, {**toy.CFG, "bootstrap": 30}, seed=seed).save(tmp_path / name)
    for t in TABLES:
        assert (tmp_path / "a" / f"{t}.csv").read_bytes() == (tmp_path / "b" / f"{t}.csv").read_bytes(), t
    assert (tmp_path / "a" / "fits.csv").read_bytes() == (tmp_path / "c" / "fits.csv").read_bytes()
    assert (tmp_path / "a" / "bootstrap.csv").read_bytes() != (tmp_path / "c" / "bootstrap.csv").read_bytes()


def test_resamples_keep_each_datasets_number_of_images():
    strata = np.array([0, 0, 0, 1, 1])
    c = cluster_counts(5, 200, seed=0, strata=strata)
    assert (c[:, :3].sum(1) == 3).all() and (c[:, 3:].sum(1) == 2).all()
    np.testing.assert_array_equal(cluster_counts(4, 9, seed=2, strata=np.zeros(4)), cluster_counts(4, 9, seed=2))
