"""dvc.yaml's code dependencies cover all the code each stage runs, derived from the imports.

`dvc repro` reruns a stage when one of its deps changes, so a stage whose deps miss a module it runs keeps stale
results after that module changes. Each DVC stage runs `python -m embedrobust <stage> --all`: the CLI, the config
loading and validation, and the stage function in stages.py with the helpers it calls. Their imports, followed
transitively through the package (imports inside functions too: they run when the function does), name the
packages and modules the stage depends on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PKG = SRC / "embedrobust"
# What every `python -m embedrobust <stage> --all` runs before the stage itself.
DATA_FILES = {"embedrobust.config": "schemas"}  # non-Python files a module reads (the params schema)


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = SRC.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _absolute(module: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names an ImportFrom brings in (a submodule or the module that holds the name)."""
    if node.level:
        pkg = module.split(".")
        if _module_file(module) and _module_file(module).name != "__init__.py":
            pkg = pkg[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    names = [base]
    names += [f"{base}.{a.name}" for a in node.names if _module_file(f"{base}.{a.name}")]
    lazy = _lazy_exports(base)
    names += [f"{base}.{lazy[a.name]}" for a in node.names if a.name in lazy]
    return names


def _lazy_exports(package: str) -> dict[str, str]:
    """A package's names exported lazily (``_lazy.lazy_exports``) -> the submodule each one imports."""
    if not (_module_file(package) and _module_file(package).name == "__init__.py"):
        return {}
    import importlib

    return getattr(importlib.import_module(package), "__lazy_exports__", {})


def _imports(module: str, nodes) -> set[str]:
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out |= set(_absolute(module, node))
        elif isinstance(node, ast.keyword) and node.arg == "impl" and isinstance(node.value, ast.Constant):
            out.add(node.value.value.partition(":")[0])  # the catalog's "module:function", imported on first call
    return {m for m in out if m.split(".")[0] == "embedrobust" and _module_file(m)}


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    return [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def _parents(name: str) -> list[str]:
    """A module's packages: importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _tree(name: str) -> ast.Module:
    return ast.parse(_module_file(name).read_text())


def closure(start: set[str]) -> set[str]:
    """Modules run by importing ``start``: library modules with every import they hold (imports inside functions
    run when the function does), the pipeline layer's modules with their top-level imports only (which of their
    functions run is followed by ``_calls``)."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen or not _module_file(name):
            continue
        seen.add(name)
        tree = _tree(name)
        nodes = _top_level(tree) if name in PIPELINE else ast.walk(tree)
        todo += [*_imports(name, nodes), *_parents(name)]
    return seen


# The pipeline layer, followed function by function: its modules hold every stage's code side by side.
PIPELINE = {"embedrobust.cli", "embedrobust.config", "embedrobust.stages"}


def _calls(start: list[tuple[str, str]]) -> set[str]:
    """Modules reached from the pipeline functions ``start`` ((module, function) pairs): the imports inside each
    function, and the pipeline functions it calls, in its own module or imported from another."""
    modules, seen, todo = set(), set(), list(start)
    while todo:
        mod, fn = todo.pop()
        if (mod, fn) in seen:
            continue
        seen.add((mod, fn))
        tree = _tree(mod)
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        imported = {a.asname or a.name: m for m in PIPELINE for node in _top_level(tree)
                    if isinstance(node, ast.ImportFrom) and m in _absolute(mod, node) for a in node.names}
        node = funcs[fn]
        modules.add(mod)
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                for m in _imports(mod, [sub]):
                    if m in PIPELINE:
                        modules.add(m)
                        todo += [(m, a.name) for a in getattr(sub, "names", []) if a.name in _functions(m)]
                    else:
                        modules.add(m)
            elif isinstance(sub, ast.Name):
                if sub.id in funcs:
                    todo.append((mod, sub.id))
                elif sub.id in imported and sub.id in _functions(imported[sub.id]):
                    todo.append((imported[sub.id], sub.id))
    return modules


def _functions(mod: str) -> set[str]:
    return {n.name for n in _tree(mod).body if isinstance(n, ast.FunctionDef)}


def stage_modules(stage: str) -> set[str]:
    """What `python -m embedrobust <stage> --all` runs: the CLI's stage path, config loading and validation, the
    stage function and its helpers."""
    # cli.main branches on the command; a stage's branch is _run_stage (the others list registries or share)
    start = [("embedrobust.cli", f) for f in ("_parser", "_run_stage", "_targets", "_selected")]
    start += [("embedrobust.config", "load_params"), ("embedrobust.stages", stage)]
    return closure(_calls(start) | {"embedrobust.__main__"})


def code_deps(modules: set[str]) -> set[str]:
    """dvc.yaml entries for modules: a subpackage's folder, or a top-level module's file."""
    out = set()
    for m in modules:
        parts = m.split(".")
        if len(parts) == 1:
            out.add("src/embedrobust/__init__.py")
        elif (PKG / parts[1]).is_dir():
            out.add(f"src/embedrobust/{parts[1]}")
        else:
            out.add(f"src/embedrobust/{parts[1]}.py")
        if m in DATA_FILES:
            out.add(f"src/embedrobust/{DATA_FILES[m]}")
    return out


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
