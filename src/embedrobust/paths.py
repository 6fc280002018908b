"""Where each artifact of the pipeline lives, relative to a project root: the one module that knows the paths
(the stages read and write through it; the Snakefile names the fine-tuned checkpoints with it)."""

from __future__ import annotations

from pathlib import Path


def dataset_dir(root: Path, dataset: str) -> Path:
    return root / "data" / "datasets" / dataset


def store_path(root: Path, dataset: str, model: str) -> Path:
    return root / "data" / "embeddings" / dataset / f"{model}.zarr"


def models_dir(root: Path) -> Path:
    return root / "data" / "models"


def checkpoint_relpath(model: str) -> str:
    """Weights of a fine-tuned model, relative to the project root (model specs carry this form)."""
    return f"data/models/{model}/model.pt"


def checkpoint_path(root: Path, model: str) -> Path:
    return root / checkpoint_relpath(model)


def text_dir(root: Path) -> Path:
    return root / "data" / "text"


def text_path(root: Path, dataset: str, model: str) -> Path:
    return text_dir(root) / dataset / f"{model}.npz"


def metrics_path(root: Path, dataset: str, model: str) -> Path:
    return root / "data" / "metrics" / dataset / f"{model}.parquet"


def downstream_path(root: Path, dataset: str, model: str) -> Path:
    return root / "data" / "downstream" / dataset / f"{model}.parquet"


def dense_datasets_dir(root: Path) -> Path:
    return root / "data" / "dense_datasets"


def dense_dataset_dir(root: Path, dataset: str) -> Path:
    return dense_datasets_dir(root) / dataset


def dense_dir(root: Path) -> Path:
    return root / "data" / "dense"


def dense_path(root: Path, dataset: str, model: str) -> Path:
    return dense_dir(root) / dataset / f"{model}.parquet"


def task_attack_dir(root: Path) -> Path:
    return root / "data" / "task_attack"


def task_attack_path(root: Path, dataset: str, model: str) -> Path:
    return task_attack_dir(root) / dataset / f"{model}.parquet"


def text_robustness_dir(root: Path) -> Path:
    return root / "data" / "text_robustness"


def text_robustness_store_path(root: Path, dataset: str, model: str) -> Path:
    return text_robustness_dir(root) / dataset / f"{model}.zarr"


def text_robustness_path(root: Path, dataset: str, model: str) -> Path:
    return text_robustness_dir(root) / dataset / f"{model}.parquet"


def text_robustness_regression_dir(root: Path, dataset: str, model: str) -> Path:
    return text_robustness_dir(root) / dataset / f"{model}.regression"


# The output directory dvc.yaml declares for stages that may have nothing to write (no CLIP model, nothing
# fine-tuned, a section turned off): it must exist all the same.
DECLARED_DIRS = {"text": text_dir, "finetune": models_dir, "fetch_dense": dense_datasets_dir, "dense": dense_dir,
                 "task_attack": task_attack_dir, "text_robustness": text_robustness_dir}


def regression_dir(root: Path, dataset: str) -> Path:
    return root / "data" / "regression" / dataset
