"""Prompt templates and the prompt-ensemble class embeddings used for zero-shot classification."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from embedrobust.errors import ConfigError

Template = str | Callable[[str], str]


def resolve_templates(templates: Sequence[Template] | str) -> list[Callable[[str], str]]:
    """Turn a template spec into a list of functions class name -> prompt.

    ``"imagenet"`` is OpenAI's 80-prompt ImageNet ensemble and ``"simple"`` is ``["a photo of a {}."]``; both
    come from open_clip's own metadata module so the prompts match the published zero-shot numbers. A list may
    mix format strings with one ``{}`` and callables.
    """
    if isinstance(templates, str):
        if templates == "imagenet":
            from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

            return list(OPENAI_IMAGENET_TEMPLATES)
        if templates == "simple":
            templates = ["a photo of a {}."]
        else:
            raise ConfigError(
                f"unknown prompt template set {templates!r}; use 'imagenet', 'simple' or a list of "
                "strings with one '{}' each (downstream.zero_shot.templates)."
            )
    out: list[Callable[[str], str]] = []
    for t in templates:
        if callable(t):
            out.append(t)
        elif isinstance(t, str) and t.count("{}") == 1:
            out.append(t.format)
        else:
            raise ConfigError(
                f"prompt template {t!r} must be a string with exactly one '{{}}' for the class name "
                "(downstream.zero_shot.templates)."
            )
    if not out:
        raise ConfigError("downstream.zero_shot.templates is empty; give at least one template.")
    return out


def class_text_embeddings(
    encode_text: Callable[[list[str]], torch.Tensor],
    class_names: list[str],
    templates: Sequence[Template] | str,
) -> torch.Tensor:
    """Prompt-ensemble text embedding of every class.

    Every template is filled with each class name and embedded with ``encode_text`` (list of n prompts ->
    (n, D) tensor); the prompt embeddings are L2-normalised, averaged per class and re-normalised, as in
    CLIP's zero-shot evaluation. One ``encode_text`` call per class keeps memory bounded by the number of
    templates. Returns a float32 CPU tensor of shape (C, D) with unit rows.
    """
    fns = resolve_templates(templates)
    rows = []
    with torch.no_grad():
        for name in class_names:
            emb = encode_text([f(name) for f in fns]).detach().float().cpu()
            emb = torch.nn.functional.normalize(emb, dim=-1)
            rows.append(torch.nn.functional.normalize(emb.mean(dim=0), dim=-1))
    if not rows:
        raise ConfigError("class_text_embeddings got no class names; the dataset must define its classes.")
    return torch.stack(rows)
