"""The pipeline's stages: each reads its inputs from artifacts, computes through the library, writes its outputs.

Artifact paths live in :mod:`embedrobust.paths`, formats here; Snakemake rules and DVC stages reach the stages
through the CLI. Outputs are written to a temporary name and renamed, so an interrupted stage never leaves a file that
looks finished.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .config import conditions
from .core import Condition
from .paths import (  # noqa: F401 (the stages' artifact paths, also reached as stages.<name>)
    DECLARED_DIRS,
    checkpoint_path,
    checkpoint_relpath,
    dataset_dir,
    dense_dataset_dir,
    dense_datasets_dir,
    dense_dir,
    dense_path,
    downstream_path,
    metrics_path,
    models_dir,
    regression_dir,
    store_path,
    task_attack_dir,
    task_attack_path,
    text_dir,
    text_path,
    text_robustness_dir,
    text_robustness_path,
    text_robustness_regression_dir,
    text_robustness_store_path,
)

# Every stage runs in its own process and imports what it uses inside its function: the model libraries (torch,
# torchvision, open_clip, timm) take seconds to import, which the stages that build no model should not pay.

log = logging.getLogger(__name__)

def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# -- stages --------------------------------------------------------------------------------------------------------
def fetch(cfg: dict, root: Path) -> Path:
    from .data import fetch_dataset

    name = cfg["dataset"]
    return fetch_dataset(name, cfg["datasets"][name], dataset_dir(root, name), seed=cfg["seed"])


def finetune(cfg: dict, root: Path) -> Path:
    """Fine-tune one run of the ``finetune`` sweep on its dataset's train split -> data/models/<model>/."""
    from .config import sha256
    from .embed.run import resolve_device
    from .finetune import is_trained, train_finetuned, train_split
    from .models.spec import resolved

    run, model, ds = cfg["run"], cfg["model"], cfg["dataset"]
    out = checkpoint_path(root, model)
    fingerprint = sha256(cfg)
    if is_trained(out.parent, fingerprint):
        log.info("%s is trained for these params; nothing to do", out)
        return out
    images, labels, names = train_split(dataset_dir(root, ds), cfg["datasets"][ds]["image_size"])
    spec = resolved(cfg["models"][run["base"]], root, cfg["seed"])
    log.info("fine-tuning %s -> %s: method %s, alpha %g, %d train images of %s, families %s", run["base"], model,
             run["method"], run["alpha"], len(images), ds, ", ".join(run["train"]["families"] or ["(PGD only)"]))
    return train_finetuned(spec, run["train"], images, out.parent, labels=labels, class_names=names,
                           device=resolve_device(cfg["device"]), fingerprint=fingerprint)


def embed(cfg: dict, root: Path, progress: bool = True) -> Path:
    from .config import family_options
    from .embed import run_embed

    return run_embed(cfg, dataset_dir(root, cfg["dataset"]), store_path(root, cfg["dataset"], cfg["model"]), progress,
                     root=root, conds=conditions(cfg), options=family_options(cfg))


def _encoder(cfg: dict, root: Path):
    """The stage's one model (``cfg["models"][cfg["model"]]``) on the configured device."""
    from .embed.run import resolve_device
    from .models import create_encoder
    from .models.spec import resolved

    spec = resolved(cfg["models"][cfg["model"]], root, cfg["seed"])
    return create_encoder(spec, device=resolve_device(cfg["device"]))


def text(cfg: dict, root: Path) -> Path:
    """Zero-shot class embeddings (C, D) of a CLIP model, cached beside its store."""
    from .data import class_names, read_index
    from .downstream import class_text_embeddings

    ds, model = cfg["dataset"], cfg["model"]
    encoder = _encoder(cfg, root)
    names = class_names(read_index(dataset_dir(root, ds)))
    emb = class_text_embeddings(encoder.encode_text, names, cfg["templates"]).float().cpu().numpy()
    out = text_path(root, ds, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, text_embedding=emb, class_name=np.array(names))
    os.replace(tmp, out)
    return out


def metrics(cfg: dict, root: Path, threads: int = 0) -> Path:
    """Per image x family: cosine, Euclidean and DivergenceRadius over {clean} + the family's levels.
    ``threads``: torch's CPU threads (0: torch's choice); the values do not depend on it."""
    from .embed import open_store

    ds_name, model = cfg["dataset"], cfg["model"]
    grid = dict.fromkeys(c.family for c in conditions(cfg) if not c.is_clean)
    store = open_store(store_path(root, ds_name, model))
    # torch (the minimum enclosing ball's solver) only once the store is open: a missing or unreadable store
    # fails in a second, not after torch's import
    import torch

    from .metrics.table import robustness_table

    if threads:
        torch.set_num_threads(threads)
    table = robustness_table(store, grid)
    table.insert(0, "model", model)
    table.insert(0, "dataset", ds_name)
    out = metrics_path(root, ds_name, model)
    _atomic_parquet(table, out)
    return out


def downstream(cfg: dict, root: Path) -> Path:
    from .downstream import evaluate_store
    from .embed import open_store

    ds_name, model = cfg["dataset"], cfg["model"]
    store = open_store(store_path(root, ds_name, model)).load()
    tp = text_path(root, ds_name, model)
    if tp.exists():
        with np.load(tp) as z:
            store["text_embedding"] = (("class", "dim"), z["text_embedding"])
    outcomes = evaluate_store(store, cfg["downstream"], seed=cfg["seed"])
    outcomes.insert(0, "model", model)
    outcomes.insert(0, "dataset", ds_name)
    out = downstream_path(root, ds_name, model)
    _atomic_parquet(outcomes, out)
    return out


