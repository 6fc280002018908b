"""Seeded sampling of perturbed training views: a family and a level per image (or per batch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..perturb import get_perturbation, with_table
from ..perturb.registry import DEFAULT_TABLE, PerturbationValueError
from .options import resolve_families


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (splitmix-style), so (seed, step, view) streams never overlap."""
    h = 0x9E3779B97F4A7C15
    for v in ints:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True)
class View:
    """Which perturbation made one image of one view: family name and parameter value (natural unit)."""

    family: str
    value: float


class PerturbationSampler:
    """Draws perturbed views of a batch: ``views(images, step) -> (V, N, 3, H, W)``.

    Each of the V views of each image gets a family (uniform over the families) and a level (uniform over its
    levels, or uniform in its range), drawn per image (``per="image"``) or once per batch and view
    (``per="batch"``). Every draw comes from a generator seeded by (seed, step), so step t's views are a pure
    function of (seed, t, images): resuming at step t reproduces them.
    """

    def __init__(self, families, n_views: int = 2, per: str = "image", seed: int = 0,
                 table: str = DEFAULT_TABLE) -> None:
        if per not in ("image", "batch"):
            raise ConfigError(f"finetune.sample_per must be 'image' or 'batch', got {per!r}")
        if int(n_views) < 1:
            raise ConfigError(f"finetune.views must be >= 1 (perturbed views per image), got {n_views!r}")
        self.families = resolve_families(families, table)
        self.names = list(self.families)
        # severity-unit families read their parameters from the table when called; natural-unit ones only map
        # severities to values through it, so they keep the registry's entry when the table lacks them
        try:
            self._fns = {n: (with_table(n, table) if get_perturbation(n).unit == "severity" else get_perturbation(n))
                         for n in self.names}
        except PerturbationValueError as exc:
            raise ConfigError(f"finetune.families: {exc}") from None
        self.n_views, self.per, self.seed = int(n_views), per, int(seed)

    def _value(self, name: str, u: float, k: int) -> float:
        levels = self.families[name]
        if levels and levels[0] == "range":
            return levels[1] + u * (levels[2] - levels[1])
        return float(levels[k % len(levels)])

    def draw(self, n: int, step: int) -> list[list[View]]:
        """(V lists of N) views for a batch of n images at ``step``."""
        g = torch.Generator().manual_seed(_mix(self.seed, step, 1))
        m = 1 if self.per == "batch" else n
        fam = torch.randint(len(self.names), (self.n_views, m), generator=g)
        lev = torch.randint(1 << 30, (self.n_views, m), generator=g)
        u = torch.rand((self.n_views, m), generator=g, dtype=torch.float64)
        out = []
        for v in range(self.n_views):
            row = []
            for i in range(n):
                j = 0 if self.per == "batch" else i
                name = self.names[int(fam[v, j])]
                row.append(View(name, self._value(name, float(u[v, j]), int(lev[v, j]))))
            out.append(row)
        return out

    def apply(self, images: torch.Tensor, views: list[list[View]], step: int) -> torch.Tensor:
        """Perturb ``images`` (N, 3, H, W) float in [0, 1] into (V, N, 3, H, W) as ``views`` says.

        Images sharing a (family, value) are perturbed in one call with a generator seeded by
        (seed, step, view, group), so the result does not depend on the batch's other groups.
        """
        out = torch.empty((len(views), *images.shape), dtype=images.dtype, device=images.device)
        for v, row in enumerate(views):
            groups: dict[View, list[int]] = {}
            for i, view in enumerate(row):
                groups.setdefault(view, []).append(i)
            for gi, (view, idx) in enumerate(sorted(groups.items(), key=lambda kv: kv[1][0])):
                g = torch.Generator(device=images.device).manual_seed(_mix(self.seed, step, 2, v, gi))
                sel = torch.tensor(idx, device=images.device)
                out[v, sel] = self._fns[view.family](images[sel], view.value, g).to(images.dtype)
        return out

    def views(self, images: torch.Tensor, step: int) -> torch.Tensor:
        """(V, N, 3, H, W) perturbed views of ``images`` (N, 3, H, W) float in [0, 1] at ``step``."""
        return self.apply(images, self.draw(images.shape[0], step), step)
