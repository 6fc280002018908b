"""The text_robustness stage for one (dataset, CLIP model): perturbed prompts -> embeddings -> metrics, zero-shot
accuracy, the image x text cross grid and the regression.

Point sets of the metrics (``table == "robustness"``), all on L2-normalised embeddings as on the image side:

- ``cosine``, ``euclidean``, ``divergence_radius``: per class and family, the class's *ensemble* embedding (the
  one zero-shot classifies with) clean and at each of the family's levels: {e_0, e_1, ..., e_L}, L + 1 points.
  Rows with a ``level`` use {e_0, e_level} only (two points: DR = sin(angle / 2)); rows with level NaN span all
  levels, the image side's definition, and are the robustness the regression uses;
- ``prompt_divergence_radius``: per class and family, the mean over the clean template slots t of the DR of
  {clean prompt t, prompt t at each level}: how far one prompt moves before the ensemble averages it. NaN for
  template_shift, whose prompts pair with no clean prompt.

The parquet ``data/text_robustness/<dataset>/<model>.parquet`` stacks four tables, told apart by ``table``:

- ``robustness``: one row per (class, family) and per (class, family, level): ``class``, ``class_name``,
  ``n_points``, ``changed_prompts`` (fraction of the point set's perturbed prompts whose text differs from the
  clean prompt; a perturbation can change the text and not the tokens, e.g. case under CLIP's lower-casing
  tokenizer), the metrics above;
- ``zero_shot``: one row per text condition (clean first): zero-shot ``accuracy`` (fraction) and mean ``p_true``
  of the test split's *clean* images classified against that condition's class embeddings, ``n_images``, and
  ``divergence_radius`` = the mean over the test images of their class's two-point DR at that level;
- ``cross``: one row per (cross pair, image condition, text condition) of the pair's families, clean included:
  the same accuracy with the image perturbed too (``image_family``, ``image_level``, ``image_condition``,
  ``image_level_index``; ``level_index`` is the text level's position, 0 = clean) and the two towers' mean
  two-point DRs (``image_divergence_radius`` over the test images' embeddings, ``divergence_radius``);
- ``towers``: per cross pair and shared level index k >= 1 (the k-th level of each family): ``clean_accuracy``,
  ``image_accuracy`` (image at level k, clean prompts), ``text_accuracy`` (clean image, prompts at level k),
  ``accuracy`` (both), the drops from clean in points and ``limiting_tower``: the tower whose perturbation alone
  costs more accuracy ("image", "text" or "tie").

Columns a table does not use are NaN (floats), -1 (integers) or '' (strings). The regression (``fit_all`` of
:mod:`embedrobust.regression`, unchanged) treats each test image's robustness under a text family as its class's
all-level metrics, and its outcome as its zero-shot correctness under that family's prompts, so its image, bin
and level granularities and the held-out-family predictions read exactly as the image side's.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import CLEAN, Condition, sha256
from ..errors import DataError

log = logging.getLogger(__name__)

METRIC_BLOCK = 4096  # point sets per metrics batch: bounds memory at (block, K, D) float64
METRICS = ("cosine", "euclidean", "divergence_radius")
STR_COLUMNS = ["dataset", "model", "table", "family", "condition", "class_name", "image_family", "image_condition",
               "limiting_tower"]
FLOAT_COLUMNS = ["level", "changed_prompts", *METRICS, "prompt_divergence_radius", "accuracy", "p_true",
                 "image_level", "image_divergence_radius", "clean_accuracy", "image_accuracy", "text_accuracy",
                 "image_drop_points", "text_drop_points", "both_drop_points"]
INT_COLUMNS = ["class", "n_points", "n_images", "level_index", "image_level_index"]
COLUMNS = ["dataset", "model", "table", "family", "level", "condition", "class", "class_name", "n_points",
           "changed_prompts", *METRICS, "prompt_divergence_radius", "level_index", "image_family", "image_level",
           "image_condition", "image_level_index", "accuracy", "p_true", "n_images", "image_divergence_radius",
           "clean_accuracy", "image_accuracy", "text_accuracy", "image_drop_points", "text_drop_points",
           "both_drop_points", "limiting_tower"]


def text_conditions(families: dict) -> list[Condition]:
    """Clean first, then every family (by name) at every level (in params order).

    By name, not in params order: Snakemake hands the stage its config as canonical JSON, keys sorted, while
    ``--params`` keeps the file's order; sorting makes both give the same store.
    """
    return [CLEAN] + [Condition(name, float(v)) for name in sorted(families) for v in families[name]["levels"]]


def embed_prompts(encode_text, prompts: list[list[str]]):
    """Raw prompt embeddings (C, T, D) float32 and ensemble class embeddings (C, D) of one condition.

    One ``encode_text`` call per class with that class's prompts, normalised, averaged and re-normalised with the
    very operations of ``downstream.class_text_embeddings``: the clean condition's class embeddings are the
    ``text`` stage's, bit for bit.
    """
    import torch
    import torch.nn.functional as F

    raw, ens = [], []
    with torch.no_grad():
        for row in prompts:
            emb = encode_text(list(row)).detach().float().cpu()
            raw.append(emb.numpy().copy())
            unit = F.normalize(emb, dim=-1)
            ens.append(F.normalize(unit.mean(dim=0), dim=-1))
    return np.stack(raw), torch.stack(ens).numpy()


def _metrics(points: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine, Euclidean and DivergenceRadius of (B, K, D) point sets, in blocks: {name: (B,) float64}."""
    import torch

    from ..metrics import robustness_metrics

    out = {k: [] for k in METRICS}
    for start in range(0, len(points), METRIC_BLOCK):
        block = torch.from_numpy(np.ascontiguousarray(points[start : start + METRIC_BLOCK], dtype=np.float64))
        res = robustness_metrics(block)
        for k in METRICS:
            out[k].append(res[k].cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def _changed(prompts: list, clean: list, idx: list[int], paired: bool) -> np.ndarray:
    """(C,) fraction of the prompts of conditions ``idx`` whose text differs from the clean prompts."""
    out = []
    for c, clean_row in enumerate(clean):
        flags = []
        for k in idx:
            row = prompts[k][c]
            flags += [p != clean_row[t] for t, p in enumerate(row)] if paired else [p not in clean_row for p in row]
        out.append(np.mean(flags) if flags else 0.0)
    return np.asarray(out, dtype=np.float64)


def _prompt_dr(clean_raw: np.ndarray, level_raw: list[np.ndarray]) -> np.ndarray:
    """(C,) mean over template slots of the DR of {clean prompt t, prompt t at each given level}."""
    c, t, d = clean_raw.shape
    pts = np.stack([clean_raw] + level_raw, axis=2).reshape(c * t, 1 + len(level_raw), d)
    return _metrics(pts)["divergence_radius"].reshape(c, t).mean(axis=1)


def robustness_rows(conds, prompts, raw, ens, names, families) -> pd.DataFrame:
    """The ``robustness`` table: per (class, family) over all levels, then per (class, family, level)."""
    from .prompts import paired

    rows = []
    classes = np.arange(len(names), dtype=np.int64)
    for family in sorted(families):
        idx = [k for k, c in enumerate(conds) if c.family == family]
        is_paired = paired(family)
        for sel, level, label in [(idx, math.nan, "")] + [([k], conds[k].value, conds[k].label) for k in idx]:
            pts = np.stack([ens[0]] + [ens[k] for k in sel], axis=1)  # (C, K, D)
            m = _metrics(pts)
            prompt_dr = _prompt_dr(raw[0], [raw[k] for k in sel]) if is_paired else np.full(len(names), np.nan)
            rows.append(pd.DataFrame({
                "table": "robustness", "family": family, "level": level, "condition": label, "class": classes,
                "class_name": names, "n_points": 1 + len(sel),
                "changed_prompts": _changed(prompts, prompts[0], sel, is_paired),
                **m, "prompt_divergence_radius": prompt_dr,
            }))
    return pd.concat(rows, ignore_index=True)


def _zero_shot(images, text_embedding: np.ndarray, seed: int) -> pd.DataFrame:
    """Zero-shot outcomes (``downstream.evaluate_store``'s table) of the store ``images`` against
    ``text_embedding`` (C, D): the downstream stage's own classifier, so clean prompts give its numbers exactly."""
    from ..downstream import evaluate_store

    ds = images.assign(text_embedding=(("class", "dim"), np.asarray(text_embedding, dtype=np.float32)))
    return evaluate_store(ds, {"tasks": ["zero_shot"]}, seed=seed)


def _image_level_dr(images, clean_pos: int, test: np.ndarray) -> dict[str, float]:
    """Mean over test images of the two-point DR {clean, condition} of each image condition of ``images``."""
    emb = np.asarray(images["embedding"].values)[:, test]  # (K, N, D)
    out = {}
    for k, label in enumerate(np.asarray(images["condition"].values).astype(str)):
        if k == clean_pos:
            out[label] = math.nan
            continue
        out[label] = float(_metrics(np.stack([emb[clean_pos], emb[k]], axis=1))["divergence_radius"].mean())
    return out


def _accuracy(outcomes: pd.DataFrame) -> pd.DataFrame:
    return (outcomes.assign(c=outcomes["correct"].astype(np.float64))
            .groupby("condition", sort=False).agg(accuracy=("c", "mean"), p_true=("p_true", "mean"),
                                                   n_images=("c", "size")).reset_index())


def evaluate(conds, ens, level_dr: dict, store, cross: list[dict], seed: int):
    """Zero-shot outcomes per text condition, and the ``zero_shot``, ``cross`` and ``towers`` tables.

    ``level_dr``: text condition label -> (C,) two-point class DR; ``store``: the image embedding store (lazy).
    Returns (outcomes per image for the regression, the three tables as one DataFrame).
    """
    labels = np.asarray(store["condition"].values).astype(str).tolist()
    fams = np.asarray(store["family"].values).astype(str)
    clean_pos = labels.index("clean")
    test = np.asarray(store["split"].values).astype(str) == "test"
    y = np.asarray(store["label"].values, dtype=np.int64)[test]
    if not test.any():
        raise DataError("the image store has no test-split images to classify; give the dataset a test split")
    if store.sizes.get("class", 0) != ens.shape[1]:
        raise DataError(f"the image store lists {store.sizes.get('class', 0)} classes but the dataset index "
                        f"{ens.shape[1]}; re-run the embed stage")

    def text_dr(label: str) -> float:
        return float(level_dr[label][y].mean()) if label in level_dr else math.nan

    clean_images = store.isel(condition=[clean_pos]).load()
    outcomes, zs = [], []
    for k, cond in enumerate(conds):
        out = _zero_shot(clean_images, ens[k], seed)
        out = out.assign(condition=cond.label, family=cond.family, level=cond.value)
        outcomes.append(out)
        acc = _accuracy(out).iloc[0]
        zs.append({"table": "zero_shot", "family": cond.family, "level": cond.value, "condition": cond.label,
                   "accuracy": acc["accuracy"], "p_true": acc["p_true"], "n_images": int(acc["n_images"]),
                   "divergence_radius": text_dr(cond.label)})
    rows = list(zs)
    for pair in cross:
        img_idx = [clean_pos] + [i for i, f in enumerate(fams) if f == pair["image"]]
        txt_idx = [0] + [k for k, c in enumerate(conds) if c.family == pair["text"]]
        images = store.isel(condition=img_idx).load()
        img_dr = _image_level_dr(images, 0, test)
        img_levels = np.asarray(images["level"].values, dtype=np.float64)
        img_labels = np.asarray(images["condition"].values).astype(str)
        grid = {}
        for j, k in enumerate(txt_idx):
            cond = conds[k]
            acc = _accuracy(_zero_shot(images, ens[k], seed)).set_index("condition")
            for i, label in enumerate(img_labels):
                a = acc.loc[label]
                grid[(i, j)] = float(a["accuracy"])
                rows.append({"table": "cross", "family": cond.family, "level": cond.value, "condition": cond.label,
                             "level_index": j, "image_family": "clean" if i == 0 else pair["image"],
                             "image_level": img_levels[i], "image_condition": label, "image_level_index": i,
                             "accuracy": a["accuracy"], "p_true": a["p_true"], "n_images": int(a["n_images"]),
                             "divergence_radius": text_dr(cond.label), "image_divergence_radius": img_dr[label]})
        base = grid[(0, 0)]
        for k in range(1, min(len(img_idx), len(txt_idx))):
            cond = conds[txt_idx[k]]
            drops = {t: 100 * (base - grid[ij]) for t, ij in (("image", (k, 0)), ("text", (0, k)), ("both", (k, k)))}
            limiting = "tie" if np.isclose(drops["image"], drops["text"]) else max(("image", "text"), key=drops.get)
            rows.append({"table": "towers", "family": cond.family, "level": cond.value, "condition": cond.label,
                         "level_index": k, "image_family": pair["image"], "image_level": img_levels[k],
                         "image_condition": img_labels[k], "image_level_index": k, "accuracy": grid[(k, k)],
                         "clean_accuracy": base, "image_accuracy": grid[(k, 0)], "text_accuracy": grid[(0, k)],
                         "image_drop_points": drops["image"], "text_drop_points": drops["text"],
                         "both_drop_points": drops["both"], "limiting_tower": limiting,
                         "divergence_radius": text_dr(cond.label), "image_divergence_radius": img_dr[img_labels[k]]})
    return pd.concat(outcomes, ignore_index=True), pd.DataFrame(rows)


def regression_inputs(rob: pd.DataFrame, store, outcomes: pd.DataFrame, dataset: str, model: str):
    """``fit_all``'s two tables: per (image, text family) the image's class's all-level metrics, and the
    zero-shot outcomes per (text condition, test image)."""
    per_class = rob[rob["level"].isna()][["family", "class", *METRICS]]
    images = pd.DataFrame({"image": np.asarray(store["image"].values).astype(str),
                           "split": np.asarray(store["split"].values).astype(str),
                           "class": np.asarray(store["label"].values, dtype=np.int64)})
    robustness = images.merge(per_class, on="class", how="inner").rename(columns={"class": "label"})
    robustness = robustness.sort_values(["family", "image"], kind="stable").reset_index(drop=True)
    robustness.insert(0, "model", model)
    robustness.insert(0, "dataset", dataset)
    out = outcomes.copy()
    out.insert(0, "model", model)
    out.insert(0, "dataset", dataset)
    return robustness, out


def _typed(df: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    df = df.assign(dataset=dataset, model=model)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = "" if col in STR_COLUMNS else (-1 if col in INT_COLUMNS else np.nan)
    df = df[COLUMNS]
    df[STR_COLUMNS] = df[STR_COLUMNS].fillna("")
    df[INT_COLUMNS] = df[INT_COLUMNS].fillna(-1)
    return df.astype({**dict.fromkeys(STR_COLUMNS, "str"), **dict.fromkeys(FLOAT_COLUMNS, "float64"),
                      **dict.fromkeys(INT_COLUMNS, "int64")})


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def run_text_robustness(cfg: dict, encoder, data_dir: Path, image_store: Path, out_store: Path, out_table: Path,
                        out_regression: Path) -> Path:
    """The stage: ``cfg`` is ``config.stage_config(config, "text_robustness", dataset, model)``; writes the
    prompt store ``out_store``, the tables ``out_table`` (parquet) and the regression tables under
    ``out_regression`` (``RegressionResult.save``: fits.csv, predictions.csv, ..., summary.json)."""
    from ..data import class_names, read_index
    from ..embed import open_store
    from ..embed.run import package_versions
    from ..regression import fit_all
    from .prompts import clean_templates, condition_prompts
    from .store import TextStoreWriter
    from .synonyms import synonym_table

    ds, model, seed = cfg["dataset"], cfg["model"], int(cfg["seed"])
    families = cfg["families"]
    names = class_names(read_index(data_dir))
    templates = clean_templates(cfg["templates"])
    synonyms = synonym_table(names, cfg.get("synonyms"))
    if "synonym" in families and not any(synonyms.values()):
        raise DataError(f"text_robustness.families.synonym: no class of {ds} has a synonym (built-in lists cover the "
                        f"demo digits and CIFAR-10); give datasets.{ds}.synonyms: {{class name: [alternatives]}}")
    conds = text_conditions(families)
    prompts = [condition_prompts(c, names, templates, seed, synonyms, families.get(c.family, {}).get("options"))
               for c in conds]
    log.info("text robustness %s x %s: %d classes, %d clean templates, %d conditions, %d prompts", ds, model,
             len(names), len(templates), len(conds), sum(len(r) for p in prompts for r in p))

    # One family at a time: only the clean prompts' and that family's prompt embeddings are held in memory
    # (ImageNet: 1000 classes x 80 templates x 1024 dims is 330 MB per condition).
    writer, clean_raw, ens, parts = None, None, [None] * len(conds), []
    for family in [None, *sorted(families)]:
        idx = [0] if family is None else [k for k, c in enumerate(conds) if c.family == family]
        level_raw = []
        for k in idx:
            r, ens[k] = embed_prompts(encoder.encode_text, prompts[k])
            if writer is None:
                attrs = {"model": encoder.describe(), "templates": [t.text for t in templates],
                         "params_sha256": sha256(cfg), "versions": package_versions()}
                writer = TextStoreWriter(out_store, conds, names, prompts, r.shape[-1], attrs)
            writer.write(k, r, ens[k])
            level_raw.append(r)
        if family is None:
            clean_raw = level_raw[0]
            continue
        sel = [0, *idx]
        parts.append(robustness_rows([conds[k] for k in sel], [prompts[k] for k in sel], [clean_raw, *level_raw],
                                     np.stack([ens[k] for k in sel]), names, {family: families[family]}))
    writer.finalize()
    ens = np.stack(ens)
    rob = pd.concat(parts, ignore_index=True)

    lv = rob[rob["condition"] != ""]
    level_dr = {label: g.sort_values("class")["divergence_radius"].to_numpy() for label, g in lv.groupby("condition")}
    store = open_store(image_store)
    outcomes, tables = evaluate(conds, ens, level_dr, store, cfg.get("cross", []), seed)

    robustness, reg_outcomes = regression_inputs(rob, store, outcomes, ds, model)
    result = fit_all(robustness, reg_outcomes, cfg["regression"], seed=seed)
    tmp = out_regression.with_name(out_regression.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    result.save(tmp)
    _replace_dir(tmp, out_regression)

    table = _typed(pd.concat([rob, tables], ignore_index=True), ds, model)
    out_table.parent.mkdir(parents=True, exist_ok=True)
    part = out_table.with_name(out_table.name + ".tmp")
    table.to_parquet(part, index=False)
    os.replace(part, out_table)
    return out_table
