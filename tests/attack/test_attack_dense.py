"""Linear dense heads on a frozen tiny CLIP, their metrics, and the task attacks (SegPGD, depth PGD, CE PGD)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import jaccard_score

from embedrobust.attack import (
    AttackError,
    dense_forward,
    depth_loss,
    depth_ramps,
    depthpgd,
    fit_depth_head,
    fit_seg_head,
    miou,
    pgd_classifier,
    pooled_features,
    predict,
    rmse,
    segpgd,
    shapes_segmentation,
)

from attack_helpers import corner_noise, in_ball

EPS = 8 / 255
N_CLASSES = 4


@pytest.fixture(scope="module")
def seg(clip):
    x, m = shapes_segmentation(48, size=64, n_classes=N_CLASSES, cell=16, generator=torch.Generator().manual_seed(0))
    head = fit_seg_head(clip, x[:32], m[:32], N_CLASSES, steps=60, lr=0.05, batch_size=32)
    return head, x[32:], m[32:], m[:32]


@pytest.fixture(scope="module")
def depth(clip):
    x, d = depth_ramps(48, size=64, generator=torch.Generator().manual_seed(1))
    head = fit_depth_head(clip, x[:32], d[:32], steps=60, lr=0.05, batch_size=32)
    return head, x[32:], d[32:], d[:32]


def test_seg_head_beats_the_constant_predictor(clip, seg):
    head, x, m, m_train = seg
    majority = int(torch.bincount(m_train.flatten()).argmax())
    assert miou(predict(clip, head, x), m, N_CLASSES) > miou(torch.full_like(m, majority), m, N_CLASSES) + 0.3


def test_depth_head_beats_the_constant_predictor(clip, depth):
    head, x, d, d_train = depth
    assert rmse(predict(clip, head, x), d) < 0.7 * rmse(torch.full_like(d, float(d_train.mean())), d)


def test_segpgd_raises_the_loss_above_random_noise(clip, seg):
    head, x, m, _ = seg
    x, m = x[:4], m[:4]
    fwd = dense_forward(clip, head)
    adv = segpgd(fwd, x, m, EPS, steps=4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ce = lambda z: F.cross_entropy(fwd(z), m, reduction="none").mean((1, 2))  # noqa: E731
        assert bool((ce(adv) > ce(corner_noise(x, EPS))).all())
    assert in_ball(adv, x, EPS)


def test_depthpgd_raises_the_loss_above_random_noise(clip, depth):
    head, x, d, _ = depth
    x, d = x[:4], d[:4]
    fwd = dense_forward(clip, head)
    adv = depthpgd(fwd, x, d, EPS, steps=4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert bool((depth_loss(fwd(adv), d) > depth_loss(fwd(corner_noise(x, EPS)), d)).all())
    assert in_ball(adv, x, EPS)


def test_pgd_classifier_raises_cross_entropy_above_random_noise(clip):
    g = torch.Generator().manual_seed(2)
    x, labels = torch.rand(4, 3, 64, 64, generator=g), torch.tensor([0, 1, 2, 0])
    w = torch.randn(clip.embed_dim, 3, generator=g)
    logits = lambda z: pooled_features(clip, z) @ w  # noqa: E731
    adv = pgd_classifier(logits, x, labels, EPS, steps=4, generator=g)
    with torch.no_grad():
        ce = lambda z: F.cross_entropy(logits(z), labels, reduction="none")  # noqa: E731
        assert bool((ce(adv) > ce(corner_noise(x, EPS))).all())
    assert in_ball(adv, x, EPS)


def test_task_attacks_are_deterministic_under_a_seed(clip, seg):
    head, x, m, _ = seg
    run = lambda: segpgd(dense_forward(clip, head), x[:2], m[:2], EPS, steps=2,  # noqa: E731
                         generator=torch.Generator().manual_seed(9))
    assert run().numpy().tobytes() == run().numpy().tobytes()


def test_miou_matches_sklearn():
    g = torch.Generator().manual_seed(3)
    p, t = torch.randint(0, 4, (2, 5, 5), generator=g), torch.randint(0, 4, (2, 5, 5), generator=g)
    t[0, 0] = 255
    keep = (t != 255).flatten().numpy()
    ref = jaccard_score(t.flatten().numpy()[keep], p.flatten().numpy()[keep], average="macro")
    assert miou(p, t, 4) == pytest.approx(ref)


def test_rmse_and_depth_losses_match_numpy():
    g = torch.Generator().manual_seed(4)
    p, t = torch.rand(2, 3, 3, generator=g) + 0.5, torch.rand(2, 3, 3, generator=g) + 0.5
    t[1, 0, 0] = 0  # invalid pixel
    pn, tn = p.numpy().astype(np.float64), t.numpy().astype(np.float64)
    valid = tn > 0
    assert rmse(p, t) == pytest.approx(np.sqrt(((pn - tn)[valid] ** 2).mean()))
    dl = np.where(valid, np.log(np.maximum(pn, 1e-3)) - np.log(np.where(valid, tn, 1.0)), 0.0)
    for i in range(2):
        v, di = valid[i], dl[i][valid[i]]
        assert float(depth_loss(p, t, "l1")[i]) == pytest.approx(np.abs(pn[i] - tn[i])[v].mean(), rel=1e-5)
        assert float(depth_loss(p, t, "silog")[i]) == pytest.approx((di**2).mean() - 0.85 * di.mean() ** 2, rel=1e-4)


def test_dense_inputs_must_be_at_the_model_input_size(clip, seg):
    with pytest.raises(AttackError, match="input size"):
        predict(clip, seg[0], torch.rand(1, 3, 32, 32))
