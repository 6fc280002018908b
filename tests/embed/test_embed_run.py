"""How the embed stage binds the grid's perturbations."""

import torch

from embedrobust.config import conditions, family_options, validate
from embedrobust.embed.run import bind_perturbations
from embedrobust.perturb import get_perturbation, with_table


def test_severity_table_reaches_severity_unit_families(tiny_config):
    tiny_config["perturbations"] = {"table": "cifar10-c", "families": {"glass_blur": {"severities": [1]}}}
    cfg = validate(tiny_config)
    clean, glass = conditions(cfg)
    fn = bind_perturbations([clean, glass], None, family_options(cfg))[1]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    got = fn(x, glass.value, torch.Generator().manual_seed(1))
    assert torch.equal(got, with_table("glass_blur", "cifar10-c")(x, 1.0, torch.Generator().manual_seed(1)))
    assert not torch.equal(got, get_perturbation("glass_blur")(x, 1.0, torch.Generator().manual_seed(1)))
