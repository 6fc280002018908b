"""Loss terms against direct NumPy / metric computations."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrobust.finetune import losses as L
from embedrobust.metrics import divergence_radius


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _rand(*shape, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape))


def test_cosine_distill_is_mean_one_minus_cosine():
    a, b = _rand(5, 7, seed=1), _rand(5, 7, seed=2)
    want = np.mean(1 - (_unit(a.numpy()) * _unit(b.numpy())).sum(-1))
    assert np.isclose(float(L.cosine_distill(a, b)), want, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6), st.integers(2, 5))
def test_meb_radius_equals_divergence_radius(seed, k, d):
    pts = _rand(3, k, d, seed=seed)
    got = L.meb_radius(pts).double()
    want = divergence_radius(pts.double())
    assert torch.allclose(got, want, atol=1e-9)


def test_meb_radius_gradient_matches_two_point_formula():
    # two unit vectors at angle t: DR = sin(t/2); d DR / d t = cos(t/2) / 2
    t = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    pts = torch.stack([torch.stack([torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)]),
                       torch.stack([torch.cos(t), torch.sin(t)])]).unsqueeze(0)
    r = L.meb_radius(pts)[0]
    (g,) = torch.autograd.grad(r, t)
    assert np.isclose(float(r.detach()), np.sin(0.4), atol=1e-6)
    assert np.isclose(float(g), np.cos(0.4) / 2, atol=1e-5)


def test_spread_max_and_mean_are_half_distances_to_clean():
    pts = _rand(4, 3, 6, seed=3)
    x = _unit(pts.numpy())
    d = np.linalg.norm(x[:, 1:] - x[:, :1], axis=-1) / 2
    assert np.allclose(L.spread(pts, "max").numpy(), d.max(1), atol=1e-6)
    assert np.allclose(L.spread(pts, "mean").numpy(), d.mean(1), atol=1e-6)


def test_deacl_loss_direct():
    s, t, adv = _rand(6, 5, seed=4), _rand(6, 5, seed=5), _rand(6, 5, seed=6)
    cos = lambda a, b: (_unit(a.numpy()) * _unit(b.numpy())).sum(-1)  # noqa: E731
    want = np.mean(-cos(s, t) - 2.0 * cos(adv, s))
    assert np.isclose(float(L.deacl_loss(s, t, adv, k=2.0)), want, atol=1e-6)


def test_alignment_averages_over_views_and_images():
    clean, views = _rand(4, 5, seed=7), _rand(3, 4, 5, seed=8)
    c, v = _unit(clean.numpy()), _unit(views.numpy())
    want = np.mean(1 - (v * c[None]).sum(-1))
    assert np.isclose(float(L.alignment(clean, views)), want, atol=1e-6)


def test_zero_shot_ce_direct():
    emb, text, y = _rand(5, 4, seed=9), _rand(3, 4, seed=10), torch.tensor([0, 2, 1, 1, 0])
    logits = 10.0 * _unit(emb.numpy()) @ _unit(text.numpy()).T
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    want = -np.mean(logp[np.arange(5), y.numpy()])
    assert np.isclose(float(L.zero_shot_ce(emb, text, y, logit_scale=10.0)), want, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3))
def test_subspace_distance_matches_principal_angles(seed, k):
    a, b = _rand(12, 6, seed=seed), _rand(12, 6, seed=seed + 1)

    def basis(x):
        z = _unit(x.numpy())
        z = z - z.mean(0)
        return np.linalg.svd(z, full_matrices=False)[2][:k].T

    # ||P_a - P_b||_F^2 = 2k - 2 ||U_a^T U_b||_F^2 = 2 * sum sin^2(principal angles)
    want = (k - np.linalg.norm(basis(a).T @ basis(b)) ** 2) / k
    assert np.isclose(float(L.subspace_distance(a, b, k)), want, atol=1e-6)
    assert float(L.subspace_distance(a, a, k)) < 1e-10


def test_subspace_distance_gradient_matches_finite_differences():
    a = _rand(8, 5, seed=11).requires_grad_(True)
    b = _rand(8, 5, seed=12)
    assert torch.autograd.gradcheck(lambda x: L.subspace_distance(x, b, 2), (a,), eps=1e-6, atol=1e-5)


def test_subspace_gradient_is_finite_for_repeated_eigenvalues():
    # rows +-e1, +-e2 (centred): eigenvalues of the kept block are equal; the projector's gradient must not blow up
    a = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]], dtype=torch.float64)
    a = (a + 0.1 * torch.tensor([0, 0, 1.0], dtype=torch.float64)).requires_grad_(True)
    b = _rand(4, 3, seed=13)
    L.subspace_distance(a, b, 2).backward()
    assert bool(torch.isfinite(a.grad).all())


def test_whitened_distill_is_the_spread_scaled_distance_of_unit_vectors():
    a, b, std = _rand(5, 7, seed=1), _rand(5, 7, seed=2), _rand(7, seed=3).abs() + 0.1
    want = np.mean(((_unit(a.numpy()) - _unit(b.numpy())) / std.numpy()) ** 2)
    assert np.isclose(float(L.whitened_distill(a, b, std)), want, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 16))
def test_whitened_distill_is_twice_cosine_distill_for_isotropic_spread(seed, d):
    a, b = _rand(4, d, seed=seed), _rand(4, d, seed=seed + 1)
    std = torch.full((d,), d ** -0.5, dtype=torch.float64)
    assert np.isclose(float(L.whitened_distill(a, b, std)), 2 * float(L.cosine_distill(a, b)), rtol=1e-5)
