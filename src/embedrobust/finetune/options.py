"""The fine-tuning options as data: every key of the ``finetune`` section with its default, the methods, and the
checks that turn a params section into a trainer config. Config validation and the report read them without
importing torch (the trainer's modules do).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..perturb.registry import DEFAULT_TABLE
from ..perturb.spec import family_values

ROBUSTNESS_KINDS = ("meb", "max", "mean")  # the spread of an image's views (losses.robustness_loss)
UTILITIES = ("cosine", "whitened")

#: Every key of the ``finetune`` config section with its default (see the package docstring for meanings).
DEFAULTS: dict = {
    "base": None,
    "method": "paper",
    "alpha": 1.0,
    "utility": "cosine",
    "families": None,
    "table": "imagenet-c",  # severity table of the families (params perturbations.table)
    "per_family": False,
    "views": 2,
    "sample_per": "image",
    "robustness": "meb",
    "steps": 100,
    "lr": 1e-4,
    "weight_decay": 0.0,
    "grad_clip": None,
    "batch_size": 32,
    "train_blocks": None,
    "lora_rank": 0,
    "lora_alpha": None,
    "lora_targets": ["attn", "mlp"],
    "seed": 0,
    "amp": True,
    "task_weight": 0.0,
    "logit_scale": 100.0,
    "templates": "simple",
    "deacl_k": 2.0,
    "pgd_eps": 4 / 255,
    "pgd_steps": 5,
    "pgd_step": None,
    "grace_rho": 0.05,
    "grace_scaling": "weight",
    "grace_eta": 0.01,
    "subspace_k": 4,
    "checkpoint_every": 0,
}



@dataclass(frozen=True)
class Method:
    """A fine-tuning method as data: its own options (keys of :data:`DEFAULTS` that only it reads) and what it
    trains on. ``views``: perturbed views of each image from the ``families`` (the utility and robustness terms);
    without them the method has a loss of its own (DeACL). ``sam``: a sharpness-aware ascent on the weights before each step (GRACE). The trainer's loss of each method
    is registered under its name (``trainer.LOSSES``)."""

    name: str
    doc: str
    options: tuple[str, ...] = ()
    views: bool = True
    sam: bool = False

    def config(self, cfg: dict) -> dict:
        """The method's own options of a resolved trainer config."""
        return {k: cfg[k] for k in self.options}


METHOD_CONFIGS: dict[str, Method] = {m.name: m for m in (
    Method("paper", "the spread of each image's clean and perturbed embeddings (robustness: meb | max | mean)",
           ("robustness",)),
    Method("deacl", "DeACL: distillation plus the alignment of PGD views, weighted by deacl_k; no families",
           ("deacl_k",), views=False),
    Method("grace", "GRACE: alignment of the perturbed and PGD views, with an adaptive SAM step on the weights",
           ("grace_rho", "grace_scaling", "grace_eta"), sam=True),
    Method("subspace", "the distance of the views' top-k subspaces from the clean one's", ("subspace_k",)),
)}
METHODS = tuple(METHOD_CONFIGS)
#: the options every method reads (the rest of DEFAULTS belongs to one method each)
COMMON_OPTIONS = tuple(k for k in DEFAULTS if not any(k in m.options for m in METHOD_CONFIGS.values()))

_POSITIVE = ("batch_size", "views", "subspace_k")


def resolve_config(cfg: dict | None) -> dict:
    """``cfg`` with defaults filled in and checked; unknown keys raise ConfigError."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"finetune: unknown key(s) {unknown}; known keys: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **cfg}
    if out["method"] not in METHODS:
        raise ConfigError(f"finetune.method must be one of {', '.join(METHODS)}, got {out['method']!r}")
    if out["robustness"] not in ROBUSTNESS_KINDS:
        raise ConfigError(f"finetune.robustness must be one of {', '.join(ROBUSTNESS_KINDS)}, "
                          f"got {out['robustness']!r}")
    if out["utility"] not in UTILITIES:
        raise ConfigError(f"finetune.utility must be one of {', '.join(UTILITIES)}, got {out['utility']!r}")
    if out["grace_scaling"] not in ("weight", "fisher"):
        raise ConfigError(f"finetune.grace_scaling must be 'weight' or 'fisher', got {out['grace_scaling']!r}")
    for key in ("steps", "batch_size", "views", "pgd_steps", "subspace_k"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < (key in _POSITIVE):
            kind = "a positive" if key in _POSITIVE else "a non-negative"
            raise ConfigError(f"finetune.{key} must be {kind} integer, got {out[key]!r}")
    if out["lora_rank"] and out["train_blocks"] is not None:
        raise ConfigError("finetune: give lora_rank or train_blocks, not both (LoRA adapts every block)")
    return out


def resolve_families(spec, table: str = DEFAULT_TABLE) -> dict[str, tuple[float, ...] | tuple[str, float, float]]:
    """Family name -> its levels (discrete values) or ``("range", lo, hi)`` (uniform in [lo, hi]).

    ``spec`` is a list of names (each at severity 1-5 values) or a mapping name -> ``{levels: [...]}`` |
    ``{severities: [1..5]}`` | ``{range: [lo, hi]}`` | None (severities 1-5), the same form as
    ``perturbations.families`` in params, read by the same parser (``perturb.spec.family_values``); severities
    read the severity table ``table``.
    """
    if isinstance(spec, (list, tuple)):
        spec = {name: None for name in spec}
    if not isinstance(spec, dict) or not spec:
        raise ConfigError("finetune.families must be a non-empty list of perturbation names or a mapping "
                          "name -> {levels|severities|range}; e.g. families: [gaussian_noise, jpeg_compression]")
    return {name: family_values(name, fam, table, f"finetune.families.{name}", ranges=True)
            for name, fam in spec.items()}
