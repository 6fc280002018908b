"""Evaluate the downstream tasks on every condition of an embedding store's test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from embedrobust.downstream.classifiers import KNN, LinearProbe, ZeroShot, rank_classes
from embedrobust.errors import DataError, unknown_name

TASKS = ("linear_probe", "knn", "zero_shot")
DEFAULTS = {
    "tasks": list(TASKS),
    "linear_probe": {"C": [0.01, 0.1, 1.0, 10.0], "val_fraction": 0.2, "max_iter": 2000},
    "knn": {"k": 10},
    "zero_shot": {"templates": "imagenet"},
    "top_k": 5,
}
COLUMNS = ["task", "condition", "family", "level", "image", "label", "pred", "correct", "p_true", "correct_top5"]


def downstream_config(cfg: dict) -> dict:
    """The ``downstream`` section (or the whole params dict holding one) merged over the defaults."""
    sec = cfg.get("downstream", cfg) if cfg else {}
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k, v in sec.items():
        out[k] = {**out[k], **v} if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _split_positions(ds: xr.Dataset, split: str) -> np.ndarray:
    return np.flatnonzero(np.asarray(ds["split"].values).astype(str) == split)


def _n_classes(ds: xr.Dataset, labels: np.ndarray) -> int:
    n = ds.sizes.get("class", 0)
    top = int(labels.max()) + 1 if labels.size else 0
    if n and top > n:
        raise DataError(
            f"labels go up to {top - 1} but the store lists {n} class names; re-run the embed stage so the "
            "store's class_name coordinate matches the dataset index."
        )
    return max(n, top)


def _clean_position(ds: xr.Dataset) -> int:
    hits = np.flatnonzero(np.asarray(ds["family"].values).astype(str) == "clean")
    if hits.size != 1:
        raise DataError(
            f"the embedding store has {hits.size} clean conditions (need exactly one); re-run the embed stage."
        )
    return int(hits[0])


def build_classifiers(ds: xr.Dataset, cfg: dict, seed: int) -> dict:
    """Classifier per task in ``cfg['tasks']`` order; zero_shot is left out when the store has no text tower."""
    labels = np.asarray(ds["label"].values, dtype=np.int64)
    n_classes = _n_classes(ds, labels)
    train = _split_positions(ds, "train")
    out = {}
    for task in cfg["tasks"]:
        if task not in TASKS:
            raise unknown_name("downstream task", task, list(TASKS))
        if task == "zero_shot":
            if "text_embedding" not in ds:
                continue
            text = np.asarray(ds["text_embedding"].values)
            if text.shape[-1] != ds.sizes["dim"]:
                raise DataError(
                    f"text_embedding has dimension {text.shape[-1]} but image embeddings {ds.sizes['dim']}; "
                    "re-run the embed stage for this model."
                )
            if len(text) < n_classes:
                raise DataError(
                    f"text_embedding has {len(text)} classes but labels need {n_classes}; re-run the embed stage."
                )
            out[task] = ZeroShot(text)
            continue
        if train.size == 0:
            raise DataError(
                f"the store has no train-split images, which {task} needs; give the dataset a train split "
                f"or drop {task} from downstream.tasks."
            )
        x = np.asarray(ds["embedding"].isel(condition=_clean_position(ds), image=train).values)
        if task == "linear_probe":
            p = cfg["linear_probe"]
            out[task] = LinearProbe(
                x, labels[train], n_classes, p["C"], p["val_fraction"], p["max_iter"], seed
            )
        else:
            out[task] = KNN(x, labels[train], n_classes, cfg["knn"]["k"])
    return out


def evaluate_store(ds: xr.Dataset, cfg: dict, seed: int) -> pd.DataFrame:
    """Outcome table over the store's test split, one row per (task, condition, image).

    ``ds`` is an embedding store (see docs/ARCHITECTURE.md); ``cfg`` is the ``downstream`` params section
    (or the params dict holding it). Columns: task, condition, family, level (float, NaN for clean), image,
    label, pred (top-1 class), correct (bool), p_true (the classifier's probability of the true class),
    correct_top5 (true class among the ``top_k`` best). Rows come in task order of ``cfg['tasks']``, then
    store order of conditions and images. The caller adds the dataset and model columns.
    """
    cfg = downstream_config(cfg)
    classifiers = build_classifiers(ds, cfg, seed)
    test = _split_positions(ds, "test")
    labels = np.asarray(ds["label"].values, dtype=np.int64)[test]
    images = np.asarray(ds["image"].values).astype(str)[test]
    conditions = np.asarray(ds["condition"].values).astype(str)
    families = np.asarray(ds["family"].values).astype(str)
    levels = np.asarray(ds["level"].values, dtype=np.float64)
    top_k = int(cfg["top_k"])
    parts = []
    for ci, cond in enumerate(conditions):
        x = np.asarray(ds["embedding"].isel(condition=ci, image=test).values)
        for task, clf in classifiers.items():
            primary, secondary, proba = clf.scores(x)
            order = rank_classes(primary, secondary)
            pred = order[:, 0]
            parts.append(
                (
                    task,
                    ci,
                    pd.DataFrame(
                        {
                            "task": task,
                            "condition": cond,
                            "family": families[ci],
                            "level": levels[ci],
                            "image": images,
                            "label": labels,
                            "pred": pred.astype(np.int64),
                            "correct": pred == labels,
                            "p_true": proba[np.arange(len(labels)), labels],
                            "correct_top5": (order[:, :top_k] == labels[:, None]).any(axis=1),
                        }
                    ),
                )
            )
    task_rank = {t: i for i, t in enumerate(classifiers)}
    parts.sort(key=lambda p: (task_rank[p[0]], p[1]))
    if not parts or not len(test):
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _dtypes().items()})
    return pd.concat([p[2] for p in parts], ignore_index=True).astype(_dtypes())


def _dtypes() -> dict:
    return {
        "task": "str", "condition": "str", "family": "str", "level": "float64", "image": "str",
        "label": "int64", "pred": "int64", "correct": bool, "p_true": "float64", "correct_top5": bool,
    }
