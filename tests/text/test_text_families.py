"""Text perturbation families: seeded, identity at level 0, and each hits its rate."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrobust.config import CLEAN, Condition
from embedrobust.textperturb import (
    ALTERNATIVE_TEMPLATES,
    TextPerturbationValueError,
    clean_templates,
    condition_prompts,
    get_text_perturbation,
    list_text_perturbations,
)
from embedrobust.textperturb.characters import NEIGHBOURS

TEXT_FAMILIES = [n for n in list_text_perturbations() if get_text_perturbation(n).kind == "text"]
WORDS = ["photo", "of", "a", "seven", "blurry", "picture", "the", "dog", "bright", "small", "Tench", "goldfish"]


def _sentences(rng: np.random.Generator, n: int, words: int = 8) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=words)) + "." for _ in range(n)]


def _within(successes: int, trials: int, rate: float, sigmas: float = 4.5) -> bool:
    """Whether a count is within a binomial tolerance of ``rate`` x ``trials``."""
    sd = math.sqrt(trials * rate * (1 - rate))
    return abs(successes - rate * trials) <= sigmas * sd + 1


@pytest.mark.parametrize("name", TEXT_FAMILIES)
def test_a_text_family_is_deterministic_under_its_seed(name):
    p = get_text_perturbation(name)
    text = "A photo of a Great White Shark, seen from afar."
    runs = [p(text, 0.5, np.random.default_rng(7)) for _ in range(2)]
    others = {p(text, 0.5, np.random.default_rng(s)) for s in range(8)}
    assert runs[0] == runs[1] and len(others) > 1


def test_prompts_are_seeded_by_what_they_are():
    """Same seed: the same prompts; another seed: others; one more class: the others' prompts unchanged."""
    templates = clean_templates(["a photo of a {}.", "a drawing of the {}."])
    cond = Condition("keyboard", 0.3)
    a = condition_prompts(cond, ["seven", "eight"], templates, seed=0)
    assert a == condition_prompts(cond, ["seven", "eight"], templates, seed=0)
    assert a != condition_prompts(cond, ["seven", "eight"], templates, seed=1)
    assert condition_prompts(cond, ["one", "seven", "eight"], templates, seed=0)[1:] == a


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40), name=st.sampled_from(TEXT_FAMILIES))
def test_level_zero_is_the_identity(text, name):
    assert get_text_perturbation(name)(text, 0.0, np.random.default_rng(0)) == text


@pytest.mark.parametrize("family", ["synonym", "template_shift", "word_drop", "char_swap"])
def test_level_zero_prompts_are_the_clean_prompts(family):
    templates = clean_templates("simple")
    names = ["seven", "zero", "dog"]
    assert condition_prompts(Condition(family, 0.0), names, templates, 0) == condition_prompts(CLEAN, names, templates, 0)


def _count_swaps(src: str, out: str) -> tuple[int, int]:
    """(swaps, draws) of char_swap on a string of distinct non-space characters, read back from its output."""
    swaps = draws = i = 0
    while i < len(src) - 1:
        draws += 1
        if out[i] != src[i]:
            assert (out[i], out[i + 1]) == (src[i + 1], src[i])
            swaps += 1
            i += 2
        else:
            i += 1
    return swaps, draws


def _measure(name: str, rate: float, rng: np.random.Generator) -> tuple[int, int]:
    """(successes, trials) of family ``name`` at ``rate`` over many strings, read from its outputs."""
    p = get_text_perturbation(name)
    succ = trials = 0
    if name == "char_swap":
        alphabet = np.array(list(string.ascii_lowercase + string.digits))
        for k in range(400):
            src = "".join(rng.permutation(alphabet)[:20])
            s, t = _count_swaps(src, p(src, rate, np.random.default_rng(k)))
            succ, trials = succ + s, trials + t
        return succ, trials
    if name == "whitespace":  # words of one letter: only the spaces are sites; then single words: only the gaps
        for k in range(300):
            src = " ".join(rng.choice(list(string.ascii_lowercase), size=12))
            out = p(src, rate, np.random.default_rng(k))
            succ, trials = succ + src.count(" ") - out.count(" "), trials + src.count(" ")
            word = "".join(rng.choice(list(string.ascii_lowercase), size=12))
            out = p(word, rate, np.random.default_rng(10_000 + k))
            succ, trials = succ + out.count(" "), trials + len(word) - 1
        return succ, trials
    if name == "punctuation":  # words without punctuation (sites: word ends), then runs of marks (sites: marks)
        for k in range(300):
            src = " ".join(rng.choice(["photo", "of", "a", "dog"], size=8))
            out = p(src, rate, np.random.default_rng(k))
            succ, trials = succ + len(out) - len(src), trials + 8
            marks = "".join(rng.choice(list(".,;:!?'\"()"), size=10))
            out = p(marks, rate, np.random.default_rng(10_000 + k))
            succ, trials = succ + len(marks) - len(out), trials + len(marks)
        return succ, trials
    for k, src in enumerate(_sentences(rng, 400)):
        out = p(src, rate, np.random.default_rng(k))
        if name == "char_drop":
            succ, trials = succ + len(src) - len(out), trials + sum(not c.isspace() for c in src)
        elif name == "char_insert":
            succ, trials = succ + len(out) - len(src), trials + sum(not c.isspace() for c in src)
        elif name == "keyboard":
            succ += sum(a != b for a, b in zip(src, out))
            trials += sum(c.lower() in NEIGHBOURS for c in src)
        elif name == "case":
            succ, trials = succ + sum(a != b for a, b in zip(src, out)), trials + sum(c.isalpha() for c in src)
        elif name == "word_drop":
            succ, trials = succ + len(src.split()) - len(out.split()), trials + len(src.split())
    return succ, trials


