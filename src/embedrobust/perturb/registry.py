"""Registry of perturbations by name.

A perturbation maps a batch of images (N, 3, H, W), float in [0, 1], to a batch of the same shape, dtype and
device, given one parameter value and a ``torch.Generator`` for any randomness.

``value`` is either the family's parameter in its natural unit (``unit="natural"``: JPEG quality, noise sigma,
...) or, for corruptions defined by several parameters at once (glass blur's (sigma, max_delta, iterations),
snow, fog, ...), a continuous severity in [0, 5] (``unit="severity"``): 0 is the identity, integer severities
reproduce ImageNet-C's parameter tuples exactly, and a non-integer severity linearly interpolates each parameter
between the neighbouring integer severities (integer parameters rounded half up; see ``interp_params``).

Each family's ``domain`` (``bounds``, ``open_bounds``, ``integer``) is the one statement of its valid values: a
call outside it is refused, and params levels are checked against it at validation (``config.validate``), so a
JPEG quality of 150 fails before any stage runs.

Spatial parameters (blur radii in pixels, ...) are ImageNet-C's, defined for 224 px images. ``scaled(name, size)``
returns the family with those parameters multiplied by ``size / 224``, for small images such as CIFAR (32 px).
``with_table(name, "cifar10-c")`` instead returns the family with another published severity table, e.g.
CIFAR-10-C's (hendrycks/robustness ``make_cifar_c.py``), whose parameters are meant for 32 px images as they
are (``TABLES`` lists the tables and the families each covers).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EmbedRobustError, unknown_name

if TYPE_CHECKING:
    import torch

PerturbFn = Callable[..., "torch.Tensor"]

REFERENCE_SIZE = 224  # ImageNet-C's image side; spatial parameters are defined at this size
DEFAULT_TABLE = "imagenet-c"
_CHANNELS_LAST_OK = frozenset({"jpeg_compression", "webp"})  # families that take any memory layout as well


class PerturbationValueError(EmbedRobustError, ValueError):
    """A perturbation was called with a parameter value outside its valid range."""


@functools.cache
def _resolve(target: str) -> PerturbFn:
    """The function at ``"module:function"``, imported once (a family is called once per batch)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Implementation:
    """A family's function named by where it lives, ``"module:function"``, imported on its first call: the
    catalog's metadata is read by stages that never perturb an image, and the functions import torch."""

    target: str

    def resolve(self) -> PerturbFn:
        return _resolve(self.target)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # what inspect.signature reads: the function's own options
        return inspect.signature(self.resolve())


