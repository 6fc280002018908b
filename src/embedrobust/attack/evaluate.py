"""Task-level robustness on frozen encoders: dense heads (segmentation mIoU, depth RMSE) and a linear classifier,
each evaluated clean, under every condition of the perturbation grid and under task attacks.

Protocol (issue #8):

- heads / probes are fitted on clean ``train`` images only; their hyper-parameters (head learning rate and
  number of Adam steps, the probe's C) are selected on the ``val`` split (carved from train), never on ``test``;
- every row is scored on the full ``test`` split;
- perturbations run batched with a ``torch.Generator`` seeded from (seed, family, value, batch start), attacks
  (SegPGD, DepthPGD, cross-entropy PGD) likewise from (seed, attack, eps, batch start), so a run is
  reproducible to the byte on CPU.

Geometric families move pixels: for ``rotate`` and ``crop_resize`` the targets get the same transform (nearest
neighbour; uncovered pixels become ignore / unknown depth). ``elastic_transform`` and combined chains with a
geometric member are scored against untransformed targets; their rows have ``target_aligned = False``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Condition
from ..downstream.classifiers import LinearProbe, fit_logistic, l2_normalise, select_c
from .dense import LinearDepthHead, LinearSegHead, dense_forward
from .features import features_and_tokens, pooled_features
from .options import ATTACKS, CLASSIFIER_DEFAULTS, DENSE_DEFAULTS, METRICS
from .linf import AttackError, depthpgd, pgd_classifier, segpgd

log = logging.getLogger(__name__)

COLUMNS = ["task", "kind", "family", "value", "condition", "metric", "metric_value", "n_images", "target_aligned"]
GEOMETRIC = {"rotate", "crop_resize", "elastic_transform"}


def derived_seed(*parts) -> int:
    """A 63-bit seed from ``parts`` (their reprs), independent of the order in which draws are made."""
    key = "|".join(repr(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)


def _options(defaults: dict, options: Mapping | None) -> dict:
    opts = {**defaults, **(options or {})}
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise AttackError(f"unknown options {unknown}; known: {sorted(defaults)}")
    return opts


def _as_float(images: Tensor) -> Tensor:
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def _batches(n: int, size: int) -> Iterable[slice]:
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _conditions(conditions: Sequence) -> list[Condition]:
    out = [c if isinstance(c, Condition)
           else Condition("clean", math.nan) if str(c[0]) == "clean"
           else Condition(str(c[0]), float(c[1])) for c in conditions]
    if not out or not out[0].is_clean:
        out = [Condition("clean", math.nan), *[c for c in out if not c.is_clean]]
    return out


# ---------------------------------------------------------------------------------------------------- targets


def _transform_target(cond: Condition, target: Tensor, task: str, ignore_index: int) -> tuple[Tensor, bool]:
    """The target under the condition's geometry and whether it is aligned with the perturbed image."""
    parts = set(cond.family.split("+"))
    if cond.is_clean or not parts & GEOMETRIC:
        return target, True
    if cond.family not in ("rotate", "crop_resize"):
        return target, False
    seg = task == "segmentation"
    y = (target.double() + 1) if seg else target.double()  # shift so that 0 marks "outside"
    y = y[:, None]
    h, w = target.shape[-2:]
    if cond.family == "crop_resize":
        ch, cw = max(round(h * cond.value), 1), max(round(w * cond.value), 1)
        top, left = (h - ch) // 2, (w - cw) // 2
        y = F.interpolate(y[..., top:top + ch, left:left + cw], size=(h, w), mode="nearest-exact")
    else:  # rotate, with geometric.rotate's sampling grid
        t = -math.radians(cond.value)
        theta = torch.tensor([[math.cos(t), math.sin(t) * h / w, 0.0], [-math.sin(t) * w / h, math.cos(t), 0.0]],
                             dtype=y.dtype, device=y.device)
        grid = F.affine_grid(theta.expand(y.shape[0], 2, 3), list(y.shape), align_corners=False)
        y = F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    y = y[:, 0]
    if seg:
        return torch.where(y > 0, y - 1, float(ignore_index)).round().to(target.dtype), True
    return y.to(target.dtype), True


