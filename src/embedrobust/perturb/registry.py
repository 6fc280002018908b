"""Registry of perturbations by name.

A perturbation maps a batch of images (N, 3, H, W), float in [0, 1], to a batch of the same shape, dtype and
device, given one parameter value in the family's natural unit and a ``torch.Generator`` for any randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..errors import unknown_name

PerturbFn = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Perturbation:
    """One perturbation family.

    Attributes:
        name: registry key, e.g. ``"jpeg_compression"``.
        fn: the batched function ``fn(images, value, generator)``.
        param: what ``value`` means, with its unit, e.g. ``"quality (1-100)"``.
        severities: parameter values of severities 1..5 (ImageNet-C's where it defines them).
        identity: the value that leaves an image unchanged, or None where none does (lossy codecs).
        random: whether the output depends on the generator.
        reference: the reference implementation this follows.
        description: one line for the report and ``embedrobust perturb --list``.
    """

    name: str
    fn: PerturbFn
    param: str
    severities: tuple[float, ...]
    identity: float | None
    random: bool
    reference: str
    description: str
    tags: tuple[str, ...] = field(default=())

    def __call__(self, images: torch.Tensor, value: float, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        if generator is None:
            generator = torch.Generator(device=images.device).manual_seed(0)
        if self.identity is not None and math.isclose(float(value), self.identity):
            return images.clone()
        return self.fn(images, float(value), generator)

    def levels(self, severities: Sequence[int]) -> list[float]:
        """Parameter values for severities (1-based)."""
        return [self.severities[s - 1] for s in severities]


_REGISTRY: dict[str, Perturbation] = {}


def register(
    name: str,
    *,
    param: str,
    severities: Sequence[float],
    identity: float | None,
    random: bool,
    reference: str,
    description: str,
    tags: Sequence[str] = (),
) -> Callable[[PerturbFn], PerturbFn]:
    """Decorator that registers ``fn`` under ``name``."""

    def deco(fn: PerturbFn) -> PerturbFn:
        if name in _REGISTRY:
            raise ValueError(f"perturbation {name!r} registered twice")
        _REGISTRY[name] = Perturbation(
            name=name,
            fn=fn,
            param=param,
            severities=tuple(float(s) for s in severities),
            identity=identity,
            random=random,
            reference=reference,
            description=description,
            tags=tuple(tags),
        )
        return fn

    return deco


def get_perturbation(name: str) -> Perturbation:
    """The registered perturbation ``name``; an unknown name raises one error that lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("perturbation", name, list(_REGISTRY)) from None


def list_perturbations() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)
