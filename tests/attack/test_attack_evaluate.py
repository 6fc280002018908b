"""Task-level robustness tables: dense heads under the grid and SegPGD / DepthPGD, a linear probe under PGD."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from embedrobust.attack import AttackError, evaluate_classifier_attack, evaluate_dense, miou, rmse
from embedrobust.attack.dense_eval import transform_target
from embedrobust.attack.synthetic import PALETTE, shapes_segmentation
from embedrobust.attack.tasks import SegCounts
from embedrobust.config import Condition
from embedrobust.data.dense import fetch_dense, load_dense

STRONG = 16 / 255
CONDITIONS = [("clean", math.nan), ("gaussian_noise", 0.1), ("rotate", 10.0), ("elastic_transform", 2.0)]
OPTIONS = {"lr": [0.01, 0.05], "train_steps": [20, 60], "steps": 4, "step_size": 4 / 255}


def _data(tmp_path_factory, source):
    out = tmp_path_factory.mktemp(source) / "ds"
    fetch_dense("d", {"source": source, "n": 48, "image_size": 64}, out, 0)
    return {s: load_dense(out, s, 64) for s in ("train", "val", "test")}


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    return _data(tmp_path_factory, "synthetic-shapes")


@pytest.fixture(scope="module")
def depth_data(tmp_path_factory):
    return _data(tmp_path_factory, "synthetic-depth")


@pytest.fixture(scope="module")
def seg_table(clip, seg_data):
    torch.set_num_threads(1)
    return evaluate_dense(clip, seg_data, "segmentation", CONDITIONS, {"segpgd": [0.0, STRONG]}, OPTIONS, seed=0)


@pytest.fixture(scope="module")
def depth_table(clip, depth_data):
    torch.set_num_threads(1)
    return evaluate_dense(clip, depth_data, "depth", CONDITIONS, {"depthpgd": [0.0, STRONG]}, OPTIONS, seed=0)


def test_dense_tables_have_one_row_per_condition_then_per_attack_level(seg_table, depth_table):
    for table, attack, metric in ((seg_table, "segpgd", "miou"), (depth_table, "depthpgd", "rmse")):
        assert table["condition"].tolist() == ["clean", "gaussian_noise@0.1", "rotate@10", "elastic_transform@2",
                                               f"{attack}@0", f"{attack}@{STRONG:g}"]
        assert table["kind"].tolist() == ["clean", "perturbation", "perturbation", "perturbation", "attack", "attack"]
        assert set(table["metric"]) == {metric} and (table["n_images"] == 12).all()
        assert table["target_aligned"].tolist() == [True, True, True, False, True, True]
        assert math.isnan(table["value"].iloc[0]) and table["value"].iloc[-1] == pytest.approx(STRONG)
        assert table["metric_value"].notna().all()
        assert sum(s["selected"] for s in table.attrs["selection"]) == 1
        assert len(table.attrs["selection"]) == 4  # 2 lr x 2 checkpoints, all scored on val


def test_seg_head_beats_the_constant_predictor_and_the_attack_hurts(seg_table, seg_data):
    _, m_test, _ = seg_data["test"]
    majority = int(torch.bincount(seg_data["train"][1].flatten()).argmax())
    constant = miou(torch.full_like(m_test, majority), m_test, 4)
    clean = seg_table["metric_value"].iloc[0]
    assert clean > constant + 0.3
    attack = seg_table.set_index("condition")["metric_value"]
    assert attack["segpgd@0"] == clean  # eps 0 is the clean images
    assert attack[f"segpgd@{STRONG:g}"] < clean - 0.1


def test_depth_head_beats_the_constant_predictor_and_the_attack_hurts(depth_table, depth_data):
    d_test = depth_data["test"][1]
    constant = rmse(torch.full_like(d_test, float(depth_data["train"][1].mean())), d_test)
    clean = depth_table["metric_value"].iloc[0]
    assert clean < 0.8 * constant
    attack = depth_table.set_index("condition")["metric_value"]
    assert attack["depthpgd@0"] == clean
    assert attack[f"depthpgd@{STRONG:g}"] > clean


def test_dense_evaluation_is_deterministic_under_a_seed(clip, seg_data, seg_table):
    again = evaluate_dense(clip, seg_data, "segmentation", CONDITIONS, {"segpgd": [0.0, STRONG]}, OPTIONS, seed=0)
    pd.testing.assert_frame_equal(again, seg_table, check_exact=True)


def test_head_selection_never_sees_the_test_split(clip, seg_data, seg_table):
    x, m, meta = seg_data["test"]
    g = torch.Generator().manual_seed(5)
    scrambled = {**seg_data, "test": (x, m[torch.randperm(len(m), generator=g)].flip(-1), meta)}
    table = evaluate_dense(clip, scrambled, "segmentation", [("clean", math.nan)], {}, OPTIONS, seed=0)
    assert table.attrs["selection"] == seg_table.attrs["selection"]
    assert table["metric_value"].iloc[0] != seg_table["metric_value"].iloc[0]


@pytest.mark.parametrize("cond", [Condition("rotate", 20.0), Condition("crop_resize", 0.6)])
def test_geometric_families_move_the_targets_with_the_pixels(cond):
    from embedrobust.perturb import get_perturbation

    x, m = shapes_segmentation(4, size=64, n_classes=4, cell=16, noise=0.0, generator=torch.Generator().manual_seed(1))
    out = get_perturbation(cond.family)(x, cond.value)
    colour_class = ((out.permute(0, 2, 3, 1)[..., None, :] - PALETTE[:4]) ** 2).sum(-1).argmin(-1)
    moved, aligned = transform_target(cond, m, "segmentation", 255)
    valid = moved != 255
    assert aligned and bool(valid.any())
    assert (colour_class[valid] == moved[valid]).float().mean() > 0.95
    assert (colour_class == m).float().mean() < (colour_class[valid] == moved[valid]).float().mean() - 0.02


def test_segmentation_counts_over_batches_equal_miou_over_the_set():
    g = torch.Generator().manual_seed(0)
    p, t = torch.randint(0, 5, (6, 8, 8), generator=g), torch.randint(0, 5, (6, 8, 8), generator=g)
    t[0, :2] = 255
    acc = SegCounts(5, 255)
    for b in (slice(0, 4), slice(4, 6)):
        acc.add(p[b], t[b])
    assert acc.value() == pytest.approx(miou(p, t, 5))


def test_dense_misuse_is_an_attack_error(clip, seg_data):
    with pytest.raises(AttackError, match="segpgd"):
        evaluate_dense(clip, seg_data, "segmentation", [], {"depthpgd": [0.1]}, OPTIONS)
    with pytest.raises(AttackError, match="unknown options"):
        evaluate_dense(clip, seg_data, "segmentation", [], {}, {"epochs": 3})
    no_val = {**seg_data, "val": (seg_data["val"][0][:0], seg_data["val"][1][:0])}
    with pytest.raises(AttackError, match="val split"):
        evaluate_dense(clip, no_val, "segmentation", [], {}, OPTIONS)


# ---------------------------------------------------------------------------------------------------- classifier


def _classification(n=60, seed=0, shift=0.06):
    """Three classes told apart by a faint colour tint under noise (smaller ``shift``: harder)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    tint = 0.5 + shift * torch.eye(3)
    x = (tint[labels][:, :, None, None] + 0.2 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    split = np.array(["train"] * 30 + ["val"] * 12 + ["test"] * 18)
    return x, labels, split


CLS_OPTIONS = {"C": [0.01, 1.0, 100.0], "steps": 5, "step_size": 4 / 255}
CLS_EPS = [0.0, 2 / 255, 32 / 255]


@pytest.fixture(scope="module")
def cls_table(clip):
    torch.set_num_threads(1)
    x, y, split = _classification()
    return evaluate_classifier_attack(clip, x, y, split, CLS_EPS, CLS_OPTIONS, seed=0)


def test_classifier_rows_per_eps_and_attack_accuracy_at_most_clean(cls_table):
    assert cls_table["condition"].tolist() == ["clean", "pgd@0", f"pgd@{2 / 255:g}", f"pgd@{32 / 255:g}"]
    acc = cls_table["metric_value"].tolist()
    assert acc[0] > 0.5 and acc[1] == acc[0]
    assert acc[2] <= acc[0] and acc[3] < acc[0]
    assert (cls_table["metric"] == "accuracy").all() and (cls_table["n_images"] == 18).all()
    assert cls_table["C"].nunique() == 1 and cls_table["C"].iloc[0] in CLS_OPTIONS["C"]


def test_probe_c_is_chosen_on_val_only(clip):
    x, y, split = _classification(shift=0.03)  # hard enough that the candidates differ on val
    reference = evaluate_classifier_attack(clip, x, y, split, [], CLS_OPTIONS, seed=0)
    test = np.flatnonzero(split == "test")
    y2, x2 = y.clone(), x.clone()
    y2[test] = y[test][torch.randperm(len(test), generator=torch.Generator().manual_seed(1))]
    x2[test] = torch.rand(len(test), 3, 32, 32, generator=torch.Generator().manual_seed(2))
    table = evaluate_classifier_attack(clip, x2, y2, split, [], CLS_OPTIONS, seed=0)
    assert table.attrs["selection"] == reference.attrs["selection"]
    assert table["C"].iloc[0] == reference["C"].iloc[0]
    assert len(set(reference.attrs["selection"].values())) > 1  # the candidates do differ on val


def test_classifier_attack_is_deterministic_and_uses_the_downstream_probe_without_val(clip, cls_table):
    x, y, split = _classification()
    again = evaluate_classifier_attack(clip, x, y, split, CLS_EPS, CLS_OPTIONS, seed=0)
    pd.testing.assert_frame_equal(again, cls_table, check_exact=True)
    no_val = np.where(split == "val", "train", split)
    carved = evaluate_classifier_attack(clip, x, y, no_val, [], CLS_OPTIONS, seed=0)
    assert set(carved.attrs["selection"]) == set(CLS_OPTIONS["C"])
    # the same probe as the downstream stage's on the same embeddings: same C, same clean test accuracy
    from embedrobust.attack.features import pooled_features
    from embedrobust.downstream.classifiers import LinearProbe

    with torch.no_grad():
        emb = pooled_features(clip, x).double().numpy()
    train, test = no_val == "train", no_val == "test"
    probe = LinearProbe(emb[train], y.numpy()[train], 3, CLS_OPTIONS["C"], 0.2, 1000, 0)
    assert carved["C"].iloc[0] == probe.C
    assert carved["metric_value"].iloc[0] == np.mean(probe.scores(emb[test])[0].argmax(1) == y.numpy()[test])
    with pytest.raises(AttackError, match="split"):
        evaluate_classifier_attack(clip, x, y, np.where(split == "val", "dev", split), [], CLS_OPTIONS)


def test_embed_attack_in_a_dense_grid_moves_the_patch_tokens(clip, seg_data):
    cond = [("embed_attack", STRONG)]
    small = {**OPTIONS, "lr": [0.05], "train_steps": [20]}

    def scores(tokens):
        opts = {"embed_attack": {"steps": 2, **tokens}}
        return evaluate_dense(clip, seg_data, "segmentation", cond, {}, small, seed=0,
                              family_options=opts)["metric_value"].tolist()

    default, patch, pooled = scores({}), scores({"tokens": "patch"}), scores({"tokens": "pooled"})
    assert default == patch and patch[1] != pooled[1]
