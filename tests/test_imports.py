"""Each stage imports only what it runs: a Snakemake job is a fresh interpreter, so every import on a stage's path
is start-up time paid once per job (torch ~2.5 s, torchvision ~2 s more on 2 cores).

A fresh interpreter runs the stage through the CLI, as Snakemake starts it, on a stage config whose input does
not exist: it goes through its imports and its config handling and stops at the first read. Then its
``sys.modules`` is checked, which says what was imported, whatever the time it took. ``fetch`` and
``fetch_dense`` also run for real on a tiny generated dataset. The model stages (embed, text, finetune, dense,
task_attack) import torch and the model libraries, as they must, and are not checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedrobust.config import load_params, stage_config

REPO = Path(__file__).resolve().parents[1]
MODEL_LIBS = {"torchvision", "open_clip", "timm"}
GRID = {"presets": [], "families": {"gaussian_noise": {"severities": [1, 2]}, "embed_attack": {"levels": [0.01]}}}

# Runs the CLI in-process, then (for the report) what the stage would import after its first read, and prints
# which of the watched packages got imported, as the last line.
PROBE = """
import json, sys
from embedrobust import cli
try:
    rc = cli.main(sys.argv[1:])
except Exception as exc:  # a missing store or parquet file: xarray's and pandas' own errors
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    rc = 1
%s
print(json.dumps({"rc": rc, "imported": sorted({m.split(".")[0] for m in sys.modules} & set(%r))}))
"""
# The report reads its inputs first, so the CLI run stops before most of its imports: these are the imports inside
# the report's functions (found in its source, so the list follows the code) and the config plans it reads.
REPORT_REST = """
import ast, importlib, importlib.util, pathlib
import embedrobust.report
from embedrobust import config
for path in pathlib.Path(embedrobust.report.__file__).parent.glob("*.py"):
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), "embedrobust.report")
                importlib.import_module(base)
                for alias in node.names:
                    try:  # `from . import finetune_figures` names a submodule; `from ..perturb import x`, a name
                        importlib.import_module(f"{base}.{alias.name}")
                    except ModuleNotFoundError as exc:
                        if exc.name != f"{base}.{alias.name}":
                            raise
cfg = json.loads(sys.argv[sys.argv.index("--stage-config") + 1])["config"]
config.dense_plan(cfg), config.task_attack_plan(cfg), config.family_options(cfg), config.all_models(cfg)
"""
WATCHED = sorted(MODEL_LIBS | {"torch", "seaborn"})
THREADED = {"metrics", "downstream", "regression", "report"}  # Snakemake passes these --threads (workflow/rules)


def run_stage(stage: str, cfg: dict, root: Path) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    threads = ["--threads", "1"] if stage in THREADED else []
    code = PROBE % (REPORT_REST if stage == "report" else "", WATCHED)
    proc = subprocess.run([sys.executable, "-c", code, stage, *threads, "--stage-config", json.dumps(cfg),
                           "--root", str(root)], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def missing_input_configs(root: Path) -> dict[str, dict]:
    missing = str(root / "missing")
    return {
        "fetch": {"seed": 0, "dataset": "d", "datasets": {"d": {"source": "imagefolder", "path": missing}}},
        "fetch_dense": {"seed": 0, "dataset": "d", "dense_datasets": {"d": {"source": "voc", "path": missing}}},
        "metrics": {"dataset": "d", "model": "m", "perturbations": GRID},
        "downstream": {"seed": 0, "dataset": "d", "model": "m", "downstream": {"tasks": ["knn"], "knn": {"k": 1}}},
        "regression": {"seed": 0, "dataset": "d", "models": ["m"], "regression": {}},
        # the demo's whole config, as the report gets it: fine-tuning runs, dense and task-attack plans included
        "report": stage_config(load_params(REPO / "params.yaml"), "report"),
    }


# What each stage must not import. metrics computes the minimum enclosing ball with torch. The report reads the
# perturbation catalog and resolves the fine-tuning runs and attack plans, all data without torch. None of them
# builds a model.
FORBIDDEN = {
    "fetch": MODEL_LIBS | {"torch"},
    "fetch_dense": MODEL_LIBS | {"torch"},
    "metrics": MODEL_LIBS,
    "downstream": MODEL_LIBS | {"torch"},
    "regression": MODEL_LIBS | {"torch"},
    "report": MODEL_LIBS | {"torch", "seaborn"},  # seaborn: a second of imports (scipy.stats) for three palettes
}


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stage_imports_no_model_library(stage, tmp_path):
    out, err = run_stage(stage, missing_input_configs(tmp_path)[stage], tmp_path)
    assert out["rc"] != 0 and str(tmp_path) in err, f"{stage} should stop at its missing input:\n{err}"
    assert not set(out["imported"]) & FORBIDDEN[stage], f"{stage} imported {out['imported']}"


def test_fetch_writes_a_generated_dataset_without_torch(tmp_path):
    cfg = {"seed": 0, "dataset": "d",
           "datasets": {"d": {"source": "demo-digits", "n_per_class": 2, "image_size": 8, "test_fraction": 0.5}}}
    out, err = run_stage("fetch", cfg, tmp_path)
    assert out["rc"] == 0, err
    assert (tmp_path / "data" / "datasets" / "d" / "index.csv").is_file()
    assert out["imported"] == []


def test_fetch_dense_generates_with_torch_only(tmp_path):
    cfg = {"seed": 0, "dataset": "s",
           "dense_datasets": {"s": {"source": "synthetic-shapes", "n": 8, "image_size": 16, "cell": 8}}}
    out, err = run_stage("fetch_dense", cfg, tmp_path)
    assert out["rc"] == 0, err
    assert (tmp_path / "data" / "dense_datasets" / "s" / "dense.json").is_file()
    assert out["imported"] == ["torch"]  # the synthetic shapes are drawn with torch


def test_cli_and_stages_import_light():
    code = ("import sys; import embedrobust, embedrobust.cli, embedrobust.stages, embedrobust.data, "
            "embedrobust.embed, embedrobust.downstream; embedrobust.cli._parser(); "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert not set(proc.stdout.split()) & (MODEL_LIBS | {"torch"}), proc.stdout


@pytest.mark.parametrize("package", ["embedrobust.data", "embedrobust.embed", "embedrobust.downstream",
                                     "embedrobust.attack"])
def test_lazy_exports_resolve(package):
    import importlib

    mod = importlib.import_module(package)
    for name in mod.__all__:
        value = getattr(mod, name)
        assert not isinstance(value, type(mod)), f"{package}.{name} is a module, not the export"
    assert set(mod.__all__) <= set(dir(mod))
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018
