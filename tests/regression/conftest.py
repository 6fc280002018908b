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
