"""Prompt-ensemble class embeddings with a fake text encoder whose outputs are known."""

import numpy as np
import pytest
import torch

from embedrobust.downstream import class_text_embeddings
from embedrobust.errors import ConfigError


def fake_encoder(calls):
    def encode(prompts):
        calls.append(list(prompts))
        # deterministic, prompt-dependent, not unit norm: (length, count of 'a', 1 + index of class letter)
        return torch.tensor([[len(p), p.count("a"), 1.0 + ord(p.split()[-1][0]) % 7] for p in prompts])

    return encode


def test_ensemble_is_renormalised_mean_of_unit_prompt_embeddings():
    calls = []
    got = class_text_embeddings(fake_encoder(calls), ["cat", "dog"], ["a {}.", "photo of the {}", "{}"])
    for c, name in enumerate(["cat", "dog"]):
        prompts = [f"a {name}.", f"photo of the {name}", name]
        v = np.array([[len(p), p.count("a"), 1.0 + ord(p.split()[-1][0]) % 7] for p in prompts])
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        m = v.mean(axis=0)
        np.testing.assert_allclose(got[c].numpy(), m / np.linalg.norm(m), rtol=1e-6)
    assert got.shape == (2, 3) and got.dtype == torch.float32


def test_simple_templates_fill_a_photo_of_a():
    calls = []
    class_text_embeddings(fake_encoder(calls), ["cat"], "simple")
    assert calls == [["a photo of a cat."]]


def test_imagenet_templates_are_openais_80_prompts():
    calls = []
    class_text_embeddings(fake_encoder(calls), ["zebra"], "imagenet")
    assert len(calls[0]) == 80 and len(set(calls[0])) == 80
    assert all("zebra" in p for p in calls[0])
    assert "a bad photo of a zebra." in calls[0]


def test_template_without_placeholder_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\{\}"):
        class_text_embeddings(fake_encoder([]), ["cat"], ["a photo"])
