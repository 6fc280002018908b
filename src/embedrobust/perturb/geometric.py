"""Geometric corruptions and edits: elastic_transform, pixelate (ImageNet-C), rescale, crop_resize, rotate."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from . import _ops
from .catalog import ELASTIC
from .registry import interp_params, table_rows


@functools.lru_cache(maxsize=8)
def _identity_grid(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """grid_sample's identity grid (1, H, W, 2) for align_corners=False (read only)."""
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=dtype, device=device)
    return F.affine_grid(eye, [1, 3, h, w], align_corners=False)


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
    inv = torch.linalg.inv(full)  # dst -> src, pixel coordinates
    # the same map in grid_sample's normalised coordinates (align_corners=True: pixel = (g + 1) (size - 1) / 2)
    ax, ay = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0
    to_pix = torch.tensor([[ax, 0.0, ax], [0.0, ay, ay], [0.0, 0.0, 1.0]], dtype=torch.float64)
    theta = (torch.linalg.inv(to_pix) @ inv @ to_pix)[:, :2]
    gx = torch.linspace(-1.0, 1.0, w, dtype=torch.float64) if w > 1 else torch.zeros(1, dtype=torch.float64)
    gy = torch.linspace(-1.0, 1.0, h, dtype=torch.float64) if h > 1 else torch.zeros(1, dtype=torch.float64)
    grid = torch.empty((n, h, w, 2), dtype=images.dtype, device=dev)
    for k in range(2):  # (affine_grid's batched matmul is slower): a row term plus a column term per image
        along_x = (theta[:, k, 0, None] * gx).to(device=dev, dtype=images.dtype)  # (N, W)
        along_y = (theta[:, k, 1, None] * gy + theta[:, k, 2, None]).to(device=dev, dtype=images.dtype)  # (N, H)
        torch.add(along_x[:, None, :], along_y[:, :, None], out=grid[..., k])
    # cv2.warpAffine's BORDER_REFLECT_101 = reflection about the outermost pixel centres
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    # float32 smoothing (both fields in one call): the reference casts the fields to float32 right after
    d = _ops.gaussian_blur(torch.stack([ux, uy], 1).to(torch.float32), sigma, "reflect", 3.0)  # (N, 2, H, W)
    # sample at (x + alpha dx, y + alpha dy): the identity grid (align_corners=False, where reflection is
    # scipy's symmetric 'reflect') plus the displacement in normalised units
    base = _identity_grid(h, w, images.dtype, dev)
    step = torch.tensor([2.0 * alpha / w, 2.0 * alpha / h], dtype=images.dtype, device=dev)
    grid = torch.addcmul(base, d.permute(0, 2, 3, 1).to(images.dtype), step)
    out = F.grid_sample(warped, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.clamp(0.0, 1.0).to(images.dtype)


def elastic_transform(images: torch.Tensor, value: float, generator: torch.Generator,
                      scale: float = 1.0, table: str = "imagenet-c") -> torch.Tensor:
    # Severity 0 -> 1 ramps alpha and the affine jitter from 0 with severity 1's sigma.
    rows = table_rows("elastic_transform", table, ELASTIC)
    k = interp_params(rows, (0.0, rows[0][1], 0.0), value)
    alpha, sigma, affine = (v * 244.0 * scale for v in k)
    n, _, h, w = images.shape
    dev = images.device
    jitter = _ops.rand_uniform((n, 3, 2), -affine, affine, generator, dev)
    u = _ops.rand_uniform((n, 2, h, w), -1.0, 1.0, generator, dev, dtype=torch.float32)  # smoothed in float32
    return _ops.map_images(lambda x, j, uu: elastic_core(x, (alpha, sigma, affine), j, uu[:, 0], uu[:, 1]),
                           images, jitter, u)


def pixelate(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    if value >= 1.0:
        return images.clone()
    h, w = images.shape[-2:]
    levels = (images.to(torch.float32) * 255.0).round_().clamp_(0, 255)  # the 8-bit image, as float32
    small = _ops.pil_box_resize(levels, max(int(h * value), 1), max(int(w * value), 1))
    out = _ops.pil_box_resize(small, h, w)
    return (out / 255.0).to(images.dtype)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def rescale(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    h, w = images.shape[-2:]
    small = _resize(images, max(round(h * value), 1), max(round(w * value), 1))
    return _resize(small, h, w).clamp(0.0, 1.0)


def crop_resize(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    h, w = images.shape[-2:]
    ch, cw = max(round(h * value), 1), max(round(w * value), 1)
    top, left = (h - ch) // 2, (w - cw) // 2
    return _resize(images[..., top : top + ch, left : left + cw], h, w).clamp(0.0, 1.0)


def rotate(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = images.shape
    t = -math.radians(value)  # affine_grid's y axis points down: negate for counter-clockwise
    # affine_grid maps output to input in normalised coordinates; scaling by the aspect keeps angles true
    theta = torch.tensor([[math.cos(t), math.sin(t) * h / w, 0.0], [-math.sin(t) * w / h, math.cos(t), 0.0]],
                         dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0.0, 1.0)
