"""Weather and occlusion corruptions: snow, frost, fog, spatter (ImageNet-C / imagecorruptions 1.1.2).

All four take a continuous severity in [0, 5]. Fog and frost interpolate their parameter tuples from an
identity tuple at 0; snow and spatter have no parameter tuple that is a no-op, so below severity 1 their output
is ``x + s * (corrupt(x, 1) - x)`` (a fade-in of severity 1), and between integers the tuples interpolate.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from . import _ops
from .blur import motion_blur_core
from .catalog import FOG, FROST, SNOW, SPATTER
from .registry import interp_params, table_rows

_GREY = (0.299, 0.587, 0.114)  # OpenCV COLOR_RGB2GRAY


def _fade_in(images, value, corrupt):
    """Severity < 1 for corruptions without an identity tuple: blend towards severity 1."""
    if value >= 1.0:
        return corrupt(value)
    return images + value * (corrupt(1.0) - images)


# --- snow ---------------------------------------------------------------------------------------------------


def snow_core(images: torch.Tensor, params, field: torch.Tensor, angles: torch.Tensor,
              scale: float = 1.0) -> torch.Tensor:
    """ImageNet-C snow given its draws.

    Args:
        images: (N, 3, H, W).
        params: one SNOW tuple.
        field: (N, H, W) float64 draws of N(loc, scale^2) (the flake layer before zooming).
        angles: (N,) motion-blur angle of the flakes in degrees (reference: U(-135, -45)).
    """
    _, _, zoom, thr, radius, sigma, blend = params
    n, _, h, w = images.shape
    zoom = max(zoom * scale, 1.0) if scale != 1.0 else zoom
    # float32 throughout (the reference: float64); the zoom as two small matrices (exact float64 weights)
    # over the central crop only
    mh, top = _ops.zoom_matrix(h, float(zoom), keep=-1)
    mw, left = _ops.zoom_matrix(w, float(zoom), keep=-1)
    crop = field.to(torch.float32)[:, None, top : top + mh.shape[1], left : left + mw.shape[1]]
    layer = _ops.apply_separable(crop, mh, mw)
    layer = torch.where(layer < thr, 0.0, layer).clamp_(0.0, 1.0)
    r = max(int(math.floor(radius * scale + 0.5)), 1)
    layer = motion_blur_core(layer, r, sigma * scale, angles)
    layer = (torch.round(layer * 255).clamp_(0, 255) / 255.0)[..., :h, :w].to(images.dtype)
    grey = (images * torch.tensor(_GREY, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)).sum(1, True)
    x = torch.lerp(images, torch.maximum(images, grey * 1.5 + 0.5), 1 - blend)
    return (x + layer + layer.flip(-1, -2)).clamp_(0.0, 1.0)


def snow(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0,
         table: str = "imagenet-c") -> torch.Tensor:
    rows = table_rows("snow", table, SNOW)
    n, _, h, w = images.shape
    z = torch.randn((n, h, w), generator=generator, device=images.device, dtype=torch.float32)
    angles = _ops.rand_uniform((n,), -135.0, -45.0, generator, images.device)

    def at(s):
        p = interp_params(rows, rows[0], s, integer=(False, False, False, False, True, False, False))
        return _ops.map_images(lambda x, zz, a: snow_core(x, p, p[0] + p[1] * zz, a, scale), images, z, angles)

    return _fade_in(images, value, at)


# --- frost --------------------------------------------------------------------------------------------------
# The reference's frost1..5 (frost6 is never drawn: np.random.randint(5)); original (height, width).
FROST_FILES = ("frost1.jpg", "frost2.jpg", "frost3.jpg", "frost4.jpg", "frost5.jpg")
FROST_SIZES = ((600, 900), (315, 560), (315, 560), (350, 527), (495, 660))


@functools.lru_cache(maxsize=8)
def _frost_asset(k: int) -> torch.Tensor:
    """Downsized frost texture k as float32 (3, h, w) in [0, 1], RGB."""
    from PIL import Image

    with resources.files(__package__).joinpath("assets", FROST_FILES[k]).open("rb") as f:
        arr = np.asarray(Image.open(f).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


@functools.lru_cache(maxsize=32)
def frost_texture(k: int, h: int, w: int, scale: float) -> torch.Tensor:
    """Texture k rescaled as the reference does: by 1.1 x max(scale, h / fh, w / fw) of its original size
    (bicubic; our shipped copies are half size, so they are upsampled back to the original pixel scale)."""
    fh, fw = FROST_SIZES[k]
    sf = max(scale, h / fh, w / fw) * 1.1
    size = (int(math.ceil(fh * sf)), int(math.ceil(fw * sf)))
    tex = _frost_asset(k)[None]
    return F.interpolate(tex, size=size, mode="bicubic", align_corners=False).clamp(0, 1)[0]


def frost_core(images: torch.Tensor, params, idx: torch.Tensor, u: torch.Tensor, scale: float = 1.0):
    """a * x + b * crop of frost texture idx[n] at relative offset u[n] in [0, 1)^2. (N, 3, H, W)."""
    a, b = params
    n, _, h, w = images.shape
    frost = torch.empty_like(images)
    for k in idx.unique().tolist():  # at most five textures; crops within a texture are one gather
        sel = (idx == k).nonzero().flatten()
        tex = frost_texture(k, h, w, scale).to(images)
        y0 = (u[sel, 0] * (tex.shape[1] - h)).long()
        x0 = (u[sel, 1] * (tex.shape[2] - w)).long()
        rows = (y0[:, None] + torch.arange(h, device=images.device))[:, :, None]
        cols = (x0[:, None] + torch.arange(w, device=images.device))[:, None, :]
        frost[sel] = tex[:, rows, cols].permute(1, 0, 2, 3)
    return frost.mul_(b).add_(images, alpha=a).clamp_(0.0, 1.0)  # a x + b frost, in place


def frost(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    n = images.shape[0]
    idx = torch.randint(0, 5, (n,), generator=generator, device=images.device).cpu()
    u = torch.rand((n, 2), generator=generator, device=images.device, dtype=torch.float64).cpu()
    params = interp_params(FROST, (1.0, 0.0), value)
    return frost_core(images, params, idx.to(images.device), u.to(images.device), scale)


# --- fog ----------------------------------------------------------------------------------------------------


def plasma_fractal(n: int, mapsize: int, decay: float, uniform, device=None, dtype=torch.float64) -> torch.Tensor:
    """Diamond-square height maps (ImageNet-C ``plasma_fractal``), batched: (N, S, S) in [0, 1] (float64 as the
    reference by default).

    ``uniform(shape)`` returns U[0, 1) float64 draws of shape (N, *shape); each step draws in the reference's
    order (squares, then the two diamond sets), so NumPy's draws reproduce the reference map exactly.
    """
    if mapsize & (mapsize - 1):
        raise ValueError("mapsize must be a power of two")
    m = torch.zeros((n, mapsize, mapsize), dtype=dtype, device=device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(a):
        u = uniform(tuple(a.shape[1:])).to(device=a.device, dtype=dtype)
        return a / 4 + wibble * (-wibble + (wibble - -wibble) * u)

    while step >= 2:
        half = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + torch.roll(corner, -1, 1)
        sq = sq + torch.roll(sq, -1, 2)
        m[:, half::step, half::step] = wibbled_mean(sq)
        dr = m[:, half::step, half::step]
        ul = m[:, 0::step, 0::step]
        lt = (dr + torch.roll(dr, 1, 1)) + (ul + torch.roll(ul, -1, 2))
        m[:, 0::step, half::step] = wibbled_mean(lt)
        tt = (dr + torch.roll(dr, 1, 2)) + (ul + torch.roll(ul, -1, 1))
        m[:, half::step, 0::step] = wibbled_mean(tt)
        step //= 2
        wibble /= decay
    m = m - m.amin((1, 2), keepdim=True)
    return m / m.amax((1, 2), keepdim=True)


def fog_core(images: torch.Tensor, strength: float, fractal: torch.Tensor) -> torch.Tensor:
    """clip((x + c f) * max / (max + c)), f the (N, S, S) fractal cropped to (H, W), max per image."""
    h, w = images.shape[-2:]
    mx = images.amax((1, 2, 3), keepdim=True)
    haze = (strength * fractal[:, None, :h, :w]).to(images.dtype)
    return (images + haze).mul_(mx / (mx + strength)).clamp_(0.0, 1.0)


def fog(images: torch.Tensor, value: float, generator: torch.Generator, table: str = "imagenet-c") -> torch.Tensor:
    rows = table_rows("fog", table, FOG)
    strength, decay = interp_params(rows, (0.0, rows[0][1]), value)
    n, _, h, w = images.shape
    size = 1 << (max(h, w, 3) - 1).bit_length()  # reference: next power of 2 of max(shape)
    # float32 draws and map (the reference: float64): the haze is a smooth map normalised to [0, 1]
    uni = lambda shape: torch.rand((n, *shape), generator=generator, device=images.device)  # noqa: E731
    return fog_core(images, strength, plasma_fractal(n, size, decay, uni, images.device, torch.float32))


# --- spatter ------------------------------------------------------------------------------------------------


def _conv3(x: torch.Tensor, k: torch.Tensor, mode: str = "mirror") -> torch.Tensor:
    """3x3 correlation of (N, 1, H, W), OpenCV's reflect-101 border by default."""
    return _ops.correlate3x3(x, k, mode)


