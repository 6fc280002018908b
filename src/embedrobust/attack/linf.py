"""L-inf projected gradient ascent (PGD) in [0, 1] pixel space, and the attacks built on it.

Every attack perturbs the [0, 1] images themselves, before the model's normalisation: the objective receives
pixel-space images and calls ``encoder.preprocess`` (or a head's forward that does) inside. The loop is PGD of
Madry et al. (2018) as seed 002 (layer6ai-labs/ssl-robustness) runs it: a uniform random start in the eps-ball,
``steps`` sign-gradient steps of ``step_size``, each followed by projection onto the eps-ball around the clean
images and clamping to [0, 1]. Defaults: eps 8/255, 20 steps, step 2/255.

All randomness (the random start) comes from ``generator``; with ``generator=None`` a generator seeded 0 on the
images' device is used, so CPU results are deterministic. Objectives are sums of per-image terms, so an image's
gradient does not depend on the rest of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import AttackError
from .features import patch_tokens, pooled_features
from .options import EPS, STEP_SIZE, STEPS

Objective = Callable[[Tensor, int], Tensor]


def _check(images: Tensor, eps: float, steps: int, step_size: float) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise AttackError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}; convert to RGB first")
    if not images.is_floating_point():
        raise AttackError(f"expected float images in [0, 1], got dtype {images.dtype}; use images.float() / 255")
    if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
        raise AttackError(f"eps {eps:g} must lie in [0, 1] (pixel units; 8/255 = {8 / 255:.4f})")
    if int(steps) != steps or steps < 0:
        raise AttackError(f"steps {steps!r} must be a non-negative integer")
    if not (math.isfinite(step_size) and step_size > 0):
        raise AttackError(f"step_size {step_size:g} must be positive (pixel units, e.g. 2/255)")


def pgd(
    objective: Objective,
    images: Tensor,
    eps: float = EPS,
    steps: int = STEPS,
    step_size: float = STEP_SIZE,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Maximise ``objective`` over the L-inf ball of radius ``eps`` around ``images``, intersected with [0, 1].

    Args:
        objective: ``objective(x, i) -> scalar``; x is (N, 3, H, W) in [0, 1] requiring grad, i the step index
            (0-based, for schedules such as SegPGD's). Must be a sum of per-image terms.
        images: (N, 3, H, W) float in [0, 1], any device (an inference-mode tensor is accepted).
        eps: L-inf radius in [0, 1] pixel units. eps = 0 or steps = 0 returns a copy of the images.
        steps: number of sign-gradient steps after the random start.
        step_size: pixel units per step.
        generator: drives the uniform random start; on the images' device.
    Returns:
        (N, 3, H, W) adversarial images, same dtype and device, detached, with |x - images| <= eps and x in [0, 1].
    """
    _check(images, eps, steps, step_size)
    if eps == 0 or steps == 0:
        return images.detach().clone()
    if generator is None:
        generator = torch.Generator(device=images.device).manual_seed(0)
    # The embed loop may run under inference_mode; gradients need a normal tensor and grad mode on.
    with torch.inference_mode(False), torch.enable_grad():
        x0 = images.detach().clone()
        lo, hi = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)
        noise = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x = torch.minimum(torch.maximum(x0 + (2 * noise - 1) * eps, lo), hi)
        for i in range(int(steps)):
            x.requires_grad_(True)
            loss = objective(x, i)
            if loss.ndim != 0:
                raise AttackError(f"the objective must return a scalar, got shape {tuple(loss.shape)}")
            (grad,) = torch.autograd.grad(loss, x)
            x = torch.minimum(torch.maximum(x.detach() + step_size * grad.sign(), lo), hi)
    return x.detach()


def embed_attack(
    encoder,
    images: Tensor,
    eps: float = EPS,
    steps: int = STEPS,
    step_size: float = STEP_SIZE,
    distance: str = "l2",
    generator: torch.Generator | None = None,
    tokens: str = "pooled",
) -> Tensor:
    """EmbedAttack: push the embedding of each image as far as possible from its clean embedding.

    Args:
        encoder: an ``embedrobust.models.Encoder``.
        images: (N, 3, H, W) float in [0, 1].
        distance: ``"l2"`` (squared Euclidean, seed 002's MSE up to a constant) or ``"cosine"`` (1 - cosine).
        tokens: ``"pooled"`` attacks the embedding the pipeline stores (``encode_image``'s output, CLS/pooled;
            for global tasks); ``"patch"`` attacks the patch tokens (for dense tasks; distance averaged over
            tokens; see ``features.patch_tokens`` for the supported models).
        eps, steps, step_size, generator: as in ``pgd``.
    Returns:
        (N, 3, H, W) adversarial images in [0, 1].
    """
    if distance not in ("l2", "cosine"):
        raise AttackError(f"distance must be 'l2' or 'cosine', got {distance!r}")
    if tokens not in ("pooled", "patch"):
        raise AttackError(f"tokens must be 'pooled' or 'patch', got {tokens!r}")

    def feats(x: Tensor) -> Tensor:  # (N, T, D): T = 1 for pooled
        if tokens == "pooled":
            return pooled_features(encoder, x).float().unsqueeze(1)
        return patch_tokens(encoder, x)[0].float()

    if eps == 0 or steps == 0:
        _check(images, eps, steps, step_size)
        return images.detach().clone()
    with torch.inference_mode(False), torch.no_grad():
        clean = feats(images.detach().clone().to(encoder.device))

    def objective(x: Tensor, i: int) -> Tensor:
        f = feats(x)
        if distance == "l2":
            d = (f - clean).pow(2).sum(-1)
        else:
            d = 1 - F.cosine_similarity(f, clean, dim=-1)
        return d.mean(1).sum()

    return pgd(objective, images.to(encoder.device), eps, steps, step_size, generator)


