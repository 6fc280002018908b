"""The params section ``text_robustness``: validation and what the stage runs.

::

    text_robustness:
      families:                       # name -> levels (in the family's domain) and options; {} turns it off
        char_swap: {levels: [0.05, 0.2]}
        case: {levels: [0.5, 1.0], options: {mode: random}}
        template_shift: {levels: [2, 8]}
      models: [tiny-clip]             # default: every model with a text tower (open_clip), fine-tuned ones too
      datasets: [digits]              # default: every dataset
      cross:                          # image family x text family: both towers perturbed at once
        - {image: gaussian_noise, text: keyboard}
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConfigError, UnknownNameError, unknown_name

SECTION = "text_robustness"


def has_text_tower(spec: dict) -> bool:
    """Whether a model spec has a text tower (open_clip models do; timm models are image-only)."""
    return spec.get("library") == "open_clip"


def _families(spec: dict) -> dict[str, dict]:
    from . import get_text_perturbation
    from .registry import TextPerturbationValueError, checked_options

    out = {}
    for name, fam in (spec or {}).items():
        where = f"{SECTION}.families.{name}"
        try:
            p = get_text_perturbation(name)
        except UnknownNameError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        levels = [float(v) for v in fam["levels"]]
        bad = [v for v in levels if not p.admits(v)]
        if bad:
            shown = ", ".join(f"{v:g}" for v in bad)
            raise ConfigError(f"{where}.levels: {shown} {'is' if len(bad) == 1 else 'are'} not in {p.name}'s domain, "
                              f"{p.domain} ({p.param}); give values in that domain (0 is the clean prompt)")
        if len({f"{v:g}" for v in levels}) != len(levels):
            raise ConfigError(f"{where}.levels: {levels} repeats a level (as its label {name}@<level:g>); give each "
                              "level once")
        try:
            options = checked_options(p, fam.get("options"))
            if p.kind == "text":  # an option value the function refuses (case mode: lower / upper / random)
                kw = {k: v for k, v in options.items() if k != "scope"}
                p.fn("A word, and Two.", 0.5, np.random.default_rng(0), **kw)
        except (TextPerturbationValueError, TypeError) as exc:
            raise ConfigError(f"{where}.options: {exc}") from None
        out[name] = {"levels": levels, "options": options}
    return out


def _models(known: dict, names, replicated) -> list[str]:
    if names is None:
        return [m for m, spec in known.items() if has_text_tower(spec)]
    for name in names:
        if name not in known:
            raise ConfigError(f"{SECTION}.models: {unknown_name('model', name, list(known))}")
        if not has_text_tower(known[name]):
            raise ConfigError(f"{SECTION}.models: {name!r} is a {known[name]['library']} model without a text tower; "
                              "list CLIP (open_clip) models only")
    return replicated(names)  # a named model brings its seed replicates


def _cross(grid: list[str], entries, text_families: dict) -> list[dict]:
    out = []
    for i, entry in enumerate(entries or []):
        where = f"{SECTION}.cross[{i}]"
        if entry["image"] not in grid:
            hint = str(unknown_name("image family", entry["image"], grid)).split(" Known ")[0]
            raise ConfigError(f"{where}.image: {hint} It must be a family of the perturbation grid "
                              f"({', '.join(grid) or 'empty'}).")
        if entry["text"] not in text_families:
            hint = str(unknown_name("text family", entry["text"], list(text_families))).split(" Known ")[0]
            raise ConfigError(f"{where}.text: {hint} It must be a family of {SECTION}.families "
                              f"({', '.join(text_families) or 'empty'}).")
        pair = {"image": entry["image"], "text": entry["text"]}
        if pair in out:
            raise ConfigError(f"{where}: the pair {pair} is listed twice; list it once")
        out.append(pair)
    return out


def text_robustness_plan(config: dict, known_models: dict, image_grid: list[str],
                         replicated: Callable[[list[str]], list[str]]) -> dict:
    """What the text_robustness stage evaluates: ``{"families": name -> {"levels": [...], "options": {...}},
    "datasets": [...], "models": [...], "cross": [{"image": family, "text": family}, ...]}``. No families (no
    section, or ``families: {}``) means no stage runs (``models`` is empty).

    ``config``: the study config (its ``text_robustness`` section and ``datasets``); ``known_models``: every model
    by name with its spec, fine-tuned ones included; ``image_grid``: the image perturbation families;
    ``replicated(names)``: the names with their seed replicates (``config.all_models``, ``config.families`` and
    ``config.with_replicates`` give them: the config resolves, this module checks the section).

    Raises:
        ConfigError: an unknown family (with the closest names), a level outside its family's domain or repeated,
            an unknown option, an unknown model or one without a text tower, an unknown dataset, or a cross pair
            whose families are not in the image grid / the text families.
    """
    sec = config.get(SECTION) or {}
    fams = _families(sec.get("families"))
    datasets = list(sec.get("datasets") or config["datasets"])
    for name in datasets:
        if name not in config["datasets"]:
            raise ConfigError(f"{SECTION}.datasets: {unknown_name('dataset', name, list(config['datasets']))}")
    models = _models(known_models, sec.get("models"), replicated)
    cross = _cross(list(image_grid), sec.get("cross"), fams)
    if not fams:
        return {"families": {}, "datasets": datasets, "models": [], "cross": []}
    return {"families": fams, "datasets": datasets, "models": models, "cross": cross}
