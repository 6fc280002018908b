"""EmbedAttack on tiny random-init timm ViT and open_clip models."""

import pytest
import torch
import torch.nn.functional as F

from embedrobust.attack import AttackError, embed_attack, patch_tokens, pooled_features

from attack_helpers import corner_noise, images, in_ball

EPS = 8 / 255


def _distance(encoder, adv, x, distance, tokens):
    with torch.no_grad():
        if tokens == "pooled":
            a, c = pooled_features(encoder, adv)[:, None], pooled_features(encoder, x)[:, None]
        else:
            a, c = patch_tokens(encoder, adv)[0], patch_tokens(encoder, x)[0]
    d = (a - c).pow(2).sum(-1) if distance == "l2" else 1 - F.cosine_similarity(a, c, dim=-1)
    return d.mean(1)  # (N,)


@pytest.mark.parametrize("model", ["vit", "clip"])
@pytest.mark.parametrize("distance,tokens", [("l2", "pooled"), ("cosine", "pooled"), ("l2", "patch")])
def test_attack_beats_random_noise_of_the_same_norm(request, model, distance, tokens):
    enc = request.getfixturevalue(model)
    x = images(3, enc.input_size[0])
    adv = embed_attack(enc, x, EPS, steps=5, distance=distance, tokens=tokens,
                       generator=torch.Generator().manual_seed(0))
    noisy = _distance(enc, corner_noise(x, EPS), x, distance, tokens)
    assert in_ball(adv, x, EPS)
    assert bool((_distance(enc, adv, x, distance, tokens) > noisy).all())


def test_pooled_features_are_the_stored_embedding(vit):
    x = images(2)
    torch.testing.assert_close(pooled_features(vit, x), vit.encode_image(x))


def test_same_seed_gives_same_bytes(vit):
    x = images(2)
    run = lambda: embed_attack(vit, x, EPS, steps=2, generator=torch.Generator().manual_seed(5))  # noqa: E731
    assert run().numpy().tobytes() == run().numpy().tobytes()


def test_model_weights_get_no_gradients(vit):
    embed_attack(vit, images(1), EPS, steps=1)
    assert all(p.grad is None for p in vit.model.parameters())


@pytest.mark.parametrize("kwargs", [{"distance": "l1"}, {"tokens": "cls"}])
def test_unknown_options_are_user_errors(vit, kwargs):
    with pytest.raises(AttackError):
        embed_attack(vit, images(1), EPS, steps=1, **kwargs)
