"""The three robustness metrics: definitions, R_ed = sqrt(R_cs), and the paper's five properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrobust.metrics import (
    MetricInputError,
    cosine_metric,
    divergence_radius,
    euclidean_metric,
    robustness_metrics,
)

from meb_reference import meb_bruteforce

NAMES = ("cosine", "euclidean", "divergence_radius")

# Small sets in low dimension so that brute force stays cheap; a shared direction plus noise of
# random scale makes tight, embedding-like clusters as well as spread-out ones.
seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 6)
dims = st.integers(2, 5)


def _embedding_like(seed: int, k: int, d: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(d) + 10.0 ** rng.uniform(-3, 1) * rng.standard_normal((k, d))
    return torch.from_numpy(x)[None]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _rotation(d: int, seed: int) -> torch.Tensor:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return torch.from_numpy(q * np.sign(np.diag(r)))


def test_hand_computed_values():
    # e0 = x, e1 at 90 degrees, e2 at 180 degrees.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]], dtype=torch.float64)
    m = robustness_metrics(x)
    assert m["cosine"].item() == pytest.approx((0.5 + 1.0) / 2)
    assert m["euclidean"].item() == pytest.approx(math.sqrt((2 / 4 + 4 / 4) / 2))
    assert m["divergence_radius"].item() == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, k=sizes, d=dims)
def test_cosine_metric_matches_the_cosine_formula(seed, k, d):
    e = _embedding_like(seed, k, d)[0].numpy()
    cos = e[1:] @ e[0] / (np.linalg.norm(e[1:], axis=1) * np.linalg.norm(e[0]))
    expected = float(np.mean((1 - cos) / 2)) if k > 1 else 0.0
    assert cosine_metric(torch.from_numpy(e)[None]).item() == pytest.approx(expected, abs=1e-12)


def test_divergence_radius_is_the_meb_of_the_normalised_points():
    x = _embedding_like(0, 6, 4)
    expected = meb_bruteforce(_unit(x)[0].numpy())
    assert divergence_radius(x).item() == pytest.approx(expected, rel=1e-10)


def test_two_unit_vectors_give_sine_of_half_angle():
    t = 2.0
    x = torch.tensor([[[3.0, 0.0], [math.cos(t), math.sin(t)]]], dtype=torch.float64)
    assert divergence_radius(x).item() == pytest.approx(math.sin(t / 2), rel=1e-12)


def test_clean_only_gives_zero_for_every_metric():
    x = torch.randn(3, 1, 8)
    for name, value in robustness_metrics(x).items():
        assert torch.equal(value, torch.zeros(3)), name


@settings(max_examples=50, deadline=None)
@given(seed=seeds, k=sizes, d=dims)
def test_euclidean_is_sqrt_of_cosine_on_normalised_embeddings(seed, k, d):
    x = _embedding_like(seed, k, d)
    torch.testing.assert_close(euclidean_metric(x), cosine_metric(x).sqrt(), rtol=1e-9, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, k=sizes, d=dims)
def test_bounded_domain(seed, k, d):
    m = robustness_metrics(_embedding_like(seed, k, d))
    for name in NAMES:
        assert 0.0 <= m[name].item() <= 1.0 + 1e-12, name


def test_bounded_domain_reaches_one_when_the_origin_is_in_the_hull():
    x = torch.tensor([[[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]]], dtype=torch.float64)
    assert divergence_radius(x).item() == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, k=sizes, d=dims, extra=seeds)
def test_monotonicity_adding_a_level_never_lowers_divergence_radius(seed, k, d, extra):
    x = _embedding_like(seed, k, d)
    new = torch.from_numpy(np.random.default_rng(extra).standard_normal((1, 1, d)))
    grown = torch.cat([x, new], dim=1)
    assert divergence_radius(grown).item() >= divergence_radius(x).item() * (1 - 1e-12)


def test_averaging_metrics_fail_monotonicity():
    # A benign extra level (identical to clean) lowers both averages but not DR.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    grown = torch.cat([x, x[:, :1]], dim=1)
    assert cosine_metric(grown).item() < cosine_metric(x).item()
    assert euclidean_metric(grown).item() < euclidean_metric(x).item()
    assert divergence_radius(grown).item() == pytest.approx(divergence_radius(x).item(), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, k=sizes, d=dims)
def test_optimal_robustness_zero_exactly_when_all_coincide(seed, k, d):
    x = _embedding_like(seed, 1, d)
    same = x.repeat(1, k, 1)
    for name, value in robustness_metrics(same).items():
        assert value.item() == 0.0, name
    moved = torch.cat([same, x + 1e-3], dim=1)
    for name, value in robustness_metrics(moved).items():
        assert value.item() > 0.0, name


@settings(max_examples=50, deadline=None)
@given(seed=seeds, k=st.integers(2, 6), d=dims)
def test_worst_case_divergence_radius_is_at_least_half_the_largest_distance(seed, k, d):
    x = _embedding_like(seed, k, d)
    e = _unit(x)[0]
    diameter = torch.cdist(e, e).max().item()
    dr = divergence_radius(x).item()
    # Jung's theorem gives the matching upper bound diameter * sqrt(k / (2 (k + 1))).
    assert diameter / 2 * (1 - 1e-12) <= dr <= diameter * math.sqrt(k / (2 * (k + 1))) * (1 + 1e-12)


@pytest.mark.parametrize("n_benign", [1, 4, 16])
def test_worst_case_an_outlier_level_sets_dr_but_is_diluted_in_the_averages(n_benign):
    clean = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    benign = torch.tensor([1.0, 1e-3, 0.0], dtype=torch.float64).expand(n_benign, 3)
    outlier = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # 90 degrees away
    x = torch.cat([clean[None], benign, outlier[None]])[None]
    m = robustness_metrics(x)
    # DR stays near sin(45 deg) however many benign levels there are ...
    assert m["divergence_radius"].item() >= math.sin(math.pi / 4) * (1 - 1e-12)
    # ... while the averages shrink like 1 / (number of levels).
    assert m["cosine"].item() == pytest.approx(0.5 / (n_benign + 1), rel=1e-3)
    assert m["euclidean"].item() == pytest.approx(math.sqrt(0.5 / (n_benign + 1)), rel=1e-3)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, k=sizes, d=dims, rot=seeds)
def test_rotation_invariance(seed, k, d, rot):
    x = _embedding_like(seed, k, d)
    rotated = x @ _rotation(d, rot).T
    before, after = robustness_metrics(x), robustness_metrics(rotated)
    for name in NAMES:
        torch.testing.assert_close(after[name], before[name], rtol=1e-9, atol=1e-12)


def test_normalize_makes_metrics_scale_free_per_embedding():
    x = _embedding_like(3, 5, 4)
    scaled = x * torch.tensor([0.5, 2.0, 7.0, 1.0, 3.0], dtype=x.dtype)[None, :, None]
    for name in NAMES:
        torch.testing.assert_close(robustness_metrics(scaled)[name], robustness_metrics(x)[name])


def test_normalize_false_uses_raw_coordinates():
    x = torch.tensor([[[2.0, 0.0], [-2.0, 0.0]]], dtype=torch.float64)
    assert divergence_radius(x, normalize=False).item() == pytest.approx(2.0)
    assert euclidean_metric(x, normalize=False).item() == pytest.approx(2.0)


def test_float32_input_gives_float32_close_to_float64():
    x = _embedding_like(4, 6, 5)
    m64, m32 = robustness_metrics(x), robustness_metrics(x.float())
    for name in NAMES:
        assert m32[name].dtype == torch.float32
        torch.testing.assert_close(m32[name].double(), m64[name], rtol=1e-5, atol=1e-6)


def test_zero_embedding_raises_a_user_error():
    x = torch.ones(1, 3, 4)
    x[0, 1] = 0.0
    with pytest.raises(MetricInputError, match="zero norm"):
        robustness_metrics(x)


def test_nan_embedding_raises_a_user_error():
    x = torch.ones(1, 3, 4)
    x[0, 2, 1] = float("nan")
    with pytest.raises(MetricInputError, match="NaN"):
        cosine_metric(x)
