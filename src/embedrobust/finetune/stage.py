"""The ``finetune`` stage: params -> fine-tuned weights + a manifest of model specs that load them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ConfigError
from .trainer import Trainer, resolve_config


def _families(cfg: dict, ft: dict):
    """The families to train on: ``finetune.families`` (list or mapping) or else ``perturbations``'s grid.

    A bare name that the perturbations grid also lists takes the grid's levels (so training and evaluation
    use the same values); otherwise the registry's severity 1-5 values.
    """
    from ..config import families as grid

    known = grid(cfg) if cfg.get("perturbations") else {}
    spec = ft["families"]
    if spec is None:
        if not known:
            raise ConfigError("finetune.families is not set and params has no perturbations; list the families "
                              "to train on, e.g. finetune: {families: [gaussian_noise, jpeg_compression]}")
        return {n: {"levels": v} for n, v in known.items()}
    if isinstance(spec, (list, tuple)):
        return {n: ({"levels": known[n]} if n in known else None) for n in spec}
    return spec


def run_finetune(cfg: dict, train_images, out_dir: str | Path, labels: torch.Tensor | None = None,
                 class_names: list[str] | None = None) -> Path:
    """Fine-tune ``cfg["finetune"]["base"]`` (a key of ``cfg["models"]``) for robustness; returns the manifest.

    Args:
        cfg: the validated params (``finetune``, ``models``, optional ``perturbations``, ``seed``, ``device``).
        train_images: (N, 3, H, W) uint8 / float in [0, 1] tensor, or a DataLoader of batches.
        out_dir: gets ``model.pt`` (or ``{family}/model.pt`` with ``per_family``), ``checkpoint/`` (resumable
            state), ``log.jsonl`` (loss terms per step) and ``finetune.json``.
        labels: (N,) int64 class labels, needed only for the zero-shot task term (``task_weight > 0``).
        class_names: class names for the task term's prompt-ensemble text embeddings (CLIP only).

    Returns:
        Path of ``out_dir/finetune.json``: ``{"models": {name: model spec with checkpoint}, "config": ...}``,
        where name is ``{base}-ft`` or ``{base}-ft-{family}``; each spec loads through ``create_encoder``.
    """
    from ..embed.run import resolve_device
    from ..models import create_encoder

    ft = resolve_config({"seed": cfg.get("seed", 0), **(cfg.get("finetune") or {})})
    base = ft["base"]
    if base not in cfg.get("models", {}):
        raise ConfigError(f"finetune.base {base!r} is not a key of models; known: {', '.join(cfg.get('models', {}))}")
    spec = dict(cfg["models"][base])
    spec.setdefault("seed", cfg.get("seed", 0))
    device = resolve_device(cfg.get("device", "auto"))
    fams = _families(cfg, ft) if ft["method"] != "deacl" or ft["families"] is not None else None
    runs = {f"{base}-ft": fams}
    if ft["per_family"]:
        if fams is None:
            raise ConfigError("finetune.per_family needs families (deacl trains on PGD only)")
        runs = {f"{base}-ft-{name}": {name: fams[name]} for name in fams}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"models": {}, "config": ft}
    for name, families in runs.items():
        sub = out_dir if len(runs) == 1 else out_dir / name
        encoder = create_encoder(spec, device=device)
        text = None
        if ft["task_weight"] and encoder.has_text and class_names:
            from ..downstream.templates import class_text_embeddings

            text = class_text_embeddings(encoder.encode_text, list(class_names), ft["templates"])
        trainer = Trainer(encoder, {**ft, "families": families}, text_embeddings=text)
        log = trainer.fit(train_images, labels=labels, checkpoint_dir=sub / "checkpoint")
        with open(sub / "log.jsonl", "a") as fh:
            for row in log:
                fh.write(json.dumps(row) + "\n")
        weights = trainer.save_weights(sub / "model.pt")
        manifest["models"][name] = trainer.finetuned_spec(weights)
    path = out_dir / "finetune.json"
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return path


def train_split(dataset_dir: str | Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The ``train`` split of a fetched dataset: images (N, 3, S, S) uint8, labels (N,) int64, class names.

    Decoded as the embed stage does (resize shorter side + centre crop to ``image_size``), so the fine-tuned
    model sees what the pipeline later evaluates it on.
    """
    from ..data import ImageDataset, class_names, read_index
    from ..errors import DataError

    index = read_index(dataset_dir)
    train = index[index["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise DataError(f"{dataset_dir} has no train split to fine-tune on; set the dataset's test_fraction < 1")
    ds = ImageDataset(train, dataset_dir, int(image_size))
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    return images, torch.tensor(train["label"].to_numpy(dtype="int64", copy=True)), class_names(index)
