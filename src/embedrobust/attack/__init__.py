"""Worst-case perturbations: L-inf PGD in [0, 1] pixel space and the attacks built on it.

- ``pgd`` (module ``linf``): the generic loop (uniform random start, sign steps, projection, clamping to [0, 1]);
- ``embed_attack``: maximise the distance of (pooled or patch) embeddings from the clean ones;
- ``pgd_classifier`` (cross-entropy), ``segpgd`` (SegPGD), ``depthpgd`` (depth loss) for task heads;
- ``dense``: linear segmentation / depth heads on frozen encoders, mIoU and RMSE;
- ``tasks``: the dense tasks (``DenseTask``: segmentation, depth), each with its head, loss, metric and attack;
- ``dense_eval``: dense heads under the grid and SegPGD / DepthPGD; ``classifier_eval``: a linear probe under
  cross-entropy PGD; both select hyper-parameters on val and score on test (``common``: their shared helpers);
- ``synthetic``: tiny dense tasks for tests;
- ``options``: the default budget and steps, the dense heads' and the attacked probe's options (no torch);
- ``family``: the function of the ``embed_attack`` perturbation family (declared in ``perturb.catalog``).
"""

from .._lazy import lazy_exports

__all__ = [
    "CLASSIFIER_DEFAULTS", "DENSE_DEFAULTS", "DENSE_TASKS", "EPS", "STEPS", "STEP_SIZE", "AttackError", "DenseTask",
    "LinearDepthHead", "LinearSegHead", "dense_forward", "dense_task", "depth_loss", "depth_ramps", "depthpgd",
    "embed_attack", "evaluate_classifier_attack", "evaluate_dense", "features_and_tokens", "fit_select_head",
    "fit_depth_head", "fit_seg_head", "miou", "model_input", "patch_tokens", "pgd", "pgd_classifier",
    "pooled_features", "predict", "rmse", "segpgd", "select_probe", "shapes_segmentation",
]

# Loaded on first use: embed_attack's first call imports ``family`` (and with it this package), and config
# validation reads ``options``; neither should pull in the evaluation code (pandas, the classifiers) or torch.
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["LinearDepthHead", "LinearSegHead", "dense_forward", "fit_depth_head", "fit_seg_head", "miou",
                     "predict", "rmse"], "dense"),
    **dict.fromkeys(["evaluate_dense", "fit_select_head"], "dense_eval"),
    **dict.fromkeys(["evaluate_classifier_attack", "select_probe"], "classifier_eval"),
    **dict.fromkeys(["DENSE_TASKS", "DenseTask", "dense_task"], "tasks"),
    **dict.fromkeys(["features_and_tokens", "model_input", "patch_tokens", "pooled_features"], "features"),
    **dict.fromkeys(["CLASSIFIER_DEFAULTS", "DENSE_DEFAULTS", "EPS", "STEP_SIZE", "STEPS"], "options"),
    **dict.fromkeys(["AttackError", "depth_loss", "depthpgd", "embed_attack", "pgd",
                     "pgd_classifier", "segpgd"], "linf"),
    **dict.fromkeys(["depth_ramps", "shapes_segmentation"], "synthetic"),
})