@pytest.mark.parametrize("rate", [0.05, 0.3])
@pytest.mark.parametrize("name", [n for n in TEXT_FAMILIES if n != "word_order"])
def test_a_family_hits_its_rate(name, rate):
    succ, trials = _measure(name, rate, np.random.default_rng(123))
    assert trials > 1000
    assert _within(succ, trials, rate), (succ, trials, succ / trials)


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_word_order_moves_the_selected_words(rate):
    """A derangement of the selected words: k selected words all move when k >= 2, none when k = 1, so the moved
    words average n r - n r (1 - r)^(n - 1) per string of n distinct words."""
    p = get_text_perturbation("word_order")
    rng = np.random.default_rng(5)
    n, strings, moved = 10, 600, 0
    for k in range(strings):
        words = [f"w{i}" for i in rng.permutation(50)[:n]]
        out = p(" ".join(words), rate, np.random.default_rng(k)).split()
        assert sorted(out) == sorted(words)
        moved += sum(a != b for a, b in zip(words, out))
    expected = strings * (n * rate - n * rate * (1 - rate) ** (n - 1))
    assert abs(moved - expected) <= 5 * math.sqrt(strings * n * n * rate * (1 - rate)) + 1


def test_synonym_replaces_the_class_name_at_its_rate():
    names = [f"class{i}" for i in range(400)]
    table = {name: [f"other{i}"] for i, name in enumerate(names)}
    prompts = condition_prompts(Condition("synonym", 0.3), names, clean_templates("simple"), 0, table)
    replaced = sum(row[0] != f"a photo of a {name}." for name, row in zip(names, prompts))
    assert _within(replaced, len(names), 0.3)
    assert all(row[0] in (f"a photo of a {n}.", f"a photo of a {table[n][0]}.") for n, row in zip(names, prompts))


def test_template_shift_uses_n_other_templates_nested():
    clean = clean_templates("simple")
    two, five = (condition_prompts(Condition("template_shift", n), ["dog"], clean, 0)[0] for n in (2, 5))
    assert len(two) == 2 and len(five) == 5 and five[:2] == two
    assert "a photo of a dog." not in five


def test_alternative_templates_are_none_of_the_clean_sets():
    clean = {t.text for t in clean_templates("imagenet")} | {t.text for t in clean_templates("simple")}
    assert not clean & set(ALTERNATIVE_TEMPLATES)
    assert all(t.count("{}") == 1 for t in ALTERNATIVE_TEMPLATES) and len(set(ALTERNATIVE_TEMPLATES)) == len(
        ALTERNATIVE_TEMPLATES)


def test_word_drop_keeps_the_class_name_by_default():
    prompts = condition_prompts(Condition("word_drop", 1.0), ["great white shark"],
                                clean_templates("imagenet"), 0)[0]
    assert all("great white shark" in p for p in prompts)
    assert "great white shark" in prompts  # "the {}." -> every template word dropped


def test_keyboard_neighbours_are_adjacent_keys_both_ways():
    assert set(NEIGHBOURS["s"]) == set("wezxad")
    assert all(a in NEIGHBOURS[b] for a, ns in NEIGHBOURS.items() for b in ns)


@pytest.mark.parametrize("name, value", [("char_swap", 1.5), ("case", -0.1), ("template_shift", 2.5),
                                         ("template_shift", len(ALTERNATIVE_TEMPLATES) + 1)])
def test_values_outside_the_domain_are_refused(name, value):
    with pytest.raises(TextPerturbationValueError, match="outside"):
        get_text_perturbation(name).check_value(value)
