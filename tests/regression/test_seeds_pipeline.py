"""Two seeds through the real stages (fetch, embed, metrics, downstream, regression) in-process: the replicate
repeats the random draws, and the regression reports the spread across seeds."""

import json

import numpy as np
import pandas as pd
import pytest

from embedrobust import stages
from embedrobust.config import all_models, stage_config, validate
from embedrobust.report.build import seed_spread_rows


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, tiny_params):
    cfg = {k: v for k, v in tiny_params.items() if k not in ("finetune", "dense", "task_attack")}
    cfg = validate({**cfg, "seeds": [0, 1], "models": {"vit": tiny_params["models"]["vit"]},
                    "downstream": {**tiny_params["downstream"], "tasks": ["linear_probe", "knn"]}})
    root = tmp_path_factory.mktemp("seeds")
    stages.fetch(stage_config(cfg, "fetch", "digits"), root)
    for model in all_models(cfg):
        for stage in ("embed", "metrics", "downstream"):
            getattr(stages, stage)(stage_config(cfg, stage, "digits", model), root)
    stages.regression(stage_config(cfg, "regression", "digits"), root)
    return root


def test_the_replicate_redraws_random_perturbations_and_repeats_deterministic_ones(two_seeds):
    a = pd.read_parquet(two_seeds / "data/metrics/digits/vit.parquet").set_index(["image", "family"])
    b = pd.read_parquet(two_seeds / "data/metrics/digits/vit-seed1.parquet").set_index(["image", "family"])
    noise, jpeg = (a.index.get_level_values("family") == f for f in ("gaussian_noise", "jpeg_compression"))
    assert not np.allclose(a.loc[noise, "divergence_radius"], b.loc[noise, "divergence_radius"])
    np.testing.assert_array_equal(a.loc[jpeg, "divergence_radius"], b.loc[jpeg, "divergence_radius"])


def test_the_regression_reports_the_spread_across_the_two_seeds(two_seeds):
    rdir = two_seeds / "data/regression/digits"
    spread = pd.read_csv(rdir / "seed_spread.csv")
    assert set(spread["model"]) == {"vit"} and spread["seeds"].eq("0;1").all()
    drop = spread[(spread["statistic"] == "accuracy_drop_points") & (spread["family"] == "gaussian_noise")]
    assert len(drop) == 2 and drop["n_seeds"].eq(2).all()  # knn and linear probe
    summary = json.loads((rdir / "summary.json").read_text())
    assert summary["seed_spread"]["digits/vit"]["knn"]["clean_accuracy"]["all"]["n_seeds"] == 2
    assert summary["rank_correlation"]  # the comparison across models ran, over the primary model only
    table = seed_spread_rows(spread, "knn")
    assert list(table["model"].unique()) == ["vit"] and "clean accuracy (%)" in set(table["statistic"])
    assert table["spread"].str.contains("±").all()
