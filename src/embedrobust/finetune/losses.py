r"""Loss terms of robustness-aware fine-tuning. All embeddings are L2-normalised inside each function.

Shapes: ``a``, ``b`` (N, D) embeddings of the same N images; ``points`` (N, K, D) with index 0 along K the clean
embedding of an image and 1..K-1 its perturbed views (the layout of :mod:`embedrobust.metrics`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics import minimum_enclosing_ball
from .options import ROBUSTNESS_KINDS


def cosine_distill(a: Tensor, b: Tensor) -> Tensor:
    """Utility term ``mean(1 - cos(a_i, b_i))`` in [0, 2]: 0 when the fine-tuned embeddings ``a`` point as the
    frozen original's ``b`` do. ``b`` is treated as a constant target by callers (computed without grad)."""
    return (1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)).mean()


def whitened_distill(a: Tensor, b: Tensor, std: Tensor) -> Tensor:
    """Utility term ``mean_i mean_d ((a_i - b_i)_d / std_d)^2`` on unit vectors: the distance to the original
    embedding in units of the original embeddings' spread per dimension.

    ``std`` (D,) is the per-dimension standard deviation of the original unit embeddings over the training images.
    For isotropic embeddings (std_d = 1 / sqrt(D)) this is ``||a - b||^2 = 2 mean(1 - cos)``, twice
    :func:`cosine_distill`; for embeddings crowded in a narrow cone (random-init or collapsed models, where every
    image differs from the others by a few degrees) it keeps the differences between images that a linear probe
    reads, which the plain cosine barely sees.
    """
    d = F.normalize(a.float(), dim=-1) - F.normalize(b.float(), dim=-1)
    return (d / std.to(d)).square().mean()


def zero_shot_ce(emb: Tensor, text: Tensor, labels: Tensor, logit_scale: float = 100.0) -> Tensor:
    """Task term: cross-entropy of CLIP zero-shot logits ``logit_scale * norm(emb) @ norm(text).T``.

    emb (N, D), text (C, D) frozen class embeddings, labels (N,) int64 in [0, C).
    """
    logits = logit_scale * F.normalize(emb.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
    return F.cross_entropy(logits, labels)


def meb_radius(points: Tensor) -> Tensor:
    r"""Differentiable DivergenceRadius of each point set: (N, K, D) -> (N,).

    The optimal MEB weights w are found without grad (exact solver), then the radius is evaluated as the dual
    value :math:`\sqrt{\sum_j w_j \|x_j\|^2 - \|\sum_j w_j x_j\|^2}`, which equals the MEB radius at the optimum;
    by the envelope theorem its gradient at fixed w is the radius's gradient (a subgradient where the support
    set changes).
    """
    x = F.normalize(points if points.dtype == torch.float64 else points.float(), dim=-1)
    with torch.no_grad():
        w = minimum_enclosing_ball(x.detach()).weights.to(x.dtype)
    centre = torch.einsum("nk,nkd->nd", w, x)
    r2 = (w * (x * x).sum(-1)).sum(-1) - (centre * centre).sum(-1)
    # sqrt has an infinite slope at 0 (all views identical): clamp so the gradient stays finite
    return r2.clamp_min(1e-12).sqrt()


def spread(points: Tensor, kind: str = "meb") -> Tensor:
    """Robustness term per image, (N, K, D) -> (N,), on unit vectors, in [0, 1], 0 = all views coincide.

    ``meb``: :func:`meb_radius` (the DivergenceRadius itself); ``max`` / ``mean``: the largest / mean distance
    of a perturbed view to the clean one, halved (so two points give the same value under all three).
    """
    if kind == "meb":
        return meb_radius(points)
    x = F.normalize(points.float(), dim=-1)
    d = torch.linalg.vector_norm(x[:, 1:] - x[:, :1], dim=-1) / 2.0
    if kind == "max":
        return d.max(dim=1).values
    if kind == "mean":
        return d.mean(dim=1)
    raise ValueError(f"robustness kind must be one of {ROBUSTNESS_KINDS}, got {kind!r}")


def deacl_loss(student_clean: Tensor, teacher_clean: Tensor, student_adv: Tensor, k: float = 2.0) -> Tensor:
    """DeACL objective ``mean(-cos(f_s(x), f_t(x)) - k cos(f_s(x_adv), f_s(x)))``, each (N, D)."""
    return (-F.cosine_similarity(student_clean.float(), teacher_clean.float(), dim=-1)
            - k * F.cosine_similarity(student_adv.float(), student_clean.float(), dim=-1)).mean()


def alignment(clean: Tensor, views: Tensor) -> Tensor:
    """GRACE-style feature alignment ``mean over views and images of (1 - cos(view, clean))``.

    clean (N, D), views (V, N, D).
    """
    return (1.0 - F.cosine_similarity(views.float(), clean.float().unsqueeze(0), dim=-1)).mean()


class _TopProjector(torch.autograd.Function):
    r"""Projector onto the top-k eigenvectors of a symmetric matrix C (D, D), with a gradient that involves only
    the eigengaps between kept and dropped eigenvectors.

    Generic eigenvector gradients divide by every eigenvalue difference, so near-equal eigenvalues inside the
    kept (or dropped) block give inf/NaN even though the projector does not depend on them. Perturbation
    theory for P = V_k V_k^T: dP = sum_{i kept, j dropped} (v_j^T dC v_i) (v_i v_j^T + v_j v_i^T) / (l_i - l_j).
    """

    @staticmethod
    def forward(ctx, c: Tensor, k: int) -> Tensor:
        lam, vec = torch.linalg.eigh(c)  # ascending
        top, rest = vec[:, -k:], vec[:, :-k]
        ctx.save_for_backward(lam, top, rest)
        ctx.k = k
        return top @ top.T

    @staticmethod
    def backward(ctx, grad: Tensor):
        lam, top, rest = ctx.saved_tensors
        k = ctx.k
        gs = (grad + grad.T) / 2
        gap = lam[-k:].unsqueeze(0) - lam[:-k].unsqueeze(1)  # (D-k, k): l_i - l_j >= 0
        floor = torch.finfo(lam.dtype).eps * lam.abs().max().clamp_min(1.0) * 1e3
        m = (rest.T @ gs @ top) * 2 / gap.clamp_min(floor)
        dc = rest @ m @ top.T
        return (dc + dc.T) / 2, None


def principal_projector(x: Tensor, k: int) -> Tensor:
    """Projection matrix (D, D) onto the top-k principal subspace of the rows of x (N, D), centred after
    L2-normalisation; differentiable with a gradient that stays finite for repeated eigenvalues within the kept
    or the dropped block (see :class:`_TopProjector`)."""
    z = F.normalize(x.double() if x.dtype == torch.float64 else x.float(), dim=-1)
    z = z - z.mean(0, keepdim=True)
    return _TopProjector.apply(z.T @ z, int(k))


def subspace_distance(a: Tensor, b: Tensor, k: int) -> Tensor:
    r"""Projection distance :math:`\|P_a - P_b\|_F^2 / (2k)` in [0, 1] between the top-k principal subspaces of
    two (N, D) embedding sets (rows = images); 0 when the subspaces coincide, 1 when orthogonal."""
    k = min(int(k), a.shape[0] - 1, a.shape[1])
    pa, pb = principal_projector(a, k), principal_projector(b, k)
    return ((pa - pb) ** 2).sum() / (2 * k)
