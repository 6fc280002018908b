"""One colour per model and one per perturbation family, the same in every figure of the report.

Colours follow the study's own order (``all_models(config)``, ``families(config)``), never the order a figure
happens to meet the names in: a figure that shows a subset of the models keeps each model's colour. Models and
families draw from different palettes, so a family is never mistaken for a model in a figure that has both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The palettes as hex codes, not read from seaborn at import: importing seaborn (scipy, its stats) took a second
# of the report's start-up for these constants. tests/report checks them against seaborn.
# seaborn's "colorblind" (colour-blind-safe); ten models before a colour repeats
_MODEL_COLOURS = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
                  "#56b4e9"]
# ColorBrewer's "Set2", a qualitative set unlike the model palette, then "Dark2" for grids of over eight families
_FAMILY_COLOURS = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3",
                   "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
POOLED_COLOUR = "#222222"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")


@dataclass(frozen=True)
class Palette:
    models: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    _extra: dict = field(default_factory=dict, compare=False, repr=False)

    def model(self, name: str) -> str:
        return self._pick(name, self.models, _MODEL_COLOURS, "m")

    def family(self, name: str) -> str:
        return self._pick(name, self.families, _FAMILY_COLOURS, "f")

    def marker(self, family: str) -> str:
        return MARKERS[self.families.index(family) % len(MARKERS)] if family in self.families else "o"

    def model_map(self, names) -> dict[str, str]:
        return {n: self.model(n) for n in names}

    def family_map(self, names) -> dict[str, str]:
        return {n: self.family(n) for n in names}

    def _pick(self, name: str, known: tuple[str, ...], colours: list[str], kind: str) -> str:
        if name in known:
            return colours[known.index(name) % len(colours)]
        # a name the study did not declare (a figure fed by hand): after the declared ones, in first-seen order
        seen = self._extra.setdefault(kind, [])
        if name not in seen:
            seen.append(name)
        return colours[(len(known) + seen.index(name)) % len(colours)]


def study_palette(config: dict) -> Palette:
    from ..config import all_models, families

    return Palette(tuple(all_models(config)), tuple(families(config)))


def palette_for(models=(), families=()) -> Palette:
    """A palette for figures drawn without a study config (tests, other callers): names in sorted order."""
    return Palette(tuple(sorted(set(models))), tuple(sorted(set(families))))
