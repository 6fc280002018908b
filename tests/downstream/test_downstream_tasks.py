"""Zero-shot, kNN and linear probe on hand-built stores whose right answers are known in closed form."""

import numpy as np
import pytest

from embedrobust.downstream import evaluate_store
from embedrobust.errors import DataError, UnknownNameError


def _rows(out, task, condition):
    return out[(out["task"] == task) & (out["condition"] == condition)].reset_index(drop=True)


def test_zero_shot_top1_and_p_true_match_softmax_of_scaled_cosines(store_factory):
    text = np.eye(3)
    clean = [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]  # labels 0, 1: both right
    pert = [[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]]  # first now closer to class 1
    ds = store_factory([clean, pert], [0, 1], ["test", "test"], [("clean", np.nan), ("blur", 1.0)], text)
    out = evaluate_store(ds, {"tasks": ["zero_shot"]}, seed=0)

    def softmax_true(v, y):
        cos = np.asarray(v) / np.linalg.norm(v)
        e = np.exp(100 * cos)
        return e[y] / e.sum()

    c, p = _rows(out, "zero_shot", "clean"), _rows(out, "zero_shot", "blur@1")
    assert c["pred"].tolist() == [0, 1] and c["correct"].tolist() == [True, True]
    assert p["pred"].tolist() == [1, 1] and p["correct"].tolist() == [False, True]
    np.testing.assert_allclose(c["p_true"], [softmax_true(clean[0], 0), softmax_true(clean[1], 1)], rtol=1e-6)
    np.testing.assert_allclose(p["p_true"][0], softmax_true(pert[0], 0), rtol=1e-6)


def test_zero_shot_top5_misses_a_class_ranked_sixth(store_factory):
    ds = store_factory(
        [[[0.0, 5, 4, 3, 2, 1], [1.0, 5, 4, 3, 2, 0]]], [0, 0], ["test", "test"], [("clean", np.nan)], np.eye(6)
    )
    out = evaluate_store(ds, {"tasks": ["zero_shot"]}, seed=0)
    assert out["correct_top5"].tolist() == [False, True]
    assert out["correct"].tolist() == [False, False]


def test_zero_shot_is_skipped_without_text_embedding(store_factory):
    emb = [[[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]]]
    ds = store_factory(emb, [0, 1, 0], ["train", "train", "test"], [("clean", np.nan)])
    out = evaluate_store(ds, {"tasks": ["knn", "zero_shot"], "knn": {"k": 1}}, seed=0)
    assert set(out["task"]) == {"knn"}


def test_knn_majority_vote_and_vote_fraction(store_factory):
    # cosine to (1, 1): (1, .8) 0.994, (.6, 1) 0.970, (1, .5) 0.949, (.1, 1) 0.774, (0, 1) 0.707 -> 2 of 3 class 0;
    # cosine to (.2, 1): the three class-1 points are nearest -> all 3 votes class 1
    pts = [[1, 0.8], [1, 0.5], [0.6, 1], [0, 1], [0.1, 1], [1, 1], [0.2, 1]]
    ds = store_factory([pts], [0, 0, 1, 1, 1, 0, 1], ["train"] * 5 + ["test"] * 2, [("clean", np.nan)])
    out = evaluate_store(ds, {"tasks": ["knn"], "knn": {"k": 3}}, seed=0)
    assert out["pred"].tolist() == [0, 1]
    np.testing.assert_allclose(out["p_true"], [2 / 3, 1.0])


def test_knn_vote_tie_goes_to_larger_summed_similarity_then_lowest_label(store_factory):
    # k = 2, one neighbour per class: the more similar one wins; at equal similarity the lower label wins
    pts = [[1, 0], [0, 1], [2, 1], [1, 1]]
    ds = store_factory([pts], [1, 0, 0, 1], ["train", "train", "test", "test"], [("clean", np.nan)])
    out = evaluate_store(ds, {"tasks": ["knn"], "knn": {"k": 2}}, seed=0)
    assert out["pred"].tolist() == [1, 0]
    np.testing.assert_allclose(out["p_true"], [0.5, 0.5])


