"""The ``embed_attack`` perturbation family: EmbedAttack as one more axis of the perturbation grid.

Its levels are L-inf radii eps in [0, 1] pixel units (severities 1..5: 1, 2, 4, 8, 16 / 255); eps = 0 is the
identity. Each level runs ``embed_attack`` with 20 steps of eps / 4 (2/255 at the usual 8/255) and the squared
Euclidean distance on the pooled embedding (options ``steps``, ``step_size``, ``distance`` change them), so DivergenceRadius, accuracy and the regression treat the worst case
like any other family. The family needs the encoder (``Perturbation.needs_encoder``): ``embed.run.bind_perturbations`` binds
it as ``encoder=``.

The family is declared with the others in ``embedrobust.perturb.catalog``; this module is its function, imported
on the family's first call.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..perturb.registry import PerturbationValueError
from .linf import STEPS, embed_attack

NAME = "embed_attack"


def embed_attack_family(images: Tensor, value: float, generator: torch.Generator, encoder=None,
                        steps: int = STEPS, step_size: float | None = None, distance: str = "l2",
                        tokens: str = "pooled") -> Tensor:
    """``fn(images, eps, generator, encoder=)`` for the registry: EmbedAttack at radius ``eps``.

    ``steps``, ``step_size`` (default eps / 4), ``distance`` (``l2`` | ``cosine``) and ``tokens`` (``pooled``:
    the stored CLS/pooled embedding, for global tasks; ``patch``: the patch tokens, for dense tasks, which
    ``attack.evaluate_dense`` picks unless told otherwise) are the family's options (params:
    ``perturbations.families.embed_attack.options``).
    """
    if encoder is None:
        raise PerturbationValueError(f"{NAME} attacks a model: call it with encoder=, as embed_conditions does")
    out = embed_attack(encoder, images, eps=value, steps=int(steps),
                       step_size=value / 4 if step_size is None else float(step_size), distance=distance,
                       generator=generator, tokens=tokens)
    return out.to(images.device, images.dtype)