# ---------------------------------------------------------------------------------------------------- metrics


class _SegCounts:
    """Dataset-level intersection / prediction / target pixel counts per class (exact integers)."""

    def __init__(self, n_classes: int, ignore_index: int):
        self.n, self.ignore = n_classes, ignore_index
        self.inter = torch.zeros(n_classes, dtype=torch.int64)
        self.pred = torch.zeros(n_classes, dtype=torch.int64)
        self.true = torch.zeros(n_classes, dtype=torch.int64)

    def add(self, pred: Tensor, target: Tensor) -> None:
        pred, target = pred.cpu(), target.cpu()
        valid = target != self.ignore
        p, t = pred[valid].long(), target[valid].long()
        self.inter += torch.bincount(t[p == t], minlength=self.n)[: self.n]
        self.pred += torch.bincount(p, minlength=self.n)[: self.n]
        self.true += torch.bincount(t, minlength=self.n)[: self.n]

    def value(self) -> float:  # as dense.miou: mean over classes present in prediction or target
        inter, union = self.inter.double(), (self.pred + self.true - self.inter).double()
        present = union > 0
        return float((inter[present] / union[present]).mean()) if present.any() else float("nan")


class _DepthErrors:
    def __init__(self):
        self.sq, self.count = 0.0, 0

    def add(self, pred: Tensor, target: Tensor) -> None:
        pred, target = pred.cpu(), target.cpu()
        valid = target > 0
        self.sq += float((pred[valid].double() - target[valid].double()).pow(2).sum())
        self.count += int(valid.sum())

    def value(self) -> float:
        return math.sqrt(self.sq / self.count) if self.count else float("nan")


def _accumulator(task: str, n_classes: int, ignore_index: int):
    return _SegCounts(n_classes, ignore_index) if task == "segmentation" else _DepthErrors()


def _better(task: str, a: float, b: float) -> bool:
    """Whether score ``a`` beats ``b`` (strictly): higher mIoU, lower RMSE."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if task == "segmentation" else a < b


# ---------------------------------------------------------------------------------------------------- dense


@torch.no_grad()
def _cached_features(encoder, images: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Pooled (N, Dg) and patch tokens (N, Dp, h, w) of clean images, float32 on the CPU."""
    pooled, patches = [], []
    for b in _batches(images.shape[0], batch_size):
        p, t = features_and_tokens(encoder, _as_float(images[b]), dense=True)
        pooled.append(p.cpu())
        patches.append(t.cpu())
    return torch.cat(pooled), torch.cat(patches)


def _head_score(task, head, pooled, patches, target, size, n_classes, ignore_index, batch_size, device) -> float:
    acc = _accumulator(task, n_classes, ignore_index)
    with torch.no_grad():
        for b in _batches(pooled.shape[0], batch_size):
            out = head(pooled[b].to(device), patches[b].to(device), size)
            acc.add(out.argmax(1) if task == "segmentation" else out, target[b])
    return acc.value()


