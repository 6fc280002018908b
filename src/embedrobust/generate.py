"""Files derived from the stage manifest (:mod:`embedrobust.manifest`): ``dvc.yaml`` and the stage table of
``docs/ARCHITECTURE.md``.

    python -m embedrobust.generate           # rewrite both
    python -m embedrobust.generate --check   # exit 1 naming each file that is not current (tests run this)

dvc.yaml's stages take their command, params, outs and data deps from the manifest, and their code deps from the
imports of what ``python -m embedrobust <stage> --all`` runs: the CLI, config loading and validation, and the stage
function with the helpers it calls. Their imports, followed transitively through the package (imports inside
functions too: they run when the function does), name the packages and modules the stage depends on; `dvc repro`
reruns a stage when one of them changes.
"""

from __future__ import annotations

import argparse
import ast
import sys
import textwrap
from pathlib import Path

from . import manifest

SRC = Path(__file__).resolve().parents[1]
PKG = SRC / "embedrobust"
REPO = SRC.parent
DATA_FILES = {"embedrobust.config": "schemas"}  # non-Python files a module reads (the params schema)
# The pipeline layer, followed function by function: its modules hold every stage's code side by side.
PIPELINE = {"embedrobust.cli", "embedrobust.config", "embedrobust.stages"}


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


def dvc_stage(st: manifest.Stage) -> list[str]:
    """dvc.yaml's lines for one stage."""
    lines = [f"  {st.name}:", "    cmd: " + " ".join(["python -m embedrobust", st.name, *st.dvc_args])]
    data = []
    for inp in st.inputs:
        for d in manifest.stage(inp.stage).out_dirs:
            if d not in data:
                data.append(d)
    lines += ["    deps:", *(f"      - {d}" for d in [*data, *sorted(code_deps(stage_modules(st.name)))])]
    lines += ["    params:", *(f"      - {p}" for p in st.params)]
    for key, arts in (("outs", [a for a in st.outputs if not a.dvc_metric]),
                      ("metrics", [a for a in st.outputs if a.dvc_metric])):
        if not arts:
            continue
        lines.append(f"    {key}:")
        seen = []
        for a in arts:
            d = a.dvc_path
            if d in seen:
                continue
            seen.append(d)
            lines += textwrap.wrap(a.dvc_note, 114, initial_indent="      # ", subsequent_indent="      # ")
            lines += [f"      - {d}:", "          persist: true"] if st.persist else [f"      - {d}"]
    return lines


DVC_HEADER = """\
# DVC mirror of the Snakemake workflow: the same stages, the same `embedrobust` entry point, the same params
# sections. Generated from the stage manifest (src/embedrobust/manifest.py) by `python -m embedrobust.generate`;
# edit the manifest, not this file (tests/test_manifest.py checks it is current). `dvc repro` reruns only the stages
# whose params, code or inputs changed; `dvc push` / `dvc pull` move data/ through the default remote (.dvc/config).
# Each stage's src/ deps are exactly the code `python -m embedrobust <stage> --all` runs, derived from its imports
# (embedrobust.generate). They are long because validating the config reads the registries of perturbations,
# models, fine-tuning methods and attacks.
"""


def dvc_yaml() -> str:
    return DVC_HEADER + "stages:\n" + "".join(line + "\n" for st in manifest.STAGES for line in dvc_stage(st))


TABLE_BEGIN = "<!-- stage table: written by `python -m embedrobust.generate` from embedrobust.manifest -->"
TABLE_END = "<!-- end of stage table -->"


def architecture(text: str) -> str:
    """``text`` (docs/ARCHITECTURE.md) with the manifest's table between its markers."""
    head, sep, rest = text.partition(TABLE_BEGIN)
    _, sep2, tail = rest.partition(TABLE_END)
    if not (sep and sep2):
        raise ValueError(f"docs/ARCHITECTURE.md lacks the markers {TABLE_BEGIN!r} ... {TABLE_END!r}")
    return head + TABLE_BEGIN + "\n" + manifest.table() + TABLE_END + tail


def targets(repo: Path = REPO) -> dict[Path, str]:
    """Each generated file -> the text it should hold."""
    doc = repo / "docs" / "ARCHITECTURE.md"
    return {repo / "dvc.yaml": dvc_yaml(), doc: architecture(doc.read_text())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m embedrobust.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is not current")
    args = ap.parse_args(argv)
    stale = []
    for path, text in targets().items():
        if path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    for path in stale:
        verb = "is not current" if args.check else "rewritten"
        print(f"{path.relative_to(REPO)}: {verb}", file=sys.stderr)
    if args.check and stale:
        print("run `python -m embedrobust.generate` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
