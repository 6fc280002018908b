"""Dense-task robustness of a frozen encoder: a linear head (segmentation mIoU, depth RMSE; ``tasks``) fitted on
clean images, scored clean, under every condition of the perturbation grid and under the task attack.

Protocol:

- heads are fitted on clean ``train`` images only; their learning rate and number of Adam steps are selected on
  the ``val`` split (carved from train), never on ``test``; every row is scored on the full ``test`` split;
- perturbations run batched with a ``torch.Generator`` seeded from (seed, family, value, batch start), attacks
  (SegPGD, DepthPGD) likewise from (seed, attack, eps, batch start), so a run is reproducible to the byte on CPU.

Geometric families move pixels: for ``rotate`` and ``crop_resize`` the targets get the same transform (nearest
neighbour; uncovered pixels become ignore / unknown depth). ``elastic_transform`` and combined chains with a
geometric member are scored against untransformed targets; their rows have ``target_aligned = False``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import Condition, derived_seed
from .common import COLUMNS, as_float, as_list, batches, merged_options
from .dense import dense_forward
from .features import features_and_tokens
from .linf import AttackError
from .options import DENSE_DEFAULTS
from .tasks import DenseTask, dense_task

log = logging.getLogger(__name__)

GEOMETRIC = {"rotate", "crop_resize", "elastic_transform"}


def _conditions(conditions: Sequence) -> list[Condition]:
    """``Condition``s (or ``[family, value]`` pairs, ``Condition.of``), the clean one first."""
    out = [c if isinstance(c, Condition) else Condition.of(c) for c in conditions]
    if not out or not out[0].is_clean:
        out = [Condition("clean", math.nan), *[c for c in out if not c.is_clean]]
    return out


def transform_target(cond: Condition, target: Tensor, task: str | DenseTask, ignore_index: int) -> tuple[Tensor, bool]:
    """The target under the condition's geometry and whether it is aligned with the perturbed image."""
    parts = set(cond.family.split("+"))
    if cond.is_clean or not parts & GEOMETRIC:
        return target, True
    if cond.family not in ("rotate", "crop_resize"):
        return target, False
    y = dense_task(task).to_grid(target)[:, None]  # 0 marks "outside" the transformed image
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
    return dense_task(task).from_grid(y[:, 0], target.dtype, ignore_index), True


