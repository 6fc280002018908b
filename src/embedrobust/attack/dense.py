"""Linear dense heads on frozen encoders, their metrics, and differentiable forwards for the dense attacks.

Following seed 002's dense probes: a segmentation head is one linear map of each patch token to class logits,
bilinearly upsampled to the image (scored by mIoU); a depth head is one linear map of [pooled embedding, patch
token] to a depth, upsampled likewise (scored by RMSE). Heads are fitted on clean images with the encoder frozen:
features are computed once without gradients, then the head alone is trained with Adam.

Dense inputs are only normalised, not resized or cropped (``features.model_input(dense=True)``), so images and
labels must be at ``encoder.input_size``; the token grid then covers the whole image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .features import features_and_tokens
from .linf import AttackError


class _Standardise(nn.Module):
    """Per-channel standardisation with statistics of the training features (buffers, saved with the head)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: Tensor) -> None:  # x: (N, D, ...) channels second
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        self.mean.copy_(flat.mean(1))
        self.std.copy_(flat.std(1).clamp(min=1e-6))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class LinearSegHead(nn.Module):
    """Patch tokens (N, D, h, w) -> logits (N, n_classes, H, W): a 1x1 linear map, bilinear upsampling."""

    def __init__(self, patch_dim: int, n_classes: int) -> None:
        super().__init__()
        self.norm = _Standardise(patch_dim)
        self.proj = nn.Conv2d(patch_dim, n_classes, 1)
        nn.init.zeros_(self.proj.weight)  # deterministic start; the problem is convex in these weights
        nn.init.zeros_(self.proj.bias)

    def forward(self, pooled: Tensor, patches: Tensor, size: tuple[int, int]) -> Tensor:
        logits = self.proj(self.norm(patches))
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


