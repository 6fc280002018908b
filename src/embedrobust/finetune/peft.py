"""Which parameters train: the image tower, its last N blocks, or LoRA adapters on its linear weights."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError


def image_tower(encoder) -> nn.Module:
    """The module that maps images to embeddings: open_clip's ``model.visual``, timm's whole model."""
    return encoder.model.visual if encoder.spec["library"] == "open_clip" else encoder.model


def blocks(encoder) -> nn.ModuleList:
    """The blocks, in order: timm ``blocks``, open_clip ``visual.transformer.resblocks``, or the bottlenecks of a
    ResNet's ``layer1``..``layer4`` (open_clip's RN50 and timm ResNets)."""
    tower = image_tower(encoder)
    found = getattr(getattr(tower, "transformer", None), "resblocks", None)
    found = found if found is not None else getattr(tower, "blocks", None)
    if found is None and all(isinstance(getattr(tower, f"layer{i}", None), nn.Sequential) for i in range(1, 5)):
        found = nn.ModuleList([b for i in range(1, 5) for b in getattr(tower, f"layer{i}")])
    if found is None:
        raise ConfigError(f"finetune.train_blocks: {encoder!r} has no transformer blocks (timm `blocks` or "
                          f"open_clip `visual.transformer.resblocks`) or ResNet stages; use train_blocks: null to "
                          f"train all layers")
    return found


def _after_blocks(encoder) -> list[nn.Module]:
    """Layers between the last block and the embedding (final norms, pooling head, projection)."""
    tower = image_tower(encoder)
    names = ("ln_post", "attn_pool", "ln_pool", "attnpool") if encoder.spec["library"] == "open_clip" else (
        "norm", "fc_norm", "attn_pool", "head", "head_drop", "global_pool", "fc")
    return [getattr(tower, n) for n in names if isinstance(getattr(tower, n, None), nn.Module)]


def select_trainable(encoder, train_blocks: int | None) -> list[nn.Parameter]:
    """Freeze everything but the image tower (all of it, or its last ``train_blocks`` blocks and the layers
    after them, including open_clip's ``visual.proj``). Returns the trainable parameters."""
    for p in encoder.model.parameters():
        p.requires_grad_(False)
    tower = image_tower(encoder)
    if train_blocks is None:
        for p in tower.parameters():
            p.requires_grad_(True)
    else:
        blks = blocks(encoder)
        if not 0 < int(train_blocks) <= len(blks):
            raise ConfigError(f"finetune.train_blocks must be in 1..{len(blks)} for this model (or null for all), "
                              f"got {train_blocks!r}")
        for m in [*list(blks)[-int(train_blocks):], *_after_blocks(encoder)]:
            for p in m.parameters():
                p.requires_grad_(True)
        if isinstance(getattr(tower, "proj", None), nn.Parameter):
            tower.proj.requires_grad_(True)
    return [p for p in encoder.model.parameters() if p.requires_grad]


class LoRA(nn.Module):
    """Low-rank update of a weight W (out, in): ``W + (alpha / r) * B @ A`` with A (r, in) ~ Kaiming-uniform
    from ``generator`` and B (out, r) = 0, so training starts at the original weights."""

    def __init__(self, shape: torch.Size, rank: int, alpha: float, generator: torch.Generator,
                 device, dtype) -> None:
        super().__init__()
        out_f, in_f = shape
        bound = 1.0 / math.sqrt(in_f)
        a = (torch.rand((rank, in_f), generator=generator, dtype=torch.float32) * 2 - 1) * bound
        self.A = nn.Parameter(a.to(device=device, dtype=dtype))
        self.B = nn.Parameter(torch.zeros((out_f, rank), device=device, dtype=dtype))
        self.scale = float(alpha) / rank

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + self.scale * (self.B @ self.A)


def _lora_targets(encoder, targets: tuple[str, ...]) -> list[tuple[nn.Module, str]]:
    """(module, weight name) of the 2-D attention / MLP weights inside the blocks: Linear ``weight`` and
    ``nn.MultiheadAttention.in_proj_weight`` (open_clip's fused q/k/v, which is no Linear)."""
    out = []
    for block in blocks(encoder):
        for name, mod in block.named_modules():
            kind = "attn" if "attn" in name else "mlp" if "mlp" in name else None
            if kind not in targets:
                continue
            if isinstance(mod, nn.Linear):
                out.append((mod, "weight"))
            elif isinstance(mod, nn.MultiheadAttention) and mod.in_proj_weight is not None:
                out.append((mod, "in_proj_weight"))
    return out


def add_lora(encoder, rank: int, alpha: float | None = None, targets=("attn", "mlp"),
             seed: int = 0) -> list[nn.Parameter]:
    """Freeze the model and attach LoRA adapters (as parametrizations) to the blocks' attention and MLP
    weights. Returns the adapter parameters (the only trainable ones)."""
    if int(rank) < 1:
        raise ConfigError(f"finetune.lora_rank must be a positive integer (or 0 for no LoRA), got {rank!r}")
    for p in encoder.model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(int(seed))
    params = []
    for mod, name in _lora_targets(encoder, tuple(targets)):
        w = getattr(mod, name)
        lora = LoRA(w.shape, int(rank), float(alpha if alpha is not None else rank), g, w.device, w.dtype)
        parametrize.register_parametrization(mod, name, lora)
        params += [lora.A, lora.B]
    if not params:
        raise ConfigError(f"finetune.lora_targets {list(targets)} matched no weight; use attn and/or mlp")
    return params


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every LoRA update folded into its weight: the original layout, loadable
    into a freshly built model of the same architecture.

    Built from the evaluated parametrized weights rather than ``remove_parametrizations`` on a copy: a deep
    copy shares the parametrized class, whose removal would strip the property from the live model too.
    """
    out = {}
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if ".parametrizations." not in key and not key.startswith("parametrizations."):
                out[key] = value.detach().clone()
        for prefix, mod in model.named_modules():
            if parametrize.is_parametrized(mod):
                for name in mod.parametrizations.keys():
                    out[f"{prefix}.{name}" if prefix else name] = getattr(mod, name).detach().clone()
    return out
