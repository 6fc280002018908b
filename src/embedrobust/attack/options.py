"""The attacks' hyper-parameters as data: the default budget and steps of L-inf PGD, the options of the dense
heads and of the attacked linear probe, and which attack and metric each dense task uses. Config validation reads
them without importing torch.
"""

from __future__ import annotations

EPS = 8 / 255  # L-inf radius, [0, 1] pixel units
STEPS = 20
STEP_SIZE = 2 / 255

DENSE_DEFAULTS: dict = {
    "lr": [0.01, 0.03, 0.1],  # head learning-rate candidates (Adam)
    "train_steps": [50, 100, 200],  # checkpoints along each lr's run; the largest is the run's length
    "train_batch_size": 32,  # images per head training step
    "batch_size": 32,  # images per encoder forward / attack batch
    "steps": STEPS,  # attack steps
    "step_size": STEP_SIZE,  # attack step, [0, 1] pixel units
    "depth_loss": "l1",  # DepthPGD objective: "l1" or "silog"
    "ignore_index": 255,
    "n_classes": None,  # segmentation: from meta["n_classes"], else max train label + 1
}
CLASSIFIER_DEFAULTS: dict = {
    "C": [0.01, 0.1, 1.0, 10.0],  # logistic-regression inverse regularisation candidates
    "val_fraction": 0.2,  # carved from train when the split has no "val" images
    "max_iter": 1000,
    "batch_size": 32,
    "steps": STEPS,
    "step_size": STEP_SIZE,
}
ATTACKS = {"segmentation": "segpgd", "depth": "depthpgd"}
METRICS = {"segmentation": "miou", "depth": "rmse"}