class LinearDepthHead(nn.Module):
    """[pooled (N, Dg) broadcast to every token, patch tokens (N, Dp, h, w)] -> depth (N, H, W): a 1x1 linear
    map on the concatenation, bilinear upsampling."""

    def __init__(self, pooled_dim: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = _Standardise(pooled_dim + patch_dim)
        self.proj = nn.Conv2d(pooled_dim + patch_dim, 1, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    @staticmethod
    def concat(pooled: Tensor, patches: Tensor) -> Tensor:
        n, _, h, w = patches.shape
        return torch.cat([pooled[:, :, None, None].expand(n, pooled.shape[1], h, w), patches], dim=1)

    def forward(self, pooled: Tensor, patches: Tensor, size: tuple[int, int]) -> Tensor:
        d = self.proj(self.norm(self.concat(pooled, patches)))
        return F.interpolate(d, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def _features(encoder, images: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    parts = [features_and_tokens(encoder, images[i:i + batch_size], dense=True)
             for i in range(0, images.shape[0], batch_size)]
    return torch.cat([p for p, _ in parts]), torch.cat([t for _, t in parts])


def _train(head: nn.Module, loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor], pooled: Tensor, patches: Tensor,
           target: Tensor, steps: int, lr: float, batch_size: int, seed: int) -> None:
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n = pooled.shape[0]
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randperm(n, generator=gen)[:batch_size].to(pooled.device)
            opt.zero_grad(set_to_none=True)
            loss_fn(pooled[idx], patches[idx], target[idx]).backward()
            opt.step()
    head.eval()


def fit_seg_head(encoder, images: Tensor, masks: Tensor, n_classes: int, steps: int = 200, lr: float = 0.01,
                 batch_size: int = 64, ignore_index: int = 255, seed: int = 0) -> LinearSegHead:
    """Fit a LinearSegHead on clean data with the encoder frozen.

    Args:
        images: (N, 3, H, W) in [0, 1] at ``encoder.input_size``.
        masks: (N, H, W) int64 classes in [0, n_classes) or ``ignore_index``.
        steps: Adam steps on mini-batches of ``batch_size`` images drawn with ``seed``.
    Returns:
        the head (eval mode) on the encoder's device.
    """
    if masks.shape != (images.shape[0], *images.shape[-2:]):
        raise AttackError(f"masks of shape {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    pooled, patches = _features(encoder, images, batch_size)
    head = LinearSegHead(patches.shape[1], n_classes).to(patches.device)
    head.norm.fit(patches)
    size = tuple(images.shape[-2:])
    _train(head, lambda p, t, y: F.cross_entropy(head(p, t, size), y, ignore_index=ignore_index),
           pooled, patches, masks.to(patches.device), steps, lr, batch_size, seed)
    return head


def fit_depth_head(encoder, images: Tensor, depth: Tensor, steps: int = 200, lr: float = 0.01,
                   batch_size: int = 64, seed: int = 0) -> LinearDepthHead:
    """Fit a LinearDepthHead on clean data (mean squared error over valid pixels, depth > 0), encoder frozen.

    Args:
        images: (N, 3, H, W) in [0, 1] at ``encoder.input_size``.
        depth: (N, H, W) float depth (e.g. metres), <= 0 where unknown.
    """
    if depth.shape != (images.shape[0], *images.shape[-2:]):
        raise AttackError(f"depth of shape {tuple(depth.shape)} does not match images {tuple(images.shape)}")
    pooled, patches = _features(encoder, images, batch_size)
    head = LinearDepthHead(pooled.shape[1], patches.shape[1]).to(patches.device)
    head.norm.fit(LinearDepthHead.concat(pooled, patches))
    with torch.no_grad():  # start at the constant predictor (the mean depth), which the head must then beat
        head.proj.bias.fill_(float(depth[depth > 0].mean()))
    size = tuple(images.shape[-2:])

    def loss(p: Tensor, t: Tensor, y: Tensor) -> Tensor:
        valid = y > 0
        return (head(p, t, size) - y)[valid].pow(2).mean()

    _train(head, loss, pooled, patches, depth.to(patches.device), steps, lr, batch_size, seed)
    return head


def dense_forward(encoder, head: nn.Module) -> Callable[[Tensor], Tensor]:
    """Differentiable ``images (N, 3, H, W) in [0, 1] -> head output at (H, W)`` (seg logits (N, C, H, W) or
    depth (N, H, W)), for ``segpgd`` / ``depthpgd`` and for evaluation."""

    def forward(images: Tensor) -> Tensor:
        pooled, patches = features_and_tokens(encoder, images, dense=True)
        return head(pooled, patches, tuple(images.shape[-2:]))

    return forward


@torch.no_grad()
def predict(encoder, head: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """Head predictions: class map (N, H, W) int64 for a LinearSegHead, depth (N, H, W) float32 otherwise."""
    fwd = dense_forward(encoder, head)
    out = [fwd(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    out = torch.cat(out)
    return out.argmax(1) if isinstance(head, LinearSegHead) else out


def miou(pred: Tensor, target: Tensor, n_classes: int, ignore_index: int = 255) -> float:
    """Mean intersection over union over classes present in prediction or target (dataset-level counts).

    pred, target: (N, H, W) int64; ``ignore_index`` pixels of the target are left out.
    """
    valid = target != ignore_index
    p, t = pred[valid].long(), target[valid].long()
    inter = torch.bincount(t[p == t], minlength=n_classes)[:n_classes].double()
    area_p = torch.bincount(p, minlength=n_classes)[:n_classes].double()
    area_t = torch.bincount(t, minlength=n_classes)[:n_classes].double()
    union = area_p + area_t - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else float("nan")


def rmse(pred: Tensor, target: Tensor) -> float:
    """Root mean squared error over valid pixels (target > 0), in the depth unit. pred, target: (N, H, W)."""
    valid = target > 0
    return float((pred[valid].double() - target[valid].double()).pow(2).mean().sqrt())
