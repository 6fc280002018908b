"""fit_all on constructed tables where accuracy is an exact linear function of robustness."""

import json

import numpy as np
import pytest

from embedrobust.errors import ConfigError, DataError
from embedrobust.regression import fit_all


def _fit(res, granularity, family="pooled", metric="divergence_radius"):
    f = res.fits
    return f[(f["granularity"] == granularity) & (f["family"] == family) & (f["metric"] == metric)].iloc[0]


@pytest.fixture(scope="module")
def result(toy):
    return fit_all(*toy.tables(), toy.CFG)


@pytest.mark.parametrize("granularity", ["image", "bin", "level"])
def test_exact_line_is_recovered_at_every_granularity(result, granularity):
    f = _fit(result, granularity)
    assert f["slope"] == pytest.approx(-2.0) and f["intercept"] == pytest.approx(1.0)


def test_image_and_binned_fits_of_an_exact_line_have_unit_r2(result):
    assert _fit(result, "image")["r2"] == pytest.approx(1.0)
    assert _fit(result, "bin")["r2"] == pytest.approx(1.0)


def test_held_out_family_prediction_of_an_exact_line_has_zero_error(result, toy):
    p = result.predictions[result.predictions["metric"] == "divergence_radius"]
    assert len(p) == 2 * len(toy.K)
    np.testing.assert_allclose(p["abs_error_points"], 0.0, atol=1e-9)
    np.testing.assert_allclose(p.loc[p["granularity"] == "bin", "bin_mae_points"], 0.0, atol=1e-9)
    assert result.summary["heldout_mae_points"]["toy/m"]["knn"]["divergence_radius"]["level"] == pytest.approx(0.0)


def test_a_nonlinear_metric_predicts_worse_than_the_linear_one(result):
    mae = result.summary["heldout_mae_points"]["toy/m"]["knn"]
    assert mae["cosine"]["bin"] > 1.0
    assert result.summary["best_metric_by_mae"]["knn"]["bin"] == "divergence_radius"


def test_held_out_level_prediction_matches_a_hand_fit_on_the_other_families(toy):
    rob, out = toy.tables()
    res = fit_all(rob, out, toy.CFG)
    # level points of blur, jpeg, noise: (mean cosine of the family, accuracy at the level)
    xs, ys = [], []
    for fam in ("blur", "jpeg", "noise"):
        k = np.array(toy.K[fam])
        for lv in toy.LEVELS:
            xs.append(np.mean(((1 - k / 4) / 2) ** 2))
            ys.append(np.mean(k >= lv))
    b, a = np.polyfit(xs, ys, 1)
    k = np.array(toy.K["snow"])
    x_snow, acc_snow = np.mean(((1 - k / 4) / 2) ** 2), np.mean(k / 4)
    p = res.predictions
    row = p[(p["metric"] == "cosine") & (p["granularity"] == "level") & (p["held_out_family"] == "snow")].iloc[0]
    assert row["predicted_accuracy"] == pytest.approx(a + b * x_snow)
    assert row["abs_error_points"] == pytest.approx(100 * abs(a + b * x_snow - acc_snow))


def test_accuracy_drop_against_clean(result, toy):
    d = result.accuracy_drop
    blur = d[d["family"] == "blur"]
    assert blur["level"].tolist() == list(toy.LEVELS)
    np.testing.assert_allclose(blur["accuracy"], [1.0, 0.9, 0.7, 0.4])
    np.testing.assert_allclose(blur["drop_points"], [0.0, 10.0, 30.0, 60.0], atol=1e-12)
    np.testing.assert_allclose(blur["mean_divergence_radius"], 0.125)
    assert result.summary["accuracy_drop_points"]["toy/m"]["knn"]["snow"] == pytest.approx(15.0)
    assert result.summary["clean_accuracy"]["toy/m"]["knn"] == pytest.approx(1.0)


def test_save_is_byte_identical_across_runs(toy, tmp_path):
    rob, out = toy.tables()
    for d in ("a", "b"):
        fit_all(rob, out, {**toy.CFG, "logit": True}).save(tmp_path / d)
    for name in ("fits.csv", "binned.csv", "predictions.csv", "accuracy_drop.csv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    json.loads((tmp_path / "a" / "summary.json").read_text())  # strict JSON: NaN written as null


def test_p_true_outcome_is_used_when_asked(toy):
    rob, out = toy.tables()
    out["p_true"] = 0.5  # constant probability: the fit must see no slope
    res = fit_all(rob, out, {**toy.CFG, "outcome": "p_true"})
    assert _fit(res, "level")["slope"] == pytest.approx(0.0, abs=1e-12)


def test_unknown_outcome_is_a_config_error(toy):
    with pytest.raises(ConfigError, match="outcome"):
        fit_all(*toy.tables(), {**toy.CFG, "outcome": "top5"})


def test_tables_without_common_images_are_a_data_error(toy):
    rob, out = toy.tables()
    rob["image"] = "other" + rob["image"]
    with pytest.raises(DataError, match="share no"):
        fit_all(rob, out, toy.CFG)


def test_zero_shot_outcomes_of_a_rotating_encoder_give_the_closed_form_slope(toy):
    """Store -> evaluate_store -> fit_all. Class texts are e0, e1; every test image (label 0) is rotated
    from e0 towards e1 by level * step, with the step chosen so that it stays correct (angle < 45 deg) for
    exactly the first K levels; its robustness is (1 - K / 4) / 2, so the pooled slope must be -2."""
    import xarray as xr

    from embedrobust.downstream import evaluate_store

    step = {4: 11.0, 3: 14.0, 2: 20.0, 1: 30.0, 0: 50.0}  # degrees
    fams = list(toy.K)
    conds = [("clean", np.nan)] + [(f, lv) for f in fams for lv in toy.LEVELS]
    ang = np.array([[0.0] * 10] + [[lv * step[k] for k in toy.K[f]] for f, lv in conds[1:]])
    emb = np.stack([np.cos(np.deg2rad(ang)), np.sin(np.deg2rad(ang))], axis=-1).astype(np.float32)
    ds = xr.Dataset(
        {"embedding": (("condition", "image", "dim"), emb), "text_embedding": (("class", "dim"), np.eye(2, dtype=np.float32))},
        coords={
            "condition": ["clean"] + [f"{f}@{lv:g}" for f, lv in conds[1:]],
            "family": ("condition", [f for f, _ in conds]),
            "level": ("condition", np.array([lv for _, lv in conds])),
            "image": [f"i{i}" for i in range(10)],
            "label": ("image", np.zeros(10, dtype=np.int64)),
            "split": ("image", ["test"] * 10),
            "class_name": ("class", ["a", "b"]),
        },
    )
    out = evaluate_store(ds, {"tasks": ["zero_shot"]}, seed=0).assign(dataset="toy", model="m")
    rob, _ = toy.tables()
    res = fit_all(rob, out, {**toy.CFG, "metrics": ["divergence_radius"]})
    f = res.fits
    img = f[(f["granularity"] == "image") & (f["family"] == "pooled")].iloc[0]
    assert img["slope"] == pytest.approx(-2.0) and img["intercept"] == pytest.approx(1.0)
    np.testing.assert_allclose(res.predictions["abs_error_points"], 0.0, atol=1e-9)
