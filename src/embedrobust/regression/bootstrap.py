"""Cluster bootstrap over images, vectorised over replicates.

A bootstrap replicate draws n image ids with replacement out of the n test images; every row of a drawn image
comes along (the image is the cluster: its rows share the image's robustness and difficulty). A replicate is
therefore fully described by its multinomial counts ``w`` (n,) -- how often each image was drawn -- and any
statistic of the resampled rows equals the same statistic with every row weighted by its image's count. This
is exact, not an approximation, so the statistics below take a (B, n) count matrix and compute all B
replicates at once: weighted moments for line fits, weighted quantile bins for the binned fits, weighted
means for accuracies. The unit weight vector (one "replicate" of ones) gives the point estimate through the
same code.

Intervals are percentile intervals over the replicates where the statistic is defined (``n_valid``).
"""

from __future__ import annotations

import numpy as np

CHUNK_ELEMENTS = 4_000_000  # (replicates x rows) per vectorised block: bounds the memory of the binned bootstrap


def cluster_counts(n_clusters: int, n_boot: int, seed: int, strata=None) -> np.ndarray:
    """(n_boot, n_clusters) int64 multinomial counts: each row a resample of the clusters with replacement.

    ``strata`` (n_clusters,) sorted labels (the dataset of each image): resample within each stratum, so every
    replicate keeps each stratum's size. One stratum gives the same counts as none.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((max(n_boot, 0), n_clusters), dtype=np.int64)
    if n_boot <= 0 or n_clusters == 0:
        return out
    strata = np.zeros(n_clusters, dtype=np.int64) if strata is None else np.asarray(strata)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        out[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=n_boot)
    return out


def percentile_ci(reps, ci_level: float) -> dict:
    """Percentile interval of replicates ``reps`` (B,): ci_low, ci_high, boot_se, boot_mean, n_valid.

    Non-finite replicates (the statistic undefined for that resample, e.g. a line through fewer than three
    bins) are left out and counted out of ``n_valid``.
    """
    reps = np.asarray(reps, dtype=np.float64)
    ok = reps[np.isfinite(reps)]
    if ok.size == 0:
        return {"boot_mean": np.nan, "boot_se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_valid": 0}
    a = (1 - ci_level) / 2
    lo, hi = np.quantile(ok, [a, 1 - a])
    return {
        "boot_mean": float(ok.mean()),
        "boot_se": float(ok.std(ddof=1)) if ok.size > 1 else np.nan,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_valid": int(ok.size),
    }


def line_fit(x, y, mask=None) -> dict:
    """OLS lines of ``y`` on ``x`` along the last axis, one per leading index: arrays (...,) of slope,
    intercept, r2 and n (points used).

    A line is defined (finite) only with at least 3 points and a non-constant x, as in
    :func:`embedrobust.regression.linefit.fit_ols`; r2 is NaN for a constant y (up to 1e-12 relative).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m &= np.asarray(mask, dtype=bool)
    n = m.sum(axis=-1)
    with np.errstate(all="ignore"):
        xz, yz = np.where(m, x, 0.0), np.where(m, y, 0.0)
        mx = xz.sum(-1) / n
        my = yz.sum(-1) / n
        dx = np.where(m, x - mx[..., None], 0.0)
        dy = np.where(m, y - my[..., None], 0.0)
        sxx, sxy, syy = (dx * dx).sum(-1), (dx * dy).sum(-1), (dy * dy).sum(-1)
        ptp = np.where(m, x, -np.inf).max(-1, initial=-np.inf) - np.where(m, x, np.inf).min(-1, initial=np.inf)
        top = np.where(m, np.abs(y), 0.0).max(-1, initial=0.0)
        ptp_y = np.where(m, y, -np.inf).max(-1, initial=-np.inf) - np.where(m, y, np.inf).min(-1, initial=np.inf)
        ok = (n >= 3) & (ptp > 0)
        slope = np.where(ok, sxy / sxx, np.nan)
        intercept = np.where(ok, my - slope * mx, np.nan)
        # a constant y has no variance to explain; rounding in its mean would otherwise give an arbitrary R^2
        r2 = np.where(ok & (ptp_y > 1e-12 * top), sxy * sxy / (sxx * syy), np.nan)
    return {"slope": slope, "intercept": intercept, "r2": r2, "n": n}


def weighted_line_r2(sums: np.ndarray) -> np.ndarray:
    """R^2 of weighted OLS lines from weighted moments ``sums`` (..., 6) = (sum w, w x, w y, w x^2, w x y,
    w y^2) of x and y already shifted near their means (the caller's job: it keeps the centring exact).

    NaN for a constant x or y (up to rounding). That fewer than 3 distinct rows carry weight cannot be seen in
    the moments: the caller masks those.
    """
    s = np.asarray(sums, dtype=np.float64)
    w, sx, sy, sxx, sxy, syy = (s[..., k] for k in range(6))
    with np.errstate(all="ignore"):
        cxx = sxx - sx * sx / w
        cxy = sxy - sx * sy / w
        cyy = syy - sy * sy / w
        return np.where((cxx > 1e-12 * sxx) & (cyy > 1e-12 * syy), cxy * cxy / (cxx * cyy), np.nan)


