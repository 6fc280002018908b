"""Held-out-family prediction and the downstream probe are leakage-free: nothing fitted sees what it predicts."""

import numpy as np
import xarray as xr

from embedrobust.downstream.evaluate import build_classifiers, downstream_config
from embedrobust.regression import fit_all

FITTED = ["n_train_points", "slope", "intercept", "train_r2"]


def test_the_held_out_familys_data_never_reaches_its_fitted_lines(toy):
    rob, out = toy.tables()
    base = fit_all(rob, out, {**toy.CFG, "bootstrap": 0}).predictions
    rng = np.random.default_rng(0)
    for fam in toy.K:
        r2, o2 = rob.copy(), out.copy()
        rr, oo = r2["family"] == fam, o2["family"] == fam
        o2.loc[oo, "correct"] = rng.uniform(size=oo.sum()) < 0.5
        o2["p_true"] = o2["correct"].astype(float)
        r2.loc[rr, ["divergence_radius", "cosine"]] = rng.uniform(size=(rr.sum(), 2))
        got = fit_all(r2, o2, {**toy.CFG, "bootstrap": 0}).predictions
        held = (got["held_out_family"] == fam).to_numpy()
        np.testing.assert_array_equal(got.loc[held, FITTED].to_numpy(), base.loc[held, FITTED].to_numpy())
        assert not np.allclose(got.loc[held, "measured_accuracy"], base.loc[held, "measured_accuracy"])
        assert not np.allclose(got.loc[~held, FITTED].to_numpy(dtype=float), base.loc[~held, FITTED].to_numpy(dtype=float))


def _store(emb, labels, split):
    conds = [("clean", np.nan), ("noise", 1.0)]
    return xr.Dataset(
        {"embedding": (("condition", "image", "dim"), emb.astype(np.float32))},
        coords={
            "condition": ["clean", "noise@1"],
            "family": ("condition", [f for f, _ in conds]),
            "level": ("condition", np.array([lv for _, lv in conds])),
            "image": [f"img{i}" for i in range(len(labels))],
            "label": ("image", labels),
            "split": ("image", split),
            "class_name": ("class", ["a", "b", "c"]),
        },
    )


def test_probe_and_its_c_see_only_clean_train_embeddings():
    rng = np.random.default_rng(1)
    labels = np.arange(60) % 3
    emb = rng.normal(size=(2, 60, 6)) + 0.8 * np.eye(6)[labels][None]
    split = np.array(["train"] * 40 + ["test"] * 20)
    cfg = downstream_config({"tasks": ["linear_probe", "knn"], "linear_probe": {"C": [0.01, 0.1, 1.0, 10.0]}})
    a = build_classifiers(_store(emb, labels, split), cfg, seed=0)
    other = emb.copy()
    other[1] = rng.normal(size=other[1].shape)  # every perturbed embedding, train images included
    other[:, 40:] = rng.normal(size=other[:, 40:].shape)  # every test embedding, clean included
    other_labels = labels.copy()
    other_labels[40:] = rng.permutation(other_labels[40:])
    b = build_classifiers(_store(other, other_labels, split), cfg, seed=0)
    assert a["linear_probe"].C == b["linear_probe"].C and a["linear_probe"].val_accuracy == b["linear_probe"].val_accuracy
    np.testing.assert_array_equal(a["linear_probe"].model.coef_, b["linear_probe"].model.coef_)
    np.testing.assert_array_equal(a["knn"].scores(emb[0, 40:])[0], b["knn"].scores(emb[0, 40:])[0])
