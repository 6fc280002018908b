"""Named sets of perturbation families (a chain of families, ``"a+b"``, is built by ``registry.combined``).

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

from ..errors import unknown_name

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
        raise unknown_name("perturbation preset", name, list(PRESETS))
    return list(PRESETS[name])
