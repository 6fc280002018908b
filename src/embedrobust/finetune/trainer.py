"""The fine-tuning loop: utility(f_theta, f_0) + alpha * robustness(f_theta), by method name."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from . import losses as L
from .options import DEFAULTS, METHOD_CONFIGS, METHODS, resolve_config  # noqa: F401  (re-exported)
from .peft import add_lora, merged_state_dict, select_trainable
from .sampler import PerturbationSampler, _mix

_log = logging.getLogger(__name__)

#: Training images whose original embeddings give the per-dimension spread of the ``whitened`` utility.
WHITEN_IMAGES = 1024

def batch_indices(n: int, batch_size: int, seed: int, step: int) -> Tensor:
    """Indices (batch_size,) of step ``step``'s batch: consecutive slices of per-epoch permutations seeded by
    (seed, epoch), so any step's batch is known without replaying the earlier ones."""
    pos = step * batch_size + torch.arange(batch_size)
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in pos.div(n, rounding_mode="floor").unique().tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch, 4)))
        sel = pos.div(n, rounding_mode="floor") == epoch
        out[sel] = perm[pos[sel] % n]
    return out


def _as_float(images: Tensor) -> Tensor:
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


class Trainer:
    """Fine-tunes ``encoder`` in place (its model's weights change; a frozen copy is the reference f_0).

    Args:
        encoder: an :class:`embedrobust.models.Encoder`. The model stays in eval mode (no dropout; ViTs use
            LayerNorm, so no batch statistics are involved).
        config: the ``finetune`` section (keys and defaults: :data:`DEFAULTS`).
        text_embeddings: (C, D) frozen class embeddings for the zero-shot task term (CLIP), or None.
    """

    def __init__(self, encoder, config: dict | None = None, text_embeddings: Tensor | None = None) -> None:
        self.cfg = c = resolve_config(config)
        self.method = METHOD_CONFIGS[c["method"]]
        self.encoder = encoder
        self.device = encoder.device
        self.teacher = copy.deepcopy(encoder.model).eval().requires_grad_(False)
        encoder.model.eval()
        if c["lora_rank"]:
            self.params = add_lora(encoder, c["lora_rank"], c["lora_alpha"], c["lora_targets"], c["seed"])
        else:
            self.params = select_trainable(encoder, c["train_blocks"])
        self.names = [n for n, p in encoder.model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=c["lr"], weight_decay=c["weight_decay"])
        families = c["families"]
        if families is None and self.method.views:
            raise ConfigError("finetune.families is empty: name the perturbation families to train on, "
                              "e.g. families: [gaussian_noise, jpeg_compression]")
        self.sampler = (PerturbationSampler(families, c["views"], c["sample_per"], c["seed"], c["table"])
                        if families is not None else None)
        self.text = None if text_embeddings is None else text_embeddings.float().to(self.device)
        self.fisher = [torch.zeros_like(p) for p in self.params] if c["grace_scaling"] == "fisher" else None
        self.step = 0
        self.log: list[dict[str, float]] = []  # loss terms per step since step 0; checkpoints carry it
        self.std: Tensor | None = None  # (D,) spread of the original unit embeddings (``whitened`` utility)

    def fit_whitening(self, data) -> Tensor:
        """(D,) per-dimension std of the original encoder's unit embeddings of the training images (a seeded
        subset of :data:`WHITEN_IMAGES` when there are more; the first ones of a loader): a function of the frozen
        original, the data and the seed alone, so a resumed run gets the same values."""
        parts, n = [], 0
        if isinstance(data, Tensor):
            if len(data) > WHITEN_IMAGES:  # not the first ones: an index may list the images class by class
                data = data[batch_indices(len(data), WHITEN_IMAGES, self.cfg["seed"], 0)]
            chunks = data.split(self.cfg["batch_size"])
        else:
            chunks = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
        for chunk in chunks:
            parts.append(F.normalize(self.original(_as_float(chunk).to(self.device)), dim=-1))
            n += len(chunk)
            if n >= WHITEN_IMAGES:
                break
        z = torch.cat(parts)[:WHITEN_IMAGES]
        if len(z) < 2:
            raise ConfigError("finetune.utility whitened needs at least two training images")
        self.std = z.std(0).clamp_min(1e-8)
        return self.std

    # -- embeddings -------------------------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.cfg["amp"]:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, model, images: Tensor) -> Tensor:
        x = self.encoder.preprocess(images.to(self.device))
        with self._autocast():
            out = model.encode_image(x) if self.encoder.spec["library"] == "open_clip" else model(x)
        return out.float()

    def student(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, D) raw embeddings of the model being trained, with grad."""
        return self._forward(self.encoder.model, images)

    def original(self, images: Tensor) -> Tensor:
        """(N, D) raw embeddings of the frozen original encoder f_0."""
        with torch.no_grad():
            return self._forward(self.teacher, images)

    def pgd(self, images: Tensor, target: Tensor, step: int) -> Tensor:
        """L-inf PGD (uniform random start, sign steps) maximising 1 - cos(f_theta(x_adv), target).

        images (N, 3, H, W) in [0, 1]; target (N, D), the original encoder's clean embeddings. The step size
        defaults to 2.5 * eps / steps (Madry et al.); with 0 steps x_adv is the random start alone, which makes
        the objective a fixed function of the weights. Returns x_adv (N, 3, H, W), detached.
        """
        c = self.cfg
        eps, n = float(c["pgd_eps"]), int(c["pgd_steps"])
        size = float(c["pgd_step"]) if c["pgd_step"] is not None else 2.5 * eps / max(n, 1)
        g = torch.Generator(device=images.device).manual_seed(_mix(c["seed"], step, 3))
        noise = torch.rand(images.shape, generator=g, device=images.device, dtype=images.dtype)
        x = (images + (2 * noise - 1) * eps).clamp(0, 1)
        for _ in range(n):
            x.requires_grad_(True)
            loss = (1 - F.cosine_similarity(self.student(x), target, dim=-1)).sum()
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + size * grad.sign(), images - eps), images + eps).clamp(0, 1)
        return x.detach()

    def _views(self, x: Tensor, step: int) -> Tensor:
        """(V, N, D) student embeddings of the perturbed views."""
        views = self.sampler.views(x, step)
        v, n = views.shape[:2]
        return self.student(views.flatten(0, 1)).view(v, n, -1)

    # -- objective --------------------------------------------------------------------------------------------
    def losses(self, images: Tensor, labels: Tensor | None = None, step: int | None = None) -> dict[str, Tensor]:
        """Loss terms of one batch (images (N, 3, H, W) uint8 or float in [0, 1]); ``total`` is minimised.

        ``step`` seeds the perturbed views and the PGD start (default: the trainer's current step).
        """
        step = self.step if step is None else int(step)
        x = _as_float(images).to(self.device)
        s, t = self.student(x), self.original(x)
        return LOSSES[self.method.name](self, x, s, t, labels, step)

    def _grace_perturbation(self, grads: list[Tensor]) -> list[Tensor]:
        r"""Adaptive SAM ascent step e = rho T^2 g / ||T g||, with T = |w| + eta (``weight``) or
        T = (F / mean F + eta)^{-1/2}, F a running diagonal Fisher (curvature) estimate (``fisher``)."""
        c = self.cfg
        if self.fisher is None:
            scale = [p.detach().abs() + c["grace_eta"] for p in self.params]
        else:
            for f, g in zip(self.fisher, grads):
                f.mul_(0.9).add_(0.1 * g * g)
            mean = torch.stack([f.sum() for f in self.fisher]).sum() / sum(f.numel() for f in self.fisher)
            scale = [(f / mean.clamp_min(1e-30) + c["grace_eta"]).rsqrt() for f in self.fisher]
        norm = torch.sqrt(sum(((s * g) ** 2).sum() for s, g in zip(scale, grads))).clamp_min(1e-12)
        return [c["grace_rho"] * s * s * g / norm for s, g in zip(scale, grads)]

    def train_step(self, images: Tensor, labels: Tensor | None = None) -> dict[str, float]:
        """One optimiser step on a batch; returns the loss terms (before the step) as floats."""
        terms = self.losses(images, labels)
        grads = torch.autograd.grad(terms["total"], self.params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]
        if self.method.sam:
            eps = self._grace_perturbation(grads)
            with torch.no_grad():
                for p, e in zip(self.params, eps):
                    p.add_(e)
            sharp = self.losses(images, labels)["total"]
            grads = torch.autograd.grad(sharp, self.params, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]
            with torch.no_grad():
                for p, e in zip(self.params, eps):
                    p.sub_(e)
        for p, g in zip(self.params, grads):
            p.grad = g
        if self.cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.params, float(self.cfg["grad_clip"]))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    # -- data and loop ----------------------------------------------------------------------------------------
    def batches(self, data, labels: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor | None]]:
        """(images, labels) for steps ``self.step`` onwards.

        ``data``: a (N, 3, H, W) tensor (uint8 or float in [0, 1]), with optional ``labels`` (N,), batched by
        :func:`batch_indices`; or an iterable of batches (a DataLoader yielding images or (images, labels)),
        cycled, whose first ``self.step`` batches are skipped on resume (deterministic only if its order is).
        """
        if isinstance(data, Tensor):
            if data.ndim != 4 or data.shape[1] != 3:
                raise ConfigError(f"finetune: training images must be (N, 3, H, W), got {tuple(data.shape)}")
            step = self.step
            while True:
                idx = batch_indices(data.shape[0], self.cfg["batch_size"], self.cfg["seed"], step)
                yield data[idx], (labels[idx] if labels is not None else None)
                step += 1
        seen = 0
        while True:
            empty = True
            for batch in data:
                empty = False
                seen += 1
                if seen <= self.step:
                    continue
                yield (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
            if empty:
                raise ConfigError("finetune: the training DataLoader yields no batches; check the dataset")

    def fit(self, data, labels: Tensor | None = None, checkpoint_dir: str | Path | None = None,
            resume: bool = True) -> list[dict[str, float]]:
        """Train up to ``steps`` steps (resuming from ``checkpoint_dir`` when it holds a checkpoint), saving a
        checkpoint every ``checkpoint_every`` steps and at the end. Returns one dict of loss terms per step, from
        step 0 (a resumed run's rows continue those of the run that wrote the checkpoint)."""
        if checkpoint_dir is not None and resume and (Path(checkpoint_dir) / _STATE).is_file():
            self.load_checkpoint(checkpoint_dir)
        if self.cfg["utility"] == "whitened" and self.std is None and self.method.views:
            self.fit_whitening(data)
        log = self.log
        every = int(self.cfg["checkpoint_every"] or 0)
        if self.step < self.cfg["steps"]:
            report = max(1, self.cfg["steps"] // 10)
            for images, y in self.batches(data, labels):
                log.append({"step": self.step, **self.train_step(images, y)})
                if self.step % report == 0 or self.step == self.cfg["steps"]:
                    _log.info("step %d/%d: %s", self.step, self.cfg["steps"],
                              ", ".join(f"{k} {v:.5g}" for k, v in log[-1].items() if k != "step"))
                if checkpoint_dir is not None and every and self.step % every == 0:
                    self.save_checkpoint(checkpoint_dir)
                if self.step >= self.cfg["steps"]:
                    break
        if checkpoint_dir is not None:
            self.save_checkpoint(checkpoint_dir)
        return log

    # -- persistence ------------------------------------------------------------------------------------------
    def save_checkpoint(self, directory: str | Path) -> Path:
        """Write trainable weights, optimiser, step, Fisher estimate and RNG states to ``directory/state.pt``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        named = dict(self.encoder.model.named_parameters())
        state = {
            "step": self.step,
            "config": self.cfg,
            "params": {n: named[n].detach().cpu().clone() for n in self.names},
            "optimizer": self.optimizer.state_dict(),
            "fisher": None if self.fisher is None else [f.cpu() for f in self.fisher],
            "log": self.log,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        tmp = d / (_STATE + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, d / _STATE)  # a kill mid-write leaves the previous checkpoint intact
        return d / _STATE

    def load_checkpoint(self, directory: str | Path) -> None:
        """Restore a :meth:`save_checkpoint` state into this trainer (same base model and config)."""
        path = Path(directory) / _STATE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            raise ConfigError(f"cannot read fine-tuning checkpoint {path}: {err}; delete it to start over") from err
        if set(state["params"]) != set(self.names):
            raise ConfigError(f"fine-tuning checkpoint {path} trains other parameters than this config "
                              f"(train_blocks / lora_rank changed?); delete {directory} to start over")
        named = dict(self.encoder.model.named_parameters())
        with torch.no_grad():
            for n, v in state["params"].items():
                named[n].copy_(v)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.fisher is not None and state["fisher"] is not None:
            for f, v in zip(self.fisher, state["fisher"]):
                f.copy_(v)
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = int(state["step"])
        self.log = list(state.get("log") or [])

    def save_weights(self, path: str | Path) -> Path:
        """Save the fine-tuned model's full state dict (LoRA merged) for the model spec's ``checkpoint:`` key."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.cpu() for k, v in merged_state_dict(self.encoder.model).items()}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def finetuned_spec(self, path: str | Path) -> dict:
        """The base model spec pointing at the weights saved at ``path``."""
        return {**self.encoder.spec, "checkpoint": str(path)}


_STATE = "state.pt"


# -- the loss of each method (options.METHOD_CONFIGS describes them) -------------------------------------------------
# Each takes the trainer, the batch x (N, 3, H, W) in [0, 1], the student's and the frozen original's embeddings s, t
# (N, D), the labels (N,) or None, and the step (it seeds the views and the PGD start); returns the loss terms, with
# ``total`` the one minimised.
def _deacl_losses(tr: Trainer, x: Tensor, s: Tensor, t: Tensor, labels, step: int) -> dict[str, Tensor]:
    adv = tr.student(tr.pgd(x, t, step))
    return {"distill": -F.cosine_similarity(s, t, dim=-1).mean(),
            "adv_alignment": -F.cosine_similarity(adv, s, dim=-1).mean(),
            "total": L.deacl_loss(s, t, adv, tr.cfg["deacl_k"])}


def _view_losses(robustness):
    """utility(f_theta, f_0) [+ task_weight * zero-shot CE] + alpha * robustness over the perturbed views sv
    (V, N, D)."""

    def losses(tr: Trainer, x: Tensor, s: Tensor, t: Tensor, labels, step: int) -> dict[str, Tensor]:
        c = tr.cfg
        out: dict[str, Tensor] = {}
        out["utility"] = L.cosine_distill(s, t) if tr.std is None else L.whitened_distill(s, t, tr.std)
        if tr.text is not None and labels is not None and c["task_weight"]:
            out["task"] = L.zero_shot_ce(s, tr.text, labels.to(tr.device), c["logit_scale"])
            out["utility"] = out["utility"] + c["task_weight"] * out["task"]
        sv = tr._views(x, step)
        out["robustness"] = robustness(tr, x, s, t, sv, step)
        out["total"] = out["utility"] + c["alpha"] * out["robustness"]
        return out

    return losses


def _spread(tr: Trainer, x, s, t, sv, step) -> Tensor:
    points = torch.cat([s.unsqueeze(1), sv.transpose(0, 1)], dim=1)
    return L.spread(points, tr.cfg["robustness"]).mean()


def _grace_alignment(tr: Trainer, x, s, t, sv, step) -> Tensor:
    adv = tr.student(tr.pgd(x, t, step))
    return L.alignment(s, torch.cat([sv, adv.unsqueeze(0)]))


def _subspace(tr: Trainer, x, s, t, sv, step) -> Tensor:
    return torch.stack([L.subspace_distance(s, v, tr.cfg["subspace_k"]) for v in sv]).mean()


LOSSES = {"paper": _view_losses(_spread), "deacl": _deacl_losses, "grace": _view_losses(_grace_alignment),
          "subspace": _view_losses(_subspace)}
