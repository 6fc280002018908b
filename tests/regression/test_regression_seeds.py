"""Seed replicates in the regression: the spread across seeds, and no replicate counted as another model."""

import numpy as np
import pandas as pd
import pytest

from embedrobust.regression import fit_all

CFG = {"metrics": ["divergence_radius"], "n_bins": 2, "min_bin_size": 1, "logit": False, "bootstrap": 20}
R = [[0.0, 0.25], [0.125, 0.375], [0.5, 0.0]]  # (model, family): m0, m1, m2


def _with_replicate(panel, drop_rep):
    """m0..m2, and m0 repeated under seed 1 as 'm0-seed1' with the drops ``drop_rep`` (points per family)."""
    rob, out = panel.tables(R, 40 * np.asarray(R))
    rob1, out1 = panel.tables([R[0]], [drop_rep])
    rob1["model"] = out1["model"] = "m0-seed1"
    return pd.concat([rob, rob1], ignore_index=True), pd.concat([out, out1], ignore_index=True)


def test_the_spread_across_seeds_is_that_of_the_replicates_values(panel):
    rob, out = _with_replicate(panel, [10.0, 20.0])  # seed 0: drops 0 and 10 points; seed 1: 10 and 20
    res = fit_all(rob, out, CFG, seed=0, replicates={"m0-seed1": ("m0", 1)})
    sp = res.seed_spread.set_index(["model", "statistic", "family"])
    row = sp.loc[("m0", "accuracy_drop_points", "f0")]
    assert row["n_seeds"] == 2 and row["seeds"] == "0;1" and row["values"] == "0;10"
    np.testing.assert_allclose([row["mean"], row["std"], row["min"], row["max"]],
                               [5.0, np.std([0, 10], ddof=1), 0, 10], atol=1e-9)
    every = sp.loc[("m0", "accuracy_drop_points", "all")]
    np.testing.assert_allclose(every["mean"], np.mean([np.mean([0, 10]), np.mean([10, 20])]))
    assert set(res.seed_spread["model"]) == {"m0"}  # only models with replicates
    assert {"r2", "clean_accuracy", "heldout_mae_points"} <= set(res.seed_spread["statistic"])
    s = res.summary["seed_spread"]["toy/m0"]["knn"]["accuracy_drop_points"]["f0"]
    assert s["n_seeds"] == 2 and s["mean"] == pytest.approx(5.0)


def test_a_replicate_is_not_another_model_in_the_cross_model_comparison(panel):
    rob, out = _with_replicate(panel, [10.0, 20.0])
    res = fit_all(rob, out, CFG, seed=0, replicates={"m0-seed1": ("m0", 1)})
    pooled = res.rank_correlation[res.rank_correlation["family"] == "pooled"].iloc[0]
    assert pooled["n_models"] == 3 and pooled["models"] == "m0;m1;m2"
    # ...but it is fitted like any model
    assert "m0-seed1" in set(res.fits["model"])


def test_without_replicates_the_spread_is_an_empty_table_with_its_columns(panel):
    res = fit_all(*panel.tables(R, 40 * np.asarray(R)), CFG)
    assert res.seed_spread.empty and {"n_seeds", "mean", "std"} <= set(res.seed_spread.columns)
    assert "seed_spread" not in res.summary