@dataclass(frozen=True)
class Perturbation:
    """One perturbation family.

    Attributes:
        name: registry key, e.g. ``"jpeg_compression"``.
        fn: the batched function ``fn(images, value, generator)`` (spatial families also take ``scale=``); the
            catalog's families hold an :class:`Implementation`, imported on first call.
        param: what ``value`` means, with its unit, e.g. ``"quality (1-100)"``.
        severities: parameter values of severities 1..5 (ImageNet-C's where it defines them).
        identity: the value that leaves an image unchanged, or None where none does (lossy codecs).
        random: whether the output depends on the generator.
        reference: the reference implementation this follows.
        description: one line for the report and ``embedrobust perturb --list``.
        unit: ``"natural"`` (value in the parameter's unit) or ``"severity"`` (continuous severity in [0, 5]).
        bounds: the ends of the interval of valid values (``domain`` spells it out).
        open_bounds: whether each end itself is excluded; by default exactly the infinite ends are (a family
            whose identity is infinite, shot noise's photon count, includes it).
        integer: whether params levels must be integers (codec qualities). The function rounds whatever it gets,
            so values interpolated between severities (``value_at``, fine-tuning ranges) are fine; a fractional
            level in params would be a label that is not what was applied, or collide with its neighbour.
        domain_note: why the domain is as wide as it is; required where an end is infinite.
        spatial: whether ``fn`` accepts ``scale=`` (pixel-unit parameters multiplied by it).
        scale: the spatial scale bound into this instance (1 = ImageNet-C's 224 px parameters).
        needs_encoder: whether ``fn`` also takes ``encoder=`` (attacks); ``embed.run.bind_perturbations`` binds it.
        options: the keyword options of ``fn`` that params may set (``perturbations.families.<name>.options``);
            ``scale``, ``table`` and ``encoder`` are bound by the pipeline, not by params.
        table: the severity table bound into this instance (``with_table``): ImageNet-C's by default.
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
    unit: str = "natural"
    bounds: tuple[float, float] = (-math.inf, math.inf)
    open_bounds: tuple[bool, bool] | None = None
    integer: bool = False
    domain_note: str = ""
    spatial: bool = False
    scale: float = 1.0
    needs_encoder: bool = False
    table: str = "imagenet-c"
    options: tuple[str, ...] = ()

    def __post_init__(self):
        if self.open_bounds is None:
            object.__setattr__(self, "open_bounds", tuple(math.isinf(b) for b in self.bounds))

    def __call__(self, images: torch.Tensor, value: float, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise PerturbationValueError(
                f"{self.name}: expected images of shape (N, 3, H, W), got {tuple(images.shape)}; "
                "convert grey or RGBA images to RGB first"
            )
        value = float(value)
        if not self.admits(value, as_level=False):
            raise PerturbationValueError(
                f"{self.name}: value {value:g} is outside {self.domain} ({self.param}); choose a value in range"
            )
        if generator is None:
            import torch

            generator = torch.Generator(device=images.device).manual_seed(0)
        if self.identity is not None and math.isclose(value, self.identity):
            return images.clone()
        # The kernels assume (N, C, H, W) row-major; a channels-last batch (e.g. permuted from HWC arrays) would
        # make every elementwise op mixing it with a fresh tensor stride across memory (several times slower).
        # The codecs want HWC rows for Pillow, which a channels-last batch already is.
        if self.name not in _CHANNELS_LAST_OK:
            images = images.contiguous()
        kw = {"scale": self.scale} if self.spatial else {}
        if self.table != DEFAULT_TABLE and self.unit == "severity":
            kw["table"] = self.table
        if not self.random and "combined" not in self.tags:
            # deterministic families treat images independently: run them a cache-sized chunk at a time
            from ._ops import map_images

            return map_images(lambda x: self.fn(x, value, generator, **kw), images)
        return self.fn(images, value, generator, **kw)

    @property
    def domain(self) -> str:
        """The valid values in interval notation, e.g. ``"integers in [1, 100]"``, ``"(0, 1]"``, ``"[0, inf)"``."""
        (lo, hi), (open_lo, open_hi) = self.bounds, self.open_bounds
        interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
        return f"integers in {interval}" if self.integer else interval

    def admits(self, value: float, as_level: bool = True) -> bool:
        """Whether ``value`` is in the domain (NaN never is). ``as_level``: a value written in params, which
        must also be an integer where the family says so; the function itself rounds (see ``integer``)."""
        value = float(value)
        (lo, hi), (open_lo, open_hi) = self.bounds, self.open_bounds
        if not ((lo < value) if open_lo else (lo <= value)) or not ((value < hi) if open_hi else (value <= hi)):
            return False
        return not (as_level and self.integer and not value.is_integer())

    def levels(self, severities: Sequence[int]) -> list[float]:
        """Parameter values for severities (1-based)."""
        return [self.severities[s - 1] for s in severities]

    def value_at(self, severity: float) -> float:
        """The value of a continuous severity in [0, 5]: linear between the severity table's entries, with the
        identity at 0 (or severity 1's value below 1 where no identity exists, e.g. lossy codecs)."""
        if not 0.0 <= severity <= 5.0:
            raise PerturbationValueError(f"severity {severity:g} is outside [0, 5]; use a value in [0, 5]")
        table = [self.identity if self.identity is not None else self.severities[0], *self.severities]
        i = min(int(math.floor(severity)), 4)
        t = severity - i
        a, b = table[i], table[i + 1]
        if math.isinf(a):  # e.g. shot noise's photon count: interpolate 1/c, which is 0 at the identity
            return 1.0 / (t / b) if t > 0 else a
        return a + t * (b - a)


def interp_params(table: Sequence[Sequence[float]], identity: Sequence[float], severity: float,
                  integer: Sequence[bool] = ()) -> tuple[float, ...]:
    """Parameters at a continuous severity: ``table[k-1]`` at integer k, ``identity`` at 0, linear in between.

    Args:
        table: five parameter tuples (severities 1..5).
        identity: the parameter tuple that makes the corruption a no-op (severity 0).
        severity: in [0, 5].
        integer: per parameter, whether it is rounded half up to an integer after interpolation.
    """
    rows = [tuple(identity), *[tuple(r) for r in table]]
    i = min(int(math.floor(severity)), len(rows) - 2)
    t = severity - i
    out = []
    for j, (a, b) in enumerate(zip(rows[i], rows[i + 1])):
        v = a + t * (b - a)
        if j < len(integer) and integer[j]:
            v = float(math.floor(v + 0.5))
        out.append(v)
    return tuple(out)


_REGISTRY: dict[str, Perturbation] = {}


def _checked_domain(p: Perturbation) -> Perturbation:
    """``p``, once its domain is explicit: a new family cannot silently accept every number from params."""
    lo, hi = p.bounds
    if not lo <= hi:
        raise ValueError(f"perturbation {p.name!r}: bounds {p.bounds} are not ordered")
    if (math.isinf(lo) or math.isinf(hi)) and not p.domain_note:
        raise ValueError(f"perturbation {p.name!r}: domain {p.domain} is unbounded; say why in domain_note")
    if p.identity is not None and not p.admits(p.identity, as_level=False):
        raise ValueError(f"perturbation {p.name!r}: identity {p.identity:g} is outside its domain {p.domain}")
    return p


def declare(name: str, *, impl: str, **meta) -> Perturbation:
    """Register the family ``name`` whose function is ``impl`` (``"module:function"``, imported on first call),
    with the metadata of :func:`register`; the catalog declares every built-in family this way."""
    return _register(name, Implementation(impl), **meta)


def register(name: str, **meta) -> Callable[[PerturbFn], PerturbFn]:
    """Decorator that registers ``fn`` under ``name``, for families defined outside the catalog.

    Metadata: ``param``, ``severities``, ``identity``, ``random``, ``reference``, ``description`` (required);
    ``tags``, ``unit``, ``bounds``, ``open_bounds``, ``integer``, ``domain_note``, ``spatial``, ``needs_encoder``,
    ``options``.
    Severity-unit families get bounds [0, 5] by default; natural-unit families must give theirs.
    """

    def deco(fn: PerturbFn) -> PerturbFn:
        _register(name, fn, **meta)
        return fn

    return deco


def _register(
    name: str,
    fn: PerturbFn,
    *,
    param: str,
    severities: Sequence[float],
    identity: float | None,
    random: bool,
    reference: str,
    description: str,
    tags: Sequence[str] = (),
    unit: str = "natural",
    bounds: tuple[float, float] | None = None,
    open_bounds: tuple[bool, bool] | None = None,
    integer: bool = False,
    domain_note: str = "",
    spatial: bool = False,
    needs_encoder: bool = False,
    options: Sequence[str] = (),
) -> Perturbation:
    if name in _REGISTRY:
        raise ValueError(f"perturbation {name!r} registered twice")
    if bounds is None and unit != "severity":
        raise ValueError(f"perturbation {name!r}: a natural-unit family needs bounds (its valid values)")
    b = bounds if bounds is not None else (0.0, 5.0)
    p = _REGISTRY[name] = _checked_domain(Perturbation(
        name=name,
        fn=fn,
        param=param,
        severities=tuple(float(s) for s in severities),
        identity=identity,
        random=random,
        reference=reference,
        description=description,
        tags=tuple(tags),
        unit=unit,
        bounds=b,
        open_bounds=open_bounds,
        integer=integer,
        domain_note=domain_note,
        spatial=spatial,
        needs_encoder=needs_encoder,
        options=tuple(options),
    ))
    return p


def add(p: Perturbation) -> Perturbation:
    """Register a ready-made Perturbation (used for combined chains); re-adding an identical name is a no-op."""
    if p.name in _REGISTRY:
        return _REGISTRY[p.name]
    _REGISTRY[p.name] = _checked_domain(p)
    return p


def get_perturbation(name: str) -> Perturbation:
    """The registered perturbation ``name``; an unknown name raises one error that lists the known ones.

    A name ``"a+b"`` of registered families is built on demand as their combined chain (see :func:`combined`).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        if "+" in name:
            return combined(*name.split("+"))
        raise unknown_name("perturbation", name, list(_REGISTRY)) from None


def combined(*names: str) -> Perturbation:
    """Register (once) and return the chain ``"a+b+..."`` applying each family in order.

    The chain's ``value`` is a continuous severity s in [0, 5]: each family is applied at its own value for
    severity s (``Perturbation.value_at``; a severity-unit family gets s itself). s = 0 is the identity. One
    generator feeds the families in order, so the chain is as reproducible as its parts.
    """
    if len(names) < 2:
        raise PerturbationValueError("a combined perturbation needs at least two families, e.g. 'jpeg_compression+gaussian_blur'")
    parts = [get_perturbation(n) for n in names]
    name = "+".join(p.name for p in parts)

    def fn(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
        out = images
        for p in parts:
            out = p(out, value if p.unit == "severity" else p.value_at(value), generator)
        return out

    return add(
        Perturbation(
            name=name,
            fn=fn,
            param="severity in [0, 5] applied to every part",
            severities=(1.0, 2.0, 3.0, 4.0, 5.0),
            identity=0.0,
            random=any(p.random for p in parts),
            reference="chain of " + ", ".join(p.name for p in parts),
            description="Applies " + ", then ".join(p.name for p in parts) + " at the same severity.",
            tags=("combined",),
            unit="severity",
            bounds=(0.0, 5.0),
        )
    )


def list_perturbations() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def spatial_scale(image_size: int, reference_size: int = REFERENCE_SIZE) -> float:
    """Size-relative scale of pixel-unit parameters: ``image_size / 224`` (CIFAR's 32 px -> 1/7)."""
    if image_size <= 0:
        raise PerturbationValueError(f"image size {image_size} must be positive")
    return image_size / reference_size


def scaled(name: str, image_size: int, reference_size: int = REFERENCE_SIZE) -> Perturbation:
    """The family ``name`` with pixel-unit parameters scaled by ``image_size / reference_size``.

    ImageNet-C's parameters are defined for 224 px images; applied unchanged to a 32 px CIFAR image a 6 px blur
    destroys it. Scaling keeps the corruption's look relative to the image (blur radii, glass-blur
    displacements, motion-blur length, snow-flake and spatter sizes, frost texture scale). Families without
    pixel-unit parameters are returned unchanged.
    """
    p = get_perturbation(name)
    if not p.spatial:
        return p
    return dataclasses.replace(p, scale=spatial_scale(image_size, reference_size))


def describe_registry() -> str:
    """A plain-text table of every family: name, parameter, domain, severities 1..5, identity, random, reference."""
    rows = [("name", "unit", "parameter", "domain", "severities 1..5", "identity", "random", "reference")]
    for n in list_perturbations():
        p = _REGISTRY[n]
        sev = "/".join(f"{s:g}" for s in p.severities)
        ident = "-" if p.identity is None else f"{p.identity:g}"
        rows.append((n, p.unit, p.param, p.domain, sev, ident, "yes" if p.random else "no", p.reference))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 9)
    return "\n".join(lines)


# --- alternative severity tables ----------------------------------------------------------------------------
# TABLES[table][family]: for natural-unit families the parameter values of severities 1..5; for severity-unit
# families the five parameter tuples their ``fn`` reads through ``table_rows`` (each family module registers
# its own with ``add_table``).
TABLES: dict[str, dict[str, tuple]] = {DEFAULT_TABLE: {}}
TABLE_SOURCES = {
    DEFAULT_TABLE: "hendrycks/robustness ImageNet-C/create_c/make_imagenet_c.py (224 px)",
    "cifar10-c": "hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py (32 px)",
}


def add_table(table: str, family: str, rows: Sequence) -> None:
    """Register ``rows`` (five values or five parameter tuples) as ``family``'s severity table ``table``."""
    TABLES.setdefault(table, {})[family] = tuple(tuple(r) if isinstance(r, (tuple, list)) else float(r) for r in rows)


def table_rows(family: str, table: str, default: Sequence) -> tuple:
    """The parameter tuples of ``family`` in ``table`` (``default``, the family's own, for ImageNet-C's)."""
    if table == DEFAULT_TABLE:
        return tuple(default)
    try:
        return TABLES[table][family]
    except KeyError:
        raise PerturbationValueError(f"{family}: no {table!r} severity table; tables: {', '.join(TABLES)}") from None


def with_table(name: str, table: str) -> Perturbation:
    """The family ``name`` with severity table ``table``, e.g. ``"cifar10-c"`` (CIFAR-10-C's parameters).

    Natural-unit families get the table's values as ``severities`` (so ``levels`` and ``value_at`` use them);
    severity-unit families read the table's tuples at integer severities (and interpolate between them as for
    ImageNet-C's). The table's parameters are for its own image size (CIFAR-10-C: 32 px) as they are, so the
    result has spatial scale 1: apply it to images of that size, not through ``scaled``.
    """
    p = get_perturbation(name)
    if table == p.table:  # the registry's entries carry the default table
        return p
    if p.name not in TABLES.get(table, {}):
        have = sorted(TABLES.get(table, {}))
        raise PerturbationValueError(
            f"{p.name}: no {table!r} severity table" + (f"; it covers {', '.join(have)}" if have else
                                                          f"; tables: {', '.join(TABLES)}"))
    rows = TABLES[table][p.name]
    source = TABLE_SOURCES.get(table, table)
    if p.unit == "severity":
        return dataclasses.replace(p, table=table, scale=1.0, reference=f"{p.reference}; severity table {table} ({source}): "
                                   + " ".join(str(r) for r in rows))
    return dataclasses.replace(p, table=table, scale=1.0, severities=tuple(float(v) for v in rows),
                               reference=f"{p.reference}; severity table {table} ({source})")


# CIFAR-10-C's values for the natural-unit families (make_cifar_c.py, commit ca36008 of hendrycks/robustness)
for _family, _rows in {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}.items():
    add_table("cifar10-c", _family, _rows)