def text_robustness(cfg: dict, root: Path) -> Path:
    """Class prompts of a CLIP model under the text perturbations -> data/text_robustness/<dataset>/<model>.zarr
    (the prompt embeddings), .parquet (metrics, zero-shot accuracy, the cross grid) and .regression/ (fits)."""
    from .textperturb.run import run_text_robustness

    ds, model = cfg["dataset"], cfg["model"]
    return run_text_robustness(cfg, _encoder(cfg, root), dataset_dir(root, ds), store_path(root, ds, model),
                               text_robustness_store_path(root, ds, model), text_robustness_path(root, ds, model),
                               text_robustness_regression_dir(root, ds, model))


def fetch_dense(cfg: dict, root: Path) -> Path:
    from .data.dense import fetch_dense as fetch

    name = cfg["dataset"]
    return fetch(name, cfg["dense_datasets"][name], dense_dataset_dir(root, name), seed=cfg["seed"])


def dense(cfg: dict, root: Path) -> Path:
    """Segmentation mIoU / depth RMSE of a linear head on the frozen model: clean, under the grid's conditions
    and under SegPGD / DepthPGD at each eps, on the whole test split -> data/dense/<dataset>/<model>.parquet."""
    from .attack import dense_task, evaluate_dense
    from .data.dense import load_dense

    ds, model = cfg["dataset"], cfg["model"]
    size = int(cfg["dense_datasets"][ds]["image_size"])
    data = {split: load_dense(dense_dataset_dir(root, ds), split, size) for split in ("train", "val", "test")}
    meta = data["test"][2]
    log.info("dense %s (%s) x %s: %s train / %s val / %s test images, %d conditions, eps %s", ds, meta["task"], model,
             *(len(data[s][0]) for s in ("train", "val", "test")), len(cfg["conditions"]), cfg["eps"])
    conds = [Condition.of(pair) for pair in cfg["conditions"]]
    attacks = {dense_task(meta["task"]).attack: cfg["eps"]} if cfg["eps"] else {}
    df = evaluate_dense(_encoder(cfg, root), data, meta["task"], conds, attacks, cfg["options"], cfg["seed"],
                        cfg["family_options"])
    return _write_task_table(df, ds, model, dense_path(root, ds, model))


def task_attack(cfg: dict, root: Path) -> Path:
    """Linear-probe accuracy under cross-entropy PGD at each eps (whole test split, C chosen on val) ->
    data/task_attack/<dataset>/<model>.parquet."""
    from .attack import evaluate_classifier_attack
    from .data import load_labelled, read_index

    ds, model = cfg["dataset"], cfg["model"]
    index = read_index(dataset_dir(root, ds))
    images, labels = load_labelled(index, dataset_dir(root, ds), cfg["datasets"][ds]["image_size"])
    log.info("task attack %s x %s: %d images, eps %s", ds, model, len(images), cfg["eps"])
    df = evaluate_classifier_attack(_encoder(cfg, root), images, labels, index["split"].to_numpy(), cfg["eps"],
                                    cfg["options"], cfg["seed"])
    return _write_task_table(df, ds, model, task_attack_path(root, ds, model))


def _write_task_table(df: pd.DataFrame, dataset: str, model: str, out: Path) -> Path:
    df.insert(0, "model", model)
    df.insert(0, "dataset", dataset)
    _atomic_parquet(df, out)
    return out


def regression(cfg: dict, root: Path, workers: int = 1) -> Path:
    """Every model of one dataset -> data/regression/<dataset>/: the tables of
    :class:`embedrobust.regression.RegressionResult` as CSV (fits, binned, predictions, accuracy_drop, bootstrap,
    model_family, rank_correlation, panel_fits, seed_spread) and summary.json. All models at once: the
    cross-model tables, the image bootstrap (its resamples are shared by every model) and the spread across seeds
    need them together. ``workers``: processes sharing the fits (0: every usable CPU; the tables do not depend
    on it)."""
    from .forked import usable_cpus
    from .regression import fit_all

    ds_name = cfg["dataset"]
    rob = pd.concat([pd.read_parquet(metrics_path(root, ds_name, m)) for m in cfg["models"]], ignore_index=True)
    out = pd.concat([pd.read_parquet(downstream_path(root, ds_name, m)) for m in cfg["models"]], ignore_index=True)
    seed = cfg.get("seed")
    if seed is None:
        # a stage config written before the bootstrap existed carries no seed; 0 keeps the run reproducible
        log.warning("the regression stage config has no 'seed'; the image bootstrap uses seed 0")
        seed = 0
    result = fit_all(rob, out, cfg["regression"], seed=int(seed), replicates=cfg.get("replicates"),
                     workers=workers or usable_cpus())
    target = regression_dir(root, ds_name)
    target.mkdir(parents=True, exist_ok=True)
    result.save(target)
    return target


def report(cfg: dict, root: Path, out: Path, workers: int = 1) -> Path:
    """reports/final.pdf and what goes beside it; ``workers``: processes converting figures (0: every usable
    CPU; the bytes do not depend on it)."""
    from .forked import usable_cpus
    from .report import build_report

    return build_report(cfg, root, out, workers=workers or usable_cpus())


def _plain(obj):
    """``obj`` as strict JSON values: NaN / inf -> null (DVC and other readers reject bare NaN), numpy scalars ->
    Python ones."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)
