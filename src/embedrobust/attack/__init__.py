"""Worst-case perturbations: L-inf PGD in [0, 1] pixel space and the attacks built on it.

- ``pgd``: the generic loop (uniform random start, sign steps, projection, clamping to [0, 1]);
- ``embed_attack``: maximise the distance of (pooled or patch) embeddings from the clean ones;
- ``pgd_classifier`` (cross-entropy), ``segpgd`` (SegPGD), ``depthpgd`` (depth loss) for task heads;
- ``dense``: linear segmentation / depth heads on frozen encoders, mIoU and RMSE;
- ``synthetic``: tiny dense tasks for tests;
- ``family``: the ``embed_attack`` perturbation family (imported on demand, it registers itself).
"""

from .dense import (
    LinearDepthHead,
    LinearSegHead,
    dense_forward,
    fit_depth_head,
    fit_seg_head,
    miou,
    predict,
    rmse,
)
from .features import features_and_tokens, model_input, patch_tokens, pooled_features
from .pgd import EPS, STEP_SIZE, STEPS, AttackError, depth_loss, depthpgd, embed_attack, pgd, pgd_classifier, segpgd
from .synthetic import depth_ramps, shapes_segmentation

__all__ = [
    "EPS", "STEPS", "STEP_SIZE", "AttackError", "LinearDepthHead", "LinearSegHead", "dense_forward", "depth_loss",
    "depth_ramps", "depthpgd", "embed_attack", "features_and_tokens", "fit_depth_head", "fit_seg_head", "miou",
    "model_input", "patch_tokens", "pgd", "pgd_classifier", "pooled_features", "predict", "rmse", "segpgd",
    "shapes_segmentation",
]
