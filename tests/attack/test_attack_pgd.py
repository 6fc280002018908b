"""The generic PGD loop, on objectives whose maximiser is known in closed form."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrobust.attack import AttackError, pgd
from embedrobust.errors import EmbedRobustError


def _linear(w):
    return lambda x, i: (w * x).sum()


@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(1e-3, 0.5))
@settings(max_examples=25, deadline=None)
def test_adversarial_images_stay_in_the_eps_ball_and_in_0_1(seed, eps):
    g = torch.Generator().manual_seed(seed)
    x, w = torch.rand(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    adv = pgd(lambda z, i: (w * z).pow(3).sum(), x, eps, steps=3, step_size=eps / 2, generator=g)
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_linear_objective_reaches_the_box_corner():
    # max of <w, x'> over |x' - x| <= eps, x' in [0, 1] is clamp(x + eps * sign(w), 0, 1), computed independently
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    eps = 8 / 255
    adv = pgd(_linear(w), x, eps, steps=20, step_size=2 / 255, generator=g)
    expected = (x + eps * w.sign()).clamp(0, 1)
    expected = torch.minimum(torch.maximum(expected, (x - eps).clamp(min=0)), (x + eps).clamp(max=1))
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)


def test_same_seed_same_bytes_and_the_random_start_uses_the_generator():
    x, w = torch.rand(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    run = lambda s, steps: pgd(_linear(w), x, 0.1, steps=steps, step_size=1e-4,  # noqa: E731
                               generator=torch.Generator().manual_seed(s))
    assert run(3, 2).numpy().tobytes() == run(3, 2).numpy().tobytes()
    assert not torch.equal(run(3, 1), run(4, 1))


def test_step_schedule_index_runs_from_0_to_steps_minus_1():
    seen = []
    pgd(lambda x, i: seen.append(i) or x.sum(), torch.rand(1, 3, 2, 2), 0.1, steps=4, step_size=0.01)
    assert seen == [0, 1, 2, 3]


def test_zero_eps_returns_the_images_unchanged():
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(pgd(lambda z, i: z.sum(), x, 0.0), x)


def test_inference_tensors_are_accepted():
    with torch.inference_mode():
        x = torch.rand(1, 3, 4, 4)
    adv = pgd(lambda z, i: z.sum(), x, 0.1, steps=5, step_size=0.05)  # start >= x - 0.1: 4 steps reach x + 0.1
    assert torch.allclose(adv, (x + 0.1).clamp(max=1))


@pytest.mark.parametrize("kwargs", [{"eps": -0.1}, {"eps": 2.0}, {"eps": math.nan}, {"steps": -1},
                                    {"step_size": 0.0}])
def test_bad_budgets_are_user_errors(kwargs):
    args = {"eps": 0.1, "steps": 2, "step_size": 0.01, **kwargs}
    with pytest.raises(EmbedRobustError):
        pgd(lambda z, i: z.sum(), torch.rand(1, 3, 4, 4), **args)


def test_non_scalar_objective_is_an_error():
    with pytest.raises(AttackError, match="scalar"):
        pgd(lambda z, i: z, torch.rand(1, 3, 4, 4), 0.1, steps=1)
