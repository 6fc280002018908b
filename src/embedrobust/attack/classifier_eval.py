"""A linear probe on a frozen encoder, clean and under cross-entropy PGD: the probe is fitted on clean ``train``
images, its C chosen on ``val``, and it is scored on the full ``test`` split; PGD starts are drawn from generators
seeded from (seed, "pgd", eps, batch start), so a run is reproducible to the byte on CPU."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..core import Condition, derived_seed
from ..downstream.classifiers import LinearProbe, fit_logistic, l2_normalise, select_c
from .common import COLUMNS, as_float, as_list, batches, merged_options
from .features import pooled_features
from .linf import AttackError, pgd_classifier
from .options import CLASSIFIER_DEFAULTS

log = logging.getLogger(__name__)


@torch.no_grad()
def _pooled(encoder, images: Tensor, batch_size: int) -> np.ndarray:
    parts = [pooled_features(encoder, as_float(images[b])).cpu() for b in batches(images.shape[0], batch_size)]
    return torch.cat(parts).double().numpy() if parts else np.zeros((0, encoder.embed_dim))


def select_probe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, Cs: Sequence[float],
                 max_iter: int = 1000) -> tuple[float, dict[float, float]]:
    """The C with the best val accuracy of a logistic regression on unit train embeddings (ties: smallest C),
    and every candidate's val accuracy. Only train and val data are seen."""
    Cs = sorted(float(c) for c in Cs)
    if len(Cs) == 1:
        return Cs[0], {}
    if len(y_val) == 0:
        raise AttackError(f"choosing C among {Cs} needs val images; give a single C or a val split")
    return select_c(l2_normalise(x_train), y_train, l2_normalise(x_val), y_val, Cs, max_iter)


def evaluate_classifier_attack(
    encoder,
    images: Tensor,
    labels,
    split,
    eps_levels: Sequence[float],
    options: Mapping | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy of a linear probe on the frozen encoder, clean and under cross-entropy PGD at each eps.

    The probe (multinomial logistic regression on unit-norm pooled embeddings, as ``downstream.LinearProbe``) is
    fitted for every C on the train images, C is chosen on the val images, then it is refit on train + val.
    Test images are attacked end to end through the encoder (full preprocessing) and the probe.

    Args:
        encoder: an ``embedrobust.models.Encoder``.
        images: (N, 3, H, W) uint8 or float in [0, 1], any size (the encoder's preprocessing applies).
        labels: (N,) int class labels.
        split: (N,) strings ``train`` / ``val`` / ``test``; with no ``val`` image the probe is
            ``downstream.LinearProbe`` (its seeded ``val_fraction`` carving, C chosen there, refit on train), the
            probe the downstream stage reports.
        eps_levels: L-inf radii in [0, 1] pixel units (eps 0 gives the clean accuracy).
        options: see ``CLASSIFIER_DEFAULTS`` (C candidates, val_fraction, max_iter, batch_size, steps, step_size).
        seed: seeds the val carving and the PGD random starts.
    Returns:
        A clean row, then one per eps: task (``classification``), kind (clean / attack), family (clean / ``pgd``),
        value (NaN / eps), condition (``clean`` / ``pgd@eps``), metric (``accuracy``), metric_value, n_images
        (test images), target_aligned (True), C (chosen), val_accuracy (the chosen C's; NaN with one C).
        ``df.attrs["selection"]`` maps every C to its val accuracy.
    """
    opts = merged_options(CLASSIFIER_DEFAULTS, options)
    labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64)
    split = np.asarray(split, dtype=object)
    if len(labels) != images.shape[0] or len(split) != images.shape[0]:
        raise AttackError(f"images ({images.shape[0]}), labels ({len(labels)}) and split ({len(split)}) differ "
                          f"in length")
    bad = sorted(set(split) - {"train", "val", "test"})
    if bad:
        raise AttackError(f"unknown split values {bad}; expected train, val or test")
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    if len(test) == 0 or len(np.unique(labels[train])) < 2:
        raise AttackError("the classifier attack needs test images and train images of at least two classes")
    bs = int(opts["batch_size"])
    log.info("classifier attack: embedding %d train, %d val, %d test images", len(train), len(val), len(test))
    emb = _pooled(encoder, images[np.concatenate([train, val])], bs)
    if len(val):
        x_tr, x_va = emb[: len(train)], emb[len(train):]
        c, scores = select_probe(x_tr, labels[train], x_va, labels[val], as_list(opts["C"]), int(opts["max_iter"]))
        probe = fit_logistic(l2_normalise(emb), labels[np.concatenate([train, val])], c, int(opts["max_iter"]))
    else:
        # No val split: the downstream stage's LinearProbe, same val carving (seeded) and tie rule, so the probe
        # attacked here is the one whose clean accuracy the downstream stage reports.
        fitted = LinearProbe(emb, labels[train], int(labels.max()) + 1, as_list(opts["C"]),
                             float(opts["val_fraction"]), int(opts["max_iter"]), seed)
        c, scores, probe = fitted.C, fitted.val_accuracy, fitted.model
    log.info("classifier attack: C=%g (val accuracy %s)", c, scores.get(c, "n/a"))

    device = encoder.device
    n_classes = int(labels.max()) + 1  # probe.classes_ is a subset of the labels
    coef = torch.as_tensor(probe.coef_, dtype=torch.float32, device=device)
    intercept = torch.as_tensor(probe.intercept_, dtype=torch.float32, device=device)
    if coef.shape[0] == 1:  # binary: sklearn scores classes_[1] against classes_[0]
        coef, intercept = torch.cat([torch.zeros_like(coef), coef]), torch.cat([torch.zeros_like(intercept), intercept])
    cols = torch.as_tensor(probe.classes_, device=device)

    def logits(x: Tensor) -> Tensor:
        z = pooled_features(encoder, x)
        z = z / z.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        out = torch.full((z.shape[0], n_classes), -1e4, device=z.device, dtype=z.dtype)  # classes absent in train
        out[:, cols] = z @ coef.T + intercept
        return out

    x_te, y_te = images[test], torch.as_tensor(labels[test], device=device)
    rows = []
    val_acc = scores.get(c, math.nan)

    def add_row(kind, family, value, label, acc):
        rows.append({"task": "classification", "kind": kind, "family": family, "value": value, "condition": label,
                     "metric": "accuracy", "metric_value": acc, "n_images": len(test), "target_aligned": True,
                     "C": c, "val_accuracy": val_acc})

    for eps in [None, *(float(e) for e in eps_levels)]:
        correct = 0
        for b in batches(len(test), bs):
            x, y = as_float(x_te[b]).to(device), y_te[b]
            if eps is not None:
                gen = torch.Generator(device=device).manual_seed(derived_seed(seed, "pgd", eps, b.start))
                x = pgd_classifier(logits, x, y, eps, int(opts["steps"]), float(opts["step_size"]), gen)
            with torch.no_grad():
                correct += int((logits(x).argmax(1) == y).sum())
        acc = correct / len(test)
        if eps is None:
            add_row("clean", "clean", math.nan, "clean", acc)
        else:
            add_row("attack", "pgd", eps, Condition("pgd", eps).label, acc)
        log.info("classifier attack %s: accuracy %.4f", "clean" if eps is None else f"pgd@{eps:g}", acc)
    df = pd.DataFrame(rows, columns=[*COLUMNS, "C", "val_accuracy"])
    df.attrs["selection"] = scores
    return df
