"""Geometric corruptions and edits: elastic_transform, pixelate (ImageNet-C), rescale, crop_resize, rotate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _ops
from .registry import interp_params, register

# ImageNet-C (hendrycks/robustness make_imagenet_c.py) elastic_transform at 224 px, in units of 244 px (its
# constant, "should have been 224"): (alpha, sigma, affine jitter). imagecorruptions 1.1.2 replaced this with a
# milder displacement-only warp; we follow ImageNet-C.
ELASTIC = ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))


def _bilinear(images: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample (N, C, H, W) at float pixel coordinates ys, xs (N, H, W); taps outside mapped by ``mode``."""
    n, c, h, w = images.shape
    y0 = torch.floor(ys)
    x0 = torch.floor(xs)
    ty, tx = (ys - y0).to(images.dtype), (xs - x0).to(images.dtype)
    y0, x0 = y0.long(), x0.long()
    flat = images.reshape(n, c, h * w)
    ya, yb = _ops.boundary_index(y0, h, mode) * w, _ops.boundary_index(y0 + 1, h, mode) * w
    xa, xb = _ops.boundary_index(x0, w, mode), _ops.boundary_index(x0 + 1, w, mode)

    def tap(yy, xx):
        return torch.gather(flat, 2, (yy + xx).reshape(n, 1, -1).expand(n, c, -1)).reshape(n, c, h, w)

    tx, ty = tx[:, None], ty[:, None]
    top = torch.lerp(tap(ya, xa), tap(ya, xb), tx)
    bot = torch.lerp(tap(yb, xa), tap(yb, xb), tx)
    return torch.lerp(top, bot, ty)


