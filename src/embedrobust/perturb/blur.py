"""Blur perturbations (ImageNet-C, hendrycks/robustness ``make_imagenet_c.py``; imagecorruptions 1.1.2)."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from . import _ops
from .catalog import DEFOCUS, GLASS, MOTION, ZOOM
from .registry import interp_params, table_rows


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """scipy.ndimage's Gaussian kernel: radius int(truncate * sigma + 0.5), normalised to sum 1. Shape (2r+1,)."""
    return _ops.gaussian_kernel1d(sigma, truncate).to(dtype=dtype, device=device)


def gaussian_blur(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return _ops.gaussian_blur(images, value * scale, "nearest").clamp(0.0, 1.0)


# --- defocus blur -------------------------------------------------------------------------------------------


def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's ``disk``: a normalised aliased disk (at least 17 x 17) smoothed by a 3x3 (5x5 for
    radius > 8) Gaussian of sigma ``alias_blur`` with OpenCV's reflect-101 border. Float64 (K, K)."""
    r_grid = 8 if radius <= 8 else int(math.floor(radius))
    L = torch.arange(-r_grid, r_grid + 1, dtype=torch.float64)
    d = ((L[:, None] ** 2 + L[None, :] ** 2) <= radius**2).to(torch.float32).to(torch.float64)
    d = d / d.sum()
    if alias_blur > 0:
        ks = 3 if radius <= 8 else 5
        i = torch.arange(ks, dtype=torch.float64) - (ks - 1) / 2
        g = torch.exp(-(i**2) / (2 * alias_blur**2))
        g = g / g.sum()
        d = _ops.correlate_separable(d, g, g, "mirror")
    return d


def defocus_core(images: torch.Tensor, radius: float, alias_blur: float) -> torch.Tensor:
    """cv2.filter2D(x, -1, disk) per channel (correlation, reflect-101 border), clipped. (N, 3, H, W)."""
    k = disk_kernel(radius, alias_blur)
    return _ops.correlate2d_fft(images, k, "mirror").clamp(0.0, 1.0)


def defocus_blur(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0,
                 table: str = "imagenet-c") -> torch.Tensor:
    radius, alias = interp_params(table_rows("defocus_blur", table, DEFOCUS), (0.0, 0.0), value)
    # alias_blur is a sub-pixel anti-aliasing sigma, not a size: it is not scaled, so that small images keep a
    # mild blur where the scaled disk shrinks below one pixel (as CIFAR-10-C's (0.4, 0.5) at severity 2)
    return defocus_core(images, radius * scale, alias)


# --- glass blur ---------------------------------------------------------------------------------------------


