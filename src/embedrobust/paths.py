"""Where each artifact of the pipeline lives, relative to a project root: the stage manifest's path templates
(:mod:`embedrobust.manifest`), formatted for one job. The stages read and write through these functions."""

from __future__ import annotations

from pathlib import Path

from .manifest import declared_dirs, path, stage


def _dir(stage_name: str, artifact: str, **wildcards: str) -> Path:
    return Path(stage(stage_name).output(artifact).path.format(**wildcards)).parent


def dataset_dir(root: Path, dataset: str) -> Path:
    return root / _dir("fetch", "index", dataset=dataset)


def store_path(root: Path, dataset: str, model: str) -> Path:
    return path("embed", "store", root, dataset=dataset, model=model)


def models_dir(root: Path) -> Path:
    return root / DECLARED_DIRS_REL["finetune"]


def checkpoint_relpath(model: str) -> str:
    """Weights of a fine-tuned model, relative to the project root (model specs carry this form)."""
    return str(path("finetune", "weights", "", model=model))


def checkpoint_path(root: Path, model: str) -> Path:
    return root / checkpoint_relpath(model)


def text_dir(root: Path) -> Path:
    return root / DECLARED_DIRS_REL["text"]


def text_path(root: Path, dataset: str, model: str) -> Path:
    return path("text", "classes", root, dataset=dataset, model=model)


def metrics_path(root: Path, dataset: str, model: str) -> Path:
    return path("metrics", "table", root, dataset=dataset, model=model)


def downstream_path(root: Path, dataset: str, model: str) -> Path:
    return path("downstream", "table", root, dataset=dataset, model=model)


def dense_datasets_dir(root: Path) -> Path:
    return root / DECLARED_DIRS_REL["fetch_dense"]


def dense_dataset_dir(root: Path, dataset: str) -> Path:
    return root / _dir("fetch_dense", "index", dataset=dataset)


def dense_dir(root: Path) -> Path:
    return root / DECLARED_DIRS_REL["dense"]


def dense_path(root: Path, dataset: str, model: str) -> Path:
    return path("dense", "table", root, dataset=dataset, model=model)


def task_attack_dir(root: Path) -> Path:
    return root / DECLARED_DIRS_REL["task_attack"]


def task_attack_path(root: Path, dataset: str, model: str) -> Path:
    return path("task_attack", "table", root, dataset=dataset, model=model)


def text_robustness_dir(root: Path) -> Path:
    return root / DECLARED_DIRS_REL["text_robustness"]


def text_robustness_store_path(root: Path, dataset: str, model: str) -> Path:
    return path("text_robustness", "store", root, dataset=dataset, model=model)


def text_robustness_path(root: Path, dataset: str, model: str) -> Path:
    return path("text_robustness", "table", root, dataset=dataset, model=model)


def text_robustness_regression_dir(root: Path, dataset: str, model: str) -> Path:
    return path("text_robustness", "regression", root, dataset=dataset, model=model)


def regression_dir(root: Path, dataset: str) -> Path:
    return root / _dir("regression", "summary", dataset=dataset)


# The output directory dvc.yaml declares for stages that may have nothing to write (no CLIP model, nothing
# fine-tuned, a section turned off): it must exist all the same. Stage -> a function of the root.
DECLARED_DIRS_REL = declared_dirs()
DECLARED_DIRS = {name: (lambda root, rel=rel: Path(root) / rel) for name, rel in DECLARED_DIRS_REL.items()}
