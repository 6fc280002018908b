"""Helpers shared by the task evaluations (dense heads, the attacked probe): options, batches, pixel scale."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from .linf import AttackError

COLUMNS = ["task", "kind", "family", "value", "condition", "metric", "metric_value", "n_images", "target_aligned"]


def merged_options(defaults: dict, options: Mapping | None) -> dict:
    opts = {**defaults, **(options or {})}
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise AttackError(f"unknown options {unknown}; known: {sorted(defaults)}")
    return opts


def as_float(images: Tensor) -> Tensor:
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def batches(n: int, size: int) -> Iterable[slice]:
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]