def glass_copy(q: torch.Tensor, offsets: torch.Tensor, delta: int) -> torch.Tensor:
    """The reference's local pixel shuffle, exactly, without a pixel loop.

    The reference visits (h, w) for h = H-d .. d+1 and w = W-d .. d+1 (both descending) and "swaps"
    x[h, w] with x[h + dy, w + dx] through NumPy views, which in effect copies: x[h, w] <- x[h', w'] (current
    value). The current value of (h', w') is its already-copied value iff it was visited earlier, i.e. it lies
    in the visited region at a larger raster index. Each pixel's value therefore comes from the end of a chain
    of such links, which pointer jumping resolves in O(log chain length) gathers.

    Args:
        q: (N, C, H, W) images (any dtype).
        offsets: (N, iterations, H - 2d, W - 2d, 2) int64 (dx, dy) in [-d, d), in visiting order.
        delta: max_delta d.
    """
    n, c, h, w = q.shape
    d = delta
    hw = h * w
    dev = q.device
    if offsets.shape[1] == 0 or h <= 2 * d or w <= 2 * d:
        return q.clone()
    # Raster order over the visited rectangle rows/cols d+1 .. size-d: the offsets come in visiting (descending)
    # order, so flip them; "visited earlier" is then "larger raster index".
    off = offsets.flip(2, 3)
    rows = torch.arange(d + 1, h - d + 1, device=dev, dtype=torch.int32)
    cols = torch.arange(d + 1, w - d + 1, device=dev, dtype=torch.int32)
    p = rows[:, None] * w + cols[None, :]  # (H - 2d, W - 2d) raster index of each visited pixel (int32)
    # in-region bounds on the offsets themselves (small integers, compared in their own dtype)
    # (offsets lie in [-d, d): bounds clipped to [-d - 1, d + 1] mean the same and fit the offsets' dtype)
    def bound(b):
        return b.clamp(-d - 1, d + 1).to(off.dtype)

    dy_lo, dy_hi = bound(d + 1 - rows)[:, None], bound(h - d - rows)[:, None]
    dx_lo, dx_hi = bound(d + 1 - cols)[None, :], bound(w - d - cols)[None, :]
    region = (slice(None), slice(d + 1, h - d + 1), slice(d + 1, w - d + 1))
    # int64 index maps (N, H, W) of raster indices, allocated once: each pixel's pointer (chain link, then
    # chain end), a scratch map, each visited pixel's source, and the composition of the iterations' read maps
    # (one value gather at the end). Outside the visited rectangle all stay the identity.
    jump = torch.arange(hw, device=dev).view(1, h, w).repeat(n, 1, 1)
    nxt, source, total = jump.clone(), jump.clone(), jump.clone()
    for it in range(off.shape[1]):
        dx, dy = off[:, it, ..., 0], off[:, it, ..., 1]
        src = (dy.to(torch.int32) * w).add_(dx).add_(p)  # (N, H - 2d, W - 2d) raster index of the source
        visited = (dy >= dy_lo) & (dy <= dy_hi) & (dx >= dx_lo) & (dx <= dx_hi)
        linked = visited & ((dy > 0) | ((dy == 0) & (dx > 0)))  # source visited earlier: already overwritten
        jump[region] = torch.where(linked, src, p)
        source[region] = src
        a, b = jump.view(n, hw), nxt.view(n, hw)
        while True:  # pointer jumping to the end of each chain of links
            torch.gather(a, 1, a, out=b)
            if torch.equal(a, b):
                break
            a, b = b, a
        # each pixel reads its chain end's source, composed with the earlier iterations' reads
        torch.gather(source.view(n, hw), 1, a, out=b)
        torch.gather(total.view(n, hw), 1, b, out=a)
        total, jump, nxt = a.view(n, h, w), b.view(n, h, w), total
    total = total.reshape(n, hw)
    flat = q.reshape(n, c, hw)
    return torch.gather(flat, 2, total[:, None, :].expand(n, c, hw)).reshape(n, c, h, w)


