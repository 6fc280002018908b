"""open_clip models (image + text towers) as Encoders."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from pathlib import Path

import torch

from embedrobust.errors import ConfigError, UnknownNameError
from embedrobust.models import hub
from embedrobust.models.encoder import Encoder
from embedrobust.models.spec import did_you_mean, seeded

TINY_CLIP = "embedrobust-tiny-clip"
_CONFIGS = Path(__file__).parent / "configs"
_HF_WEIGHTS, _HF_SAFE_WEIGHTS = "open_clip_pytorch_model.bin", "open_clip_model.safetensors"


def _register_configs() -> None:
    import open_clip

    if TINY_CLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIGS)


def list_archs() -> list[str]:
    import open_clip

    _register_configs()
    return list(open_clip.list_models())


class _LazyTokenizer:
    """open_clip's tokenizer for ``arch``, built on first use (loading the BPE vocabulary takes ~0.5 s)."""

    def __init__(self, arch: str) -> None:
        self.arch, self._tokenizer = arch, None

    def __call__(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self.arch)
        return self._tokenizer(texts)


def _check_arch(arch: str) -> None:
    known = list_archs()
    if arch not in known:
        raise UnknownNameError(
            f"unknown open_clip architecture {arch!r}.{did_you_mean(arch, known)} List the names with "
            f"`embedrobust models --list --library open_clip` or `python -c \"import open_clip; "
            f"print(open_clip.list_models())\"`."
        )


def _tag_cfg(arch: str, tag) -> dict:
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag is True or not open_clip.get_pretrained_cfg(arch, tag):
        shown = ", ".join(tags) if tags else "none (this architecture has no released weights)"
        raise UnknownNameError(
            f"unknown pretrained tag {tag!r} for open_clip {arch!r}.{did_you_mean(str(tag), tags)} Known tags: {shown}. "
            f"Use one of them, or `pretrained: none` for random init."
        )
    return open_clip.get_pretrained_cfg(arch, tag)


def _weights_for_tag(arch: str, tag: str, cfg: dict) -> Path:
    """Local path of the weights of (arch, tag), from the cache or a quick download."""
    warm = f"python -c \"import open_clip; open_clip.create_model('{arch}', pretrained='{tag}')\""
    what = f"open_clip {arch} / {tag}"
    if cfg.get("file"):
        return Path(cfg["file"])
    if cfg.get("hf_hub"):
        repo_id, filename = _split_hf(cfg["hf_hub"])
        if not filename or filename == _HF_WEIGHTS:  # open_clip's own order: its safetensors name, then the .bin
            names = [_HF_SAFE_WEIGHTS, _HF_WEIGHTS]
        elif filename.endswith((".bin", ".pth")):
            names = [filename[:-4] + ".safetensors", filename]  # open_clip prefers a safetensors twin
        else:
            names = [filename]
        return hub.fetch_hf_file(repo_id, names, what, warm)
    import open_clip

    cache = Path(os.path.expanduser("~/.cache/clip"))  # open_clip's default for URL weights
    hit = hub.cached_url_file(cfg["url"], cache)
    if hit is not None:
        return hit
    hub.ensure_online(what, cfg["url"], warm, cache)
    return Path(open_clip.download_pretrained_from_url(cfg["url"]))


@contextlib.contextmanager
def _quiet(active: bool):
    """Silence open_clip's root-logger warning that a model is randomly initialised when that is the intent."""
    if not active:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _split_hf(hf_hub: str) -> tuple[str, str]:
    # open_clip writes 'org/repo/filename' or 'org/repo/' (trailing slash = default filename)
    repo_id, _, filename = hf_hub.rpartition("/")
    return repo_id, filename


def build(spec: dict, device: torch.device) -> Encoder:
    """Encoder for a normalised open_clip spec (see embedrobust.models.spec)."""
    import open_clip

    arch, tag, checkpoint = spec["arch"], spec["pretrained"], spec["checkpoint"]
    _check_arch(arch)
    tag_cfg = _tag_cfg(arch, tag) if tag is not None else {}
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise ConfigError(f"model spec checkpoint {checkpoint!r} is not a file; give the path of a saved "
                              f"state dict or open_clip checkpoint, or remove `checkpoint:`")
        weights = Path(checkpoint)
    elif tag is not None:
        weights = _weights_for_tag(arch, tag, tag_cfg)
    else:
        weights = None
    overrides = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    try:
        with seeded(spec["seed"]), _quiet(weights is None):
            model = open_clip.create_model(
                arch,
                pretrained=str(weights) if weights is not None else None,
                # the OpenAI and LAION-400M weights were trained with QuickGELU; open_clip only warns otherwise
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                force_image_size=spec["image_size"],
                force_preprocess_cfg=overrides or None,
                pretrained_text=False,  # no implicit download of HF text-tower weights
                pretrained_image=False,
                device="cpu",
            )
    except (RuntimeError, ValueError, KeyError, OSError, pickle.UnpicklingError) as err:
        if weights is None:
            raise
        raise ConfigError(f"cannot load {weights} into open_clip {arch}: {err}. Check that the file holds "
                          f"weights for this architecture (and image_size).") from err
    model = model.to(device).eval()
    pp = open_clip.get_model_preprocess_cfg(model)
    size = pp["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    fill = float(pp.get("fill_color", 0)) / 255
    return Encoder(
        spec=spec,
        model=model,
        embed_dim=open_clip.get_model_config(arch)["embed_dim"],
        input_size=size,
        resize_size=size,
        resize_mode=pp.get("resize_mode", "shortest"),
        interpolation=pp.get("interpolation", "bicubic"),
        mean=tuple(pp["mean"]),
        std=tuple(pp["std"]),
        fill=(fill, fill, fill),
        pretrained=weights is not None,
        image_fn=lambda m, x: m.encode_image(x),
        text_fn=lambda m, t: m.encode_text(t),
        tokenizer=_LazyTokenizer(arch),
        info={"library": "open_clip", "weights_file": str(weights) if weights else None,
              "quick_gelu": bool(tag_cfg.get("quick_gelu", False))},
    )
