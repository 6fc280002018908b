"""Noise perturbations (ImageNet-C, hendrycks/robustness `make_imagenet_c.py`)."""

from __future__ import annotations

import math

import torch

from .registry import register


@register(
    "gaussian_noise",
    param="noise standard deviation sigma (in [0, 1] pixel units)",
    severities=(0.08, 0.12, 0.18, 0.26, 0.38),
    identity=0.0,
    random=True,
    reference="ImageNet-C gaussian_noise: clip(x + N(0, c^2), 0, 1)",
    description="Adds i.i.d. Gaussian noise to every pixel and channel.",
    tags=("imagenet-c",),
    bounds=(0.0, math.inf),
)
def gaussian_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + value * noise).clamp(0.0, 1.0)


@register(
    "shot_noise",
    param="photon count c per unit intensity (lower = noisier; inf = clean)",
    severities=(60, 25, 12, 5, 3),
    identity=math.inf,
    random=True,
    reference="ImageNet-C shot_noise: clip(Poisson(x * c) / c, 0, 1)",
    description="Replaces each value by a Poisson photon count at rate x * c, rescaled by 1 / c.",
    tags=("imagenet-c",),
    bounds=(1e-3, math.inf),
)
def shot_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    if math.isinf(value):
        return images.clone()
    counts = torch.poisson(images * value, generator=generator)
    return (counts / value).clamp(0.0, 1.0).to(images.dtype)


@register(
    "impulse_noise",
    param="fraction of values replaced (salt or pepper, equally likely)",
    severities=(0.03, 0.06, 0.09, 0.17, 0.27),
    identity=0.0,
    random=True,
    reference="ImageNet-C impulse_noise: skimage.util.random_noise(x, mode='s&p', amount=c)",
    description="Sets a fraction of values (per channel) to 0 or 1 with equal probability.",
    tags=("imagenet-c",),
    bounds=(0.0, 1.0),
)
def impulse_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand((2, *images.shape), generator=generator, device=images.device)
    flipped = u[0] < value
    salt = u[1] < 0.5
    out = torch.where(flipped & salt, torch.ones_like(images), images)
    return torch.where(flipped & ~salt, torch.zeros_like(images), out)


@register(
    "speckle_noise",
    param="standard deviation c of multiplicative Gaussian noise",
    severities=(0.15, 0.2, 0.35, 0.45, 0.6),
    identity=0.0,
    random=True,
    reference="ImageNet-C speckle_noise: clip(x + x * N(0, c^2), 0, 1)",
    description="Adds Gaussian noise proportional to each value.",
    tags=("imagenet-c-extra",),
    bounds=(0.0, math.inf),
)
def speckle_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + images * noise * value).clamp(0.0, 1.0)