def fit_select_head(encoder, task: str, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor],
                    n_classes: int | None = None, options: Mapping | None = None, seed: int = 0):
    """Fit linear dense heads on clean train images for every (lr, steps) candidate and keep the best on val.

    Each learning rate gets one Adam run of ``max(train_steps)`` steps (mini-batches of ``train_batch_size``
    drawn with a generator seeded from ``seed``); the head is scored on ``val`` at every ``train_steps``
    checkpoint. Ties go to the earlier candidate (smaller lr, fewer steps). Clean train / val features are
    computed once and cached on the CPU (N x Dp x h x w float32: about 0.6 MB per image for a ViT-B/16 at 224 px;
    cap large sets with the fetcher's ``n_train``).

    Args:
        task: ``"segmentation"`` (LinearSegHead on patch tokens, cross-entropy) or ``"depth"``
            (LinearDepthHead on [pooled, patch tokens], squared error on valid pixels).
        train, val: (images (N, 3, S, S) uint8 or float in [0, 1] at ``encoder.input_size``, targets (N, S, S)).
    Returns:
        (head in eval mode on the encoder's device, selection: list of dicts lr / steps / val_metric, the chosen
        one marked ``selected: True``).
    """
    opts = _options(DENSE_DEFAULTS, options)
    lrs = sorted(float(v) for v in _as_list(opts["lr"]))
    checkpoints = sorted(int(v) for v in _as_list(opts["train_steps"]))
    if not lrs or not checkpoints or checkpoints[0] < 1:
        raise AttackError("options 'lr' and 'train_steps' need at least one value each (steps >= 1)")
    ignore = int(opts["ignore_index"])
    device = encoder.device
    x_tr, y_tr = train
    x_va, y_va = val
    if x_tr.shape[0] == 0:
        raise AttackError("dense heads need clean train images; the train split is empty")
    n_candidates = len(lrs) * len(checkpoints)
    if x_va.shape[0] == 0 and n_candidates > 1:
        raise AttackError(f"{n_candidates} head candidates (lr x train_steps) need a non-empty val split to choose "
                          f"from; give one lr and one train_steps, or a val_fraction > 0 when fetching")
    if task == "segmentation" and n_classes is None:
        n_classes = int(y_tr[y_tr != ignore].max()) + 1
    size = tuple(x_tr.shape[-2:])
    log.info("dense %s: features of %d train and %d val images", task, x_tr.shape[0], x_va.shape[0])
    p_tr, t_tr = _cached_features(encoder, x_tr, int(opts["batch_size"]))
    p_va, t_va = _cached_features(encoder, x_va, int(opts["batch_size"])) if x_va.shape[0] else (None, None)
    y_tr_dev = y_tr.to(device)

    # The start every candidate trains from (zero weights, feature statistics of the train set), built once:
    # the statistics pass over the cached features is as large as the features themselves.
    if task == "segmentation":
        start = LinearSegHead(t_tr.shape[1], n_classes)
        start.norm.fit(t_tr)
    else:
        start = LinearDepthHead(p_tr.shape[1], t_tr.shape[1])
        start.norm.fit(LinearDepthHead.concat(p_tr, t_tr))
        with torch.no_grad():  # start at the constant predictor (mean train depth)
            start.proj.bias.fill_(float(y_tr[y_tr > 0].mean()))
    start = start.to(device)

    def new_head():
        return copy.deepcopy(start)

    def loss(head, b):
        out = head(p_tr[b].to(device), t_tr[b].to(device), size)
        y = y_tr_dev[b.to(device)]
        if task == "segmentation":
            return F.cross_entropy(out, y, ignore_index=ignore)
        valid = y > 0
        return (out - y)[valid].pow(2).mean()

    selection, best_state, best_score, chosen = [], None, math.nan, 0
    bs, n = int(opts["train_batch_size"]), x_tr.shape[0]
    for lr in lrs:
        head = new_head()
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(derived_seed(seed, "dense-head", task))
        with torch.inference_mode(False), torch.enable_grad():
            for step in range(1, checkpoints[-1] + 1):
                head.train()
                idx = torch.randperm(n, generator=gen)[:bs]
                opt.zero_grad(set_to_none=True)
                loss(head, idx).backward()
                opt.step()
                if step not in checkpoints:
                    continue
                head.eval()
                score = (_head_score(task, head, p_va, t_va, y_va, size, n_classes, ignore, int(opts["batch_size"]),
                                     device) if p_va is not None else math.nan)
                selection.append({"lr": lr, "steps": step, "val_metric": score, "selected": False})
                if best_state is None or _better(task, score, best_score):
                    best_state, best_score = copy.deepcopy(head.state_dict()), score
                    chosen = len(selection) - 1
                log.info("dense %s head lr=%g steps=%d: val %s %.4f", task, lr, step, METRICS[task], score)
    selection[chosen]["selected"] = True
    head = new_head()
    head.load_state_dict(best_state)
    head.eval()
    return head, selection


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _split_data(data: Mapping, split: str) -> tuple[Tensor, Tensor]:
    if split not in data:
        raise AttackError(f"data has no {split!r} split (got {sorted(data)}); pass load_dense(...) of train, val, test")
    part = data[split]
    return part[0], part[1]


