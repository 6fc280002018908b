"""The params schema's enums are the registries' names: a method, task, source or table added in code is
accepted by validation, and the schema names nothing the code lacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "src/embedrobust/schemas/params.schema.yaml")
                        .read_text())["properties"]
FINETUNE = SCHEMA["finetune"]["properties"]


def _registry(name: str) -> list[str]:
    if name == "libraries":
        from embedrobust.models.spec import LIBRARIES as names
    elif name == "precisions":
        from embedrobust.models.spec import PRECISIONS as names
    elif name == "tables":
        from embedrobust.perturb import TABLES as names
    elif name == "tasks":
        from embedrobust.downstream.evaluate import TASKS as names
    elif name == "metrics":  # what the metrics stage computes per image and family
        import torch

        from embedrobust.metrics import robustness_metrics

        names = robustness_metrics(torch.rand(1, 3, 4, dtype=torch.float64))
    elif name in ("methods", "utilities", "robustness"):
        from embedrobust.finetune import options

        names = {"methods": options.METHODS, "utilities": options.UTILITIES,
                 "robustness": options.ROBUSTNESS_KINDS}[name]
    elif name == "dense sources":
        from embedrobust.data.dense import DENSE_SOURCES as names
    return sorted(names)


@pytest.mark.parametrize("registry, enum", [
    ("libraries", SCHEMA["models"]["additionalProperties"]["properties"]["library"]),
    ("precisions", SCHEMA["models"]["additionalProperties"]["properties"]["precision"]),
    ("tables", SCHEMA["perturbations"]["properties"]["table"]),
    ("tasks", SCHEMA["downstream"]["properties"]["tasks"]["items"]),
    ("metrics", SCHEMA["regression"]["properties"]["metrics"]["items"]),
    ("methods", FINETUNE["methods"]["oneOf"][0]["items"]),
    ("methods", FINETUNE["methods"]["oneOf"][1]["propertyNames"]),
    ("utilities", FINETUNE["utility"]),
    ("robustness", FINETUNE["robustness"]),
    ("dense sources", SCHEMA["dense"]["properties"]["datasets"]["additionalProperties"]["properties"]["source"]),
])
def test_schema_enum_is_the_registry(registry, enum):
    assert sorted(enum["enum"]) == _registry(registry)
