"""Blur perturbations (ImageNet-C, hendrycks/robustness `make_imagenet_c.py`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import register


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """scipy.ndimage's Gaussian kernel: radius int(truncate * sigma + 0.5), normalised to sum 1. Shape (2r+1,)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def separable_blur(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel with ``kernel`` along H then W, edges replicated (scipy mode='nearest')."""
    n, c, h, w = images.shape
    r = kernel.numel() // 2
    x = images.reshape(n * c, 1, h, w)
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return x.reshape(n, c, h, w)


@register(
    "gaussian_blur",
    param="Gaussian standard deviation sigma (pixels)",
    severities=(1.0, 2.0, 3.0, 4.0, 6.0),
    identity=0.0,
    random=False,
    reference="ImageNet-C gaussian_blur: skimage.filters.gaussian(x, sigma=c) (mode nearest, truncate 4)",
    description="Blurs with an isotropic Gaussian kernel.",
    tags=("imagenet-c-extra",),
)
def gaussian_blur(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    kernel = gaussian_kernel1d(value, dtype=images.dtype, device=images.device)
    return separable_blur(images, kernel).clamp(0.0, 1.0)