def _resize_to(encoder, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Images and targets at the encoder's input size (dense inputs are not resized by the model)."""
    size = tuple(encoder.input_size)
    if tuple(images.shape[-2:]) == size:
        return images, targets
    log.warning("resizing dense images %s to the model's input size %s", tuple(images.shape[-2:]), size)
    x = F.interpolate(_as_float(images), size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    y = F.interpolate(targets[:, None].double(), size=size, mode="nearest-exact")[:, 0].to(targets.dtype)
    return x, y


def evaluate_dense(
    encoder,
    data: Mapping[str, Sequence],
    task: str,
    conditions: Sequence,
    attacks: Mapping[str, Sequence[float]] | None = None,
    options: Mapping | None = None,
    seed: int = 0,
    family_options: Mapping | None = None,
) -> pd.DataFrame:
    """Dense-task robustness of a frozen encoder: fit a linear head (selected on val), score it on test clean,
    under every perturbation condition and under the task attack at each eps.

    Args:
        encoder: an ``embedrobust.models.Encoder`` (timm or open_clip ViT / timm CNN: patch tokens are needed).
        data: ``{"train": (images, targets[, meta]), "val": ..., "test": ...}`` as ``data.dense.load_dense``
            returns (images uint8 (N, 3, S, S); targets int64 classes with 255 = ignore, or float32 depth with
            0 = unknown). Images not at ``encoder.input_size`` are resized (targets by nearest neighbour).
        task: ``"segmentation"`` (metric mIoU, attack ``segpgd``) or ``"depth"`` (RMSE, ``depthpgd``).
        conditions: the perturbation grid, ``config.Condition``s or ``(family, value)`` pairs; the clean
            condition is put first if missing.
        attacks: ``{"segpgd": [eps, ...]}`` or ``{"depthpgd": [eps, ...]}`` (eps in [0, 1] pixel units; eps 0 gives
            the clean score), or None / {} for none.
        options: see ``DENSE_DEFAULTS`` (head lr / train_steps candidates, batch sizes, attack steps / step_size,
            depth_loss, n_classes).
        seed: seeds head training, perturbations and attack starts.
        family_options: family -> keyword options (``config.family_options``), bound as the embed stage does;
            ``embed_attack`` attacks the patch tokens (``tokens: patch``) unless its options say otherwise.
    Returns:
        One row per condition, then one per attack eps, with columns ``COLUMNS`` + ``head_lr``, ``head_steps``,
        ``val_metric``: task, kind (clean / perturbation / attack), family (``clean``, the perturbation family or
        the attack), value (NaN for clean, the family's value or eps), condition (``clean`` / ``family@value``),
        metric (``miou`` / ``rmse``), metric_value, n_images (test images), target_aligned. ``df.attrs["selection"]``
        lists every head candidate's val score.
    """
    from ..embed.run import bind_perturbations  # the embed stage's binding: encoder= and family options

    if task not in METRICS:
        raise AttackError(f"task must be 'segmentation' or 'depth', got {task!r}")
    opts = _options(DENSE_DEFAULTS, options)
    attacks = dict(attacks or {})
    wrong = sorted(set(attacks) - {ATTACKS[task]})
    if wrong:
        raise AttackError(f"attacks {wrong} do not apply to {task}; use {ATTACKS[task]!r}")
    meta = next((part[2] for part in data.values() if len(part) > 2 and isinstance(part[2], Mapping)), {})
    n_classes = opts["n_classes"] or meta.get("n_classes")
    ignore = int(opts["ignore_index"])
    train = _resize_to(encoder, *_split_data(data, "train"))
    val = _resize_to(encoder, *_split_data(data, "val"))
    x_te, y_te = _resize_to(encoder, *_split_data(data, "test"))
    if task == "segmentation" and n_classes is None:
        n_classes = int(train[1][train[1] != ignore].max()) + 1
    device, bs, n_test = encoder.device, int(opts["batch_size"]), int(x_te.shape[0])
    if n_test == 0:  # before the head search, which is the costly part
        raise AttackError("the test split is empty; nothing to evaluate")
    head, selection = fit_select_head(encoder, task, train, val, n_classes, opts, seed)
    chosen = next(s for s in selection if s["selected"])
    forward = dense_forward(encoder, head)

    def predict(x: Tensor) -> Tensor:
        with torch.no_grad():
            out = forward(x)
        return out.argmax(1) if task == "segmentation" else out

    rows = []

    def add_row(kind, family, value, label, score, aligned):
        rows.append({"task": task, "kind": kind, "family": family, "value": value, "condition": label,
                     "metric": METRICS[task], "metric_value": score, "n_images": n_test, "target_aligned": aligned,
                     "head_lr": chosen["lr"], "head_steps": chosen["steps"], "val_metric": chosen["val_metric"]})

    # EmbedAttack on a dense task pushes the patch tokens the head reads, not the pooled embedding (issue #8)
    family_options = {**(family_options or {})}
    family_options["embed_attack"] = {"tokens": "patch", **family_options.get("embed_attack", {})}
    conds = _conditions(conditions)
    for cond, fn in zip(conds, bind_perturbations(conds, encoder, family_options)):
        acc = _accumulator(task, n_classes, ignore)
        aligned = True
        for b in _batches(n_test, bs):
            x = _as_float(x_te[b]).to(device)
            if fn is not None:
                gen = torch.Generator(device=device).manual_seed(derived_seed(seed, cond.family, cond.value, b.start))
                x = fn(x, cond.value, gen)
            y, aligned = _transform_target(cond, y_te[b], task, ignore)
            acc.add(predict(x), y.to(device))
        score = acc.value()
        add_row("clean" if cond.is_clean else "perturbation", cond.family, cond.value, cond.label, score, aligned)
        log.info("dense %s %s: %s %.4f", task, cond.label, METRICS[task], score)

    for name, levels in attacks.items():
        for eps in _as_list(levels):
            eps = float(eps)
            acc = _accumulator(task, n_classes, ignore)
            for b in _batches(n_test, bs):
                x, y = _as_float(x_te[b]).to(device), y_te[b].to(device)
                gen = torch.Generator(device=device).manual_seed(derived_seed(seed, name, eps, b.start))
                if task == "segmentation":
                    adv = segpgd(forward, x, y, eps, int(opts["steps"]), float(opts["step_size"]), gen, ignore)
                else:
                    adv = depthpgd(forward, x, y, eps, int(opts["steps"]), float(opts["step_size"]), gen,
                                   str(opts["depth_loss"]))
                acc.add(predict(adv), y)
            score = acc.value()
            add_row("attack", name, eps, Condition(name, eps).label, score, True)
            log.info("dense %s %s@%g: %s %.4f", task, name, eps, METRICS[task], score)

    df = pd.DataFrame(rows, columns=[*COLUMNS, "head_lr", "head_steps", "val_metric"])
    df.attrs["selection"] = selection
    return df


# ---------------------------------------------------------------------------------------------------- classifier


@torch.no_grad()
def _pooled(encoder, images: Tensor, batch_size: int) -> np.ndarray:
    parts = [pooled_features(encoder, _as_float(images[b])).cpu() for b in _batches(images.shape[0], batch_size)]
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
    opts = _options(CLASSIFIER_DEFAULTS, options)
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
        c, scores = select_probe(x_tr, labels[train], x_va, labels[val], _as_list(opts["C"]), int(opts["max_iter"]))
        probe = fit_logistic(l2_normalise(emb), labels[np.concatenate([train, val])], c, int(opts["max_iter"]))
    else:
        # No val split: the downstream stage's LinearProbe, same val carving (seeded) and tie rule, so the probe
        # attacked here is the one whose clean accuracy the downstream stage reports.
        fitted = LinearProbe(emb, labels[train], int(labels.max()) + 1, _as_list(opts["C"]),
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
        for b in _batches(len(test), bs):
            x, y = _as_float(x_te[b]).to(device), y_te[b]
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
