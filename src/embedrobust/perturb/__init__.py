"""Perturbations by name: ``get_perturbation(name)(images, value, generator)``.

Importing the package registers every family (one module per kind of operation).
"""

from . import blur, codec, noise, photometric  # noqa: F401  (registration side effects)
from .registry import Perturbation, get_perturbation, list_perturbations, register

__all__ = ["Perturbation", "get_perturbation", "list_perturbations", "register"]
