"""Dense tasks on a frozen encoder, one type each: what segmentation and depth mean for a head's start, loss,
prediction, score, task attack and target geometry. ``dense_task(name)`` looks one up by its params name."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .dense import LinearDepthHead, LinearSegHead
from .linf import AttackError, depthpgd, segpgd
from .options import ATTACKS, METRICS


class SegCounts:
    """Dataset-level intersection / prediction / target pixel counts per class (exact integers) -> mIoU."""

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


class DepthErrors:
    """Squared depth errors over valid pixels (depth > 0) -> RMSE (metres)."""

    def __init__(self):
        self.sq, self.count = 0.0, 0

    def add(self, pred: Tensor, target: Tensor) -> None:
        pred, target = pred.cpu(), target.cpu()
        valid = target > 0
        self.sq += float((pred[valid].double() - target[valid].double()).pow(2).sum())
        self.count += int(valid.sum())

    def value(self) -> float:
        return math.sqrt(self.sq / self.count) if self.count else float("nan")


class DenseTask:
    """A dense task: its params name, its metric (``options.METRICS``) and task attack (``options.ATTACKS``)."""

    name: str
    needs_classes = False  # whether the head's output size is a number of classes

    @property
    def metric(self) -> str:
        return METRICS[self.name]

    @property
    def attack(self) -> str:
        return ATTACKS[self.name]

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats ``b`` (strictly); NaN never beats a number."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return self._better(a, b)


class Segmentation(DenseTask):
    """Per-pixel classes (int64, ``ignore_index`` unlabelled): a linear head on patch tokens, cross-entropy,
    dataset mIoU, SegPGD."""

    name = "segmentation"
    needs_classes = True

    def _better(self, a: float, b: float) -> bool:
        return a > b

    def accumulator(self, n_classes: int, ignore_index: int) -> SegCounts:
        return SegCounts(n_classes, ignore_index)

    def start_head(self, pooled: Tensor, patches: Tensor, targets: Tensor, n_classes: int) -> LinearSegHead:
        """Zero weights, token statistics of the train set."""
        head = LinearSegHead(patches.shape[1], n_classes)
        head.norm.fit(patches)
        return head

    def loss(self, out: Tensor, y: Tensor, ignore_index: int) -> Tensor:
        return F.cross_entropy(out, y, ignore_index=ignore_index)

    def predict(self, out: Tensor) -> Tensor:
        return out.argmax(1)

    def attack_batch(self, forward, x: Tensor, y: Tensor, eps: float, opts: dict, gen, ignore_index: int) -> Tensor:
        return segpgd(forward, x, y, eps, int(opts["steps"]), float(opts["step_size"]), gen, ignore_index)

    def to_grid(self, target: Tensor) -> Tensor:
        return target.double() + 1  # shifted, so that 0 marks "outside" after a geometric transform

    def from_grid(self, y: Tensor, dtype: torch.dtype, ignore_index: int) -> Tensor:
        return torch.where(y > 0, y - 1, float(ignore_index)).round().to(dtype)


class Depth(DenseTask):
    """Per-pixel depth (float32 metres, 0 unknown): a linear head on [pooled, patch tokens], squared error on
    valid pixels, RMSE, DepthPGD."""

    name = "depth"

    def _better(self, a: float, b: float) -> bool:
        return a < b

    def accumulator(self, n_classes: int | None, ignore_index: int) -> DepthErrors:
        return DepthErrors()

    def start_head(self, pooled: Tensor, patches: Tensor, targets: Tensor, n_classes: int | None) -> LinearDepthHead:
        """Zero weights, feature statistics of the train set, the constant predictor (mean train depth)."""
        head = LinearDepthHead(pooled.shape[1], patches.shape[1])
        head.norm.fit(LinearDepthHead.concat(pooled, patches))
        with torch.no_grad():
            head.proj.bias.fill_(float(targets[targets > 0].mean()))
        return head

    def loss(self, out: Tensor, y: Tensor, ignore_index: int) -> Tensor:
        valid = y > 0
        return (out - y)[valid].pow(2).mean()

    def predict(self, out: Tensor) -> Tensor:
        return out

    def attack_batch(self, forward, x: Tensor, y: Tensor, eps: float, opts: dict, gen, ignore_index: int) -> Tensor:
        return depthpgd(forward, x, y, eps, int(opts["steps"]), float(opts["step_size"]), gen, str(opts["depth_loss"]))

    def to_grid(self, target: Tensor) -> Tensor:
        return target.double()  # 0 is already "unknown"

    def from_grid(self, y: Tensor, dtype: torch.dtype, ignore_index: int) -> Tensor:
        return y.to(dtype)


DENSE_TASKS: dict[str, DenseTask] = {t.name: t for t in (Segmentation(), Depth())}


def dense_task(task: str | DenseTask) -> DenseTask:
    """The task called ``task`` (a DenseTask passes through); AttackError naming the known ones otherwise."""
    if isinstance(task, DenseTask):
        return task
    if task not in DENSE_TASKS:
        raise AttackError(f"task must be one of {', '.join(map(repr, DENSE_TASKS))}, got {task!r}")
    return DENSE_TASKS[task]
