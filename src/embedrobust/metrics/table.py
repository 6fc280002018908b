"""The robustness table of an embedding store: every image's metrics per perturbation family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .robustness import robustness_metrics

BLOCK = 4096  # images per batch: bounds memory at (block, K, D) float64
METRICS = ("cosine", "euclidean", "divergence_radius")


def robustness_table(store, families, block: int = BLOCK) -> pd.DataFrame:
    """Per image x family: cosine, Euclidean and DivergenceRadius over {clean} + the family's levels.

    Args:
        store: an embedding store (xarray Dataset, ``embed.open_store``): ``embedding`` (condition, image, dim),
            with ``condition`` labels (one ``"clean"``), ``family`` per condition, and ``image``, ``split``,
            ``label`` per image.
        families: the families to measure, in the table's order (each has its levels in the store).
        block: images per batch (float64 points of shape (block, K, D) are in memory at once).

    Returns:
        One row per (family, image), families in the given order: image, split, label, family, n_points (K: the
        clean point and the family's levels) and the three metrics (float64).
    """
    labels = store["condition"].values.astype(str).tolist()
    fams = store["family"].values.astype(str)
    clean_idx = labels.index("clean")
    rows = []
    for family in families:
        idx = [clean_idx] + [i for i, f in enumerate(fams) if f == family]
        points = store["embedding"].isel(condition=idx).values  # (K, N, D)
        values = {k: [] for k in METRICS}
        for start in range(0, points.shape[1], block):
            batch = torch.from_numpy(np.ascontiguousarray(points[:, start : start + block].transpose(1, 0, 2)))
            res = robustness_metrics(batch.double())
            for k in values:
                values[k].append(res[k].cpu().numpy())
        rows.append(pd.DataFrame({
            "image": store["image"].values.astype(str),
            "split": store["split"].values.astype(str),
            "label": store["label"].values.astype(np.int64),
            "family": family,
            "n_points": len(idx),
            **{k: np.concatenate(v) for k, v in values.items()},
        }))
    return pd.concat(rows, ignore_index=True)
