"""Numbers as the report prints them: an estimate keeps the digits its interval supports, no more.

The rule: an interval of width w is printed to the decimal of w's second significant digit (a width of 0.44
gives 2 decimals, of 0.044 gives 3, of 8.2 points gives 1) and its estimate to the same decimal. Numbers without
an interval get a fixed number of decimals per unit (:data:`DECIMALS`). The summary's sentences and its tests
both call these functions, so what the PDF says can be checked against reports/metrics.json digit for digit.
"""

from __future__ import annotations

import math

DASH = "–"  # an undefined number (NaN, not run)
MINUS = "−"  # U+2212: a minus sign as wide as the plus, so signed columns align
DECIMALS = {"dr": 3, "r2": 2, "points": 1, "percent": 1, "rho": 2, "slope": 1, "drift": 4}
MAX_DECIMALS = 4


def finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def ci_decimals(low, high, fallback: int = MAX_DECIMALS, floor: int = 0, cap: int = MAX_DECIMALS) -> int:
    """Decimals of an interval [low, high]: down to its width's second significant digit; ``fallback`` for an
    interval of no width (a statistic every resample gives alike) or none."""
    if not (finite(low) and finite(high)):
        return fallback
    width = float(high) - float(low)
    if width <= 1e-9 * max(1.0, abs(float(high))):
        return fallback
    return max(floor, min(cap, 1 - math.floor(math.log10(width))))


def num(v, decimals: int, signed: bool = False) -> str:
    if not finite(v):
        return DASH
    v = float(v)
    text = f"{abs(v):.{decimals}f}"
    # a value that rounds to zero prints without a sign: "-0.0" says nothing the reader can use
    if float(text) == 0:
        return text
    sign = MINUS if v < 0 else ("+" if signed else "")
    return sign + text


def unit(v, kind: str, signed: bool = False) -> str:
    """``v`` with the fixed decimals of its kind (:data:`DECIMALS`)."""
    return num(v, DECIMALS[kind], signed)


def ci(estimate, low, high, kind: str | None = None, signed: bool = False, floor: int = 0) -> str:
    """'0.43 [0.21, 0.65]': the estimate and its interval at the interval's decimals (those of ``kind`` when
    the interval has no width)."""
    if not finite(estimate):
        return DASH
    d = ci_decimals(low, high, DECIMALS[kind] if kind else MAX_DECIMALS, floor)
    if not (finite(low) and finite(high)):
        return num(estimate, d, signed)
    return f"{num(estimate, d, signed)} [{num(low, d, signed)}, {num(high, d, signed)}]"


def auto_decimals(values) -> int:
    """Decimals for a column printed without intervals: three significant digits of its typical magnitude."""
    mags = sorted(abs(float(v)) for v in values if finite(v) and float(v) != 0)
    if not mags:
        return 0
    typical = mags[len(mags) // 2]
    return max(0, min(MAX_DECIMALS, 2 - math.floor(math.log10(typical))))


def eps_label(eps: float) -> str:
    return f"{eps * 255:g}/255"
