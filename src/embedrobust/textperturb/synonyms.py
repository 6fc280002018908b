"""Class-name substitution: another name for the same class, from a synonym list.

The list is ``datasets.<name>.synonyms`` (``{class name: [alternatives]}``) over the built-in ``BUILTIN_SYNONYMS``
(the demo's digits, written out and as numerals, and CIFAR-10's classes); a class the dataset lists replaces its
built-in entry. Nothing is downloaded: a class without alternatives keeps its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DataError
from .registry import choice, register

_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
BUILTIN_SYNONYMS: dict[str, tuple[str, ...]] = {
    # demo-digits class names are the words; "7" and "seven" name each other both ways
    **{word: (str(d), f"digit {d}", f"number {word}") for d, word in enumerate(_DIGITS)},
    **{str(d): (word, f"digit {d}") for d, word in enumerate(_DIGITS)},
    # CIFAR-10
    "airplane": ("aeroplane", "plane", "jet"),
    "automobile": ("car", "motorcar"),
    "bird": ("songbird", "small bird"),
    "cat": ("kitten", "house cat"),
    "deer": ("stag", "doe"),
    "dog": ("puppy", "hound"),
    "frog": ("toad", "tree frog"),
    "horse": ("pony", "stallion"),
    "ship": ("boat", "vessel"),
    "truck": ("lorry", "pickup truck"),
}


def synonym_table(class_names: Sequence[str], given: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """Alternatives of every class of ``class_names`` (possibly empty), ``given`` over the built-in list.

    Alternatives equal to the class name itself are dropped (they would change nothing).

    Raises:
        DataError: ``given`` names a class the dataset does not have (with the closest class names).
    """
    given = dict(given or {})
    unknown = [c for c in given if c not in set(class_names)]
    if unknown:
        import difflib

        hints = [f"{c!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
                 for c in unknown for close in [difflib.get_close_matches(c, list(class_names), n=2, cutoff=0.6)]]
        raise DataError(f"synonyms name {len(unknown)} class(es) the dataset does not have: {', '.join(hints)}; "
                        f"use the class names of its index.csv")
    out = {}
    for name in class_names:
        alts = given[name] if name in given else BUILTIN_SYNONYMS.get(name, ())
        out[name] = list(dict.fromkeys(a for a in alts if a != name))
    return out


@register("synonym", kind="class_name", param="rate per prompt (0-1)",
          description="replaces the class name by one of its synonyms (datasets.<name>.synonyms, built-in list)")
def synonym(class_name: str, rate: float, rng: np.random.Generator, alternatives: Sequence[str]) -> str:
    """With probability ``rate`` the class name becomes one of ``alternatives``, uniformly; with none, it stays."""
    if not alternatives or not rng.random() < rate:
        return class_name
    return choice(rng, list(alternatives))
