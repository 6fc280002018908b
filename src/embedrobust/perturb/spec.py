"""A family spec of params, parsed once: what ``perturbations.families.<name>`` and ``finetune.families.<name>``
give for a family, turned into its parameter values (or a range to draw from), with every value checked against
the family's domain. One parser for both sections, so the grid and fine-tuning read a spec the same way.

A spec is ``None`` or ``{}`` (severities 1-5 of the severity table), ``{"severities": [...]}`` (those rows),
``{"levels": [...]}`` (natural-unit values as given; a severity-unit family's levels are severities, read through the
table at call time) or, where ranges are allowed, ``{"range": [lo, hi]}`` (drawn uniformly). Other keys
(``options``) are not the parser's.
"""

from __future__ import annotations

from ..errors import ConfigError
from .registry import PerturbationValueError, get_perturbation, with_table


def shown(value: float) -> str:
    """``value`` as %g where that is exact, else every digit (100.0000001 must not read as 100)."""
    s = f"{value:g}"
    return s if float(s) == value else repr(float(value))


def check_values(where: str, p, values, *, as_level: bool = True, domain: str | None = None,
                 fix: str | None = None) -> None:
    """Every value of ``values`` is in ``p``'s domain (``Perturbation.admits``), or one ConfigError names them."""
    bad = [v for v in values if not p.admits(v, as_level=as_level)]
    if not bad:
        return
    domain = domain or f"{p.name}'s domain"
    fix = fix or ("give values in that domain, or severities: [1, 2, 3, 4, 5] for the severity table's values "
                  "(`embedrobust perturb --list` shows every family's domain)")
    raise ConfigError(f"{where}: {', '.join(shown(v) for v in bad)} {'is' if len(bad) == 1 else 'are'} not in "
                      f"{domain}, {p.domain} ({p.param}); {fix}")


def tabled(name: str, table: str, where: str):
    """The family ``name`` with severity table ``table`` (``with_table``); one ConfigError where the table lacks it."""
    try:
        return with_table(name, table)
    except PerturbationValueError as exc:
        fix = f"give {name} as natural-unit levels" if get_perturbation(name).unit == "natural" else f"drop {name}"
        raise ConfigError(f"{where}: {exc}. Either {fix}, or drop perturbations.table.") from None


def family_values(name: str, spec: dict | None, table: str, where: str,
                  ranges: bool = False) -> tuple[float, ...] | tuple[str, float, float]:
    """The parameter values of family ``name`` under ``spec`` (see the module docstring), or ``("range", lo, hi)``.

    Args:
        table: the severity table severities read (params ``perturbations.table``).
        where: the params path the errors name (``perturbations.families.gaussian_noise``).
        ranges: whether ``{"range": [lo, hi]}`` is allowed (fine-tuning draws from one; the grid has levels).
    Raises:
        ConfigError: an unknown family, a table without it, a value outside its domain, a repeated or missing
        value, an unordered range.
    """
    try:
        p = get_perturbation(name)
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    spec = spec or {}
    if "range" in spec:
        if not ranges:
            raise ConfigError(f"{where}: a range is drawn from in fine-tuning only; give levels or severities")
        lo, hi = (float(v) for v in spec["range"])
        # drawn uniformly, then rounded by the function where it takes integers: the ends need only be in range
        check_values(f"{where}.range", p, [lo, hi], as_level=False, fix="give [lo, hi] inside that domain")
        if lo > hi:
            raise ConfigError(f"{where}.range: [{shown(lo)}, {shown(hi)}] is not ordered; give [lo, hi] with lo <= hi")
        return ("range", lo, hi)
    if "levels" not in spec or p.unit == "severity":  # the table maps severities, or is read at call time
        p = tabled(name, table, where)
    if "levels" in spec:
        values = tuple(float(v) for v in spec["levels"])
        check_values(f"{where}.levels", p, values)
    else:
        values = tuple(p.levels(spec["severities"]) if "severities" in spec else p.severities)
    if not values:
        raise ConfigError(f"{where}: no levels given; list at least one")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: repeated parameter values {list(values)}; list each once.")
    return values