@torch.no_grad()
def _cached_features(encoder, images: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Pooled (N, Dg) and patch tokens (N, Dp, h, w) of clean images, float32 on the CPU."""
    pooled, patches = [], []
    for b in batches(images.shape[0], batch_size):
        p, t = features_and_tokens(encoder, as_float(images[b]), dense=True)
        pooled.append(p.cpu())
        patches.append(t.cpu())
    return torch.cat(pooled), torch.cat(patches)


def _head_score(task: DenseTask, head, pooled, patches, target, size, n_classes, ignore_index, batch_size,
                device) -> float:
    acc = task.accumulator(n_classes, ignore_index)
    with torch.no_grad():
        for b in batches(pooled.shape[0], batch_size):
            out = head(pooled[b].to(device), patches[b].to(device), size)
            acc.add(task.predict(out), target[b])
    return acc.value()


def fit_select_head(encoder, task: str | DenseTask, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor],
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
    opts = merged_options(DENSE_DEFAULTS, options)
    kind = dense_task(task)
    lrs = sorted(float(v) for v in as_list(opts["lr"]))
    checkpoints = sorted(int(v) for v in as_list(opts["train_steps"]))
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
    if kind.needs_classes and n_classes is None:
        n_classes = int(y_tr[y_tr != ignore].max()) + 1
    size = tuple(x_tr.shape[-2:])
    log.info("dense %s: features of %d train and %d val images", task, x_tr.shape[0], x_va.shape[0])
    p_tr, t_tr = _cached_features(encoder, x_tr, int(opts["batch_size"]))
    p_va, t_va = _cached_features(encoder, x_va, int(opts["batch_size"])) if x_va.shape[0] else (None, None)
    y_tr_dev = y_tr.to(device)

    # The start every candidate trains from (zero weights, feature statistics of the train set), built once:
    # the statistics pass over the cached features is as large as the features themselves.
    start = kind.start_head(p_tr, t_tr, y_tr, n_classes).to(device)

    def new_head():
        return copy.deepcopy(start)

    def loss(head, b):
        out = head(p_tr[b].to(device), t_tr[b].to(device), size)
        return kind.loss(out, y_tr_dev[b.to(device)], ignore)

    selection, best_state, best_score, chosen = [], None, math.nan, 0
    bs, n = int(opts["train_batch_size"]), x_tr.shape[0]
    for lr in lrs:
        head = new_head()
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(derived_seed(seed, "dense-head", kind.name))
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
                score = (_head_score(kind, head, p_va, t_va, y_va, size, n_classes, ignore, int(opts["batch_size"]),
                                     device) if p_va is not None else math.nan)
                selection.append({"lr": lr, "steps": step, "val_metric": score, "selected": False})
                if best_state is None or kind.better(score, best_score):
                    best_state, best_score = copy.deepcopy(head.state_dict()), score
                    chosen = len(selection) - 1
                log.info("dense %s head lr=%g steps=%d: val %s %.4f", kind.name, lr, step, kind.metric, score)
    selection[chosen]["selected"] = True
    head = new_head()
    head.load_state_dict(best_state)
    head.eval()
    return head, selection


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
    x = F.interpolate(as_float(images), size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    y = F.interpolate(targets[:, None].double(), size=size, mode="nearest-exact")[:, 0].to(targets.dtype)
    return x, y


def evaluate_dense(
    encoder,
    data: Mapping[str, Sequence],
    task: str | DenseTask,
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

    kind = dense_task(task)
    opts = merged_options(DENSE_DEFAULTS, options)
    attacks = dict(attacks or {})
    wrong = sorted(set(attacks) - {kind.attack})
    if wrong:
        raise AttackError(f"attacks {wrong} do not apply to {kind.name}; use {kind.attack!r}")
    meta = next((part[2] for part in data.values() if len(part) > 2 and isinstance(part[2], Mapping)), {})
    n_classes = opts["n_classes"] or meta.get("n_classes")
    ignore = int(opts["ignore_index"])
    train = _resize_to(encoder, *_split_data(data, "train"))
    val = _resize_to(encoder, *_split_data(data, "val"))
    x_te, y_te = _resize_to(encoder, *_split_data(data, "test"))
    if kind.needs_classes and n_classes is None:
        n_classes = int(train[1][train[1] != ignore].max()) + 1
    device, bs, n_test = encoder.device, int(opts["batch_size"]), int(x_te.shape[0])
    if n_test == 0:  # before the head search, which is the costly part
        raise AttackError("the test split is empty; nothing to evaluate")
    head, selection = fit_select_head(encoder, kind, train, val, n_classes, opts, seed)
    chosen = next(s for s in selection if s["selected"])
    forward = dense_forward(encoder, head)

    def predict(x: Tensor) -> Tensor:
        with torch.no_grad():
            out = forward(x)
        return kind.predict(out)

    rows = []

    task_name = kind.name

    def add_row(row_kind, family, value, label, score, aligned):
        rows.append({"task": task_name, "kind": row_kind, "family": family, "value": value, "condition": label,
                     "metric": kind.metric, "metric_value": score, "n_images": n_test, "target_aligned": aligned,
                     "head_lr": chosen["lr"], "head_steps": chosen["steps"], "val_metric": chosen["val_metric"]})

    # EmbedAttack on a dense task pushes the patch tokens the head reads, not the pooled embedding (issue #8)
    family_options = {**(family_options or {})}
    family_options["embed_attack"] = {"tokens": "patch", **family_options.get("embed_attack", {})}
    conds = _conditions(conditions)
    for cond, fn in zip(conds, bind_perturbations(conds, encoder, family_options)):
        acc = kind.accumulator(n_classes, ignore)
        aligned = True
        for b in batches(n_test, bs):
            x = as_float(x_te[b]).to(device)
            if fn is not None:
                gen = torch.Generator(device=device).manual_seed(derived_seed(seed, cond.family, cond.value, b.start))
                x = fn(x, cond.value, gen)
            y, aligned = transform_target(cond, y_te[b], kind, ignore)
            acc.add(predict(x), y.to(device))
        score = acc.value()
        add_row("clean" if cond.is_clean else "perturbation", cond.family, cond.value, cond.label, score, aligned)
        log.info("dense %s %s: %s %.4f", kind.name, cond.label, kind.metric, score)

    for name, levels in attacks.items():
        for eps in as_list(levels):
            eps = float(eps)
            acc = kind.accumulator(n_classes, ignore)
            for b in batches(n_test, bs):
                x, y = as_float(x_te[b]).to(device), y_te[b].to(device)
                gen = torch.Generator(device=device).manual_seed(derived_seed(seed, name, eps, b.start))
                adv = kind.attack_batch(forward, x, y, eps, opts, gen, ignore)
                acc.add(predict(adv), y)
            score = acc.value()
            add_row("attack", name, eps, Condition(name, eps).label, score, True)
            log.info("dense %s %s@%g: %s %.4f", kind.name, name, eps, kind.metric, score)

    df = pd.DataFrame(rows, columns=[*COLUMNS, "head_lr", "head_steps", "val_metric"])
    df.attrs["selection"] = selection
    return df
