"""Fine-tuned vs base tables: hand-computed means on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedrobust.finetune import compare

RUNS = {"m-ft-paper-a1": {"base": "m", "method": "paper", "alpha": 1.0, "family": None,
                          "train": {"families": {"noise": {"levels": [0.1]}}}}}


def _rob():
    rows = []
    for model, noise, blur in (("m", [0.4, 0.2], [0.3, 0.1]), ("m-ft-paper-a1", [0.1, 0.1], [0.3, 0.3])):
        for fam, vals in (("noise", noise), ("blur", blur)):
            for i, v in enumerate(vals):
                rows.append({"dataset": "d", "model": model, "split": "test", "image": f"i{i}", "family": fam,
                             "divergence_radius": v})
            rows.append({"dataset": "d", "model": model, "split": "train", "image": "t", "family": fam,
                         "divergence_radius": 0.9})  # train images are never averaged in
    return pd.DataFrame(rows)


def test_robustness_change_averages_test_images_and_marks_held_out_families():
    ch = compare.robustness_change(RUNS, ["noise", "blur"], _rob()).set_index("family")
    assert ch.loc["noise", "dr_base"] == pytest.approx(0.3) and ch.loc["noise", "dr_finetuned"] == pytest.approx(0.1)
    assert ch.loc["noise", "trained"] and not ch.loc["blur", "trained"]
    assert ch.loc["blur", "dr_change"] == pytest.approx(0.1)


def test_utility_change_is_clean_accuracy_in_points():
    out = pd.DataFrame({"dataset": "d", "task": "linear_probe",
                        "model": ["m"] * 4 + ["m-ft-paper-a1"] * 4,
                        "condition": ["clean", "clean", "clean", "noise@0.1"] * 2,
                        "correct": [1, 1, 0, 0, 1, 0, 0, 1]})
    u = compare.utility_change(RUNS, out, {("d", "m-ft-paper-a1"): 0.01}).iloc[0]
    assert u["clean_acc_base_%"] == pytest.approx(200 / 3) and u["clean_acc_finetuned_%"] == pytest.approx(100 / 3)
    assert u["clean_acc_change_pt"] == pytest.approx(-100 / 3) and u["drift_1_minus_cos"] == 0.01


def test_tradeoff_starts_at_the_base_model():
    ch = compare.robustness_change(RUNS, ["noise", "blur"], _rob())
    out = pd.DataFrame({"dataset": "d", "task": "linear_probe", "model": ["m", "m-ft-paper-a1"],
                        "condition": "clean", "correct": [1, 0]})
    curve = compare.tradeoff(RUNS, ch, compare.utility_change(RUNS, out, {}))
    assert curve["alpha"].tolist() == [0.0, 1.0]
    assert curve["dr_trained"].tolist() == pytest.approx([0.3, 0.1])
    assert curve["dr_held_out"].tolist() == pytest.approx([0.2, 0.3])
    assert curve["linear_probe_clean_%"].tolist() == [100.0, 0.0]


def test_embedding_drift_is_mean_one_minus_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[1.0, 1.0], [0.0, 3.0]])
    assert compare.embedding_drift(a, b) == pytest.approx((1 - np.cos(np.pi / 4)) / 2)
