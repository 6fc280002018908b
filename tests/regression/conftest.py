import types

import numpy as np
import pandas as pd
import pytest

# per family, image i is correct at the first K[i] of 4 levels; its robustness is (1 - K[i] / 4) / 2, so the
# image's fraction correct is exactly 1 - 2 * robustness, and so is every bin's and every family's accuracy
K = {
    "blur": [4, 4, 4, 4, 3, 3, 3, 2, 2, 1],
    "jpeg": [4, 3, 3, 2, 2, 2, 1, 1, 0, 0],
    "noise": [3, 2, 2, 1, 1, 1, 0, 0, 0, 0],
    "snow": [4, 4, 4, 4, 4, 4, 3, 3, 2, 2],
}
LEVELS = (1.0, 2.0, 3.0, 4.0)
CFG = {"metrics": ["divergence_radius", "cosine"], "n_bins": 4, "min_bin_size": 2, "logit": False}


def linear_tables():
    """Robustness and outcome tables of the exact line above; cosine = robustness ** 2 (a curved relation)."""
    rob, out = [], []
    for i in range(10):
        out.append(dict(task="knn", condition="clean", family="clean", level=np.nan, image=f"i{i}", correct=True))
        for fam, ks in K.items():
            r = (1 - ks[i] / 4) / 2
            rob.append(dict(image=f"i{i}", split="test", family=fam, divergence_radius=r, cosine=r**2))
            for lv in LEVELS:
                out.append(
                    dict(task="knn", condition=f"{fam}@{lv:g}", family=fam, level=lv, image=f"i{i}", correct=lv <= ks[i])
                )
    rob, out = pd.DataFrame(rob), pd.DataFrame(out)
    out["p_true"] = out["correct"].astype(float)
    out["correct_top5"] = True
    for df in (rob, out):
        df["dataset"], df["model"] = "toy", "m"
    return rob, out


@pytest.fixture(scope="session")
def toy():
    """The exact-line toy data: K, LEVELS, CFG and tables() -> (robustness, outcomes)."""
    return types.SimpleNamespace(K=K, LEVELS=LEVELS, CFG=CFG, tables=linear_tables)


def panel_tables(r, drop, n_images=20, levels=(1.0, 2.0), families=None):
    """Tables of M models x F families in which every image of model m has robustness ``r[m][f]`` under family f
    and the accuracy drop is exactly ``drop[m][f]`` points at every level, or ``drop[m][f][l]`` at level l
    (clean: every image correct; at (m, f, l) the first n_images * (1 - drop / 100) images stay correct). Drops
    must be multiples of 100 / n_images."""
    r, drop = np.asarray(r, dtype=float), np.asarray(drop, dtype=float)
    if drop.ndim == 2:
        drop = np.repeat(drop[:, :, None], len(levels), axis=2)
    families = families or [f"f{j}" for j in range(r.shape[1])]
    rob, out = [], []
    for m in range(r.shape[0]):
        for i in range(n_images):
            out.append(dict(model=f"m{m}", task="knn", condition="clean", family="clean", level=np.nan,
                            image=f"i{i:02d}", correct=True))
            for j, fam in enumerate(families):
                rob.append(dict(model=f"m{m}", image=f"i{i:02d}", split="test", family=fam,
                                divergence_radius=r[m, j], cosine=r[m, j] ** 2, euclidean=r[m, j]))
                for li, lv in enumerate(levels):
                    k = round(n_images * (1 - drop[m, j, li] / 100))
                    out.append(dict(model=f"m{m}", task="knn", condition=f"{fam}@{lv:g}", family=fam, level=lv,
                                    image=f"i{i:02d}", correct=i < k))
    rob, out = pd.DataFrame(rob), pd.DataFrame(out)
    out["p_true"] = out["correct"].astype(float)
    out["correct_top5"] = True
    rob["dataset"] = out["dataset"] = "toy"
    return rob, out


def expand(rob, out, counts):
    """The tables resampled by image counts ``counts`` (one per image, images in sorted id order): image i
    appears counts[i] times, as new images ``<id>~<k>``."""
    ids = sorted(set(out["image"]) | set(rob["image"]))
    rep = {img: int(c) for img, c in zip(ids, counts)}

    def grow(df):
        parts = [df[df["image"] == img].assign(image=f"{img}~{k}") for img in ids for k in range(rep[img])]
        return pd.concat(parts, ignore_index=True)

    return grow(rob), grow(out)


@pytest.fixture(scope="session")
def panel():
    """panel_tables(r, drop, ...) and expand(rob, out, counts)."""
    return types.SimpleNamespace(tables=panel_tables, expand=expand)
