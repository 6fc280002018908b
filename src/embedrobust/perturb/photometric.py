"""Photometric perturbations: brightness, contrast, saturate (ImageNet-C, hendrycks/robustness
`make_imagenet_c.py`) and the editing operations gamma, hue, sharpness."""

from __future__ import annotations

import torch

from ._ops import correlate3x3, hsv_to_rgb, rgb_to_hsv
from .catalog import SATURATE
from .registry import interp_params, table_rows


def brightness(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    # With hue and saturation fixed, RGB is proportional to V, so the HSV round trip is a per-pixel rescale
    # by V'/V; black pixels (V = 0, S = 0 by convention) become grey V'.
    v = images.amax(dim=1, keepdim=True)
    v_new = (v + value).clamp(0.0, 1.0)
    scale = torch.where(v > 0, v_new / v.clamp_min(torch.finfo(images.dtype).tiny), torch.zeros_like(v))
    out = torch.where(v > 0, images * scale, v_new.expand_as(images))
    return out.clamp(0.0, 1.0)


def contrast(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    means = images.mean(dim=(2, 3), keepdim=True)
    return ((images - means) * value + means).clamp(0.0, 1.0)


def saturate(images: torch.Tensor, value: float, generator: torch.Generator, table: str = "imagenet-c") -> torch.Tensor:
    # With hue and value fixed, each channel is V (1 - S g_c(H)), so scaling S scales (V - c) by S'/S.
    # Grey pixels (S = 0) have hue 0 (red) in skimage: they become (V, V (1 - S'), V (1 - S')).
    a, b = interp_params(table_rows("saturate", table, SATURATE), (1.0, 0.0), value)
    x = images.to(torch.float64)
    v = x.amax(1, keepdim=True)
    delta = v - x.amin(1, keepdim=True)
    grey = delta <= 0
    s = torch.where(grey, torch.zeros_like(v), delta / torch.where(grey, torch.ones_like(v), v))
    s_new = (s * a + b).clamp(0.0, 1.0)
    out = v - (v - x) * (s_new / torch.where(grey, torch.ones_like(s), s))
    red = torch.cat([v, v * (1 - s_new), v * (1 - s_new)], 1)
    return torch.where(grey, red, out).clamp(0.0, 1.0).to(images.dtype)


def gamma(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    return images.clamp(0.0, 1.0).pow(value)


def hue(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    h, s, v = rgb_to_hsv(images.to(torch.float64))
    return hsv_to_rgb((h + value).remainder(1.0), s, v).clamp(0.0, 1.0).to(images.dtype)


def sharpness(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    smooth = correlate3x3(images, [[1 / 13, 1 / 13, 1 / 13], [1 / 13, 5 / 13, 1 / 13], [1 / 13, 1 / 13, 1 / 13]])
    # Pillow's filter copies the one-pixel border unchanged, so the border is never sharpened
    border = torch.ones_like(images[:1, :1], dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    smooth = torch.where(border, images, smooth)
    return (smooth + value * (images - smooth)).clamp(0.0, 1.0)