def glass_core(images: torch.Tensor, sigma: float, delta: int, offsets: torch.Tensor) -> torch.Tensor:
    """Blur (skimage, mode nearest), truncate to uint8 levels, shuffle (``glass_copy``), blur again. float64
    inside, as the reference."""
    if sigma <= 0 and (delta == 0 or offsets.shape[1] == 0):
        return images.clone()
    n, c, h, w = images.shape
    # First blur in float64, a cache-sized group of planes at a time; the truncated levels are integers
    # 0..255, which float32 holds exactly (half the bytes to shuffle).
    planes = images.reshape(n * c, h, w)
    q = torch.empty((n * c, h, w), dtype=torch.float32, device=images.device)
    step = max(1, _ops._CHUNK_BYTES // (8 * h * w))
    for i in range(0, n * c, step):
        q[i : i + step] = _ops.gaussian_blur(planes[i : i + step].to(torch.float64), sigma).mul_(255.0).floor_()
    q = q.view(n, c, h, w)
    if delta > 0:
        q = glass_copy(q, offsets, delta)
    # the second blur needs no float64: nothing is truncated after it
    return _ops.gaussian_blur(q.div_(255.0).to(images.dtype), sigma).clamp_(0.0, 1.0)


def glass_params(value: float, scale: float = 1.0, table: str = "imagenet-c") -> tuple[float, int, int]:
    rows = table_rows("glass_blur", table, GLASS)
    sigma, delta, iters = interp_params(rows, (0.0, 0.0, 0.0), value, integer=(False, True, True))
    if delta > 0 and scale != 1.0:
        delta = max(1.0, math.floor(delta * scale + 0.5))
    return sigma * scale, int(delta), int(iters)


def glass_blur(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0,
               table: str = "imagenet-c") -> torch.Tensor:
    sigma, delta, iters = glass_params(value, scale, table)
    n, _, h, w = images.shape
    if delta > 0 and (h <= 2 * delta or w <= 2 * delta):
        delta = 0
    size = (n, iters, max(h - 2 * delta, 0), max(w - 2 * delta, 0), 2)
    # int8 draws are the same numbers as int64 ones (same generator stream), at a third of the cost
    small = torch.int8 if delta < 100 else torch.int64
    offsets = torch.randint(-max(delta, 1), max(delta, 1), size, generator=generator, device=images.device,
                            dtype=small)
    return _ops.map_images(lambda x, o: glass_core(x, sigma, delta, o), images, offsets)


# --- motion blur --------------------------------------------------------------------------------------------


_MOTION_DIRECT_TAPS = 64  # streaks up to this many taps are summed directly; longer ones by FFT


def motion_blur_core(x: torch.Tensor, radius: int, sigma: float, angles: torch.Tensor) -> torch.Tensor:
    """imagecorruptions' ``_motion_blur``: a one-sided Gaussian streak along ``angles`` (degrees, (N,)).

    Tap i (of 2r+1, weight exp(-i^2 / 2 sigma^2), normalised) shifts the image by
    (dy, dx) = -ceil(i * (sin a, cos a) - 0.5) with edges replicated; taps beyond the image are dropped.
    Args: x (N, C, H, W). Returns the unclipped sum, in x's dtype.
    """
    n, c, h, w = x.shape
    width = 2 * radius + 1
    i = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(i**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    k = k / k.sum()
    a = torch.deg2rad(angles.to(torch.float64).cpu())
    p0, p1 = width * torch.sin(a), width * torch.cos(a)
    hyp = torch.hypot(p0, p1)
    dy = -torch.ceil(i[None] * p0[:, None] / hyp[:, None] - 0.5).long()  # (N, width)
    dx = -torch.ceil(i[None] * p1[:, None] / hyp[:, None] - 0.5).long()
    ok = torch.cumprod(((dy.abs() < h) & (dx.abs() < w)).long(), dim=1).bool()
    weights = k[None] * ok  # (N, width) float64
    # Each tap is an integer translation with edges replicated, so the sum is one convolution per image with
    # a sparse streak kernel over the replicate-padded image, done with FFTs.
    r = int(max(int(dy[ok].abs().max()) if ok.any() else 0, int(dx[ok].abs().max()) if ok.any() else 0, 1))
    kern = torch.zeros(n, 2 * r + 1, 2 * r + 1, dtype=torch.float64)
    rows = (r + dy).clamp(0, 2 * r)
    cols = (r + dx).clamp(0, 2 * r)
    kern.view(n, -1).scatter_add_(1, rows * (2 * r + 1) + cols, weights)
    xp = _ops.pad_index(_ops.pad_index(x, r, 2, "nearest"), r, 3, "nearest")
    if width <= _MOTION_DIRECT_TAPS and x.device.type == "cpu":
        # few taps: sum the shifted copies directly (output (y, x) reads the padded image at (y + r - dy, ...))
        out = torch.empty_like(x)
        flat = kern.view(n, -1)
        for b in range(n):
            taps = flat[b].nonzero().squeeze(1).tolist()
            acc = None
            for t in taps:
                wt = float(flat[b, t])
                oy, ox = 2 * r - t // (2 * r + 1), 2 * r - t % (2 * r + 1)
                sl = xp[b, :, oy : oy + h, ox : ox + w]
                acc = sl * wt if acc is None else acc.add_(sl, alpha=wt)
            out[b] = acc if acc is not None else 0.0
        return out
    ph, pw = _ops.fft_size(xp.shape[-2]), _ops.fft_size(xp.shape[-1])  # zero padding beyond never wraps in
    kf = torch.zeros(n, ph, pw, dtype=x.dtype)
    kf[:, : 2 * r + 1, : 2 * r + 1] = kern.to(x.dtype)
    spec = torch.fft.rfft2(xp, s=(ph, pw)) * torch.fft.rfft2(kf.to(x.device))[:, None]
    y = torch.fft.irfft2(spec, s=(ph, pw))
    # circular convolution with the kernel origin at (r, r) of a padding of r: output (y, x) is at (y + 2r, x + 2r)
    return y[..., 2 * r : 2 * r + h, 2 * r : 2 * r + w].contiguous()


def motion_blur(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0,
                table: str = "imagenet-c") -> torch.Tensor:
    radius, sigma = interp_params(table_rows("motion_blur", table, MOTION), (0.0, 0.0), value, integer=(True, False))
    angles = _ops.rand_uniform((images.shape[0],), -45.0, 45.0, generator, images.device)
    radius = int(math.floor(radius * scale + 0.5))
    if radius == 0 or sigma == 0:
        return images.clone()
    return _ops.map_images(lambda x, a: motion_blur_core(x, radius, sigma * scale, a).clamp_(0.0, 1.0), images, angles)


# --- zoom blur ----------------------------------------------------------------------------------------------


def zoom_factors(value: float, table: str = "imagenet-c") -> np.ndarray:
    stop, step = interp_params(table_rows("zoom_blur", table, ZOOM), (1.0, 0.01), value)
    return np.arange(1, stop, step)


@functools.lru_cache(maxsize=32)
def _zoom_grids(h: int, w: int, factors: tuple[float, ...]) -> tuple[int, torch.Tensor | None]:
    """(number of identity zooms, grid_sample grids (Z, H, W, 2) float64 of the others, or None)."""
    grids, identity = [], 0
    for z in factors:
        i0, _, t = _ops.zoom_coords(h, z)
        j0, _, u = _ops.zoom_coords(w, z)
        gy, gx = i0.double() + t, j0.double() + u
        if torch.equal(gy, torch.arange(h, dtype=torch.float64)) and torch.equal(gx, torch.arange(w, dtype=torch.float64)):
            identity += 1  # zoom 1 (np.arange's first factor): the image itself
            continue
        gy = gy * (2.0 / max(h - 1, 1)) - 1.0  # normalised for align_corners=True
        gx = gx * (2.0 / max(w - 1, 1)) - 1.0
        grids.append(torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), -1))
    return identity, (torch.stack(grids) if grids else None)


def zoom_core(images: torch.Tensor, factors) -> torch.Tensor:
    """Mean of the image and its central zooms by each factor (bilinear, scipy.ndimage.zoom order 1)."""
    n, c, h, w = images.shape
    if len(factors) == 0:
        return images.clone()
    identity, grids = _zoom_grids(h, w, tuple(float(z) for z in factors))
    acc = images * float(1 + identity)
    if grids is not None:
        grids = grids.to(device=images.device, dtype=images.dtype)
        src = images.reshape(1, n * c, h, w)
        # one grid_sample per factor, accumulated: exact bilinear taps at ImageNet-C's sample positions; no
        # (factors, N, C, H, W) intermediate
        for k in range(grids.shape[0]):
            acc += F.grid_sample(src, grids[k : k + 1], mode="bilinear", padding_mode="border",
                                 align_corners=True).view(n, c, h, w)
    return acc.div_(len(factors) + 1).clamp_(0.0, 1.0)


def zoom_blur(images: torch.Tensor, value: float, generator: torch.Generator, table: str = "imagenet-c") -> torch.Tensor:
    return zoom_core(images, zoom_factors(value, table))
