"""The embed_attack perturbation family through the embed loop.

The family module is imported inside the tests, not at collection: registering a family that needs an encoder
before tests/perturb/test_properties.py collects its list of families would add it to their parametrisations.
"""

import math

import pytest
import torch

from embedrobust.config import CLEAN, Condition
from embedrobust.embed.run import embed_conditions
from embedrobust.errors import EmbedRobustError
from embedrobust.perturb import get_perturbation

from attack_helpers import images

NAME = "embed_attack"


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_family_is_registered_with_eps_levels_in_pixel_units():
    from embedrobust.attack.family import embed_attack_family

    p = get_perturbation(NAME)
    assert p.fn.resolve() is embed_attack_family and p.needs_encoder and p.identity == 0.0
    assert p.severities[3] == pytest.approx(8 / 255) and p.bounds == (0.0, 1.0)


def test_embed_conditions_attacks_through_the_encoder(vit):
    x = images(3)
    conds = [CLEAN, Condition(NAME, 0.0), Condition(NAME, 8 / 255), Condition("gaussian_noise", 8 / 255)]
    out = embed_conditions(vit, x, conds, [None, *_gens(3)])
    clean = vit.encode_image(x)
    torch.testing.assert_close(out[0], clean)
    assert torch.equal(out[1], out[0])  # eps = 0 is the identity
    shift = (out - clean).norm(dim=-1)  # (conditions, images)
    assert bool((shift[2] > shift[3]).all())  # worst case beats Gaussian noise of sigma = eps


def test_embed_conditions_is_deterministic_under_a_seed(vit):
    x, conds = images(2), [Condition(NAME, 4 / 255)]
    a = embed_conditions(vit, x, conds, _gens(1, 7))
    b = embed_conditions(vit, x, conds, _gens(1, 7))
    assert a.numpy().tobytes() == b.numpy().tobytes()


def test_calling_the_family_without_an_encoder_is_a_user_error():
    with pytest.raises(EmbedRobustError, match="encoder"):
        get_perturbation(NAME)(images(1), 8 / 255)


@pytest.mark.parametrize("eps", [-0.01, 1.5, math.inf])
def test_eps_outside_0_1_is_a_user_error(eps):
    with pytest.raises(EmbedRobustError, match="outside"):
        get_perturbation(NAME)(images(1), eps)


def test_family_options_from_params_reach_the_attack(vit):
    from embedrobust.attack import embed_attack
    from embedrobust.embed.run import bind_perturbations

    x = images(2)
    (fn,) = bind_perturbations([Condition(NAME, 8 / 255)], vit, {NAME: {"steps": 1, "step_size": 1 / 255}})
    got = fn(x, 8 / 255, torch.Generator().manual_seed(3))
    want = embed_attack(vit, x, eps=8 / 255, steps=1, step_size=1 / 255, distance="l2",
                        generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, want)
    default = bind_perturbations([Condition(NAME, 8 / 255)], vit)[0](x, 8 / 255, torch.Generator().manual_seed(3))
    assert not torch.equal(got, default)  # 20 steps of eps / 4 by default


def test_tokens_option_attacks_the_patch_tokens(vit):
    from embedrobust.attack import embed_attack
    from embedrobust.embed.run import bind_perturbations

    x = images(2)
    (fn,) = bind_perturbations([Condition(NAME, 8 / 255)], vit, {NAME: {"steps": 1, "tokens": "patch"}})
    got = fn(x, 8 / 255, torch.Generator().manual_seed(3))
    want = embed_attack(vit, x, eps=8 / 255, steps=1, step_size=2 / 255, distance="l2", tokens="patch",
                        generator=torch.Generator().manual_seed(3))
    pooled = embed_attack(vit, x, eps=8 / 255, steps=1, step_size=2 / 255, distance="l2", tokens="pooled",
                          generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, want) and not torch.equal(got, pooled)
