"""Text perturbations of CLIP prompts, by name: ``get_text_perturbation(name)(text, value, rng)``.

The text side of the study (issue #17): how far a CLIP model's class text embeddings move when its prompts get
typos, other casing, other templates or other words, and what that does to zero-shot accuracy. Importing the
package registers every family (one module per kind of edit; pure Python and NumPy, no torch):

- ``characters``: char_swap, char_drop, char_insert, keyboard (rates per character);
- ``surface``: case, whitespace, punctuation (rates per letter, gap, mark);
- ``words``: word_drop, word_order (rates per word);
- ``synonyms``: synonym (rate per prompt; ``datasets.<name>.synonyms`` over a built-in list);
- ``templates``: template_shift (a count of alternative templates).

``prompts.condition_prompts`` builds a condition's prompts; ``plan.text_robustness_plan`` validates the params
section ``text_robustness``; ``run.run_text_robustness`` is the pipeline stage (embeddings, metrics, zero-shot
accuracy, the image x text cross grid, the regression).
"""

from . import characters, surface, synonyms, templates, words  # noqa: F401  (registration side effects)
from .prompts import Template, clean_templates, condition_prompts, paired
from .registry import (
    SCOPES,
    TextPerturbation,
    TextPerturbationValueError,
    describe_text_registry,
    get_text_perturbation,
    list_text_perturbations,
    text_rng,
    text_seed,
)
from .synonyms import BUILTIN_SYNONYMS, synonym_table
from .templates import ALTERNATIVE_TEMPLATES

__all__ = [
    "ALTERNATIVE_TEMPLATES",
    "BUILTIN_SYNONYMS",
    "SCOPES",
    "Template",
    "TextPerturbation",
    "TextPerturbationValueError",
    "clean_templates",
    "condition_prompts",
    "describe_text_registry",
    "get_text_perturbation",
    "list_text_perturbations",
    "paired",
    "synonym_table",
    "text_rng",
    "text_seed",
]
