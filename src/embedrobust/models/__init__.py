"""Model specs -> Encoders (open_clip, timm) with their preprocessing; pretrained weights that fail fast offline.

    enc = create_encoder({"library": "open_clip", "arch": "ViT-B-32", "pretrained": "openai"})
    emb = enc.encode_image(images)   # (N, 3, H, W) in [0, 1] -> (N, enc.embed_dim) float32, raw

Spec keys: see :func:`embedrobust.models.spec.normalise_spec`. ``pretrained: none`` gives a seeded random init
(``Encoder.pretrained`` is False). Weights come from the local Hugging Face cache (HF_HOME / HF_HUB_CACHE), or a
``checkpoint:`` file; a download is attempted only when the hub answers within seconds, else OfflineError.
"""

from __future__ import annotations

import torch

from embedrobust.errors import unknown_name
from embedrobust.models import openclip, timm_backend
from embedrobust.models.encoder import Encoder
from embedrobust.models.openclip import TINY_CLIP
from embedrobust.models.spec import LIBRARIES, normalise_spec

__all__ = ["Encoder", "TINY_CLIP", "create_encoder", "list_models", "normalise_spec"]

_BACKENDS = {"open_clip": openclip, "timm": timm_backend}


def create_encoder(spec: dict, device: str | torch.device = "cpu") -> Encoder:
    """Build the Encoder a model spec describes, on ``device``, in eval mode.

    Raises ConfigError (bad spec or checkpoint), UnknownNameError (library, arch or tag), OfflineError (weights
    neither cached nor downloadable now).
    """
    spec = normalise_spec(spec)
    return _BACKENDS[spec["library"]].build(spec, torch.device(device))


def list_models(library: str | None = None) -> list[str]:
    """Names usable as ``arch``: one library's, or all as ``library:arch`` when ``library`` is None.

    timm names include tagged pretrained names (``vit_small_patch14_dinov2.lvd142m``).
    """
    if library is None:
        return [f"{lib}:{name}" for lib in LIBRARIES for name in _BACKENDS[lib].list_archs()]
    if library not in _BACKENDS:
        raise unknown_name("model library name", library, list(LIBRARIES))
    return _BACKENDS[library].list_archs()
