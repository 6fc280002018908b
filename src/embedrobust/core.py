"""What every layer shares: a cell of the perturbation grid (:class:`Condition`) and the canonical JSON / hash of
a config, by which stages key their caches. Imports nothing of the package, so library code can use it without
reaching up into the pipeline's config."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    """One cell of the perturbation grid. The clean condition has family 'clean' and value NaN."""

    family: str
    value: float

    @property
    def label(self) -> str:
        return "clean" if self.family == "clean" else f"{self.family}@{self.value:g}"

    @property
    def is_clean(self) -> bool:
        return self.family == "clean"


CLEAN = Condition("clean", math.nan)


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON: the same config always gives the same string."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def sha256(obj: Any) -> str:
    """Hex SHA-256 of ``obj``'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()
