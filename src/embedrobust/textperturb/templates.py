"""Template shift: the class name in templates other than those the clean class embeddings use.

``ALTERNATIVE_TEMPLATES`` is a fixed list, none of them in OpenAI's 80 ImageNet templates nor the ``simple`` set
(a test checks this), ordered from close paraphrases of "a photo of a {}." to other framings. Level n uses its
first n entries (minus any the clean set happens to contain), so a larger count extends a smaller one and the
draws are not random at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from .registry import register

ALTERNATIVE_TEMPLATES: tuple[str, ...] = (
    "a picture of a {}.",
    "an image of a {}.",
    "a photograph of a {}.",
    "a snapshot of a {}.",
    "this is a photo of a {}.",
    "there is a {} in this picture.",
    "a clear photo of a {}.",
    "a high resolution photo of a {}.",
    "a centered photo of a {}.",
    "a picture showing the {}.",
    "an example of a {}.",
    "a typical {}.",
    "a {}.",
    "{}",
    "an illustration of a {}.",
    "a scan of a {}.",
    "a screenshot of a {}.",
    "a handwritten {}.",
    "a {} on a white background.",
    "a {} seen from afar.",
    "my favourite {}.",
    "a small picture of a {}.",
    "a photo showing one {}.",
    "a {} in the wild.",
)


@register("template_shift", kind="templates", param="number of alternative templates",
          bounds=(0, len(ALTERNATIVE_TEMPLATES)), integer=True, random=False,
          description="builds the class embedding from n other templates instead of the clean ones")
def template_shift(templates: Sequence[str], count: float) -> list[str]:
    """The first ``count`` alternative templates that are not among ``templates`` (the clean set, as format
    strings with one ``{}``); ``count`` 0 gives ``templates`` unchanged.

    Raises:
        ConfigError: fewer than ``count`` alternatives remain once the clean set's templates are left out.
    """
    n = int(count)
    if n == 0:
        return list(templates)
    clean = set(templates)
    alts = [t for t in ALTERNATIVE_TEMPLATES if t not in clean]
    if len(alts) < n:
        raise ConfigError(f"template_shift: level {n} asks for {n} alternative templates but only {len(alts)} are "
                          f"not among the clean ones; give levels up to {len(alts)}")
    return alts[:n]
