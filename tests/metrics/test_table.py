"""The robustness table of a store: one row per (family, image), the metrics of {clean} + the family's levels."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from embedrobust.metrics import robustness_metrics
from embedrobust.metrics.table import robustness_table


def _store(n=5, d=4, seed=0):
    rng = np.random.default_rng(seed)
    conditions = ["clean", "noise@1", "noise@2", "blur@1"]
    return xr.Dataset(
        {"embedding": (("condition", "image", "dim"), rng.normal(size=(len(conditions), n, d)).astype(np.float32))},
        coords={"condition": conditions, "family": ("condition", ["clean", "noise", "noise", "blur"]),
                "image": [f"i{k}" for k in range(n)], "split": ("image", (["train", "test"] * n)[:n]),
                "label": ("image", np.arange(n) % 2)},
    )


def test_each_family_is_measured_on_clean_plus_its_own_levels():
    store = _store()
    table = robustness_table(store, ["noise", "blur"])
    assert list(table["family"].unique()) == ["noise", "blur"] and len(table) == 10
    noise = np.stack([store["embedding"].values[k] for k in (0, 1, 2)], axis=1)  # (N, K, D)
    expected = robustness_metrics(torch.from_numpy(noise).double())
    got = table[table["family"] == "noise"]
    for name in ("cosine", "euclidean", "divergence_radius"):
        np.testing.assert_allclose(got[name].to_numpy(), expected[name].numpy())
    assert set(got["n_points"]) == {3} and set(table[table["family"] == "blur"]["n_points"]) == {2}


def test_the_block_size_does_not_change_the_table():
    store = _store(n=7)
    a, b = robustness_table(store, ["noise", "blur"]), robustness_table(store, ["noise", "blur"], block=2)
    assert a.equals(b)