def weighted_bins(x_sorted, y_sorted, w, n_bins: int) -> dict:
    """Quantile bins of the resampled rows, for every replicate at once.

    ``x_sorted`` (R,) row robustness in ascending order, ``y_sorted`` (R,) row performance, ``w`` (B, R) row
    weights (the counts of each row's image; 0 leaves a row out). Equivalent to :func:`pandas.qcut` with
    ``duplicates="drop"`` on the sample where row r appears ``w[b, r]`` times: edges are the linear-interpolation
    quantiles j / n_bins of that expanded sample, bins are right-closed with the lowest edge included, and tied
    x always share a bin. Returns arrays (B, n_bins): ``x_mean``, ``accuracy`` (mean y), ``n`` (the expanded
    count; 0 for a bin that a repeated edge emptied, whose means are NaN) and ``start`` / ``end``, each bin's
    slice of the sorted rows.
    """
    x = np.asarray(x_sorted, dtype=np.float64)
    y = np.asarray(y_sorted, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    B, R = w.shape
    cw = np.cumsum(w, axis=1)
    total = cw[:, -1].copy() if R else np.zeros(B)
    j = np.arange(n_bins + 1, dtype=np.float64)
    last = np.maximum(total - 1, 0)[:, None]
    h = j[None, :] * last / n_bins  # (B, nb+1) positions in the expanded sample
    lo = np.floor(h)
    frac = h - lo
    hi = np.minimum(lo + 1, last)
    # row of the k-th element of replicate b's expanded sample: the first row whose cumulative count exceeds k.
    # Offsetting each replicate's cumulative counts (in place) lets one searchsorted serve all replicates.
    offset = (np.arange(B, dtype=np.float64) * (total.max(initial=0) + 1))[:, None]
    cw += offset
    flat = cw.ravel()
    first = (np.arange(B) * R)[:, None]

    def element(k):
        pos = np.searchsorted(flat, (k + offset).ravel(), side="right").reshape(k.shape) - first
        return x[np.clip(pos, 0, max(R - 1, 0))]

    a, b = element(lo), element(hi)
    edges = np.maximum.accumulate(a + frac * (b - a), axis=1)
    p = np.searchsorted(x, edges.ravel(), side="right").reshape(edges.shape)  # first row above each edge
    # qcut includes the lowest value in the first bin of positive width: bins whose upper edge is still the
    # minimum stay empty instead of holding the minimum alone (the last edge always closes on every row)
    p[:, :-1] = np.where(edges[:, :-1] == edges[:, :1], 0, p[:, :-1])
    start = np.concatenate([np.zeros((B, 1), dtype=p.dtype), p[:, 1:-1]], axis=1)
    end = p[:, 1:]

    def count_before(q):
        v = np.take_along_axis(cw, np.maximum(q - 1, 0), 1) - offset
        return np.where(q > 0, v, 0.0)

    n = np.rint(count_before(end) - count_before(start))  # counts are integers; rint undoes the offset's rounding
    # bin sums in one reduceat pass each; a zero column closing every replicate's row lets its last bin end there
    idx = (np.concatenate([start, end[:, -1:]], axis=1) + (np.arange(B) * (R + 1))[:, None]).ravel()
    prod = np.zeros((B, R + 1))
    sums = []
    for v in (x, y):
        np.multiply(w, v, out=prod[:, :R])
        sums.append(np.add.reduceat(prod.ravel(), idx).reshape(B, n_bins + 1)[:, :n_bins] if R else np.zeros((B, n_bins)))
    with np.errstate(all="ignore"):
        x_mean = np.where(n > 0, sums[0] / n, np.nan)
        acc = np.where(n > 0, sums[1] / n, np.nan)
    return {"x_mean": x_mean, "accuracy": acc, "n": n, "start": start, "end": end}


def binned_line(x_sorted, y_sorted, w, codes, n_bins: int, min_bin_size: int, row_mask=None) -> dict:
    """The line through the kept bins (n >= min_bin_size) of :func:`weighted_bins`, per replicate: arrays (B,)
    of slope, intercept, r2 and n (kept bins).

    ``w`` (B, n) image counts, ``codes`` (R,) the image of each sorted row, ``row_mask`` (R,) False for rows
    to leave out (a held-out family). Replicates go in blocks to bound the (block, R) row weights in memory.
    """
    w = np.asarray(w, dtype=np.float64)
    codes = np.asarray(codes)
    keep = np.ones(len(codes)) if row_mask is None else np.asarray(row_mask, dtype=np.float64)
    B, R = w.shape[0], len(codes)
    step = max(1, CHUNK_ELEMENTS // max(R, 1))
    parts = []
    for s in range(0, B, step):
        rows = np.take(w[s : s + step], codes, axis=1)
        if row_mask is not None:
            rows *= keep
        bins = weighted_bins(x_sorted, y_sorted, rows, n_bins)
        parts.append(line_fit(bins["x_mean"], bins["accuracy"], bins["n"] >= min_bin_size))
    if not parts:
        return {k: np.zeros(0) for k in ("slope", "intercept", "r2", "n")}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v, axis=-1, method="average")


def spearman(x, y) -> np.ndarray:
    """Spearman's rho along the last axis (average ranks for ties); NaN where either side is constant."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    return pearson(rx, ry)


def pearson(x, y) -> np.ndarray:
    """Pearson's r along the last axis; NaN where either side is constant."""
    dx = x - x.mean(-1, keepdims=True)
    dy = y - y.mean(-1, keepdims=True)
    with np.errstate(all="ignore"):
        den = np.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))
        return np.where(den > 0, (dx * dy).sum(-1) / den, np.nan)


def kendall_tau_b(x, y) -> np.ndarray:
    """Kendall's tau-b along the last axis (scipy.stats.kendalltau's default); NaN where either side is
    constant. O(M^2) pairs per row: meant for the handful of models of a study."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx = np.sign(x[..., i] - x[..., j])
    sy = np.sign(y[..., i] - y[..., j])
    n0 = len(i)
    with np.errstate(all="ignore"):
        den = np.sqrt((n0 - (sx == 0).sum(-1)) * (n0 - (sy == 0).sum(-1)).astype(np.float64))
        return np.where(den > 0, (sx * sy).sum(-1) / den, np.nan)