def test_knn_equal_similarity_at_the_kth_neighbour_takes_the_lowest_train_index(store_factory):
    pts = [[1, 0], [1, 0], [1, 0.1]]
    ds = store_factory([pts], [1, 0, 0], ["train", "train", "test"], [("clean", np.nan)])
    out = evaluate_store(ds, {"tasks": ["knn"], "knn": {"k": 1}}, seed=0)
    assert out["pred"].tolist() == [1]


def test_linear_probe_separable_classes_flip_under_a_swap_perturbation(store_factory):
    rng = np.random.default_rng(0)
    protos = np.eye(3) * 5
    labels = np.array([0, 1, 2] * 8)
    clean = protos[labels] + 0.1 * rng.normal(size=(24, 3))
    swapped = protos[(labels + 1) % 3] + 0.1 * rng.normal(size=(24, 3))  # every image moved to the next class
    split = ["train"] * 15 + ["test"] * 9
    ds = store_factory([clean, swapped], labels, split, [("clean", np.nan), ("swap", 1.0)])
    out = evaluate_store(ds, {"tasks": ["linear_probe"], "linear_probe": {"C": [0.1, 10.0]}}, seed=3)
    c, s = _rows(out, "linear_probe", "clean"), _rows(out, "linear_probe", "swap@1")
    assert c["correct"].all()
    assert s["pred"].tolist() == ((labels[15:] + 1) % 3).tolist()
    assert (c["p_true"] > 1 / 3).all() and (s["p_true"] < 1 / 3).all()


def test_linear_probe_matches_sklearn_on_normalised_clean_train(store_factory):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    emb = rng.normal(size=(2, 30, 4))
    labels = rng.integers(0, 3, 30)
    split = ["train"] * 20 + ["test"] * 10
    ds = store_factory(emb, labels, split, [("clean", np.nan), ("noise", 0.5)])
    out = evaluate_store(ds, {"tasks": ["linear_probe"], "linear_probe": {"C": [1.0]}}, seed=0)
    unit = emb.astype(np.float32).astype(np.float64)
    unit /= np.linalg.norm(unit, axis=-1, keepdims=True)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(unit[0, :20], labels[:20])
    got = _rows(out, "linear_probe", "noise@0.5")
    assert got["pred"].tolist() == ref.predict(unit[1, 20:]).tolist()
    np.testing.assert_allclose(got["p_true"], ref.predict_proba(unit[1, 20:])[np.arange(10), labels[20:]], rtol=1e-6)


def test_evaluate_store_is_deterministic_and_shaped(store_factory):
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(3, 40, 5))
    labels = np.arange(40) % 4
    conds = [("clean", np.nan), ("jpeg", 50.0), ("jpeg", 10.0)]
    ds = store_factory(emb, labels, ["train"] * 30 + ["test"] * 10, conds, text=rng.normal(size=(4, 5)))
    a = evaluate_store(ds, {}, seed=7)
    b = evaluate_store(ds, {}, seed=7)
    assert len(a) == 3 * 3 * 10
    assert a["task"].unique().tolist() == ["linear_probe", "knn", "zero_shot"]
    assert a.equals(b)


def test_unknown_task_is_a_user_error(store_factory):
    ds = store_factory([[[1.0, 0.0], [0.0, 1.0]]], [0, 1], ["train", "test"], [("clean", np.nan)])
    with pytest.raises(UnknownNameError, match="knn"):
        evaluate_store(ds, {"tasks": ["kNN"]}, seed=0)


def test_probe_without_train_split_is_a_user_error(store_factory):
    ds = store_factory([[[1.0, 0.0], [0.0, 1.0]]], [0, 1], ["test", "test"], [("clean", np.nan)])
    with pytest.raises(DataError, match="train"):
        evaluate_store(ds, {"tasks": ["linear_probe"]}, seed=0)
