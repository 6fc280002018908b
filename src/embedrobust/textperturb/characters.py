"""Character typos: adjacent swaps, drops, insertions and QWERTY-neighbour substitutions.

Each acts on the non-whitespace characters of its input (whitespace has its own family, ``whitespace``), one
independent draw per eligible site with probability ``rate``.
"""

from __future__ import annotations

import string

import numpy as np

from .registry import choice, rate_mask, register

_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    """QWERTY neighbours of each letter and digit: same row left / right, the row above at the same and next
    column, the row below at the previous and same column (each row sits about half a key right of the one above)."""
    pos = {k: (r, c) for r, row in enumerate(_ROWS) for c, k in enumerate(row)}
    out = {}
    for k, (r, c) in pos.items():
        cand = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
        out[k] = "".join(_ROWS[rr][cc] for rr, cc in cand if 0 <= rr < len(_ROWS) and 0 <= cc < len(_ROWS[rr]))
    return out


# Substitution targets are letters and digits only: a fat finger also hits ';' or '[', but those would add
# punctuation, which the punctuation family measures on its own.
NEIGHBOURS = _neighbours()


def keyboard_neighbours(ch: str) -> str:
    """The QWERTY neighbours of ``ch`` in its case ('' for characters off the letter and digit rows)."""
    n = NEIGHBOURS.get(ch.lower(), "")
    return n.upper() if ch.isupper() else n


@register("char_swap", kind="text", param="rate per character (0-1)",
          description="swaps a character with the next one (both non-space and different), left to right")
def char_swap(text: str, rate: float, rng: np.random.Generator) -> str:
    """Left to right, each position i whose pair (i, i+1) is two different non-space characters is swapped with
    probability ``rate``; a swapped pair is not swapped again (the scan resumes after it)."""
    chars = list(text)
    i = 0
    while i < len(chars) - 1:
        a, b = chars[i], chars[i + 1]
        if a != b and not a.isspace() and not b.isspace() and rng.random() < rate:
            chars[i], chars[i + 1] = b, a
            i += 2
        else:
            i += 1
    return "".join(chars)


@register("char_drop", kind="text", param="rate per character (0-1)",
          description="deletes non-space characters")
def char_drop(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each non-space character is deleted with probability ``rate``."""
    eligible = [i for i, ch in enumerate(text) if not ch.isspace()]
    drop = {i for i, hit in zip(eligible, rate_mask(rng, len(eligible), rate)) if hit}
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


@register("char_insert", kind="text", param="rate per character (0-1)",
          description="inserts a key next to a non-space character (a QWERTY neighbour, else a random letter)")
def char_insert(text: str, rate: float, rng: np.random.Generator) -> str:
    """After each non-space character, with probability ``rate``, one character is inserted: a QWERTY neighbour
    of it (the double hit of a fat finger) or, for characters off the letter rows, a random lowercase letter."""
    out = []
    for ch in text:
        out.append(ch)
        if not ch.isspace() and rng.random() < rate:
            out.append(choice(rng, keyboard_neighbours(ch) or string.ascii_lowercase))
    return "".join(out)


@register("keyboard", kind="text", param="rate per letter or digit (0-1)",
          description="replaces a letter or digit by a QWERTY neighbour (case kept)")
def keyboard(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each letter or digit on the QWERTY rows is replaced with probability ``rate`` by one of its neighbours,
    uniformly; the replacement always differs from the original."""
    chars = list(text)
    eligible = [i for i, ch in enumerate(chars) if keyboard_neighbours(ch)]
    for i, hit in zip(eligible, rate_mask(rng, len(eligible), rate)):
        if hit:
            chars[i] = choice(rng, keyboard_neighbours(chars[i]))
    return "".join(chars)
