"""Encoders from specs: random init, shapes, preprocessing against the libraries' own PIL transforms, names."""

import json

import numpy as np
import open_clip
import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from timm.data import create_transform, resolve_data_config

from embedrobust.errors import ConfigError, UnknownNameError
from embedrobust.models import TINY_CLIP, Encoder, create_encoder, list_models

CLIP = {"library": "open_clip", "arch": TINY_CLIP, "pretrained": "none"}
VIT = {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": False, "image_size": 32}


@pytest.fixture(scope="module")
def clip():
    return create_encoder(CLIP)


@pytest.fixture(scope="module")
def vit():
    return create_encoder(VIT)


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(3, h, w) uint8 with low-frequency content (PIL's uint8 rounding is then the only difference)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 6, 7, generator=g)
    return (torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear")[0] * 255).round().to(torch.uint8)


def to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).numpy())


def pixel_diff(enc: Encoder, a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of two normalised model inputs, in [0, 1] pixel units."""
    return float(((a - b) * torch.tensor(enc.std).view(3, 1, 1)).abs().max())


def weights(enc: Encoder) -> dict:
    return enc.model.state_dict()


@pytest.mark.parametrize("spec", [CLIP, VIT], ids=["open_clip", "timm"])
def test_random_init_is_deterministic_and_not_pretrained(spec):
    a, b = create_encoder(spec), create_encoder(spec)
    assert not a.pretrained and not a.describe()["pretrained"]
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_random_init_depends_on_seed(vit):
    other = create_encoder({**VIT, "seed": 1})
    assert not torch.equal(weights(vit)["patch_embed.proj.weight"], weights(other)["patch_embed.proj.weight"])


def test_create_leaves_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_encoder(VIT)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", ["clip", "vit"])
def test_encode_image_shape_dtype(name, request):
    enc = request.getfixturevalue(name)
    out = enc.encode_image(torch.rand(5, 3, 40, 52))
    assert out.shape == (5, enc.embed_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_encode_image_is_visual_tower_of_preprocessed(clip):
    x = torch.rand(3, 3, 70, 64)
    with torch.no_grad():
        expected = clip.model.encode_image(clip.preprocess(x))
    torch.testing.assert_close(clip.encode_image(x), expected)


def test_timm_embedding_is_pooled_pre_logits(vit):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        feats = vit.model.forward_features(vit.preprocess(x))
        expected = vit.model.forward_head(feats, pre_logits=True)
    assert vit.embed_dim == 192
    torch.testing.assert_close(vit.encode_image(x), expected)


def test_encode_image_accepts_uint8(vit):
    img = smooth_image(30, 30)[None]
    torch.testing.assert_close(vit.encode_image(img), vit.encode_image(img.float() / 255))


def test_encode_text_matches_text_tower(clip):
    texts = ["a photo of a cat", "a photo of a dog", "x"]
    out = clip.encode_text(texts)
    with torch.no_grad():
        expected = clip.model.encode_text(open_clip.get_tokenizer(TINY_CLIP)(texts))
    assert clip.has_text and out.shape == (3, clip.embed_dim) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out[0], out[1])


def test_timm_model_has_no_text(vit):
    assert not vit.has_text
    with pytest.raises(TypeError, match="no text tower"):
        vit.encode_text(["a cat"])


@pytest.mark.parametrize("hw", [(90, 117), (64, 64), (50, 40), (20, 30)], ids=str)
def test_preprocess_matches_open_clip_transform(clip, hw):
    img = smooth_image(*hw)
    _, _, pil_transform = open_clip.create_model_and_transforms(TINY_CLIP)
    ref = pil_transform(to_pil(img))
    mine = clip.preprocess(img[None].float() / 255)[0]
    assert mine.shape == ref.shape == (3, 64, 64)
    assert pixel_diff(clip, mine, ref) <= 2 / 255


@pytest.mark.parametrize("hw", [(90, 117), (36, 36), (25, 60)], ids=str)
def test_preprocess_matches_timm_transform(vit, hw):
    img = smooth_image(*hw)
    cfg = resolve_data_config({}, model=vit.model)
    cfg["input_size"] = (3, 32, 32)  # the img_size override, which timm's pretrained_cfg does not record
    ref = create_transform(**cfg)(to_pil(img))
    mine = vit.preprocess(img[None].float() / 255)[0]
    assert mine.shape == ref.shape == (3, 32, 32)
    assert vit.resize_size == (35, 35)  # floor(32 / crop_pct 0.9), as timm scales before its centre crop
    assert pixel_diff(vit, mine, ref) <= 2 / 255


def bare_encoder(mode: str, interpolation: str, size=(24, 24), resize=(24, 24)) -> Encoder:
    return Encoder(spec={}, model=torch.nn.Linear(1, 1), embed_dim=1, input_size=size, resize_size=resize,
                   resize_mode=mode, interpolation=interpolation, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4),
                   pretrained=False, image_fn=lambda m, x: x)


@pytest.mark.parametrize("mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_preprocess_modes_match_open_clip_image_transform(mode, interpolation):
    enc = bare_encoder(mode, interpolation)
    ref_transform = open_clip.image_transform(24, is_train=False, mean=enc.mean, std=enc.std, resize_mode=mode,
                                              interpolation=interpolation)
    img = smooth_image(45, 70, seed=3)
    ref = ref_transform(to_pil(img))
    assert pixel_diff(enc, enc.preprocess(img[None].float() / 255)[0], ref) <= 2 / 255


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80), n=st.integers(1, 3),
       mode=st.sampled_from(["shortest", "squash", "longest"]))
def test_preprocess_output_shape_for_any_input_size(h, w, n, mode):
    enc = bare_encoder(mode, "bilinear", size=(16, 20), resize=(18, 22))
    out = enc.preprocess(torch.rand(n, 3, h, w))
    assert out.shape == (n, 3, 16, 20) and out.dtype == torch.float32


def test_preprocess_is_batched_elementwise(vit):
    x = torch.rand(4, 3, 50, 45)
    batched = vit.preprocess(x)
    single = torch.cat([vit.preprocess(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single)


def test_describe_is_json(clip):
    info = json.loads(json.dumps(clip.describe()))
    assert info["library"] == "open_clip" and info["arch"] == TINY_CLIP
    assert info["input_size"] == [64, 64] and info["embed_dim"] == 64 and info["pretrained"] is False
    assert info["n_params"] == sum(p.numel() for p in clip.model.parameters())
    assert info["interpolation"] == "bicubic"
    np.testing.assert_allclose(info["mean"], open_clip.OPENAI_DATASET_MEAN)


def test_dinov2_image_size_override_sets_input_size():
    enc = create_encoder({"library": "timm", "arch": "vit_small_patch14_dinov2.lvd142m", "pretrained": "none",
                          "image_size": 28})
    assert enc.input_size == (28, 28) and enc.embed_dim == 384
    assert enc.encode_image(torch.rand(1, 3, 40, 40)).shape == (1, 384)
    np.testing.assert_allclose(enc.mean, timm.data.IMAGENET_DEFAULT_MEAN)


def test_unknown_open_clip_arch():
    with pytest.raises(UnknownNameError, match=r"'ViT-B-32'.*embedrobust models --list"):
        create_encoder({"library": "open_clip", "arch": "ViT-B-23"})


def test_unknown_timm_arch():
    with pytest.raises(UnknownNameError, match=r"'vit_small_patch14_dinov2'.*timm.list_models"):
        create_encoder({"library": "timm", "arch": "vit_smal_patch14_dinov2"})


def test_unknown_library():
    with pytest.raises(UnknownNameError, match="'timm'"):
        create_encoder({"library": "tim", "arch": "x"})


def test_unknown_open_clip_tag_lists_known_tags():
    with pytest.raises(UnknownNameError, match=r"'opnai'.*Known tags: openai, .*laion2b_s34b_b79k"):
        create_encoder({"library": "open_clip", "arch": "ViT-B-32", "pretrained": "opnai"})


def test_open_clip_needs_a_tag_not_true():
    with pytest.raises(UnknownNameError, match="Known tags"):
        create_encoder({"library": "open_clip", "arch": "ViT-B-32", "pretrained": True})


def test_unknown_timm_tag():
    with pytest.raises(UnknownNameError, match="vit_small_patch14_dinov2.lvd142m"):
        create_encoder({"library": "timm", "arch": "vit_small_patch14_dinov2", "pretrained": "lvd142x"})


@pytest.mark.parametrize("bad", [{"precision": "fp8"}, {"seed": "0"}, {"image_size": -3}, {"arch": ""}])
def test_bad_spec_values(bad):
    with pytest.raises(ConfigError):
        create_encoder({**VIT, **bad})


def test_list_models():
    assert TINY_CLIP in list_models("open_clip") and "ViT-B-32" in list_models("open_clip")
    assert "vit_small_patch14_dinov2.lvd142m" in list_models("timm")
    everything = list_models()
    assert "open_clip:ViT-B-32" in everything and "timm:vit_tiny_patch16_224" in everything
    with pytest.raises(UnknownNameError):
        list_models("keras")
