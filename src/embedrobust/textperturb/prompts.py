"""The prompts of one text condition: every class's prompts under a family at a level.

A text condition is a ``config.Condition`` (family, value) as on the image side; ``clean`` is the template set of
``downstream.zero_shot.templates`` filled with each class name, exactly the prompts of the ``text`` stage. Every
other condition gives, per class, one prompt per template slot: slot t is clean template t perturbed (text and
class-name families, so slot t of every condition pairs with clean slot t), or the t-th template of the shifted
set (template_shift, which pairs with nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..core import Condition
from ..errors import DataError
from .registry import get_text_perturbation, text_rng

PLACEHOLDER = "{}"


@dataclass(frozen=True)
class Template:
    """A clean template: its text with one ``{}`` (the seed key and the template scope's split) and the callable
    that fills it (the one the ``text`` stage calls, so clean prompts are the same strings)."""

    text: str
    fill: Callable[[str], str]

    def split(self) -> tuple[str, str]:
        """The template's text before and after the class name."""
        pre, post = self.text.split(PLACEHOLDER, 1)
        return pre, post


def clean_templates(spec) -> list[Template]:
    """The clean templates of a ``downstream.zero_shot.templates`` spec ("simple", "imagenet" or a list)."""
    from ..downstream import resolve_templates

    out = []
    for fn in resolve_templates(spec):
        text = fn(PLACEHOLDER)
        probe = "\x00class\x00"
        if text.count(PLACEHOLDER) != 1 or fn(probe) != text.replace(PLACEHOLDER, probe):
            raise DataError(f"prompt template {text!r} does not place the class name once, as '{{}}' would; text "
                            "perturbations need templates that do (downstream.zero_shot.templates)")
        out.append(Template(text, fn))
    return out


def paired(family: str) -> bool:
    """Whether slot t of ``family``'s prompts is clean slot t perturbed (False for template_shift and clean)."""
    return family != "clean" and get_text_perturbation(family).kind != "templates"


def condition_prompts(cond: Condition, class_names: Sequence[str], templates: Sequence[Template], seed: int,
                      synonyms: Mapping[str, Sequence[str]] | None = None,
                      options: Mapping | None = None) -> list[list[str]]:
    """Prompts of every class under ``cond``: a list (class) of lists (template slot) of strings.

    ``synonyms``: class name -> alternatives (``synonyms.synonym_table``), for the synonym family; ``options``:
    the family's options (``scope`` for text-kind families, the function's keywords). Each prompt's draws come
    from ``text_rng(seed, family, value, class name, clean template text)``.
    """
    if cond.is_clean:
        return [[t.fill(name) for t in templates] for name in class_names]
    p = get_text_perturbation(cond.family)
    value = p.check_value(cond.value)
    opts = dict(options or {})
    if p.kind == "templates":
        shifted = p.fn([t.text for t in templates], value)
        return [[s.replace(PLACEHOLDER, name) for s in shifted] for name in class_names]
    out = []
    for name in class_names:
        row = []
        for t in templates:
            rng = text_rng(seed, p.name, value, name, t.text)
            if p.kind == "class_name":
                row.append(t.fill(p.fn(name, value, rng, (synonyms or {}).get(name, ()))))
                continue
            scope = opts.get("scope", p.scope)
            kw = {k: v for k, v in opts.items() if k != "scope"}
            if scope == "prompt":
                row.append(p(t.fill(name), value, rng, **kw))
            elif scope == "class_name":
                row.append(t.fill(p(name, value, rng, **kw)))
            else:
                pre, post = t.split()
                row.append(p(pre, value, rng, **kw) + name + p(post, value, rng, **kw))
        out.append(row)
    return out
