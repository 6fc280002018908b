"""Text robustness metrics: the exact MEB of the class embeddings, checked against an independent solver."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from embedrobust.config import CLEAN, Condition
from embedrobust.textperturb.run import robustness_rows

_spec = importlib.util.spec_from_file_location(
    "meb_reference", Path(__file__).resolve().parents[1] / "metrics" / "meb_reference.py")
meb_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(meb_reference)


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def hand_built():
    """Two classes in 4 dimensions, clean and two levels of keyboard: ensemble and prompt embeddings."""
    rng = np.random.default_rng(0)
    conds = [CLEAN, Condition("keyboard", 0.1), Condition("keyboard", 0.3)]
    ens = _unit([[[1, 0, 0, 0], [0, 1, 0, 0]],                      # clean
                 [[np.cos(0.4), np.sin(0.4), 0, 0], [0, 1, 0.2, 0]],  # level 0.1
                 [[np.cos(0.9), 0, np.sin(0.9), 0], [0.3, 1, 0, 0.5]]]).astype(np.float32)
    raw = [rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in conds]
    prompts = [[[f"p{k}{c}{t}" for t in range(3)] for c in range(2)] for k in range(3)]
    prompts[1][0] = prompts[0][0]  # class 0 at level 0.1: the text did not change
    return conds, prompts, raw, ens


def test_text_dr_is_the_exact_meb_of_clean_and_every_level(hand_built):
    conds, prompts, raw, ens = hand_built
    rob = robustness_rows(conds, prompts, raw, ens, ["a", "b"], {"keyboard": {"levels": [0.1, 0.3]}})
    overall = rob[rob["level"].isna()].sort_values("class")
    for c in range(2):
        expected = meb_reference.meb_bruteforce(_unit(ens[:, c].astype(np.float64)))
        assert overall["divergence_radius"].iloc[c] == pytest.approx(expected, abs=1e-6)
        per_prompt = np.mean([meb_reference.meb_bruteforce(_unit(np.stack([r[c, t] for r in raw]).astype(np.float64)))
                              for t in range(3)])
        assert overall["prompt_divergence_radius"].iloc[c] == pytest.approx(per_prompt, abs=1e-6)
    assert overall["n_points"].tolist() == [3, 3]
    assert overall["changed_prompts"].tolist() == [0.5, 1.0]


def test_a_level_row_is_the_two_point_dr_sin_half_angle(hand_built):
    conds, prompts, raw, ens = hand_built
    rob = robustness_rows(conds, prompts, raw, ens, ["a", "b"], {"keyboard": {"levels": [0.1, 0.3]}})
    row = rob[(rob["condition"] == "keyboard@0.1") & (rob["class"] == 0)].iloc[0]
    assert row["divergence_radius"] == pytest.approx(np.sin(0.2), abs=1e-6)
    assert row["cosine"] == pytest.approx((1 - np.cos(0.4)) / 2, abs=1e-6)
    assert row["n_points"] == 2 and row["changed_prompts"] == 0.0
