"""Rehearsal weights: real architectures, random values, in the hub cache where open_clip, timm and embedrobust
look for the real ones."""

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

from embedrobust.errors import ConfigError, DataError, UnknownNameError
from embedrobust.models import create_encoder
from embedrobust.rehearsal import weights
from embedrobust.rehearsal.weights import REHEARSAL_COMMIT, hub_files, write_pretrained

REPO = Path(__file__).resolve().parents[2]
CLIP_B32 = {"library": "open_clip", "arch": "ViT-B-32", "pretrained": "openai"}
DINOV2_S = {"library": "timm", "arch": "vit_small_patch14_dinov2.lvd142m", "pretrained": True, "image_size": 224}

# what the real study configs need from the hub (open_clip 3.3 / timm 1.0 pretrained cfgs)
STUDY_FILES = {
    "RN50": ("timm/resnet50_clip.openai", "open_clip_model.safetensors"),
    "ViT-B-32": ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"),
    "ViT-B-16": ("timm/vit_base_patch16_clip_224.openai", "open_clip_model.safetensors"),
    **{name: (f"timm/{name}", "model.safetensors") for name in (
        "vit_small_patch14_dinov2.lvd142m", "vit_base_patch14_dinov2.lvd142m", "vit_large_patch14_dinov2.lvd142m",
        "vit_small_patch16_224.dino", "vit_base_patch16_224.dino")},
}


def study_models() -> dict[str, dict]:
    models = {}
    for config in ("full_study.yaml", "ssl_benchmark.yaml"):
        models.update(yaml.safe_load((REPO / "config" / config).read_text())["models"])
    return models


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def rehearsal_hub(tmp_path_factory):
    """A hub cache holding rehearsal weights of CLIP ViT-B/32 (openai) and DINOv2 ViT-S/14, seed 0 (built once:
    ~10 s, 700 MB). Returns (cache_dir, name -> weights file)."""
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("hf-hub")
    return cache, write_pretrained({"clip": CLIP_B32, "dinov2": DINOV2_S}, cache, seed=0)


