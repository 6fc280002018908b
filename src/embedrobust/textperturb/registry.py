"""Registry of text (prompt) perturbations by name, in the image registry's style (``perturb.registry``).

A text perturbation changes the prompts a CLIP model's class embeddings are built from. Three kinds:

- ``"text"``: ``fn(text, value, rng, **options) -> str`` edits one string (typos, case, whitespace, punctuation,
  words). Where in the prompt it acts is its ``scope`` (an option of every text-kind family): ``"prompt"`` (the
  filled prompt, class name included), ``"template"`` (the template's words around the class name, never the
  class name) or ``"class_name"`` (only the class name);
- ``"class_name"``: ``fn(class_name, value, rng, alternatives) -> str`` substitutes the class name (synonyms);
- ``"templates"``: ``fn(templates, value) -> list[str]`` replaces the template set itself (template_shift).

``value`` is a rate in [0, 1] (per character, per word or per prompt, as ``param`` says) or, for template_shift,
an integer count. The identity is 0 for every family: at 0 nothing is drawn and the input comes back unchanged.
All randomness comes from ``rng`` (a ``numpy.random.Generator``); ``text_rng`` seeds one per (study seed,
family, level, class, template), so a prompt's draws depend on what it is, not on the order prompts are built.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EmbedRobustError, unknown_name

KINDS = ("text", "class_name", "templates")
SCOPES = ("prompt", "template", "class_name")


class TextPerturbationValueError(EmbedRobustError, ValueError):
    """A text perturbation was called with a value or option outside its domain."""


@dataclass(frozen=True)
class TextPerturbation:
    """One text perturbation family.

    Attributes:
        name: registry key, e.g. ``"char_swap"``.
        fn: the function (signature by ``kind``, module docstring); keyword-only parameters are its options.
        kind: ``"text"``, ``"class_name"`` or ``"templates"``.
        param: what ``value`` means, with its unit, e.g. ``"rate per character (0-1)"``.
        description: one line for the report.
        bounds: the closed interval of valid values.
        integer: whether values must be integers (template counts).
        random: whether the output depends on the generator.
        scope: the default scope of a text-kind family (``SCOPES``).
    """

    name: str
    fn: Callable
    kind: str
    param: str
    description: str
    bounds: tuple[float, float] = (0.0, 1.0)
    integer: bool = False
    random: bool = True
    scope: str = "prompt"

    identity = 0.0

    @property
    def domain(self) -> str:
        lo, hi = self.bounds
        interval = f"[{lo:g}, {hi:g}]"
        return f"integers in {interval}" if self.integer else interval

    def admits(self, value: float) -> bool:
        """Whether ``value`` is in the domain (NaN never is)."""
        value = float(value)
        lo, hi = self.bounds
        return lo <= value <= hi and not (self.integer and not value.is_integer())

    def option_defaults(self) -> dict:
        """Every option with its default: the function's keyword-only parameters, plus ``scope`` for text kinds."""
        sig = inspect.signature(self.fn)
        out = {n: p.default for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        if self.kind == "text":
            out["scope"] = self.scope
        return out

    def check_value(self, value: float) -> float:
        value = float(value)
        if not self.admits(value):
            raise TextPerturbationValueError(
                f"{self.name}: value {value:g} is outside {self.domain} ({self.param}); choose a value in range")
        return value

    def __call__(self, text: str, value: float, rng: np.random.Generator | None = None, **options) -> str:
        """Apply a text-kind family to one string (the ``scope`` option is the caller's: see ``prompts``)."""
        if self.kind != "text":
            raise TypeError(f"{self.name} is a {self.kind}-kind family; build its prompts with "
                            f"embedrobust.textperturb.condition_prompts")
        value = self.check_value(value)
        if value == self.identity:
            return text
        return self.fn(text, value, np.random.default_rng(0) if rng is None else rng, **options)


_REGISTRY: dict[str, TextPerturbation] = {}


def register(name: str, *, kind: str, param: str, description: str, bounds: tuple[float, float] = (0.0, 1.0),
             integer: bool = False, random: bool = True, scope: str = "prompt") -> Callable:
    """Decorator that registers ``fn`` under ``name``; every family's identity (0) must lie in its domain."""

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"text perturbation {name!r} registered twice")
        if kind not in KINDS or scope not in SCOPES:
            raise ValueError(f"text perturbation {name!r}: kind {kind!r} / scope {scope!r} not in {KINDS} / {SCOPES}")
        p = TextPerturbation(name=name, fn=fn, kind=kind, param=param, description=description,
                             bounds=(float(bounds[0]), float(bounds[1])), integer=integer, random=random, scope=scope)
        if not p.admits(p.identity) or math.isinf(p.bounds[1]):
            raise ValueError(f"text perturbation {name!r}: domain {p.domain} must be finite and contain 0")
        _REGISTRY[name] = p
        return fn

    return deco


def get_text_perturbation(name: str) -> TextPerturbation:
    """The registered family ``name``; an unknown name raises one error naming the closest known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("text perturbation", name, list(_REGISTRY)) from None


def list_text_perturbations() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def describe_text_registry() -> str:
    """A plain-text table of every family: name, kind, parameter, domain, default scope, random, description."""
    rows = [("name", "kind", "parameter", "domain", "scope", "random", "description")]
    for n in list_text_perturbations():
        p = _REGISTRY[n]
        rows.append((n, p.kind, p.param, p.domain, p.scope if p.kind == "text" else "-",
                     "yes" if p.random else "no", p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def text_seed(seed: int, family: str, value: float, class_name: str, template: str) -> int:
    """Seed of the draws for one prompt: (study seed, family, level, class, template), hashed with sha256 as
    ``embed.run.condition_seed`` hashes an image chunk's (that function keys on a chunk index, and importing it
    would pull torch into this pure-string package). Keyed on the class name and template text rather than
    their positions, so adding a class or a template leaves every other prompt's draws unchanged."""
    key = f"{seed}|{family}|{float(value)!r}|{class_name}|{template}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)


def text_rng(seed: int, family: str, value: float, class_name: str, template: str) -> np.random.Generator:
    """A fresh generator seeded by :func:`text_seed`."""
    return np.random.default_rng(text_seed(seed, family, value, class_name, template))


def rate_mask(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """(n,) bool: each of n sites selected independently with probability ``rate`` (one uniform draw per site)."""
    return rng.random(n) < rate


def checked_options(p: TextPerturbation, options: dict | None) -> dict:
    """``options`` of family ``p`` checked against its option names (and scope against ``SCOPES``).

    Raises:
        TextPerturbationValueError: an unknown option (with the closest names) or an unknown scope.
    """
    options = dict(options or {})
    known = p.option_defaults()
    for key in options:
        if key not in known:
            raise TextPerturbationValueError(str(unknown_name(f"{p.name} option", key, list(known)))
                                             if known else f"{p.name} takes no options, got {key!r}")
    if "scope" in options and options["scope"] not in SCOPES:
        raise TextPerturbationValueError(f"{p.name}: scope {options['scope']!r} is not one of {', '.join(SCOPES)}")
    return options


def choice(rng: np.random.Generator, items: Sequence):
    """One element of ``items``, uniformly."""
    return items[int(rng.integers(len(items)))]