def elastic_core(images: torch.Tensor, params, jitter: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor):
    """ImageNet-C elastic_transform given its draws.

    1. random affine: the three points (c + s, c + s), (c_0 + s, c_1 - s), (c - s) with c = (H//2, W//2),
       s = min(H, W)//3, moved by ``jitter`` (N, 3, 2) (reference U(-affine, affine)); cv2.warpAffine,
       bilinear, reflect-101 border.
    2. displacement fields alpha * gaussian(U(-1, 1), sigma, mode reflect, truncate 3) from ``ux``, ``uy``
       (N, H, W); bilinear resampling with reflected borders (scipy map_coordinates order 1, mode reflect).
    Args: params (alpha, sigma, affine) in pixels. Returns (N, 3, H, W).
    """
    alpha, sigma, _ = params
    n, _, h, w = images.shape
    dev = images.device
    cs = torch.tensor([h // 2, w // 2], dtype=torch.float64)
    s = float(min(h, w) // 3)
    pts1 = torch.stack([cs + s, torch.stack([cs[0] + s, cs[1] - s]), cs - s]).to(torch.float32).to(torch.float64)
    pts2 = pts1[None] + jitter.to(torch.float32).to(torch.float64).cpu()
    ones = torch.ones(3, 1, dtype=torch.float64)
    a = torch.cat([pts1, ones], 1)  # (3, 3): rows [x, y, 1]
    m = torch.linalg.solve(a[None].expand(n, 3, 3), pts2).transpose(1, 2)  # (N, 2, 3): dst = m @ [x, y, 1]
    full = torch.cat([m, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(n, 1, 3)], 1)
    inv = torch.linalg.inv(full)[:, :2].to(dev)  # dst -> src
    yy, xx = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float64),
                            torch.arange(w, device=dev, dtype=torch.float64), indexing="ij")
    sx = inv[:, 0, 0, None, None] * xx + inv[:, 0, 1, None, None] * yy + inv[:, 0, 2, None, None]
    sy = inv[:, 1, 0, None, None] * xx + inv[:, 1, 1, None, None] * yy + inv[:, 1, 2, None, None]
    warped = _bilinear(images, sy, sx, "mirror")
    # float32 smoothing: the reference casts the fields to float32 right after
    dx = _ops.gaussian_blur(ux.to(torch.float32), sigma, "reflect", 3.0) * alpha
    dy = _ops.gaussian_blur(uy.to(torch.float32), sigma, "reflect", 3.0) * alpha
    out = _bilinear(warped, yy + dy.to(torch.float64), xx + dx.to(torch.float64), "reflect")
    return out.clamp(0.0, 1.0).to(images.dtype)


@register(
    "elastic_transform",
    param="severity in [0, 5] (0 = identity; integers = ImageNet-C's (alpha, sigma, affine) x 244 px)",
    severities=(1, 2, 3, 4, 5),
    identity=0.0,
    random=True,
    reference="ImageNet-C elastic_transform (hendrycks/robustness; not imagecorruptions' variant): random "
    "affine then Gaussian-smoothed displacement; (alpha, sigma, affine)/244 " + " ".join(str(c) for c in ELASTIC),
    description="Warps the image with a random affine map and a smooth random displacement field.",
    tags=("imagenet-c",),
    unit="severity",
    spatial=True,
)
def elastic_transform(images: torch.Tensor, value: float, generator: torch.Generator,
                      scale: float = 1.0) -> torch.Tensor:
    # Severity 0 -> 1 ramps alpha and the affine jitter from 0 with severity 1's sigma.
    k = interp_params(ELASTIC, (0.0, ELASTIC[0][1], 0.0), value)
    alpha, sigma, affine = (v * 244.0 * scale for v in k)
    n, _, h, w = images.shape
    dev = images.device
    jitter = _ops.rand_uniform((n, 3, 2), -affine, affine, generator, dev)
    ux = _ops.rand_uniform((n, h, w), -1.0, 1.0, generator, dev)
    uy = _ops.rand_uniform((n, h, w), -1.0, 1.0, generator, dev)
    return elastic_core(images, (alpha, sigma, affine), jitter, ux, uy)


@register(
    "pixelate",
    param="downsampling factor c (side ratio; 1 = unchanged)",
    severities=(0.6, 0.5, 0.4, 0.3, 0.25),
    identity=1.0,
    random=False,
    reference="ImageNet-C pixelate: PIL resize to int(c * size) with BOX, back with BOX (imagecorruptions "
    "1.1.2 upsamples with NEAREST instead; we follow ImageNet-C)",
    description="Downsamples by area averaging and upsamples back (blocky).",
    tags=("imagenet-c",),
    bounds=(1e-3, 1.0),
)
def pixelate(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    if value >= 1.0:
        return images.clone()
    h, w = images.shape[-2:]
    u8 = _ops.to_uint8(images)
    small = _ops.pil_box_resize(u8, max(int(h * value), 1), max(int(w * value), 1))
    out = _ops.pil_box_resize(small, h, w)
    return (out / 255.0).to(images.dtype)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


@register(
    "rescale",
    param="scale factor (side ratio in (0, 1]; 1 = unchanged)",
    severities=(0.75, 0.5, 0.35, 0.25, 0.15),
    identity=1.0,
    random=False,
    reference="torch bilinear resize (antialiased) down to round(f * size), then back up",
    description="Downscales and upscales back (editing: resolution loss from resizing).",
    tags=("editing",),
    bounds=(1e-3, 1.0),
)
def rescale(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    h, w = images.shape[-2:]
    small = _resize(images, max(round(h * value), 1), max(round(w * value), 1))
    return _resize(small, h, w).clamp(0.0, 1.0)


@register(
    "crop_resize",
    param="central crop fraction (side ratio in (0, 1]; 1 = unchanged)",
    severities=(0.9, 0.8, 0.7, 0.6, 0.5),
    identity=1.0,
    random=False,
    reference="central crop of round(f * side) then antialiased bilinear resize back (torchvision center_crop + resize)",
    description="Crops the centre and enlarges it back to full size (editing: zoom-in crop).",
    tags=("editing",),
    bounds=(1e-3, 1.0),
)
def crop_resize(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    h, w = images.shape[-2:]
    ch, cw = max(round(h * value), 1), max(round(w * value), 1)
    top, left = (h - ch) // 2, (w - cw) // 2
    return _resize(images[..., top : top + ch, left : left + cw], h, w).clamp(0.0, 1.0)


@register(
    "rotate",
    param="rotation angle (degrees, counter-clockwise)",
    severities=(2.0, 5.0, 10.0, 15.0, 25.0),
    identity=0.0,
    random=False,
    reference="torchvision rotate (bilinear, about the centre, same size, corners filled black)",
    description="Rotates about the centre; uncovered corners become black (editing: straighten/tilt).",
    tags=("editing",),
    bounds=(-180.0, 180.0),
)
def rotate(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = images.shape
    t = -math.radians(value)  # affine_grid's y axis points down: negate for counter-clockwise
    # affine_grid maps output to input in normalised coordinates; scaling by the aspect keeps angles true
    theta = torch.tensor([[math.cos(t), math.sin(t) * h / w, 0.0], [-math.sin(t) * w / h, math.cos(t), 0.0]],
                         dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0.0, 1.0)
