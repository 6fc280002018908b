"""One parser of a family spec, for the grid and for fine-tuning: the same values, the same checks."""

from __future__ import annotations

import pytest

from embedrobust.errors import ConfigError
from embedrobust.perturb import get_perturbation
from embedrobust.perturb.spec import family_values


def test_severities_and_none_read_the_severity_table():
    p = get_perturbation("gaussian_noise")
    assert family_values("gaussian_noise", None, "imagenet-c", "x") == tuple(p.severities)
    assert family_values("gaussian_noise", {"severities": [1, 3]}, "imagenet-c", "x") == tuple(p.levels([1, 3]))
    assert family_values("gaussian_noise", {}, "cifar10-c", "x") == (0.04, 0.06, 0.08, 0.09, 0.10)


def test_levels_are_taken_as_given_and_checked_against_the_domain():
    assert family_values("jpeg_compression", {"levels": [90, 10]}, "imagenet-c", "w") == (90.0, 10.0)
    with pytest.raises(ConfigError, match=r"w\.levels: 150 is not in jpeg_compression's domain"):
        family_values("jpeg_compression", {"levels": [150]}, "imagenet-c", "w")
    with pytest.raises(ConfigError, match="repeated parameter values"):
        family_values("jpeg_compression", {"levels": [10, 10]}, "imagenet-c", "w")


def test_a_range_is_for_fine_tuning_only_and_must_be_ordered():
    assert family_values("pixelate", {"range": [0.2, 0.5]}, "imagenet-c", "w", ranges=True) == ("range", 0.2, 0.5)
    with pytest.raises(ConfigError, match="a range is drawn from in fine-tuning only"):
        family_values("pixelate", {"range": [0.2, 0.5]}, "imagenet-c", "w")
    with pytest.raises(ConfigError, match=r"w\.range: \[0\.5, 0\.2\] is not ordered"):
        family_values("pixelate", {"range": [0.5, 0.2]}, "imagenet-c", "w", ranges=True)


def test_the_grid_and_fine_tuning_parse_a_spec_alike():
    from embedrobust.finetune.options import resolve_families

    spec = {"gaussian_noise": {"severities": [2]}, "jpeg_compression": {"levels": [50]}}
    grid = {n: family_values(n, s, "imagenet-c", n) for n, s in spec.items()}
    assert resolve_families(spec, "imagenet-c") == grid


def test_an_unknown_family_names_the_params_path():
    with pytest.raises(ConfigError, match=r"perturbations\.families\.gausian_noise: .*gaussian_noise"):
        family_values("gausian_noise", None, "imagenet-c", "perturbations.families.gausian_noise")
