"""What every layer shares: a cell of the perturbation grid (:class:`Condition`), the canonical JSON / hash of
a config, by which stages key their caches, and the one network probe (:func:`reachable`). Imports nothing of
the package, so library code can use it without reaching up into the pipeline's config."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

#: Seconds the network probe waits for a server before a fetch fails fast as offline.
PROBE_TIMEOUT_S = 3.0


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

    def as_pair(self) -> list:
        """``[family, value]``, the clean value as None: a condition in JSON (stage configs), which has no NaN."""
        return [self.family, None if self.is_clean else self.value]

    @classmethod
    def of(cls, pair) -> Condition:
        """The condition of a ``[family, value]`` pair (``as_pair``; a clean pair's value is ignored)."""
        family = str(pair[0])
        return cls("clean", math.nan) if family == "clean" else cls(family, float(pair[1]))


CLEAN = Condition("clean", math.nan)


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON: the same config always gives the same string."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def sha256(obj: Any) -> str:
    """Hex SHA-256 of ``obj``'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def seed_from_key(key: str) -> int:
    """A 63-bit seed from a text key (its SHA-256): the one derivation of every seeded draw that must not depend
    on the order in which draws are made (embed's per-chunk conditions, the task evaluations)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)


def derived_seed(*parts) -> int:
    """``seed_from_key`` of ``parts``' reprs joined by ``|``."""
    return seed_from_key("|".join(repr(p) for p in parts))


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the server of ``url`` answers an HTTP HEAD request at its root within ``timeout`` seconds.

    Any status below 500 counts (a 403 or 404 for the root is still a server); a 5xx is often a proxy refusing the
    host, and a DNS failure or a refused or silent connection is no answer. A bare TCP connect is not enough:
    sandboxes and proxies accept connections they never serve. The request runs in a daemon thread because a
    stalled DNS lookup ignores socket timeouts.
    """
    parts = urllib.parse.urlsplit(url)
    root = f"{parts.scheme}://{parts.netloc}/"
    answer: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(root, method="HEAD"), timeout=timeout)
            answer.append(True)
        except urllib.error.HTTPError as err:
            answer.append(err.code < 500)
        except Exception:  # URLError, timeouts, resets, a malformed URL: no answer
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])
