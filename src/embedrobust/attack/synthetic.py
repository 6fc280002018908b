"""Tiny synthetic dense tasks for tests and smoke runs (no dataset download).

``shapes_segmentation``: rectangles of class colours on a class-0 background -> per-pixel class masks.
``depth_ramps``: a vertical depth ramp per image whose shading encodes depth (near = bright) -> depth maps.
Rectangles are snapped to a ``cell`` grid so that, with ``cell`` equal to the model's patch size, each patch
token sees one class. All randomness comes from ``generator``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import AttackError

PALETTE = torch.tensor([
    [0.15, 0.15, 0.15],  # class 0: background
    [0.90, 0.15, 0.10],
    [0.10, 0.80, 0.20],
    [0.15, 0.25, 0.90],
    [0.95, 0.90, 0.10],
    [0.85, 0.20, 0.85],
    [0.10, 0.85, 0.85],
    [0.95, 0.95, 0.95],
])


def _gen(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(0)


def shapes_segmentation(n: int, size: int = 64, n_classes: int = 4, cell: int = 16, shapes: int = 3,
                        noise: float = 0.05, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Images (n, 3, size, size) float in [0, 1] and masks (n, size, size) int64 in [0, n_classes).

    Each image gets ``shapes`` cell-aligned rectangles (1-2 cells a side) of random classes 1..n_classes-1,
    drawn in order (later ones on top), plus Gaussian pixel noise of std ``noise``.
    """
    if not 2 <= n_classes <= len(PALETTE):
        raise AttackError(f"n_classes {n_classes} must be in [2, {len(PALETTE)}]")
    if size % cell:
        raise AttackError(f"size {size} must be a multiple of cell {cell}")
    g, cells = _gen(generator), size // cell
    masks = torch.zeros(n, size, size, dtype=torch.int64)
    for i in range(n):
        for _ in range(shapes):
            k, h, w = (int(v) for v in (torch.randint(1, n_classes, (1,), generator=g),
                                        *torch.randint(1, min(2, cells) + 1, (2,), generator=g)))
            y, x = (int(v) for v in torch.randint(0, cells - min(h, w) + 1, (2,), generator=g))
            masks[i, y * cell:(y + h) * cell, x * cell:(x + w) * cell] = k
    images = PALETTE[masks].permute(0, 3, 1, 2) + noise * torch.randn(n, 3, size, size, generator=g)
    return images.clamp(0, 1), masks


def depth_ramps(n: int, size: int = 64, near: tuple[float, float] = (1.0, 3.0), far: tuple[float, float] = (5.0, 10.0),
                noise: float = 0.03, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Images (n, 3, size, size) in [0, 1] and depth (n, size, size) float32 (metres, > 0).

    Depth rises linearly from a random ``near`` (top row) to a random ``far`` (bottom row); each pixel's
    brightness is 1 - depth / 10 (so nearer is brighter) times a random per-image colour tint, plus noise.
    """
    g = _gen(generator)
    lo = near[0] + (near[1] - near[0]) * torch.rand(n, 1, 1, generator=g)
    hi = far[0] + (far[1] - far[0]) * torch.rand(n, 1, 1, generator=g)
    t = torch.linspace(0, 1, size).view(1, size, 1)
    depth = (lo + (hi - lo) * t).expand(n, size, size).contiguous()
    tint = 0.6 + 0.4 * torch.rand(n, 3, 1, 1, generator=g)
    images = tint * (1 - depth / 10).unsqueeze(1) + noise * torch.randn(n, 3, size, size, generator=g)
    return images.clamp(0, 1), depth
