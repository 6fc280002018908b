"""Noise perturbations (ImageNet-C, hendrycks/robustness `make_imagenet_c.py`)."""

from __future__ import annotations

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
)
def gaussian_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + value * noise).clamp(0.0, 1.0)
