"""Named sets of perturbation families and combined chains.

``PRESETS["paper9"]`` is our reading of the nine editing operations of seed 000 (Liu et al., arXiv
2604.14973), whose Table 8 is not public. Its text names JPEG compression, brightness and contrast, and cites
glass blur's 9.4% drop in zero-shot ImageNet accuracy, an ImageNet-C corruption; so we take all nine from
ImageNet-C and cover its four groups:
  - jpeg_compression, brightness, contrast, glass_blur: named in the paper;
  - gaussian_noise: the canonical noise corruption (ImageNet-C's first), standing for the noise group;
  - gaussian_blur: the plainest blur, the edit every photo tool offers, beside glass blur's heavy one;
  - saturate: the colour edit ImageNet-C defines (brightness and contrast cover the tone edits);
  - pixelate: resolution loss, the digital-group sibling of JPEG that editing pipelines cause by resizing;
  - elastic_transform: the one geometric ImageNet-C corruption, so that the set is not purely photometric.
"""

from __future__ import annotations

import dataclasses

import torch

from .registry import Perturbation, PerturbationValueError, add, get_perturbation

PRESETS: dict[str, list[str]] = {
    "imagenet-c": [
        "gaussian_noise", "shot_noise", "impulse_noise",
        "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
        "snow", "frost", "fog",
        "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    ],
    "imagenet-c-extra": ["speckle_noise", "gaussian_blur", "spatter", "saturate"],
    "paper9": [
        "jpeg_compression", "brightness", "contrast", "glass_blur",
        "gaussian_noise", "gaussian_blur", "saturate", "pixelate", "elastic_transform",
    ],
    "editing": ["jpeg_compression", "webp", "rescale", "crop_resize", "rotate", "sharpness", "gamma", "hue",
                "brightness", "contrast", "saturate"],
}
PRESETS["imagenet-c-all"] = PRESETS["imagenet-c"] + PRESETS["imagenet-c-extra"]


def preset(name: str) -> list[str]:
    """The family names of a preset (a copy)."""
    if name not in PRESETS:
        from ..errors import unknown_name

        raise unknown_name("perturbation preset", name, list(PRESETS))
    return list(PRESETS[name])


def combined(*names: str) -> Perturbation:
    """Register (once) and return the chain ``"a+b+..."`` applying each family in order.

    The chain's ``value`` is a continuous severity s in [0, 5]: each family is applied at its own value for
    severity s (``Perturbation.value_at``; a severity-unit family gets s itself). s = 0 is the identity. One
    generator feeds the families in order, so the chain is as reproducible as its parts.
    """
    if len(names) < 2:
        raise PerturbationValueError("a combined perturbation needs at least two families, e.g. 'jpeg_compression+gaussian_blur'")
    parts = [get_perturbation(n) for n in names]
    name = "+".join(p.name for p in parts)

    def fn(images: torch.Tensor, value: float, generator: torch.Generator) -> torch.Tensor:
        out = images
        for p in parts:
            out = p(out, value if p.unit == "severity" else p.value_at(value), generator)
        return out

    return add(
        Perturbation(
            name=name,
            fn=fn,
            param="severity in [0, 5] applied to every part",
            severities=(1.0, 2.0, 3.0, 4.0, 5.0),
            identity=0.0,
            random=any(p.random for p in parts),
            reference="chain of " + ", ".join(p.name for p in parts),
            description="Applies " + ", then ".join(p.name for p in parts) + " at the same severity.",
            tags=("combined",),
            unit="severity",
            bounds=(0.0, 5.0),
        )
    )


def with_scale(p: Perturbation, scale: float) -> Perturbation:
    """``p`` with its spatial scale replaced (no-op for families without pixel-unit parameters)."""
    return dataclasses.replace(p, scale=scale) if p.spatial else p
