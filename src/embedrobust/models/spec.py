"""Model specs from params.yaml: defaults, normalisation, validation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from embedrobust.errors import ConfigError, unknown_name

LIBRARIES = ("open_clip", "timm")
PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULTS = {"pretrained": None, "checkpoint": None, "image_size": None, "seed": 0, "precision": "fp32"}
_OFF = {"none", "false", "no", "off", "random", ""}
_ON = {"true", "yes", "on"}


def _pretrained(value) -> str | bool | None:
    """None/False/'none' -> None (random init); True/'true' -> True (library default weights); else the tag."""
    if value is None or value is False:
        return None
    if value is True:
        return True
    if isinstance(value, str):
        low = value.strip().lower()
        return None if low in _OFF else True if low in _ON else value.strip()
    raise ConfigError(f"model spec: pretrained must be a tag string, true or none, got {value!r}")


def _image_size(value) -> int | list[int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return [int(value[0]), int(value[1])]
    raise ConfigError(f"model spec: image_size must be a positive int or [H, W], got {value!r}")


def normalise_spec(spec: dict) -> dict:
    """A copy of ``spec`` with defaults filled in and values in canonical form (JSON-able).

    Keys this module reads (others pass through untouched):
      library (required), arch (required), pretrained, checkpoint, image_size, seed, precision.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"model spec must be a mapping, got {type(spec).__name__}")
    out = {**DEFAULTS, **spec}
    for key in ("library", "arch"):
        if not isinstance(out.get(key), str) or not out[key].strip():
            raise ConfigError(f"model spec needs a non-empty string {key!r} (got {out.get(key)!r}); "
                              f"e.g. library: open_clip, arch: ViT-B-32")
        out[key] = out[key].strip()
    if out["library"] not in LIBRARIES:
        raise unknown_name("model library name", out["library"], list(LIBRARIES))
    out["pretrained"] = _pretrained(out["pretrained"])
    if out["checkpoint"] is not None:
        out["checkpoint"] = str(out["checkpoint"])
    out["image_size"] = _image_size(out["image_size"])
    if not isinstance(out["seed"], int) or isinstance(out["seed"], bool):
        raise ConfigError(f"model spec: seed must be an integer, got {out['seed']!r}")
    if out["precision"] not in PRECISIONS:
        raise ConfigError(f"model spec: precision must be one of {', '.join(PRECISIONS)}, got {out['precision']!r}")
    return out


def resolved(spec: dict, root, seed: int) -> dict:
    """A copy of ``spec`` ready to build: a relative ``checkpoint`` resolved against the project root ``root`` (not
    the cwd; params keep the relative form so artifacts do not depend on where the project lives), and ``seed``
    (random-init weights) defaulting to the study's."""
    import os

    out = dict(spec)
    out.setdefault("seed", seed)
    ckpt = out.get("checkpoint")
    if root is not None and ckpt and not os.path.isabs(ckpt):
        out["checkpoint"] = os.path.join(str(root), ckpt)
    return out


def did_you_mean(name: str, known: list[str]) -> str:
    """' Did you mean ...?' naming up to three close matches of ``name`` in ``known``, or ''."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with the CPU RNG seeded, restoring the caller's RNG state afterwards.

    Model constructors draw their initial weights from torch's global RNG; building on CPU under this context
    makes random init a function of ``seed`` alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
