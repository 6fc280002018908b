"""The shared core: a perturbation condition's one JSON shape, and the one seed derivation."""

from __future__ import annotations

import json
import math

from embedrobust.core import CLEAN, Condition, derived_seed, seed_from_key


def test_a_condition_round_trips_through_json_as_a_pair():
    for cond in (CLEAN, Condition("gaussian_noise", 0.08), Condition("jpeg_compression", 10.0)):
        pair = json.loads(json.dumps(cond.as_pair()))  # strict JSON: the clean NaN is written as null
        back = Condition.of(pair)
        assert back.label == cond.label and (math.isnan(back.value) if cond.is_clean else back == cond)
    assert CLEAN.as_pair() == ["clean", None]


def test_seeds_are_63_bit_and_depend_on_every_part():
    a, b = derived_seed(0, "pgd", 0.01, 0), derived_seed(0, "pgd", 0.01, 8)
    assert a != b and 0 <= a < 2**63 and derived_seed(0, "pgd", 0.01, 0) == a
    assert derived_seed(1, "x") == seed_from_key("1|'x'")
