"""Pretrained weights: local HF cache, offline mode that fails fast, explicit checkpoint files."""

import time

import pytest
import safetensors.torch
import torch

from embedrobust.errors import ConfigError, OfflineError
from embedrobust.models import TINY_CLIP, create_encoder, hub

CLIP = {"library": "open_clip", "arch": TINY_CLIP, "pretrained": "none"}
VIT = {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32}
VIT_TAG = "augreg_in21k_ft_in1k"


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face home with offline mode on; returns the hub cache directory."""
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf" / "hub"


def put_in_hub_cache(cache, repo_id: str, filename: str, state: dict) -> None:
    """Write ``state`` where huggingface_hub keeps ``filename`` of ``repo_id`` (main revision)."""
    commit = "0" * 40
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, repo / "snapshots" / commit / filename)


def test_offline_empty_cache_fails_fast(empty_hub):
    start = time.perf_counter()
    with pytest.raises(OfflineError, match=r"HF_HUB_OFFLINE.*create_model\('ViT-B-32', pretrained='openai'\)"):
        create_encoder({"library": "open_clip", "arch": "ViT-B-32", "pretrained": "openai"})
    assert time.perf_counter() - start < 5


def test_unreachable_hub_fails_fast(empty_hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(OfflineError, match=r"127\.0\.0\.1:9 is unreachable.*checkpoint:"):
        create_encoder({"library": "timm", "arch": "vit_small_patch14_dinov2.lvd142m", "pretrained": True})
    assert time.perf_counter() - start < 5


def test_offline_message_names_the_cache(empty_hub):
    with pytest.raises(OfflineError) as err:
        create_encoder({"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": VIT_TAG})
    assert str(empty_hub) in str(err.value) and "timm.create_model('vit_tiny_patch16_224." in str(err.value)


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.hf_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hub.hf_cache_dir() == tmp_path / "cache"


def test_timm_weights_load_from_local_cache_offline(empty_hub):
    source = create_encoder({**VIT, "seed": 7})
    put_in_hub_cache(empty_hub, f"timm/vit_tiny_patch16_224.{VIT_TAG}", "model.safetensors",
                     source.model.state_dict())
    enc = create_encoder({**VIT, "pretrained": VIT_TAG})
    assert enc.pretrained and enc.describe()["timm_name"] == f"vit_tiny_patch16_224.{VIT_TAG}"
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(enc.encode_image(x), source.encode_image(x), rtol=0, atol=0)


@pytest.mark.parametrize("spec", [CLIP, VIT], ids=["open_clip", "timm"])
def test_checkpoint_round_trip(spec, tmp_path):
    source = create_encoder({**spec, "seed": 3})
    path = tmp_path / "weights.pt"
    torch.save(source.model.state_dict(), path)
    loaded = create_encoder({**spec, "checkpoint": str(path)})  # seed 0: would differ if the file were ignored
    assert loaded.pretrained and loaded.describe()["checkpoint"] == str(path)
    x = torch.rand(2, 3, 48, 40)
    torch.testing.assert_close(loaded.encode_image(x), source.encode_image(x), rtol=0, atol=0)


def test_checkpoint_for_another_arch_is_rejected(tmp_path):
    path = tmp_path / "clip.pt"
    torch.save(create_encoder(CLIP).model.state_dict(), path)
    with pytest.raises(ConfigError, match="does not fit timm"):
        create_encoder({**VIT, "checkpoint": str(path)})


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ConfigError, match="is not a file"):
        create_encoder({**CLIP, "checkpoint": str(tmp_path / "nope.pt")})


def test_open_clip_tag_resolves_to_cached_hub_file(empty_hub):
    from embedrobust.models.openclip import _tag_cfg, _weights_for_tag

    # ViT-B-32/openai lives in hub repo timm/vit_base_patch32_clip_224.openai; a stand-in file is enough here
    put_in_hub_cache(empty_hub, "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors",
                     {"w": torch.zeros(1)})
    path = _weights_for_tag("ViT-B-32", "openai", _tag_cfg("ViT-B-32", "openai"))
    assert path.name == "open_clip_model.safetensors" and path.is_file() and empty_hub in path.parents


def test_open_clip_tag_loads_from_cache_with_its_preprocessing(empty_hub, monkeypatch):
    import open_clip.pretrained

    # a made-up tag for the tiny CLIP, shaped like open_clip's entries (hub repo + quick_gelu + mean/std)
    tag_cfg = {"hf_hub": "someone/tiny-clip-test/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
               "interpolation": "bilinear", "resize_mode": "squash", "quick_gelu": True}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_CLIP, {"testtag": tag_cfg})
    source = create_encoder({**CLIP, "seed": 9})
    put_in_hub_cache(empty_hub, "someone/tiny-clip-test", "open_clip_model.safetensors", source.model.state_dict())
    enc = create_encoder({**CLIP, "pretrained": "testtag"})
    assert enc.pretrained and enc.describe()["quick_gelu"]
    assert (enc.mean, enc.std, enc.interpolation, enc.resize_mode) == ((0.5,) * 3, (0.25,) * 3, "bilinear", "squash")
    assert type(enc.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    torch.testing.assert_close(weights_of(enc), weights_of(source), rtol=0, atol=0)


def weights_of(enc) -> dict:
    return dict(enc.model.state_dict())


def test_timm_checkpoint_at_another_image_size_resamples_positions(tmp_path):
    source = create_encoder({**VIT, "seed": 4})  # 32 px: 2 x 2 patches
    path = tmp_path / "vit.pt"
    torch.save(source.model.state_dict(), path)
    enc = create_encoder({**VIT, "image_size": 48, "checkpoint": str(path)})  # 3 x 3 patches
    assert enc.model.pos_embed.shape[1] == 1 + 9
    torch.testing.assert_close(enc.model.patch_embed.proj.weight, source.model.patch_embed.proj.weight)


def test_timm_conflicting_tags():
    with pytest.raises(ConfigError, match="already names tag"):
        create_encoder({"library": "timm", "arch": "vit_small_patch14_dinov2.lvd142m", "pretrained": "other"})