def canny(u8: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """cv2.Canny(img, low, high) (3x3 Sobel, L1 magnitude, 4-direction non-maximum suppression, 8-connected
    hysteresis) on (N, 1, H, W) uint8-valued float; returns a bool edge map."""
    # 3x3 Sobel, separable ([1, 2, 1] smoothing times [-1, 0, 1] difference), edges replicated; integers, exact
    xp = _ops.pad_index(_ops.pad_index(u8, 1, u8.ndim - 2, "nearest"), 1, u8.ndim - 1, "nearest")
    smooth = xp[..., 1:-1, :] * 2 + xp[..., :-2, :] + xp[..., 2:, :]  # along y: (H, W + 2)
    diff = xp[..., 2:, :] - xp[..., :-2, :]
    gx = smooth[..., 2:] - smooth[..., :-2]
    gy = diff[..., 1:-1] * 2 + diff[..., :-2] + diff[..., 2:]
    ax, ay = gx.abs(), gy.abs()
    mag = ax + ay
    p = F.pad(mag, (1, 1, 1, 1))
    nb = lambda dy, dx: p[..., 1 + dy : p.shape[-2] - 1 + dy, 1 + dx : p.shape[-1] - 1 + dx]  # noqa: E731
    tg22 = math.tan(math.radians(22.5))
    horiz = ay <= tg22 * ax
    vert = ay > ax / tg22
    same = (gx * gy) > 0
    keep = torch.where(
        horiz, (mag > nb(0, -1)) & (mag >= nb(0, 1)),
        torch.where(vert, (mag > nb(-1, 0)) & (mag >= nb(1, 0)),
                    torch.where(same, (mag > nb(-1, -1)) & (mag >= nb(1, 1)), (mag > nb(-1, 1)) & (mag >= nb(1, -1)))),
    )
    weak = keep & (mag > low)
    edges = weak & (mag > high)

    def dilate(e):  # 8-neighbourhood, separable (max_pool2d is slow on one channel)
        p = F.pad(e, (1, 1, 1, 1))
        r = p[..., :-2, :] | p[..., 1:-1, :] | p[..., 2:, :]
        return r[..., :-2] | r[..., 1:-1] | r[..., 2:]

    while True:
        grown = weak & dilate(edges)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def distance_to(edges: torch.Tensor, cap: int = 20) -> torch.Tensor:
    """Euclidean distance (pixels) from each pixel to the nearest edge pixel, capped at ``cap``. (N, 1, H, W).

    The reference uses cv2.distanceTransform(DIST_L2, 5), a 5x5 chamfer approximation; this is exact."""
    big = cap + 1
    h, w = edges.shape[-2:]
    dev = edges.device
    # 1-D distance along rows to the nearest edge on either side (running max/min of edge positions), <= cap + 1
    col = torch.arange(w, device=dev, dtype=torch.int32)
    left = torch.where(edges, col, -2 * big).cummax(-1).values
    right = torch.where(edges, col, w + 2 * big).flip(-1).cummin(-1).values.flip(-1)
    g = torch.minimum(col - left, right - col).clamp_(max=big).to(torch.int16)
    # exact 2-D squared distance: min over row offsets j of g(y + j)^2 + j^2 (int16: at most 2 * 21^2)
    gp = F.pad(g.float(), (0, 0, cap, cap), value=float(big)).to(torch.int16)
    gp = gp * gp
    d2 = gp[..., cap : cap + h, :].clone()
    for j in range(1, cap + 1):
        near = torch.minimum(gp[..., cap - j : cap - j + h, :], gp[..., cap + j : cap + j + h, :])
        torch.minimum(d2, near.add_(j * j), out=d2)
    return d2.to(torch.float32).sqrt_().clamp_(max=float(cap))


def equalize_hist(u8: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image on (N, 1, H, W) integer-valued float."""
    n = u8.shape[0]
    flat = u8.reshape(n, -1).long()
    hist = torch.zeros(n, 256, dtype=torch.float64, device=u8.device).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float64))
    total = flat.shape[1]
    first = (hist > 0).long().argmax(1, keepdim=True)
    h0 = torch.gather(hist, 1, first)
    cdf = hist.cumsum(1)
    scale = 255.0 / (total - h0).clamp(min=1)
    lut = torch.floor((cdf - h0) * scale + 0.5).clamp(0, 255)
    lut = torch.where(torch.arange(256, device=u8.device)[None] < first, torch.zeros_like(lut), lut)
    out = torch.gather(lut.to(u8.dtype), 1, flat).reshape(u8.shape)
    return torch.where((h0 >= total).view(n, 1, 1, 1), u8, out)  # single-valued images stay as they are


def spatter_core(images: torch.Tensor, params, field: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """ImageNet-C spatter given its (N, H, W) N(loc, scale^2) draws: water drops (severities 1-3) or mud."""
    _, _, sigma, thr, c4, mud = params
    # float32 (the reference blurs in float64): a few pixels' 8-bit level can differ, as between two draws
    liquid = _ops.gaussian_blur(field.to(torch.float32).unsqueeze(1), sigma * scale)
    liquid = torch.where(liquid < thr, 0.0, liquid)
    x = images.to(torch.float32)
    if mud:
        m = _ops.gaussian_blur((liquid > thr).to(torch.float32), c4 * scale)
        m = torch.where(m < 0.8, 0.0, m)
        color = torch.tensor([63, 42, 20], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0
        return torch.addcmul(x, color - x, m).clamp_(0.0, 1.0).to(images.dtype)  # x (1 - m) + color m
    lu8 = torch.floor(liquid * 255).clamp_(0, 255)
    dist = distance_to(canny(lu8, 50, 150))  # distance to the edges, capped at 20 as the reference clips it
    box = torch.full((3, 3), 1 / 9)
    dist = torch.floor(_conv3(dist, box))
    dist = equalize_hist(dist)
    emboss = torch.tensor([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]])
    dist = torch.round(_conv3(dist, emboss)).clamp(0, 255)
    dist = torch.round(_conv3(dist, box))
    m = lu8 * dist
    m = m * (c4 / m.amax((2, 3), keepdim=True).clamp(min=1e-12))
    color = torch.tensor([175, 238, 238], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0
    return torch.addcmul(x, m, color).clamp_(0.0, 1.0).to(images.dtype)


def spatter(images: torch.Tensor, value: float, generator: torch.Generator, scale: float = 1.0,
            table: str = "imagenet-c") -> torch.Tensor:
    rows = table_rows("spatter", table, SPATTER)
    n, _, h, w = images.shape
    z = torch.randn((n, h, w), generator=generator, device=images.device, dtype=torch.float32)

    def at(s):
        if 3.0 < s < 4.0:  # water (3) and mud (4) differ in kind: blend their outputs
            return (4.0 - s) * at(3.0) + (s - 3.0) * at(4.0)
        p = interp_params(rows, rows[0], s)
        return _ops.map_images(lambda x, zz: spatter_core(x, p, p[0] + p[1] * zz, scale), images, z)

    return _fade_in(images, value, at)