def pgd_classifier(
    forward_logits: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    eps: float = EPS,
    steps: int = STEPS,
    step_size: float = STEP_SIZE,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Untargeted PGD on cross-entropy.

    Args:
        forward_logits: (N, 3, H, W) images in [0, 1] -> (N, C) logits (differentiable; applies preprocessing).
        labels: (N,) int64 true classes.
    Returns:
        (N, 3, H, W) adversarial images in [0, 1].
    """

    def objective(x: Tensor, i: int) -> Tensor:
        return F.cross_entropy(forward_logits(x).float(), labels, reduction="sum")

    return pgd(objective, images, eps, steps, step_size, generator)


def segpgd(
    forward_seg_logits: Callable[[Tensor], Tensor],
    images: Tensor,
    masks: Tensor,
    eps: float = EPS,
    steps: int = STEPS,
    step_size: float = STEP_SIZE,
    generator: torch.Generator | None = None,
    ignore_index: int = 255,
) -> Tensor:
    """SegPGD (Gu et al. 2022): per-pixel cross-entropy with correctly classified pixels weighted (1 - l) and
    misclassified ones l, where l = i / (2 * steps) at step i, so early steps flip correct pixels and later steps
    keep the wrong ones wrong.

    Args:
        forward_seg_logits: (N, 3, H, W) in [0, 1] -> (N, C, H, W) logits at the masks' resolution.
        masks: (N, H, W) int64 class per pixel; ``ignore_index`` pixels do not count.
    Returns:
        (N, 3, H, W) adversarial images in [0, 1].
    """
    valid = masks != ignore_index
    target = masks.masked_fill(~valid, 0)

    def objective(x: Tensor, i: int) -> Tensor:
        logits = forward_seg_logits(x).float()
        ce = F.cross_entropy(logits, target, reduction="none")  # (N, H, W)
        lam = i / (2 * steps)
        correct = logits.argmax(1) == target
        w = torch.where(correct, 1 - lam, lam) * valid
        return (w * ce).sum() / masks[0].numel()

    return pgd(objective, images, eps, steps, step_size, generator)


def depth_loss(pred: Tensor, depth: Tensor, kind: str = "l1", min_depth: float = 1e-3) -> Tensor:
    """Per-image depth loss, (N,). pred, depth: (N, H, W) in the same unit (metres); pixels with depth <= 0 are
    invalid. ``"l1"``: mean |pred - depth|; ``"silog"``: scale-invariant log loss of Eigen et al. (2014),
    mean(d^2) - 0.85 mean(d)^2 with d = log(max(pred, min_depth)) - log(depth)."""
    valid = (depth > 0).float()
    n = valid.flatten(1).sum(1).clamp(min=1)
    if kind == "l1":
        return ((pred - depth).abs() * valid).flatten(1).sum(1) / n
    if kind == "silog":
        d = (torch.log(pred.clamp(min=min_depth)) - torch.log(depth.clamp(min=min_depth))) * valid
        m1, m2 = d.flatten(1).sum(1) / n, d.pow(2).flatten(1).sum(1) / n
        return m2 - 0.85 * m1.pow(2)
    raise AttackError(f"depth loss must be 'l1' or 'silog', got {kind!r}")


def depthpgd(
    forward_depth: Callable[[Tensor], Tensor],
    images: Tensor,
    depth: Tensor,
    eps: float = EPS,
    steps: int = STEPS,
    step_size: float = STEP_SIZE,
    generator: torch.Generator | None = None,
    loss: str = "l1",
) -> Tensor:
    """PGD maximising the depth head's loss (``depth_loss``: ``"l1"`` or ``"silog"``).

    Args:
        forward_depth: (N, 3, H, W) in [0, 1] -> (N, H, W) predicted depth at the ground truth's resolution.
        depth: (N, H, W) ground-truth depth; <= 0 marks invalid pixels.
    Returns:
        (N, 3, H, W) adversarial images in [0, 1].
    """
    if loss not in ("l1", "silog"):
        raise AttackError(f"depth loss must be 'l1' or 'silog', got {loss!r}")

    def objective(x: Tensor, i: int) -> Tensor:
        return depth_loss(forward_depth(x).float(), depth, loss).sum()

    return pgd(objective, images, eps, steps, step_size, generator)