@pytest.fixture
def offline_hub(rehearsal_hub, monkeypatch):
    """The rehearsal cache as the environment's hub cache, offline; returns (cache_dir, name -> weights file)."""
    for var in ("HF_HOME", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(rehearsal_hub[0]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return rehearsal_hub


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every DNS lookup and socket connection; returns the list of attempts."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
        raise OSError("network access refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


# Runs a library's own pretrained loader in a fresh interpreter: huggingface_hub reads HF_HUB_CACHE and
# HF_HUB_OFFLINE once at import, so only a process started with them set sees the rehearsal cache, as a real job does.
# argv: library, model name, JSON kwargs, output .safetensors, keys to copy out. Prints the network attempts as JSON.
LOAD_SCRIPT = r"""
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:]))
    raise OSError("network access refused by the test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse
import safetensors.torch, torch
torch.set_num_threads(1)
library, name, kwargs, out, *keys = sys.argv[1:]
if library == "open_clip":
    import open_clip
    model = open_clip.create_model(name, **json.loads(kwargs))
else:
    import timm
    model = timm.create_model(name, **json.loads(kwargs))
state = model.state_dict()
safetensors.torch.save_file({k: state[k].contiguous() for k in keys}, out)
print(json.dumps(attempts))
"""


@pytest.fixture
def load_in_fresh_process(rehearsal_hub, tmp_path):
    """Call ``(library, name, kwargs, keys)`` -> (tensors the loaded model holds under ``keys``, network attempts),
    loading in a subprocess with HF_HUB_CACHE at the rehearsal cache and HF_HUB_OFFLINE=1."""

    def load(library: str, name: str, kwargs: dict, keys: list[str]):
        out = tmp_path / "loaded.safetensors"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
        env.update(HF_HUB_CACHE=str(rehearsal_hub[0]), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, library, name, json.dumps(kwargs), str(out), *keys],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return safetensors.torch.load_file(out), json.loads(done.stdout.strip().splitlines()[-1])

    return load


@pytest.mark.parametrize("name", sorted(study_models()))
def test_study_models_resolve_to_their_hub_files(name):
    spec = study_models()[name]
    assert hub_files(spec) == [STUDY_FILES[spec["arch"]]]


def test_random_init_and_checkpoint_specs_need_no_hub_file():
    assert hub_files({**DINOV2_S, "pretrained": "none"}) == []
    assert hub_files({**DINOV2_S, "checkpoint": "weights.pt"}) == []


def test_skips_specs_without_pretrained_weights(tmp_path):
    assert write_pretrained({"random": {**CLIP_B32, "pretrained": "none"}}, tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec, error", [
    ({"library": "keras", "arch": "ViT-B-32", "pretrained": "openai"}, UnknownNameError),
    ({"library": "open_clip", "arch": "ViT-B-33", "pretrained": "openai"}, UnknownNameError),
    ({"library": "open_clip", "arch": "ViT-B-32", "pretrained": "openia"}, UnknownNameError),
    ({"library": "timm", "arch": "vit_small_patch14_dinov2.lvd999m", "pretrained": True}, UnknownNameError),
    ({"library": "timm", "arch": "legacy_seresnet18.in1k", "pretrained": True}, ConfigError),  # a URL, not the hub
], ids=["library", "open_clip-arch", "open_clip-tag", "timm-tag", "not-on-hub"])
def test_unknown_names_fail_before_anything_is_written(spec, error, tmp_path):
    with pytest.raises(error):
        write_pretrained({"ok": DINOV2_S, "bad": spec}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cache_layout_is_huggingface_hubs(rehearsal_hub):
    from huggingface_hub import try_to_load_from_cache

    cache, paths = rehearsal_hub
    repo = cache / "models--timm--vit_small_patch14_dinov2.lvd142m"
    assert (repo / "refs" / "main").read_text() == REHEARSAL_COMMIT
    assert paths["dinov2"] == repo / "snapshots" / REHEARSAL_COMMIT / "model.safetensors"
    hit = try_to_load_from_cache("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors",
                                 cache_dir=cache)
    assert hit == str(paths["clip"])


def test_timm_file_is_the_default_size_model_without_head(rehearsal_hub):
    import timm

    state = safetensors.torch.load_file(rehearsal_hub[1]["dinov2"])
    reference = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False).state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in reference.items()}
    assert state["pos_embed"].shape == (1, 1 + 37 * 37, 384)  # 518 px, as published; loads resample it
    assert not any(k.startswith("head.") for k in state) and {v.dtype for v in state.values()} == {torch.float32}


def test_open_clip_file_is_an_open_clip_state_dict(rehearsal_hub):
    with safetensors.safe_open(rehearsal_hub[1]["clip"], "pt") as f:
        keys, meta = set(f.keys()), f.metadata()
        dtypes = {f.get_slice(k).get_dtype() for k in keys}
    assert {"visual.conv1.weight", "visual.proj", "text_projection", "logit_scale", "token_embedding.weight"} <= keys
    assert not any(k.endswith("attn_mask") for k in keys)  # a non-persistent buffer: absent from real files too
    assert dtypes == {"F32"} and meta is None


def test_open_clip_loads_it_offline(rehearsal_hub, load_in_fresh_process):
    keys = ["visual.conv1.weight", "transformer.resblocks.11.mlp.c_proj.weight"]
    loaded, attempts = load_in_fresh_process("open_clip", "ViT-B-32", {"pretrained": "openai"}, keys)
    saved = safetensors.torch.load_file(rehearsal_hub[1]["clip"])
    assert attempts == []
    for key in keys:
        assert torch.equal(loaded[key], saved[key]), key


def test_timm_loads_it_offline_and_resamples_pos_embed(rehearsal_hub, load_in_fresh_process):
    keys = ["blocks.11.attn.qkv.weight", "pos_embed"]
    loaded, attempts = load_in_fresh_process("timm", "vit_small_patch14_dinov2.lvd142m",
                                             {"pretrained": True, "img_size": 224}, keys)
    saved = safetensors.torch.load_file(rehearsal_hub[1]["dinov2"])
    assert attempts == []
    assert torch.equal(loaded["blocks.11.attn.qkv.weight"], saved["blocks.11.attn.qkv.weight"])
    assert loaded["pos_embed"].shape == (1, 1 + 16 * 16, 384)
    assert torch.equal(loaded["pos_embed"][:, 0], saved["pos_embed"][:, 0])  # the class token's is kept as is


def test_embedrobust_loads_open_clip_weights(offline_hub, no_network):
    enc = create_encoder(CLIP_B32)
    saved = safetensors.torch.load_file(offline_hub[1]["clip"])
    assert enc.pretrained and enc.describe()["weights_file"] == str(offline_hub[1]["clip"])
    assert torch.equal(enc.model.state_dict()["visual.conv1.weight"], saved["visual.conv1.weight"])
    assert no_network == []


def test_embedrobust_loads_timm_weights(offline_hub, no_network):
    enc = create_encoder(DINOV2_S)
    saved = safetensors.torch.load_file(offline_hub[1]["dinov2"])
    assert enc.pretrained and enc.describe()["weights_file"] == str(offline_hub[1]["dinov2"])
    assert torch.equal(enc.model.state_dict()["blocks.0.attn.qkv.weight"], saved["blocks.0.attn.qkv.weight"])
    assert enc.input_size == (224, 224) and no_network == []


def test_same_seed_same_bytes(rehearsal_hub, tmp_path):
    write_pretrained({"dinov2": DINOV2_S}, tmp_path, seed=0)
    repo = "models--timm--vit_small_patch14_dinov2.lvd142m"
    assert tree_digest(tmp_path / repo) == tree_digest(rehearsal_hub[0] / repo)


def test_another_seed_other_values(rehearsal_hub, tmp_path):
    other = write_pretrained({"dinov2": DINOV2_S}, tmp_path, seed=1)["dinov2"]
    a, b = safetensors.torch.load_file(other), safetensors.torch.load_file(rehearsal_hub[1]["dinov2"])
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], b["blocks.0.attn.qkv.weight"])


