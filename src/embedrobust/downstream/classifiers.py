"""Classifiers on stored embeddings: zero-shot (text embeddings), linear probe and k-nearest neighbours.

Each classifier is built from clean train-split data once and then scores many test matrices. ``scores``
returns three (n, C) float64 arrays: ``primary`` and ``secondary`` rank the classes (higher first, then
lower label), and ``proba`` gives the probability reported as ``p_true``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from embedrobust.errors import DataError


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (n, D) scaled to unit L2 norm in float64; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def rank_classes(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Class indices (n, C) from best to worst: by ``primary`` desc, then ``secondary`` desc, then label asc."""
    # lexsort is stable, so equal keys keep ascending label order
    return np.lexsort((-secondary, -primary), axis=-1)


class ZeroShot:
    """CLIP zero-shot: cosine similarity of unit image embeddings to unit class text embeddings (C, D)."""

    # CLIP's learned logit scale saturates at 100 (Radford et al. 2021); softmax(100 * cos) is its class posterior
    logit_scale = 100.0

    def __init__(self, text_embedding: np.ndarray):
        self.text = l2_normalise(text_embedding)

    def scores(self, x: np.ndarray):
        logits = l2_normalise(x) @ self.text.T
        z = self.logit_scale * logits
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return logits, np.zeros_like(logits), z / z.sum(axis=1, keepdims=True)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    """Multinomial logistic regression (lbfgs) of ``y`` on ``x`` at inverse regularisation ``c``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter, solver="lbfgs")
    with warnings.catch_warnings():
        # a C that does not converge within max_iter is still a valid candidate; validation judges it
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def select_c(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, Cs,
             max_iter: int) -> tuple[float, dict[float, float]]:
    """The C with the best val accuracy (ties: the smallest C, the strongest regularisation) and every C's val
    accuracy, for ``fit_logistic`` on unit embeddings ``x_train`` (n, D) / ``x_val`` (m, D)."""
    Cs = sorted(float(c) for c in Cs)
    scores = {c: float(np.mean(fit_logistic(x_train, y_train, c, max_iter).predict(x_val) == y_val)) for c in Cs}
    return max(Cs, key=lambda c: (scores[c], -c)), scores


class LinearProbe:
    """Multinomial logistic regression on unit clean train embeddings, C chosen on a seeded validation split.

    ``x`` (n, D) train embeddings, ``y`` (n,) labels in [0, n_classes). The validation split holds
    ``val_fraction`` of the train images, stratified by label when every class has at least two images and
    both parts can hold every class; the C with the best validation accuracy wins (ties: the smallest C,
    i.e. the strongest regularisation), then the model is refit on all train images.
    """

    def __init__(self, x, y, n_classes: int, Cs, val_fraction: float, max_iter: int, seed: int):
        from sklearn.model_selection import train_test_split

        x = l2_normalise(x)
        y = np.asarray(y, dtype=np.int64)
        if np.unique(y).size < 2:
            raise DataError(
                "the linear probe needs clean train images of at least two classes; add train images "
                "or drop linear_probe from downstream.tasks."
            )
        self.n_classes = n_classes
        self.max_iter = max_iter
        self.Cs = sorted(float(c) for c in Cs)
        self.val_accuracy: dict[float, float] = {}
        best = self.Cs[0]
        if len(self.Cs) > 1:
            n_val = math.ceil(val_fraction * len(y))
            counts = np.bincount(y)
            n_cls = np.count_nonzero(counts)
            stratify = (
                y if counts[counts > 0].min() >= 2 and n_cls <= n_val <= len(y) - n_cls else None
            )
            idx = np.arange(len(y))
            tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
            if np.unique(y[tr]).size < 2:
                raise DataError(
                    "too few clean train images to carve a validation split for the linear probe; add train "
                    "images, give a single C in downstream.linear_probe.C, or lower val_fraction."
                )
            best, self.val_accuracy = select_c(x[tr], y[tr], x[va], y[va], self.Cs, max_iter)
        self.C = best
        self.model = fit_logistic(x, y, best, max_iter)

    def scores(self, x: np.ndarray):
        x = l2_normalise(x)
        proba = np.zeros((len(x), self.n_classes))
        proba[:, self.model.classes_] = self.model.predict_proba(x)
        primary = np.full_like(proba, -np.inf)
        dec = self.model.decision_function(x)
        if dec.ndim == 1:  # binary: sklearn returns the score of classes_[1] only
            dec = np.stack([-dec, dec], axis=1)
        primary[:, self.model.classes_] = dec
        return primary, np.zeros_like(proba), proba


class KNN:
    """k-nearest-neighbour vote by cosine similarity to unit clean train embeddings.

    The k neighbours are the most similar train images, ties at the k-th similarity going to the lowest
    train index. Classes rank by vote count, then by summed similarity of their voters, then lowest label.
    ``proba`` is the vote fraction.
    """

    # bounds the (rows, n_train) float64 similarity block to 128 MiB
    block_elements = 2**24

    def __init__(self, x, y, n_classes: int, k: int):
        self.x = l2_normalise(x)
        self.y = np.asarray(y, dtype=np.int64)
        self.n_classes = n_classes
        self.k = min(int(k), len(self.y))
        if self.k < 1:
            raise DataError("kNN needs clean train images; add train images or drop knn from downstream.tasks.")

    def scores(self, x: np.ndarray):
        x = l2_normalise(x)
        n, k = len(x), self.k
        votes = np.zeros((n, self.n_classes))
        simsum = np.zeros((n, self.n_classes))
        rows = max(1, self.block_elements // len(self.y))
        for start in range(0, n, rows):
            sim = x[start : start + rows] @ self.x.T
            kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1 : k]
            above = sim > kth
            need = k - above.sum(axis=1, keepdims=True)
            tied = sim == kth
            chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
            r, c = np.nonzero(chosen)
            np.add.at(votes, (start + r, self.y[c]), 1.0)
            np.add.at(simsum, (start + r, self.y[c]), sim[r, c])
        return votes, simsum, votes / k
