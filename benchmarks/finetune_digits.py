"""Fine-tuning on the demo digits: mean DivergenceRadius and clean linear-probe accuracy before and after.

    python benchmarks/finetune_digits.py STEPS ALPHA[,ALPHA...] [METHOD]     (e.g. 150 0.1,0.3,1 paper)

Tiny random-init timm ViT at 32 px (FT_MODEL=vit-tiny, default) or the tiny CLIP (FT_MODEL=tiny-clip), the demo grid, one thread; the figures in the issue note come from it.
"""
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

from embedrobust.config import families as grid
from embedrobust.data import ImageDataset, fetch_dataset, read_index
from embedrobust.finetune import Trainer
from embedrobust.metrics import divergence_radius
from embedrobust.models import create_encoder
from embedrobust.perturb import get_perturbation

torch.set_num_threads(1)
root = os.environ.get("FT_ROOT", "/tmp/embedrobust-finetune-digits")
if not os.path.exists(root + "/index.csv"):
    fetch_dataset("digits", {"source": "demo-digits", "n_per_class": 30, "image_size": 32, "test_fraction": 0.5},
                  root, 0)
idx = read_index(root)
ds = ImageDataset(idx, root, 32)
imgs = torch.stack([ds[i][0] for i in range(len(ds))])
y = idx["label"].to_numpy()
tr, te = (idx["split"] == "train").to_numpy(), (idx["split"] == "test").to_numpy()
fams = grid({"perturbations": {"families": {
    "jpeg_compression": {"levels": [90, 70, 50, 30, 10]}, "brightness": {"severities": [1, 2, 3, 4, 5]},
    "contrast": {"severities": [1, 2, 3, 4, 5]}, "gaussian_noise": {"severities": [1, 2, 3, 4, 5]},
    "gaussian_blur": {"levels": [0.5, 1.0, 1.5, 2.0]}}}})
SPECS = {"vit-tiny": {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32},
         "tiny-clip": {"library": "open_clip", "arch": "embedrobust-tiny-clip", "pretrained": "none"}}
SPEC = SPECS[os.environ.get("FT_MODEL", "vit-tiny")]
if "FT_SIZE" in os.environ:  # model input size (the demo's vit-tiny runs at 64 px)
    SPEC = {**SPEC, "image_size": int(os.environ["FT_SIZE"])}
x = imgs.float() / 255

def evaluate(enc):
    clean = enc.encode_image(x)
    dr = {}
    for f, vals in fams.items():
        pts = [clean[te]] + [enc.encode_image(get_perturbation(f)(x[te], v, torch.Generator().manual_seed(1000 + k)))
                             for k, v in enumerate(vals)]
        dr[f] = float(divergence_radius(torch.stack(pts, 1).double()).mean())
    z = torch.nn.functional.normalize(clean, dim=-1).numpy()
    clf = LogisticRegression(C=1.0, max_iter=3000).fit(z[tr], y[tr])
    cv = LogisticRegressionCV(Cs=[0.1, 1.0, 10.0, 100.0], cv=3, max_iter=3000).fit(z[tr], y[tr])
    return {"dr": dr, "dr_mean": float(np.mean(list(dr.values()))), "probe": float(clf.score(z[te], y[te])),
            "probe_cv": float(cv.score(z[te], y[te])), "C_cv": float(cv.C_[0]), "clean": clean}

base = evaluate(create_encoder(SPEC))
print("base", json.dumps({k: v for k, v in base.items() if k != "clean"}), flush=True)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
for alpha in [float(a) for a in (sys.argv[2].split(",") if len(sys.argv) > 2 else ["0.3", "1", "3"])]:
    enc = create_encoder(SPEC)
    t0 = time.time()
    cfg = {"method": sys.argv[3] if len(sys.argv) > 3 else "paper", "alpha": alpha, "families": {f: {"levels": v} for f, v in fams.items()},
           "steps": steps, "lr": 1e-4, "utility": os.environ.get("FT_UTILITY", "cosine"), "batch_size": 32, "views": 2, "seed": 0}
    Trainer(enc, cfg).fit(imgs[tr])
    r = evaluate(enc)
    drift = float((1 - torch.nn.functional.cosine_similarity(r["clean"], base["clean"])).mean())
    print(f"method={cfg['method']} alpha={alpha} steps={steps} time={time.time()-t0:.0f}s", json.dumps(
        {"dr_mean": r["dr_mean"], "probe": r["probe"], "probe_cv": r["probe_cv"], "C_cv": r["C_cv"], "drift_1mcos": drift, "dr": r["dr"]}), flush=True)