def test_second_call_does_not_rewrite(rehearsal_hub, monkeypatch):
    cache, paths = rehearsal_hub
    before = {name: path.stat() for name, path in paths.items()}
    monkeypatch.setattr(weights, "_build_state", lambda *a: pytest.fail("rebuilt an up-to-date file"))
    again = write_pretrained({"clip": CLIP_B32, "dinov2": DINOV2_S}, cache, seed=0)
    assert again == paths
    assert {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in again.items()} == \
        {n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()}


def test_specs_sharing_a_file_build_it_once(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(weights, "_build_state", lambda *a: built.append(a) or {"w": torch.zeros(2)})
    paths = write_pretrained({"a": DINOV2_S, "b": {**DINOV2_S, "image_size": 448}}, tmp_path)
    assert len(built) == 1 and paths["a"] == paths["b"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def crash(state, filename, tmp):
        tmp.write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "_build_state", lambda *a: {"w": torch.zeros(2)})
    monkeypatch.setattr(weights, "_save", crash)
    with pytest.raises(KeyboardInterrupt):
        write_pretrained({"dinov2": DINOV2_S}, tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_changed_content_key_rebuilds(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "_build_state", lambda *a: {"w": torch.full((2,), float(a[2]))})
    path = write_pretrained({"dinov2": DINOV2_S}, tmp_path, seed=1)["dinov2"]
    write_pretrained({"dinov2": DINOV2_S}, tmp_path, seed=2)
    assert safetensors.torch.load_file(path)["w"].tolist() == [2.0, 2.0]
    marker = json.loads((path.parents[2] / "rehearsal" / "model.safetensors.json").read_text())
    assert marker["seed"] == 2 and marker["bytes"] == path.stat().st_size


def test_refuses_to_shadow_a_real_download(tmp_path):
    repo = tmp_path / "models--timm--vit_small_patch14_dinov2.lvd142m"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    with pytest.raises(DataError, match="real download"):
        write_pretrained({"dinov2": DINOV2_S}, tmp_path)
    assert (repo / "refs" / "main").read_text() == "a" * 40 and not (repo / "snapshots").exists()
