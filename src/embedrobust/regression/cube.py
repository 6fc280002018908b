"""Dense per-image arrays of one (dataset, model, task): what the image bootstrap multiplies by its counts.

Rows are indexed by the dataset-wide image code (the cluster of the bootstrap), so the same count matrix
resamples every model and task of a dataset identically (a paired bootstrap across models and conditions).
Absent cells hold 0 with a 0 in the matching ``*_present`` mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Cube:
    """``points``: the perturbed (family, level) conditions, sorted, with ``fam`` the index into ``families``.

    Outcome-table arrays (every evaluated test image): ``correct`` (n, P), ``out_present`` (n, P), ``clean``
    (n,) clean correctness and ``clean_present`` (n,). Fit arrays (images with a robustness row, as in the
    fits): ``y`` (n, P) the fits' outcome, ``present`` (n, P), ``x[metric]`` (n, F) robustness per family,
    ``x_present`` (n, F). n = number of images of the dataset(s), P = conditions, F = families.
    """

    families: list[str]
    points: pd.DataFrame
    correct: np.ndarray
    out_present: np.ndarray
    clean: np.ndarray
    clean_present: np.ndarray
    y: np.ndarray
    present: np.ndarray
    x: dict
    x_present: np.ndarray

    def level_means(self, w: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(B, P) accuracy (fits' outcome) and mean robustness of the images at each condition under counts
        ``w`` (B, n): the level-granularity points of the fits."""
        den = w @ self.present
        xp = self.x[metric][:, self.points["fam"].to_numpy()] * self.present
        with np.errstate(all="ignore"):
            return (w @ self.y) / den, (w @ xp) / den

    def image_rows(self, metric: str) -> pd.DataFrame:
        """One row per (image, family) with any condition: code, fam, x, performance (mean y over the levels)."""
        fam = self.points["fam"].to_numpy()
        F = len(self.families)
        cnt = np.stack([self.present[:, fam == f].sum(1) for f in range(F)], axis=1)
        tot = np.stack([self.y[:, fam == f].sum(1) for f in range(F)], axis=1)
        code, f = np.nonzero(cnt > 0)
        return pd.DataFrame(
            {"code": code, "fam": f, "x": self.x[metric][code, f], "performance": tot[code, f] / cnt[code, f]}
        )


def _pivot(df: pd.DataFrame, col: str, n: int, p: int, idx: str) -> tuple[np.ndarray, np.ndarray]:
    val = np.zeros((n, p))
    has = np.zeros((n, p))
    val[df["code"].to_numpy(), df[idx].to_numpy()] = df[col].to_numpy(dtype=np.float64)
    has[df["code"].to_numpy(), df[idx].to_numpy()] = 1.0
    return val, has


def build_cube(outcomes: pd.DataFrame, rows: pd.DataFrame, robustness: pd.DataFrame, metrics: list[str],
               n: int) -> Cube:
    """Cube of one group. ``outcomes``: its outcome rows (clean included) with a ``code`` column; ``rows``: its
    merged fit rows (perturbed, with robustness) with ``code`` and ``y``; ``robustness``: its (image, family)
    robustness rows with ``code``; ``n``: the number of image codes."""
    pert = outcomes[outcomes["family"] != "clean"]
    points = (
        pert[["family", "level"]].drop_duplicates().sort_values(["family", "level"], kind="stable").reset_index(drop=True)
    )
    families = sorted(points["family"].unique())
    points["fam"] = points["family"].map({f: i for i, f in enumerate(families)}).astype(np.int64)
    points["p"] = np.arange(len(points), dtype=np.int64)
    P, F = len(points), len(families)
    on = ["family", "level"]
    o = pert.merge(points, on=on, how="inner").assign(c=lambda d: d["correct"].astype(np.float64))
    correct, out_present = _pivot(o, "c", n, P, "p")
    c = outcomes[outcomes["family"] == "clean"]
    clean = np.zeros(n)
    clean_present = np.zeros(n)
    clean[c["code"].to_numpy()] = c["correct"].to_numpy(dtype=np.float64)
    clean_present[c["code"].to_numpy()] = 1.0
    r = rows.merge(points, on=on, how="inner")
    y, present = _pivot(r, "y", n, P, "p")
    rob = robustness[robustness["family"].isin(families)].assign(
        fam=lambda d: d["family"].map({f: i for i, f in enumerate(families)}).astype(np.int64)
    )
    x = {}
    x_present = np.zeros((n, F))
    for m in metrics:
        x[m], x_present = _pivot(rob, m, n, F, "fam")
    return Cube(families, points, correct, out_present, clean, clean_present, y, present, x, x_present)
