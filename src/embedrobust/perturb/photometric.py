"""Photometric perturbations: brightness, contrast (ImageNet-C, hendrycks/robustness `make_imagenet_c.py`)."""

from __future__ import annotations

import torch

from .registry import register


@register(
    "brightness",
    param="shift of HSV value V (in [0, 1] units)",
    severities=(0.1, 0.2, 0.3, 0.4, 0.5),
    identity=0.0,
    random=False,
    reference="ImageNet-C brightness: rgb2hsv, V = clip(V + c, 0, 1), hsv2rgb",
    description="Adds c to the HSV value channel.",
    tags=("imagenet-c",),
)
def brightness(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    # With hue and saturation fixed, RGB is proportional to V, so the HSV round trip is a per-pixel rescale
    # by V'/V; black pixels (V = 0, S = 0 by convention) become grey V'.
    v = images.amax(dim=1, keepdim=True)
    v_new = (v + value).clamp(0.0, 1.0)
    scale = torch.where(v > 0, v_new / v.clamp_min(torch.finfo(images.dtype).tiny), torch.zeros_like(v))
    out = torch.where(v > 0, images * scale, v_new.expand_as(images))
    return out.clamp(0.0, 1.0)


@register(
    "contrast",
    param="contrast factor c (1 = unchanged)",
    severities=(0.4, 0.3, 0.2, 0.1, 0.05),
    identity=1.0,
    random=False,
    reference="ImageNet-C contrast: clip((x - mean) * c + mean), mean per channel over the image",
    description="Scales each channel's deviation from its spatial mean by c.",
    tags=("imagenet-c",),
)
def contrast(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    means = images.mean(dim=(2, 3), keepdim=True)
    return ((images - means) * value + means).clamp(0.0, 1.0)
