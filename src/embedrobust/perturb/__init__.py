"""Perturbations by name: ``get_perturbation(name)(images, value, generator)``.

Importing the package registers every family from the catalog (``catalog``: metadata and severity tables as
data, no torch): the 19 ImageNet-C corruptions and the editing operations webp, rescale, crop_resize, rotate,
sharpness, gamma and hue, one module of functions per kind of operation (``blur``, ``codec``, ``geometric``,
``noise``, ``photometric``, ``weather``), each imported on its families' first call.
``presets.PRESETS`` names sets of families; ``combined("a", "b")`` (or the name ``"a+b"``) chains them;
``scaled(name, image_size)`` adapts pixel-unit parameters to small images such as CIFAR;
``with_table(name, "cifar10-c")`` swaps in CIFAR-10-C's own severity table (``TABLES``). ``embed_attack``
(embedrobust.attack) is a family too: its levels are L-inf budgets and it needs the encoder it attacks.
"""

from . import catalog  # noqa: F401  (declares every family)
from .presets import PRESETS, preset
from .registry import (
    TABLES,
    Perturbation,
    PerturbationValueError,
    combined,
    describe_registry,
    get_perturbation,
    interp_params,
    list_perturbations,
    register,
    scaled,
    spatial_scale,
    with_table,
)

__all__ = [
    "PRESETS",
    "TABLES",
    "Perturbation",
    "PerturbationValueError",
    "combined",
    "describe_registry",
    "get_perturbation",
    "interp_params",
    "list_perturbations",
    "preset",
    "register",
    "scaled",
    "spatial_scale",
    "with_table",
]
