"""Shared batched tensor operations that reproduce the reference libraries' filters exactly.

Linear filters along one axis are applied as (n, n) matrices, which fold any boundary mode into the matrix
and stay exact when the kernel is wider than the image (elastic transform's sigma of 170 px).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

_IMAGE_CHUNK_BYTES = 3 << 19  # 1.5 MiB of input per chunk: two 224 px float32 images, ~128 CIFAR images


def image_chunk(images: torch.Tensor) -> int:
    """How many images of ``images`` (N, C, H, W) to process at once on the CPU: whole-batch temporaries of
    many MB miss the caches and, freed and reallocated call after call, cost a page fault per 4 KiB; a chunk
    of ~1.5 MB of input keeps them cache-resident and reused. The whole batch on other devices."""
    if images.device.type != "cpu":
        return max(images.shape[0], 1)
    per_image = max(1, images[0].numel() * images.element_size()) if images.shape[0] else 1
    return max(1, _IMAGE_CHUNK_BYTES // per_image)


def map_images(fn, images: torch.Tensor, *per_image, step: int | None = None) -> torch.Tensor:
    """``fn(images[i:j], *[a[i:j] for a in per_image])`` over chunks of ``image_chunk`` images, concatenated.

    For functions that treat each image independently (given its draws in ``per_image``), so the output is
    the same as one call on the whole batch."""
    n = images.shape[0]
    step = step or image_chunk(images)
    if n <= step:
        return fn(images, *per_image)
    out = None
    for i in range(0, n, step):
        y = fn(images[i : i + step], *(a[i : i + step] for a in per_image))
        if out is None:
            out = torch.empty((n, *y.shape[1:]), dtype=y.dtype, device=y.device)
        out[i : i + step] = y
    return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] -> uint8 with round-half-to-even, as a saved image would be (float32 arithmetic, in place on
    one temporary, in the input's memory layout and on its device)."""
    return (images.to(torch.float32) * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def boundary_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map integer positions (any range) into [0, n) under a boundary mode.

    ``nearest``: edge replicated (scipy 'nearest'); ``reflect``: d c b a | a b c d | d c b a (scipy 'reflect');
    ``mirror``: d c b | a b c d | c b a (scipy 'mirror', OpenCV BORDER_REFLECT_101).
    """
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        m = i.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if mode == "mirror":
        if n == 1:
            return torch.zeros_like(i)
        m = i.remainder(2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(f"unknown boundary mode {mode!r}")


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage's Gaussian kernel (float64): radius int(truncate * sigma + 0.5), sum 1. Shape (2r+1,)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


@functools.lru_cache(maxsize=256)
def _filter_matrix(n: int, kernel: tuple[float, ...], mode: str) -> torch.Tensor:
    k = torch.tensor(kernel, dtype=torch.float64)
    r = k.numel() // 2
    rows = torch.arange(n).unsqueeze(1)
    cols = boundary_index(rows + torch.arange(-r, r + 1).unsqueeze(0), n, mode)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.scatter_add_(1, cols, k.expand(n, -1).contiguous())
    return m


def filter_matrix(n: int, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """(n, n) float64 matrix M with (M @ x)[i] = sum_k kernel[k] x[bnd(i + k - r)] (correlation)."""
    return _filter_matrix(n, tuple(kernel.tolist()), mode)


def apply_separable(x: torch.Tensor, mh: torch.Tensor, mw: torch.Tensor) -> torch.Tensor:
    """``mh @ x @ mw.T`` over the last two axes of x (..., H, W), computed in x's dtype."""
    mh = mh.to(device=x.device, dtype=x.dtype)
    mw = mw.to(device=x.device, dtype=x.dtype)
    return torch.matmul(torch.matmul(mh, x), mw.transpose(0, 1))


def pad_index(x: torch.Tensor, r: int, dim: int, mode: str) -> torch.Tensor:
    """Pad ``x`` by ``r`` on both sides of ``dim`` under a boundary mode (any r, even wider than the axis)."""
    n = x.shape[dim]
    if r <= 0:
        return x
    idx = boundary_index(torch.arange(-r, n + r, device=x.device), n, mode)
    # the two margins gathered, the body copied by cat: index_select along the last axis is ~10x slower on CPU
    return torch.cat([x.index_select(dim, idx[:r]), x, x.index_select(dim, idx[n + r :])], dim)


def _correlate_axis(x: torch.Tensor, k: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    # A sum of shifted slices: single-channel conv2d is slow on CPU, and these kernels are short.
    r = k.numel() // 2
    n = x.shape[dim]
    xp = pad_index(x, r, dim, mode)
    w = k.tolist()
    out = xp.narrow(dim, 0, n) * w[0]
    for i in range(1, len(w)):
        out.add_(xp.narrow(dim, i, n), alpha=w[i])
    return out


def correlate_separable(x: torch.Tensor, kh: torch.Tensor, kw: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate the last two axes of x (..., H, W) with 1-D kernels kh then kw (odd lengths), padded by mode."""
    return _correlate_axis(_correlate_axis(x, kh, x.ndim - 2, mode), kw, x.ndim - 1, mode)


def fft_size(n: int) -> int:
    """Smallest 5-smooth integer >= n (fast FFT length)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def correlate3x3(x: torch.Tensor, k, mode: str = "mirror") -> torch.Tensor:
    """3x3 correlation over the last two axes (nine shifted slices; single-channel conv2d is slow on CPU)."""
    h, w = x.shape[-2:]
    xp = pad_index(pad_index(x, 1, x.ndim - 2, mode), 1, x.ndim - 1, mode)
    k = torch.as_tensor(k, dtype=torch.float64).tolist()
    out = torch.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if k[i][j] != 0:
                out.add_(xp[..., i : i + h, j : j + w], alpha=k[i][j])
    return out


def correlate2d_fft(x: torch.Tensor, k: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate the last two axes of x (..., H, W) with a square 2-D kernel k (K, K), padded by mode (FFT)."""
    r = k.shape[0] // 2
    h, w = x.shape[-2:]
    xp = pad_index(pad_index(x, r, x.ndim - 2, mode), r, x.ndim - 1, mode)
    ph, pw = fft_size(xp.shape[-2]), fft_size(xp.shape[-1])  # zero padding beyond never wraps into the output
    kf = torch.zeros(ph, pw, dtype=x.dtype, device=x.device)
    kf[: k.shape[0], : k.shape[1]] = k.flip(0, 1).to(x)
    y = torch.fft.irfft2(torch.fft.rfft2(xp, s=(ph, pw)) * torch.fft.rfft2(kf), s=(ph, pw))
    return y[..., 2 * r : 2 * r + h, 2 * r : 2 * r + w]


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian / scipy.ndimage.gaussian_filter on the last two axes of x (..., H, W)."""
    if sigma <= 0:
        return x.clone()
    k = gaussian_kernel1d(sigma, truncate)
    h, w = x.shape[-2:]
    if k.numel() > 65:  # wide kernels (elastic transform): two dense matmuls beat a 1000-tap convolution
        return apply_separable(x, filter_matrix(h, k, mode), filter_matrix(w, k, mode))
    # A tap is one pass over memory: in cache-sized chunks of planes (~2.5 MB) the passes stay in cache
    planes = x.reshape(-1, h, w)
    step = max(1, _CHUNK_BYTES // max(1, h * w * x.element_size()))
    if planes.shape[0] <= step or x.device.type != "cpu":
        return correlate_separable(x, k, k, mode)
    out = torch.empty_like(planes)
    for i in range(0, planes.shape[0], step):
        out[i : i + step] = correlate_separable(planes[i : i + step], k, k, mode)
    return out.view(x.shape)


_CHUNK_BYTES = 5 << 19  # 2.5 MiB


def zoom_coords(n: int, z: float, keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear-interpolation taps (i0, i1, t) of ImageNet-C's ``clipped_zoom`` along one axis, n outputs.

    Crops the central ceil(n / z) samples, zooms them with scipy.ndimage.zoom(order=1) (output length
    round(ch * z), grid_mode=False: output i samples input i * (ch - 1) / (out - 1)), keeps the first n
    (``keep=-1``: all round(ch * z) outputs).
    """
    ch = int(math.ceil(n / float(z)))
    top = (n - ch) // 2
    out = int(round(ch * z))
    ratio = (ch - 1) / (out - 1) if out > 1 else 0.0
    m = out if keep == -1 else n
    c = torch.arange(m, dtype=torch.float64).clamp(max=out - 1) * ratio
    f = torch.floor(c).clamp(max=ch - 1)
    t = c - f
    i0 = f.long()
    i1 = (i0 + 1).clamp(max=ch - 1)
    return top + i0, top + i1, t


@functools.lru_cache(maxsize=64)
def zoom_matrix(n: int, z: float, keep: int | None = None) -> tuple[torch.Tensor, int]:
    """``zoom_coords`` as a matrix: (m, k) float64 weights over input samples [lo, lo + k) and lo, so that
    ``zoom_matrix(...)[0] @ x[lo : lo + k]`` is the zoomed axis (only the crop's samples enter)."""
    i0, i1, t = zoom_coords(n, z, keep)
    lo, hi = int(i0.min()), int(i1.max()) + 1
    m = torch.zeros(i0.numel(), hi - lo, dtype=torch.float64)
    rows = torch.arange(i0.numel())
    m.index_put_((rows, i0 - lo), 1.0 - t, accumulate=True)
    m.index_put_((rows, i1 - lo), t, accumulate=True)
    return m, lo


@functools.lru_cache(maxsize=64)
def pil_box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float64 weights of Pillow's BOX resampling along one axis (Resample.c precompute_coeffs)."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for xx in range(n_out):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in)
        w = [1.0 if -0.5 < (x - center + 0.5) / filterscale <= 0.5 else 0.0 for x in range(xmin, xmax)]
        s = sum(w)
        for j, wj in enumerate(w):
            if wj:
                m[xx, xmin + j] = wj / s
    return m


@functools.lru_cache(maxsize=64)
def _pil_box_is_nearest(n_in: int, n_out: int) -> bool:
    """Whether Pillow's BOX resampling from n_in to n_out picks single pixels (upscaling) exactly as
    torch's ``nearest-exact`` interpolation does."""
    m = pil_box_matrix(n_in, n_out)
    if not bool(((m > 0).sum(1) == 1).all()):
        return False
    pil = m.argmax(1)
    src = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in)
    ours = F.interpolate(src, size=n_out, mode="nearest-exact").view(-1).long()
    return bool(torch.equal(pil, ours))


def pil_box_resize(u8: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Pillow ``Image.resize(..., BOX)`` on 8-bit values (N, C, H, W) (uint8, or integer-valued float):
    horizontal pass, round to uint8, vertical pass.

    Returns float32 values in 0..255 (integers). Pillow's 22-bit fixed-point weights can differ from these
    float weights by one level on exact .5 ties. Upscaling (each output pixel's box holds one input pixel) is
    a pixel selection: done as torch's nearest-exact interpolation where that selects the same pixels.
    """
    x = u8.to(torch.float32)  # integers times weights: float32 keeps exact .5 ties where Pillow has them
    h, w = x.shape[-2:]
    if out_h >= h and out_w >= w and _pil_box_is_nearest(w, out_w) and _pil_box_is_nearest(h, out_h):
        return F.interpolate(x, size=(out_h, out_w), mode="nearest-exact")
    if out_w != w:
        x = torch.matmul(x, pil_box_matrix(w, out_w).to(x).T)
        x = torch.floor_(x.add_(0.5)).clamp_(0, 255)
    if out_h != h:
        x = torch.matmul(pil_box_matrix(h, out_h).to(x), x)
        x = torch.floor_(x.add_(0.5)).clamp_(0, 255)
    return x


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """skimage.color.rgb2hsv on (N, 3, H, W): H in [0, 1), S, V; S = 0 and H = 0 where max == min."""
    r, g, b = x.unbind(1)
    v = x.amax(1)
    mn = x.amin(1)
    delta = v - mn
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(v > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    s = torch.where(delta > 0, s, torch.zeros_like(s))
    h = torch.where(r == v, (g - b) / safe, torch.where(g == v, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = torch.where(delta > 0, (h / 6.0).remainder(1.0), torch.zeros_like(h))
    return h, s, v


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb: (N, H, W) x3 -> (N, 3, H, W)."""
    hi = torch.floor(h * 6.0)
    f = h * 6.0 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    hi = hi.remainder(6).to(torch.int64)
    choices = torch.stack(
        [torch.stack(c, 0) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 0
    )  # (6, 3, N, H, W)
    idx = hi.unsqueeze(0).unsqueeze(0).expand(1, 3, *hi.shape)
    return torch.gather(choices, 0, idx).squeeze(0).permute(1, 0, 2, 3)


def rand_uniform(shape, lo: float, hi: float, generator: torch.Generator, device, dtype=torch.float64):
    """U[lo, hi) as numpy computes it: lo + (hi - lo) * U[0, 1)."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return lo + (hi - lo) * u
