"""The fine-tuning methods as data: one config per method, one loss per method."""

from __future__ import annotations


def test_each_method_has_its_loss_and_owns_its_options():
    """The method registry (options.METHOD_CONFIGS) and the trainer's losses name the same methods, and every
    option is common to all methods or read by exactly one."""
    from embedrobust.finetune.options import COMMON_OPTIONS, DEFAULTS, METHOD_CONFIGS
    from embedrobust.finetune.trainer import LOSSES

    assert set(LOSSES) == set(METHOD_CONFIGS)
    owned = [k for m in METHOD_CONFIGS.values() for k in m.options]
    assert len(owned) == len(set(owned)) and set(owned) | set(COMMON_OPTIONS) == set(DEFAULTS)
    assert METHOD_CONFIGS["grace"].config(DEFAULTS) == {"grace_rho": 0.05, "grace_scaling": "weight",
                                                        "grace_eta": 0.01}
