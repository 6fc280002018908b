"""timm image models (pooled features, no classifier) as Encoders."""

from __future__ import annotations

import math
import os
import pickle
import sys
from pathlib import Path

import torch

from embedrobust.errors import ConfigError, UnknownNameError
from embedrobust.models import hub
from embedrobust.models.encoder import Encoder
from embedrobust.models.spec import did_you_mean, seeded

_HF_WEIGHTS, _HF_SAFE_WEIGHTS = "pytorch_model.bin", "model.safetensors"


def list_archs() -> list[str]:
    """Architecture names and tagged pretrained names (``arch.tag``)."""
    import timm

    return sorted(set(timm.list_models()) | set(timm.list_pretrained()))


def _resolve_name(arch: str, pretrained) -> str:
    """The timm model name to build: ``arch`` with the pretrained tag appended when one is given separately."""
    import timm

    base, _, name_tag = arch.partition(".")
    if not timm.is_model(base):
        raise UnknownNameError(
            f"unknown timm architecture {arch!r}.{did_you_mean(arch, list_archs())} List the names with "
            f"`embedrobust models --list --library timm` or `python -c \"import timm; print(timm.list_models())\"`."
        )
    if isinstance(pretrained, str):
        if name_tag and name_tag != pretrained:
            raise ConfigError(f"model spec: arch {arch!r} already names tag {name_tag!r} but pretrained is "
                              f"{pretrained!r}; use `pretrained: true` or drop the tag from arch")
        name = f"{base}.{pretrained}"
    else:
        name = arch
    tags = timm.list_pretrained(f"{base}.*")
    if (name_tag or isinstance(pretrained, str)) and name not in tags:
        raise UnknownNameError(
            f"unknown pretrained tag for timm {base!r}: {name!r}.{did_you_mean(name, tags)} "
            f"Known: {', '.join(tags) if tags else 'none (no released weights)'}."
        )
    if pretrained is not None and not tags:
        raise UnknownNameError(f"timm {base!r} has no pretrained weights; use `pretrained: none` for random init")
    return name


def _hub_filenames(filename: str | None) -> list[str]:
    """Files timm would try in a hub repo, safetensors first (as timm's own loader prefers them)."""
    if not filename:
        return [_HF_SAFE_WEIGHTS, _HF_WEIGHTS]
    if filename == "open_clip_pytorch_model.bin":
        return ["open_clip_model.safetensors", filename]
    if filename.endswith(".bin"):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _weights(name: str) -> Path | None:
    """Local weights file of timm model ``name`` (default tag if none), from the cache or a quick download.

    None means the weights come from a URL that timm downloads itself after the connectivity check.
    """
    import timm.models

    cfg = timm.models.get_pretrained_cfg(name)
    warm = f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\""
    if cfg.hf_hub_id:
        names = _hub_filenames(cfg.hf_hub_filename)
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        if revision:  # pinned revisions are rare; the cache lookup only knows 'main'
            hub.ensure_online(f"timm {name}", hub.hf_endpoint(), warm)
            return None
        return hub.fetch_hf_file(repo_id, names, f"timm {name}", warm)
    if cfg.url:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        hit = hub.cached_url_file(cfg.url, cache)
        if hit is None:
            hub.ensure_online(f"timm {name}", cfg.url, warm, cache)
        return hit
    raise ConfigError(f"timm {name!r} has no downloadable weights; use `pretrained: none` or `checkpoint:`")


def _create(name: str, spec: dict, **kwargs) -> torch.nn.Module:
    import timm

    size = spec["image_size"]
    try:
        return timm.create_model(name, num_classes=0, **({"img_size": size} if size is not None else {}), **kwargs)
    except TypeError as err:
        if size is None or "img_size" not in str(err):
            raise
    # convolutional nets take any input size; the override then only changes preprocessing
    return timm.create_model(name, num_classes=0, **kwargs)


def _load_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Load a user's weights file strictly (a mismatch raises instead of leaving layers at random init)."""
    import timm.models

    try:
        state = timm.models.load_state_dict(path)
    except (RuntimeError, ValueError, KeyError, OSError, pickle.UnpicklingError) as err:
        raise ConfigError(f"cannot read checkpoint {path!r}: {err}") from err
    # the model family's own converter (original DINOv2/CLIP layouts, position-embedding resampling)
    convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if convert is not None:
        state = convert(state, model)
    classifier = model.pretrained_cfg.get("classifier")
    for head in [classifier] if isinstance(classifier, str) else (classifier or []):
        if not isinstance(model.get_submodule(head), torch.nn.Linear):  # num_classes=0: the head is Identity
            state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ConfigError(f"checkpoint {path!r} does not fit timm {model.pretrained_cfg.get('architecture')}: "
                          f"{err}") from err
    if missing or unexpected:
        raise ConfigError(f"checkpoint {path!r} does not fit timm {model.pretrained_cfg.get('architecture')}: "
                          f"missing {missing[:5]}..., unexpected {unexpected[:5]}...; check arch and image_size")


def build(spec: dict, device: torch.device) -> Encoder:
    """Encoder for a normalised timm spec (see embedrobust.models.spec)."""
    from timm.data import resolve_data_config

    name = _resolve_name(spec["arch"], spec["pretrained"])
    checkpoint = spec["checkpoint"]
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise ConfigError(f"model spec checkpoint {checkpoint!r} is not a file; give the path of a saved "
                          f"state dict, or remove `checkpoint:`")
    with seeded(spec["seed"]):
        if checkpoint is not None:
            model = _create(name, spec, pretrained=False)
            _load_checkpoint(model, checkpoint)
            weights = checkpoint
        elif spec["pretrained"] is not None:
            local = _weights(name)
            overlay = {"pretrained_cfg_overlay": {"file": str(local)}} if local is not None else {}
            model = _create(name, spec, pretrained=True, **overlay)
            weights = str(local) if local is not None else "timm-download"
        else:
            model = _create(name, spec, pretrained=False)
            weights = None
    model = model.to(device).eval()
    cfg = resolve_data_config({}, model=model)
    size = spec["image_size"] or cfg["input_size"][-2:]
    size = (size, size) if isinstance(size, int) else tuple(size)
    crop_pct = cfg.get("crop_pct") or 0.875  # timm's default
    mode = cfg.get("crop_mode") or "center"
    mean = tuple(cfg["mean"])
    if mode == "border":
        fill = tuple(round(255 * m) / 255 for m in mean)  # timm pads with the mean colour
    else:
        fill = (0.0, 0.0, 0.0)
    return Encoder(
        spec=spec,
        model=model,
        embed_dim=getattr(model, "head_hidden_size", None) or model.num_features,
        input_size=size,
        # timm eval transform: scale to floor(size / crop_pct), then centre-crop to size
        resize_size=tuple(math.floor(s / crop_pct) for s in size),
        resize_mode={"center": "shortest", "squash": "squash", "border": "longest"}[mode],
        interpolation=cfg.get("interpolation", "bilinear"),
        mean=mean,
        std=tuple(cfg["std"]),
        fill=fill,
        pretrained=weights is not None,
        image_fn=lambda m, x: m(x),
        info={"library": "timm", "timm_name": name, "timm_tag": model.pretrained_cfg.get("tag"),
              "weights_file": weights, "crop_pct": crop_pct, "crop_mode": mode},
    )
