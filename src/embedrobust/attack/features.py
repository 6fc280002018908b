"""Differentiable features of an Encoder: the pooled embedding and the patch-token grid.

``Encoder.encode_image`` runs under ``torch.inference_mode`` and cannot be differentiated; these functions call
the same model on ``encoder.preprocess``-ed images with autograd left as the caller set it. They run in float32
(no autocast), so attack gradients are not quantised by bf16.

Patch tokens are supported for timm models (``forward_features``: ViTs give (N, prefix + h*w, D) tokens, of which
the ``num_prefix_tokens`` CLS/register tokens are dropped; CNNs give an (N, C, h, w) map) and for open_clip
vision transformers (their ``output_tokens`` switch). Other models raise ``AttackError``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import AttackError


def model_input(encoder, images: Tensor, dense: bool = False) -> Tensor:
    """Model input from (N, 3, H, W) images in [0, 1], on the model's device.

    ``dense=False`` applies the encoder's full preprocessing (resize, crop, normalise), as the embed stage does.
    ``dense=True`` only normalises, so the token grid covers the whole image and aligns with pixel labels; the
    images must then already be at ``encoder.input_size``.
    """
    x = images.to(encoder.device)
    if not dense:
        return encoder.preprocess(x)
    if tuple(x.shape[-2:]) != tuple(encoder.input_size):
        raise AttackError(f"dense tasks need images at the model's input size {tuple(encoder.input_size)}, got "
                          f"{tuple(x.shape[-2:])}; resize images and labels to that size first")
    mean = torch.tensor(encoder.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(encoder.std, device=x.device).view(1, 3, 1, 1)
    return (x.float() - mean) / std


def pooled_features(encoder, images: Tensor) -> Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, embed_dim) float32: what ``encode_image`` returns, but differentiable."""
    # the same function encode_image applies, so the attack targets exactly the stored embedding
    return encoder._image_fn(encoder.model, model_input(encoder, images)).float()


def _library(encoder) -> str:
    return encoder.spec.get("library", "")


def features_and_tokens(encoder, images: Tensor, dense: bool = False) -> tuple[Tensor, Tensor]:
    """Pooled embedding and patch-token map in one forward pass.

    Args:
        images: (N, 3, H, W) in [0, 1].
        dense: normalise only (see ``model_input``).
    Returns:
        pooled (N, Dg) float32 (the embedding ``encode_image`` gives, for timm and open_clip ViTs) and
        patches (N, Dp, h, w) float32 on the model's device.
    """
    x = model_input(encoder, images, dense)
    model, lib = encoder.model, _library(encoder)
    if lib == "timm" and hasattr(model, "forward_features"):
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        if feats.ndim == 4:  # CNN feature map
            return pooled.float(), feats.float()
        n_prefix = int(getattr(model, "num_prefix_tokens", 0))
        tokens = feats[:, n_prefix:]
        h, w = _grid(model.patch_embed.patch_size, x.shape[-2:], tokens.shape[1], encoder)
        return pooled.float(), tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w).float()
    visual = getattr(model, "visual", None)
    if lib == "open_clip" and visual is not None and hasattr(visual, "output_tokens"):
        before = visual.output_tokens
        visual.output_tokens = True
        try:
            pooled, tokens = visual(x)
        finally:
            visual.output_tokens = before
        h, w = _grid(visual.patch_size, x.shape[-2:], tokens.shape[1], encoder)
        return pooled.float(), tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w).float()
    raise AttackError(f"patch tokens are not available for {encoder!r}; use a timm model or an open_clip "
                      f"vision transformer, or tokens='pooled'")


def _grid(patch_size, size, n_tokens: int, encoder) -> tuple[int, int]:
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    h, w = int(size[0]) // ph, int(size[1]) // pw
    if h * w != n_tokens:
        raise AttackError(f"{encoder!r}: {n_tokens} patch tokens do not form the expected {h}x{w} grid")
    return h, w


def patch_tokens(encoder, images: Tensor, dense: bool = False) -> tuple[Tensor, tuple[int, int]]:
    """(N, 3, H, W) in [0, 1] -> patch tokens (N, h*w, Dp) float32 (row-major grid) and the grid (h, w)."""
    _, patches = features_and_tokens(encoder, images, dense)
    n, d, h, w = patches.shape
    return patches.flatten(2).transpose(1, 2), (h, w)
