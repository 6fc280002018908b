"""Photometric perturbations: brightness, contrast, saturate (ImageNet-C, hendrycks/robustness
`make_imagenet_c.py`) and the editing operations gamma, hue, sharpness."""

from __future__ import annotations

import math

import torch

from ._ops import correlate3x3, hsv_to_rgb, rgb_to_hsv
from .registry import add_table, interp_params, register, table_rows


@register(
    "brightness",
    param="shift of HSV value V (in [0, 1] units)",
    severities=(0.1, 0.2, 0.3, 0.4, 0.5),
    identity=0.0,
    random=False,
    reference="ImageNet-C brightness: rgb2hsv, V = clip(V + c, 0, 1), hsv2rgb",
    description="Adds c to the HSV value channel.",
    tags=("imagenet-c",),
    bounds=(0.0, 1.0),  # at 1 every pixel is at full value: larger shifts change nothing more
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
    bounds=(0.0, math.inf),  # 0 flattens each channel to its mean; a negative factor would invert the image
    domain_note="factors above 1 raise contrast; the result is clipped to [0, 1], so any factor is defined",
)
def contrast(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    means = images.mean(dim=(2, 3), keepdim=True)
    return ((images - means) * value + means).clamp(0.0, 1.0)


SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))  # S' = clip(S * a + b, 0, 1)
add_table("cifar10-c", "saturate", ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)))


@register(
    "saturate",
    param="severity in [0, 5] (0 = identity; integers = ImageNet-C's (a, b), S' = clip(a S + b))",
    severities=(1, 2, 3, 4, 5),
    identity=0.0,
    random=False,
    reference="ImageNet-C saturate: rgb2hsv, S = clip(S * a + b, 0, 1), hsv2rgb; (a, b) "
    + " ".join(str(c) for c in SATURATE),
    description="Scales (and offsets) HSV saturation: severities 1-2 desaturate, 3-5 oversaturate.",
    tags=("imagenet-c-extra",),
    unit="severity",
)
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


@register(
    "gamma",
    param="gamma exponent g (x -> x^g; 1 = unchanged, > 1 darkens)",
    severities=(1.25, 1.5, 2.0, 2.5, 3.0),
    identity=1.0,
    random=False,
    reference="torchvision adjust_gamma (gain 1): x ** g",
    description="Applies a power-law tone curve (editing: gamma / exposure curve).",
    tags=("editing",),
    bounds=(0.0, math.inf),
    open_bounds=(True, True),  # x^0 is 1 everywhere (a white image whatever the input)
    domain_note="x^g is defined for every g > 0: large g only darken further",
)
def gamma(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    return images.clamp(0.0, 1.0).pow(value)


@register(
    "hue",
    param="hue shift in turns (-0.5..0.5; 0.5 = 180 degrees)",
    severities=(0.02, 0.05, 0.1, 0.2, 0.5),
    identity=0.0,
    random=False,
    reference="torchvision adjust_hue: rgb->hsv, H = (H + shift) mod 1, hsv->rgb",
    description="Rotates every pixel's hue by the same angle (editing: colour shift).",
    tags=("editing",),
    bounds=(-0.5, 0.5),  # shifts are modulo 1 turn: wider values would alias onto these
)
def hue(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    h, s, v = rgb_to_hsv(images.to(torch.float64))
    return hsv_to_rgb((h + value).remainder(1.0), s, v).clamp(0.0, 1.0).to(images.dtype)


@register(
    "sharpness",
    param="sharpness factor (1 = unchanged, 0 = smoothed, > 1 sharpened)",
    severities=(2.0, 4.0, 8.0, 12.0, 16.0),
    identity=1.0,
    random=False,
    reference="PIL ImageEnhance.Sharpness (= torchvision adjust_sharpness): blend with a 3x3 smoothing "
    "(1 1 1 / 1 5 1 / 1 1 1) / 13; border pixels unchanged",
    description="Unsharp-mask style sharpening (editing: sharpen slider).",
    tags=("editing",),
    bounds=(0.0, math.inf),  # 0 is the smoothed image; below it the detail would come back inverted
    domain_note="any factor >= 0 is defined (PIL's ImageEnhance extrapolates; the result is clipped to [0, 1])",
)
def sharpness(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    smooth = correlate3x3(images, [[1 / 13, 1 / 13, 1 / 13], [1 / 13, 5 / 13, 1 / 13], [1 / 13, 1 / 13, 1 / 13]])
    # Pillow's filter copies the one-pixel border unchanged, so the border is never sharpened
    border = torch.ones_like(images[:1, :1], dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    smooth = torch.where(border, images, smooth)
    return (smooth + value * (images - smooth)).clamp(0.0, 1.0)
