"""Independent MEB references in NumPy/SciPy (coordinate space, no Gram-space tricks)."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize


def circumball(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Center in the affine hull of `points` (m, D) equidistant to all of them, and that distance."""
    p0 = points[0]
    a = points[1:] - p0
    if len(a) == 0:
        return p0.copy(), 0.0
    # 2 a (c - p0) = |a|^2 with c - p0 = a^T t  ->  2 (a a^T) t = |a|^2 (least squares if degenerate)
    t, *_ = np.linalg.lstsq(2.0 * a @ a.T, (a * a).sum(1), rcond=None)
    c = p0 + a.T @ t
    return c, float(np.linalg.norm(points - c, axis=1).max())


def meb_bruteforce(points: np.ndarray) -> float:
    """Exact MEB radius of (K, D) points: smallest circumball of a subset that encloses all points.

    The MEB is the circumball of its support (at most D+1 points), and every enclosing ball is at
    least as large, so the minimum over enclosing circumballs is the MEB radius.
    """
    k, d = points.shape
    best = np.inf
    for size in range(1, min(k, d + 1) + 1):
        for subset in itertools.combinations(range(k), size):
            c, r = circumball(points[list(subset)])
            far = np.linalg.norm(points - c, axis=1).max()
            if far <= r * (1 + 1e-9) + 1e-12:
                best = min(best, far)
    return float(best)


def meb_slsqp(points: np.ndarray) -> float:
    """MEB radius from SLSQP on the dual: max_w sum w_i |x_i|^2 - |sum w_i x_i|^2 over the simplex."""
    x = points - points.mean(0)
    x = x / max(np.abs(x).max(), 1e-300)  # unit scale: SLSQP's tolerances are absolute
    g = x @ x.T
    diag = np.diag(g)
    k = len(x)
    res = minimize(
        lambda w: -(w @ diag - w @ g @ w),
        np.full(k, 1.0 / k),
        jac=lambda w: -(diag - 2.0 * g @ w),
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(k)}],
        method="SLSQP",
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    # Primal radius at the dual's center is an upper bound; the circumball of SLSQP's support,
    # when it encloses every point, is the exact answer that SLSQP only approaches.
    scale = max(np.abs(points - points.mean(0)).max(), 1e-300)
    radius = np.linalg.norm(x - res.x @ x, axis=1).max()
    c, r = circumball(x[res.x > 1e-6])
    if np.linalg.norm(x - c, axis=1).max() <= r * (1 + 1e-9):
        radius = min(radius, r)
    return float(radius * scale)
