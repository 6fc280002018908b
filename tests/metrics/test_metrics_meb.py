"""The batched MEB solver against independent references, on edge cases and its certificate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrobust.errors import EmbedRobustError
from embedrobust.metrics import MetricInputError, minimum_enclosing_ball

from meb_reference import circumball, meb_bruteforce, meb_slsqp


def _random_set(rng: np.random.Generator, k: int, d: int, kind: str) -> np.ndarray:
    x = rng.standard_normal((k, d))
    if kind == "sphere":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    elif kind == "cluster":  # embedding-like: tight spread around a far-away unit vector
        base = rng.standard_normal(d)
        x = base / np.linalg.norm(base) + 10.0 ** rng.uniform(-4, -1) * x
    elif kind == "duplicates":
        x[k // 2 :] = x[: k - k // 2]
    return x


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 7),
    d=st.integers(1, 5),
    kind=st.sampled_from(["gauss", "sphere", "cluster", "duplicates"]),
)
def test_radius_matches_bruteforce_enumeration(seed, k, d, kind):
    x = _random_set(np.random.default_rng(seed), k, d, kind)
    expected = meb_bruteforce(x)
    got = minimum_enclosing_ball(torch.from_numpy(x)[None]).radius.item()
    assert abs(got - expected) <= 1e-9 * max(expected, 1e-300) + 1e-15


def test_radius_matches_slsqp_on_many_sets():
    rng = np.random.default_rng(0)
    sets = np.stack([_random_set(rng, 12, 40, kind) for kind in ["gauss", "sphere", "cluster"] * 10])
    got = minimum_enclosing_ball(torch.from_numpy(sets)).radius.numpy()
    expected = np.array([meb_slsqp(s) for s in sets])
    # SLSQP's primal radius is an upper bound, so ours may only be smaller by rounding.
    assert np.max(np.abs(got - expected) / expected) < 1e-6


@pytest.mark.parametrize("kind", ["gauss", "sphere", "cluster"])
def test_certificate_holds(kind):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(np.stack([_random_set(rng, 20, 64, kind) for _ in range(50)]))
    res = minimum_enclosing_ball(x)
    far = torch.linalg.vector_norm(x - res.center[:, None], dim=-1).amax(-1)
    torch.testing.assert_close(far, res.radius, rtol=1e-9, atol=0)
    assert bool((res.weights >= 0).all())
    torch.testing.assert_close(res.weights.sum(-1), torch.ones(50, dtype=x.dtype))
    assert bool((res.gap <= 1e-10 * res.radius**2).all())
    torch.testing.assert_close(
        (res.weights[:, :, None] * x).sum(1), res.center, rtol=0, atol=1e-12
    )


def test_gap_brackets_true_radius_when_iterations_are_capped():
    rng = np.random.default_rng(2)
    sets = np.stack([_random_set(rng, 20, 30, "gauss") for _ in range(5)])
    res = minimum_enclosing_ball(torch.from_numpy(sets), max_iter=2)
    exact = minimum_enclosing_ball(torch.from_numpy(sets)).radius
    lower = (res.radius**2 - res.gap).sqrt()
    assert bool((lower <= exact * (1 + 1e-12)).all()) and bool((res.radius >= exact * (1 - 1e-12)).all())


def test_two_unit_vectors_give_sine_of_half_angle():
    t = torch.linspace(0.1, math.pi, 7, dtype=torch.float64)
    x = torch.stack([torch.stack([torch.ones_like(t), torch.zeros_like(t)], -1),
                     torch.stack([t.cos(), t.sin()], -1)], 1)
    torch.testing.assert_close(minimum_enclosing_ball(x).radius, (t / 2).sin(), rtol=1e-12, atol=0)


def test_single_point_has_zero_radius_and_itself_as_center():
    x = torch.tensor([[[0.3, -1.2, 2.0]]], dtype=torch.float64)
    res = minimum_enclosing_ball(x)
    assert res.radius.item() == 0.0 and torch.equal(res.center, x[:, 0])
    assert res.weights.tolist() == [[1.0]]


def test_identical_points_give_exactly_zero():
    x = torch.full((3, 6, 4), 0.7, dtype=torch.float32)
    assert torch.equal(minimum_enclosing_ball(x).radius, torch.zeros(3))


def test_collinear_points_give_half_the_extent():
    s = torch.tensor([0.0, 0.3, -2.0, 1.5, 0.9], dtype=torch.float64)
    direction = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64) / 3.0
    x = (s[:, None] * direction)[None]
    assert minimum_enclosing_ball(x).radius.item() == pytest.approx(1.75, rel=1e-12)


def test_cocircular_points_give_the_circle():
    # A regular 12-gon (many affinely dependent support points) plus its center.
    a = torch.arange(12, dtype=torch.float64) * (2 * math.pi / 12)
    x = torch.cat([torch.stack([a.cos(), a.sin()], -1), torch.zeros(1, 2, dtype=torch.float64)])[None]
    res = minimum_enclosing_ball(x)
    assert res.radius.item() == pytest.approx(1.0, rel=1e-12)
    assert torch.linalg.vector_norm(res.center).item() < 1e-12


def test_more_points_than_dimensions():
    x = np.random.default_rng(3).standard_normal((30, 2))
    got = minimum_enclosing_ball(torch.from_numpy(x)[None]).radius.item()
    assert got == pytest.approx(meb_bruteforce(x), rel=1e-10)


def test_near_duplicates_on_the_boundary():
    x = np.array([[1.0, 0.0], [1.0, 1e-13], [-1.0, 0.0], [0.0, 0.5]])
    _, expected = circumball(x[[0, 2]])
    got = minimum_enclosing_ball(torch.from_numpy(x)[None]).radius.item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(4)
    x = np.stack([_random_set(rng, 20, 128, kind) for kind in ["gauss", "sphere", "cluster"] * 4])
    r64 = minimum_enclosing_ball(torch.from_numpy(x)).radius
    r32 = minimum_enclosing_ball(torch.from_numpy(x).float()).radius
    assert r32.dtype == torch.float32
    torch.testing.assert_close(r32.double(), r64, rtol=1e-5, atol=0)


def test_half_precision_is_solved_in_float32():
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0)).half()
    res = minimum_enclosing_ball(x)
    assert res.radius.dtype == torch.float32
    torch.testing.assert_close(res.radius, minimum_enclosing_ball(x.float()).radius)


def test_results_are_deterministic():
    x = torch.randn(40, 20, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a, b = minimum_enclosing_ball(x), minimum_enclosing_ball(x.clone())
    for name in ("radius", "center", "weights", "gap"):
        assert torch.equal(getattr(a, name), getattr(b, name))


def test_a_set_alone_matches_it_inside_a_batch():
    x = torch.randn(16, 9, 12, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    alone = torch.cat([minimum_enclosing_ball(x[i : i + 1]).radius for i in range(16)])
    torch.testing.assert_close(minimum_enclosing_ball(x).radius, alone, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "points",
    [torch.zeros(4, 3), torch.zeros(2, 0, 3), torch.zeros(2, 3, 4, dtype=torch.int64), [[[0.0]]]],
    ids=["2d", "empty-set", "integer", "list"],
)
def test_bad_input_raises_a_user_error(points):
    with pytest.raises(MetricInputError) as info:
        minimum_enclosing_ball(points)
    assert isinstance(info.value, EmbedRobustError)


def test_non_finite_points_raise():
    x = torch.zeros(2, 3, 4)
    x[1, 2, 0] = float("nan")
    with pytest.raises(MetricInputError, match="NaN"):
        minimum_enclosing_ball(x)
