"""dvc.yaml's code dependencies cover all the code each stage runs, derived from the imports (embedrobust.generate
derives them; these tests check the derivation and the file it wrote).

`dvc repro` reruns a stage when one of its deps changes, so a stage whose deps miss a module it runs keeps stale
results after that module changes. Each DVC stage runs `python -m embedrobust <stage> --all`: the CLI, the config
loading and validation, and the stage function in stages.py with the helpers it calls. Their imports, followed
transitively through the package (imports inside functions too: they run when the function does), name the
packages and modules the stage depends on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedrobust.generate import code_deps, stage_modules

REPO = Path(__file__).resolve().parents[1]


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dvc_stage_deps_are_exactly_the_code_it_imports(stage):
    declared = {d for d in STAGES[stage]["deps"] if d.startswith("src/")}
    assert declared == code_deps(stage_modules(stage))


def test_the_derivation_sees_imports_inside_functions():
    """stages.embed imports run_embed inside the function: the embed package must be found."""
    assert "embedrobust.embed" in stage_modules("embed")


def test_the_derivation_follows_the_catalogs_functions_imported_on_first_call():
    """perturb.catalog names each family's function as "module:function": embed runs them."""
    assert {"embedrobust.perturb.blur", "embedrobust.attack.family"} <= stage_modules("embed")


def test_the_derivation_follows_names_a_package_exports_lazily():
    """stages.finetune imports train_finetuned from the finetune package, which imports it from finetune.stage on
    first use: the trainer's losses run the minimum enclosing ball of metrics."""
    assert {"embedrobust.finetune.stage", "embedrobust.metrics"} <= stage_modules("finetune")


def test_the_derivation_keeps_other_stages_code_out():
    """The CLI dispatches to every stage, yet the report stage's code is not a dependency of fetch."""
    assert "embedrobust.report" not in stage_modules("fetch")
