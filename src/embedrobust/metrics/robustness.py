r"""Robustness metrics of one image under one perturbation family.

Input everywhere: ``points`` (B, K, D), B point sets of K embeddings in D dimensions; index 0 along
K is the clean embedding :math:`e_0`, indices 1..K-1 the perturbed ones :math:`e_1..e_{K-1}`
(one per level of the family). With ``normalize=True`` (the default, and what the study uses)
each embedding is first L2-normalised along D; with ``normalize=False`` the points are used as
given, and the [0, 1] ranges below hold only if they are unit vectors already.
All metrics are 0 for a perfectly robust image and at most 1.

- Cosine:      :math:`R_{cs} = \frac{1}{K-1}\sum_{k\ge1} \frac{1 - \cos(e_0, e_k)}{2}`
- Euclidean:   :math:`R_{ed} = \sqrt{\frac{1}{K-1}\sum_{k\ge1} \frac{\|e_0 - e_k\|^2}{4}}`;
  on unit vectors :math:`\|e_0-e_k\|^2 = 2 - 2\cos`, hence :math:`R_{ed} = \sqrt{R_{cs}}`.
- DivergenceRadius: :math:`DR = ` radius of the minimum enclosing ball of :math:`\{e_0..e_{K-1}\}`;
  for unit vectors :math:`DR^2 = 1 - \min_{w\in\Delta_K} w^\top G w` with G the Gram matrix;
  two unit vectors at angle t give :math:`DR = \sin(t/2)`.

With K = 1 (clean embedding only) there is no perturbed point: all three metrics are defined as 0.

R_cs and R_ed average over levels relative to the clean embedding, so one bad level is diluted
(they fail worst-case robustness) and adding a benign level lowers them (they fail monotonicity).
DR has all five properties of arXiv 2604.14973: bounded domain, monotonicity, optimal robustness,
worst-case robustness (DR >= half the largest pairwise distance) and rotation invariance.
"""

from __future__ import annotations

import torch

from .meb import MetricInputError, _check_points, _working_dtype, minimum_enclosing_ball

__all__ = ["cosine_metric", "divergence_radius", "euclidean_metric", "robustness_metrics"]


def _prepare(points: torch.Tensor, normalize: bool, nonzero: bool = False) -> torch.Tensor:
    """Validated (B, K, D) points in the working dtype, L2-normalised along D if asked."""
    _check_points(points)
    x = points.to(_working_dtype(points.dtype))
    if not bool(torch.isfinite(x).all()):
        raise MetricInputError(
            "points contain NaN or infinite values; drop or recompute the affected embeddings."
        )
    if normalize or nonzero:
        norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        if bool((norms == 0).any()):
            raise MetricInputError(
                "an embedding has zero norm, so it has no direction (cosine, L2 normalisation); "
                "check the encoder output for that image."
            )
        if normalize:
            x = x / norms
    return x


def _one_minus_cos_half(x: torch.Tensor) -> torch.Tensor:
    """(B, K-1) values (1 - cos(e_0, e_k)) / 2 for k >= 1.

    Computed as ||u_0 - u_k||^2 / 4 with u = e / ||e||, which is the same number for unit vectors
    but has no cancellation at small angles and is exactly 0 for identical embeddings.
    """
    u = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return ((u[:, 1:] - u[:, :1]) ** 2).sum(-1) / 4.0


def _mean_over_levels(values: torch.Tensor) -> torch.Tensor:
    """Mean along the level axis (B, K-1) -> (B,); 0 when there is no perturbed level."""
    if values.shape[1] == 0:
        return values.new_zeros(values.shape[0])
    return values.mean(-1)


def cosine_metric(points: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    r"""Cosine metric :math:`R_{cs} = \operatorname{mean}_{k\ge1} (1 - \cos(e_0, e_k)) / 2`.

    Args:
        points: (B, K, D) embeddings, index 0 along K = clean.
        normalize: L2-normalise each embedding first (cosine itself is scale free, so this
            only matters for validation: a zero embedding raises).

    Returns:
        (B,) values in [0, 1]; 0 when K = 1.
    """
    x = _prepare(points, normalize, nonzero=True)
    return _mean_over_levels(_one_minus_cos_half(x))


def euclidean_metric(points: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    r"""Euclidean metric :math:`R_{ed} = \sqrt{\operatorname{mean}_{k\ge1} \|e_0 - e_k\|^2 / 4}`.

    Args:
        points: (B, K, D) embeddings, index 0 along K = clean.
        normalize: L2-normalise each embedding first; then R_ed is in [0, 1] and equals
            sqrt(R_cs).

    Returns:
        (B,) values, in units of the (normalised) embeddings; 0 when K = 1.
    """
    x = _prepare(points, normalize)
    sq = ((x[:, 1:] - x[:, :1]) ** 2).sum(-1) / 4.0
    return _mean_over_levels(sq).sqrt()


def divergence_radius(points: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    r"""DivergenceRadius: radius of the minimum enclosing ball of :math:`\{e_0, .., e_{K-1}\}`.

    For unit vectors :math:`DR^2 = 1 - \min_{w\in\Delta_K} w^\top G w` (G the K x K Gram matrix),
    so DR is in [0, 1]: 0 iff all embeddings coincide, 1 iff the origin lies in their convex hull.
    Solved exactly by :func:`embedrobust.metrics.minimum_enclosing_ball`.

    Args:
        points: (B, K, D) embeddings (any order; the clean one is not special here).
        normalize: L2-normalise each embedding first.

    Returns:
        (B,) radii in the working dtype (float64 stays float64, other types float32).
    """
    x = _prepare(points, normalize)
    return minimum_enclosing_ball(x).radius


def robustness_metrics(points: torch.Tensor, normalize: bool = True) -> dict[str, torch.Tensor]:
    """All three metrics of (B, K, D) points: ``{"cosine", "euclidean", "divergence_radius"}``.

    Each value is a (B,) tensor as returned by :func:`cosine_metric`, :func:`euclidean_metric`
    and :func:`divergence_radius`; the points are validated and normalised once.
    """
    x = _prepare(points, normalize, nonzero=True)
    return {
        "cosine": cosine_metric(x, normalize=False),
        "euclidean": euclidean_metric(x, normalize=False),
        "divergence_radius": minimum_enclosing_ball(x).radius,
    }
