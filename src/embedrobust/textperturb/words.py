"""Word edits: dropping words and shuffling their order. A word is a maximal run of non-whitespace characters."""

from __future__ import annotations

import re

import numpy as np

from .registry import rate_mask, register

_TOKEN = re.compile(r"\S+|\s+")


def _tokens(text: str) -> tuple[list[str], list[int]]:
    """The text as alternating word / whitespace tokens, and the positions of the words among them."""
    tokens = _TOKEN.findall(text)
    return tokens, [i for i, t in enumerate(tokens) if not t[0].isspace()]


@register("word_drop", kind="text", param="rate per word (0-1)", scope="template",
          description="deletes words (by default the template's, never the class name)")
def word_drop(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each word is deleted with probability ``rate``, with the whitespace after it (before it, for the last
    word), so the remaining words stay single-spaced as they were.

    Its default scope is ``template``: a prompt without its class name names no class, which would measure the
    prompt's emptiness rather than its robustness.
    """
    tokens, words = _tokens(text)
    drop = {w for w, hit in zip(words, rate_mask(rng, len(words), rate)) if hit}
    if not drop:
        return text
    out = []
    skip_space = False
    for i, tok in enumerate(tokens):
        if i in drop:
            if out and out[-1][0].isspace() and (i + 1 >= len(tokens)):
                out.pop()  # the last word: drop the space before it instead
            skip_space = True
            continue
        if skip_space and tok[0].isspace():
            skip_space = False
            continue
        skip_space = False
        out.append(tok)
    return "".join(out)


@register("word_order", kind="text", param="rate per word (0-1)",
          description="moves words: the selected words trade places (each moves when two or more are selected)")
def word_order(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each word is selected with probability ``rate``; the selected words are permuted among their positions by
    a uniformly random derangement, so every selected word moves when at least two are selected (a single
    selected word stays). Whitespace stays where it was."""
    tokens, words = _tokens(text)
    picked = [w for w, hit in zip(words, rate_mask(rng, len(words), rate)) if hit]
    if len(picked) < 2:
        return text
    n = len(picked)
    while True:  # rejection sampling: a random permutation is a derangement with probability ~1/e
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            break
    moved = list(tokens)
    for dst, src in zip(picked, perm):
        moved[dst] = tokens[picked[src]]
    return "".join(moved)
