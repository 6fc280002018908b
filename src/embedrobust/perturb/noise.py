"""Noise perturbations (ImageNet-C, hendrycks/robustness `make_imagenet_c.py`)."""

from __future__ import annotations

import functools
import math

import torch


def gaussian_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return noise.mul_(value).add_(images).clamp_(0.0, 1.0)  # in place: x + c n, without temporaries


def shot_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    if math.isinf(value):
        return images.clone()
    counts = poisson_scaled(images, value, generator)
    return counts.div_(value).clamp_(0.0, 1.0).to(images.dtype)


_LEVELS = 255  # the table sampler's rate grid: multiples of c / 255 (8-bit images fall exactly on it)
_GUIDE = 4096  # guide-table bins per level (12 of the uniform's 24 bits)
_TABLE_MAX_RATE = 1024.0  # above this c the tables grow large (> 3 MB): torch.poisson instead


@functools.lru_cache(maxsize=16)
def _poisson_tables(c: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inversion tables of Poisson(l c / 255), l = 0..255.

    Returns the CDFs (256, K) float64 (F[l, k] = P(X <= k); last column forced to 1 so that every search
    ends), the guide table (256, M) int32, g[l, m] = the smallest k with F[l, k] > m / M, where inversion of
    any u in [m / M, (m + 1) / M) starts (Chen and Asau's guide tables), and the flat answer table (256 * M,)
    int16: g where the whole bin inverts to g (F[l, g] >= (m + 1) / M), else -1.
    """
    kmax = math.ceil(c + 10.0 * math.sqrt(c) + 16.0)  # P(X > kmax) < 1e-20 for every rate <= c
    lam = torch.arange(_LEVELS + 1, dtype=torch.float64)[:, None] * (c / _LEVELS)
    k = torch.arange(kmax + 1, dtype=torch.float64)[None]
    logp = torch.special.xlogy(k, lam) - lam - torch.lgamma(k + 1)  # xlogy(0, 0) = 0: rate 0 is always 0
    cdf = torch.exp(logp).cumsum(1).clamp(max=1.0)
    cdf[:, -1] = 1.0
    bins = torch.arange(_GUIDE + 1, dtype=torch.float64) / _GUIDE
    guide = torch.searchsorted(cdf, bins[:-1].expand(_LEVELS + 1, -1).contiguous(), right=True)
    pure = torch.gather(cdf, 1, guide) >= bins[1:]
    answer = torch.where(pure, guide, -1).to(torch.int16).reshape(-1)
    return cdf, guide.to(torch.int32), answer


def _poisson_small(lam: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Exact Poisson(lam) by sequential inversion (for small rates, here < 4), float64 (n,) -> int64 (n,)."""
    u = torch.rand(lam.shape, generator=generator, device=lam.device, dtype=torch.float64)
    k = torch.zeros(lam.shape, dtype=torch.int64, device=lam.device)
    p = torch.exp(-lam)
    cdf = p.clone()
    idx = torch.arange(lam.numel(), device=lam.device)
    kk = k
    for _ in range(200):  # a rate < 4 exceeds 60 with probability < 1e-40
        more = (u >= cdf).nonzero().squeeze(1)
        if more.numel() == 0:
            break
        idx, u, lam, p, cdf, kk = idx[more], u[more], lam[more], p[more], cdf[more], kk[more] + 1
        p = p * lam / kk
        cdf = cdf + p
        k[idx] = kk
    return k


def poisson_scaled(images: torch.Tensor, c: float, generator: torch.Generator) -> torch.Tensor:
    """Poisson(images * c) counts as float32, exact in distribution up to float rounding: the rate's (float32)
    and the uniform's (24 bits, so each probability is resolved to 2^-24).

    The rate is split as l c / 255 + r with l the 8-bit level at or below each value and 0 <= r < c / 255. The
    first Poisson variate comes from inversion tables per level (one float32 uniform and one table lookup, a
    short CDF walk for the few uniforms in a guide bin that a CDF step crosses), the second (only where r > 0,
    i.e. values between 8-bit levels) by sequential inversion; their sum is Poisson(x c). torch.poisson, a
    per-element rejection sampler, is ~3x slower on CPU; it remains the path for c > 1024 and for values
    outside [0, 1].
    """
    x = images.float()
    lo, hi = torch.aminmax(x) if x.numel() else (x.new_zeros(()), x.new_zeros(()))
    if not (c <= _TABLE_MAX_RATE and float(lo) >= 0.0 and float(hi) <= 1.0):
        return torch.poisson(x * c, generator=generator)
    cdf, guide, answer = (t.to(x.device) for t in _poisson_tables(float(c)))
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    xf, uf = x.reshape(-1), u.reshape(-1)
    counts = torch.empty(xf.shape, dtype=torch.float32, device=x.device)
    rest, rest_lam = [], []
    # a cache-sized run of values at a time (the draws above are the whole batch's, so the result is the same)
    step = _POISSON_CHUNK if x.device.type == "cpu" else max(xf.numel(), 1)
    for i in range(0, xf.numel(), step):
        xc, uc = xf[i : i + step], uf[i : i + step]
        level = (xc * _LEVELS).round_()
        frac = torch.sub(xc, level, alpha=1.0 / _LEVELS)
        fmin, fmax = torch.aminmax(frac)
        if float(fmin) < -1e-6:  # values a hair off a level (8-bit data in float32) snap to it; others go below
            below = frac < -1e-6
            level = torch.where(below, level - 1, level)
            frac = torch.where(below, frac + 1.0 / _LEVELS, frac)
            fmax = frac.amax()
        pos = (uc * _GUIDE).floor_().add_(level, alpha=_GUIDE).to(torch.int64)  # exact: < 2^20
        k = torch.take(answer, pos)
        counts[i : i + step] = k
        amb = (k < 0).nonzero().squeeze(1)
        if amb.numel():  # a CDF step inside the uniform's guide bin: walk the CDF from the bin's start
            pos = pos[amb]
            lvl = torch.div(pos, _GUIDE, rounding_mode="floor")
            kk = guide.reshape(-1)[pos].to(torch.int64)
            uu = uc[amb].to(torch.float64)
            flat, row = cdf.reshape(-1), lvl * cdf.shape[1]
            idx = amb + i
            while True:
                more = (uu >= flat[row + kk]).nonzero().squeeze(1)
                counts[idx] = kk.to(torch.float32)
                if more.numel() == 0:
                    break
                idx, uu, row, kk = idx[more], uu[more], row[more], kk[more] + 1
        if float(fmax) > 1e-6:
            r = (frac > 1e-6).nonzero().squeeze(1)
            rest.append(r + i)
            rest_lam.append(frac[r].to(torch.float64) * c)
    if rest:  # one draw for all values between levels, in order
        r = torch.cat(rest)
        counts[r] += _poisson_small(torch.cat(rest_lam), generator).to(torch.float32)
    return counts.reshape(x.shape)


_POISSON_CHUNK = 1 << 18


def impulse_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    # one uniform per value: u < c/2 is salt, c/2 <= u < c pepper (each with probability c/2, as the reference)
    u = torch.rand(images.shape, generator=generator, device=images.device)
    return images.masked_fill(u < value, 0.0).masked_fill_(u < 0.5 * value, 1.0)


def speckle_noise(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return noise.mul_(images).mul_(value).add_(images).clamp_(0.0, 1.0)  # in place: x + (x n) c
