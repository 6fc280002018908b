"""Surface edits that keep the words' letters: case, whitespace and punctuation.

CLIP's BPE tokenizer (open_clip's SimpleTokenizer) lower-cases its input and collapses runs of whitespace, so for
open_clip models ``case`` is an exact no-op on the embeddings and ``whitespace`` only counts where it splits or
joins words; both are measured all the same (a DivergenceRadius of 0 there is the finding, not a bug).
"""

from __future__ import annotations

import string

import numpy as np

from .registry import TextPerturbationValueError, choice, rate_mask, register

CASE_MODES = ("random", "upper", "lower")
PUNCTUATION = set(string.punctuation)
INSERTED_PUNCTUATION = ".,;:!?-"


@register("case", kind="text", param="rate per letter (0-1)",
          description="changes the case of letters: flips it (mode random), or makes it upper / lower")
def case(text: str, rate: float, rng: np.random.Generator, *, mode: str = "random") -> str:
    """Each letter is selected with probability ``rate``; a selected letter is flipped (``mode="random"``, the
    rAnDoM-case typo), upper-cased (``"upper"``) or lower-cased (``"lower"``)."""
    if mode not in CASE_MODES:
        raise TextPerturbationValueError(f"case: mode {mode!r} is not one of {', '.join(CASE_MODES)}")
    chars = list(text)
    eligible = [i for i, ch in enumerate(chars) if ch.isalpha()]
    for i, hit in zip(eligible, rate_mask(rng, len(eligible), rate)):
        if hit:
            ch = chars[i]
            chars[i] = ch.swapcase() if mode == "random" else ch.upper() if mode == "upper" else ch.lower()
    return "".join(chars)


@register("whitespace", kind="text", param="rate per gap (0-1)",
          description="splits words with a space or joins them by deleting one")
def whitespace(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each gap between two adjacent characters is selected with probability ``rate``: a gap inside a word (two
    non-space characters) gets a space, a whitespace character is deleted. Sites are the gaps inside words and
    the whitespace characters, one draw each, left to right."""
    out = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if not rng.random() < rate:
                out.append(ch)
            continue
        out.append(ch)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt and not nxt.isspace() and rng.random() < rate:
            out.append(" ")
    return "".join(out)


@register("punctuation", kind="text", param="rate per punctuation mark or word end (0-1)",
          description="deletes punctuation marks and appends new ones to words")
def punctuation(text: str, rate: float, rng: np.random.Generator) -> str:
    """Sites are the punctuation marks (each deleted with probability ``rate``) and the last characters of words
    that are not punctuation (each followed, with probability ``rate``, by one of ``.,;:!?-``)."""
    out = []
    for i, ch in enumerate(text):
        if ch in PUNCTUATION:
            if not rng.random() < rate:
                out.append(ch)
            continue
        out.append(ch)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if not ch.isspace() and (not nxt or nxt.isspace()) and rng.random() < rate:
            out.append(choice(rng, INSERTED_PUNCTUATION))
    return "".join(out)
