"""Robustness metrics of embeddings: cosine, Euclidean and DivergenceRadius (exact batched MEB).

See :mod:`embedrobust.metrics.robustness` for the definitions and
:mod:`embedrobust.metrics.meb` for the solver.
"""

from .meb import MEBResult, MetricInputError, minimum_enclosing_ball
from .robustness import cosine_metric, divergence_radius, euclidean_metric, robustness_metrics

__all__ = [
    "MEBResult",
    "MetricInputError",
    "cosine_metric",
    "divergence_radius",
    "euclidean_metric",
    "minimum_enclosing_ball",
    "robustness_metrics",
]
