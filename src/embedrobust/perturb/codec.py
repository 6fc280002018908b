"""Codec perturbations: a real encoder/decoder round trip, not an imitation."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from ._ops import to_uint8


def jpeg_compression(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    # Pillow's libjpeg (4:2:0 chroma), as the reference; torchvision's CPU encoder gives the same bitstream but
    # its image I/O is deprecated, and its CUDA encoder (nvjpeg) would use 4:4:4. So the round trip always runs
    # on the CPU, one image at a time (the codec is the point).
    return pil_roundtrip(images, "JPEG", int(round(value)))


def pil_roundtrip(images: torch.Tensor, fmt: str, quality: int) -> torch.Tensor:
    """Encode each image of (N, 3, H, W) with Pillow in ``fmt`` at ``quality`` and decode it back."""
    n, _, h, w = images.shape
    # quantised on the input's device, so a GPU batch crosses the bus as uint8; HWC rows for Pillow (no copy when
    # the batch is channels-last already)
    u8 = to_uint8(images.detach()).cpu().permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(u8[i]).save(buf, format=fmt, quality=quality)
        buf.seek(0)
        im = Image.open(buf)
        out[i] = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=images.device, dtype=images.dtype).div_(255.0)


def webp(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    return pil_roundtrip(images, "WEBP", int(round(value)))
