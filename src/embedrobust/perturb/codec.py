"""Codec perturbations: a real encoder/decoder round trip, not an imitation."""

from __future__ import annotations

import torch
from torchvision.io import decode_jpeg, encode_jpeg

from .registry import register


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] (N, 3, H, W) -> uint8 with round-half-to-even, as a saved image would be."""
    return (images * 255.0).round().clamp(0, 255).to(torch.uint8)


@register(
    "jpeg_compression",
    param="JPEG quality (1-100)",
    severities=(25, 18, 15, 10, 7),
    identity=None,
    random=False,
    reference="ImageNet-C jpeg_compression: PIL save(format='JPEG', quality=c) and reload (libjpeg, 4:2:0)",
    description="Encodes and decodes with libjpeg at the given quality (4:2:0 chroma subsampling).",
    tags=("imagenet-c",),
)
def jpeg_compression(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    # torchvision's CPU encoder is libjpeg with Pillow's defaults (identical bitstreams); its CUDA encoder
    # would use 4:4:4 chroma sampling, so the round trip always runs on the CPU to match the reference.
    quality = int(round(value))
    batch = list(to_uint8(images).cpu().unbind(0))
    decoded = decode_jpeg(encode_jpeg(batch, quality=quality))
    out = torch.stack(decoded).to(device=images.device, dtype=images.dtype) / 255.0
    return out
