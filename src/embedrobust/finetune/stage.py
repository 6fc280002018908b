"""One fine-tuning run of the pipeline: a base model spec + a trainer config -> weights and a manifest."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from .trainer import Trainer, resolve_config

log = logging.getLogger(__name__)

MANIFEST = "finetune.json"


def is_trained(out_dir: str | Path, fingerprint: str) -> bool:
    """Whether ``out_dir`` holds finished weights of the run whose params hash is ``fingerprint``."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("params_sha256") == fingerprint and (out_dir / "model.pt").is_file()


def train_finetuned(
    spec: dict,
    train: dict,
    images: torch.Tensor,
    out_dir: str | Path,
    labels: torch.Tensor | None = None,
    class_names: list[str] | None = None,
    device: torch.device | str = "cpu",
    fingerprint: str = "",
) -> Path:
    """Fine-tune the model ``spec`` with the trainer config ``train``; resumable, written atomically.

    Args:
        spec: the base model spec (as in params ``models``; its ``checkpoint``, if any, must resolve from the cwd).
        train: the trainer config (keys of ``finetune.DEFAULTS``; ``families`` must be set unless deacl).
        images: (N, 3, H, W) uint8 training images (the embed stage's decoding: resize + centre crop).
        out_dir: receives ``model.pt`` (full state dict, LoRA merged), ``finetune.json`` (the run, the spec that
            loads the weights, wall time, first and last loss terms), ``log.jsonl`` (loss terms per step), and
            while training ``checkpoint/`` (resumable state, removed once ``model.pt`` is written).
        labels: (N,) int64, only for the zero-shot task term (``task_weight > 0``, CLIP models).
        class_names: class names for that term's text embeddings.
        fingerprint: params hash of the run; a checkpoint left by other params is discarded, not resumed.

    Returns:
        The path of ``model.pt``.
    """
    from ..models import create_encoder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt, stamp, steps_log = out_dir / "checkpoint", out_dir / "checkpoint.params_sha256", out_dir / "log.jsonl"
    if ckpt.exists() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        log.info("%s was left by other params; starting over", ckpt)
        shutil.rmtree(ckpt)
    stamp.write_text(fingerprint)

    cfg = resolve_config(train)
    encoder = create_encoder(spec, device=device)
    text = None
    if cfg["task_weight"] and encoder.has_text and class_names:
        from ..downstream.templates import class_text_embeddings

        text = class_text_embeddings(encoder.encode_text, list(class_names), cfg["templates"])
    trainer = Trainer(encoder, cfg, text_embeddings=text)
    start = time.perf_counter()
    rows = trainer.fit(images, labels=labels, checkpoint_dir=ckpt)
    seconds = time.perf_counter() - start
    # every row since step 0: the checkpoint carries a killed run's rows into the resumed one
    tmp_log = steps_log.with_name(steps_log.name + ".tmp")
    tmp_log.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(tmp_log, steps_log)
    weights = trainer.save_weights(out_dir / "model.pt")
    manifest = {
        "params_sha256": fingerprint,
        "spec": trainer.finetuned_spec(weights),
        "train": cfg,
        "steps": trainer.step,
        "seconds_this_process": round(seconds, 3),
        "first_step": rows[0] if rows else None,
        "last_step": rows[-1] if rows else None,
    }
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, out_dir / MANIFEST)
    shutil.rmtree(ckpt, ignore_errors=True)  # optimiser state is 2x the weights; model.pt is what is kept
    stamp.unlink(missing_ok=True)
    return weights


def train_split(dataset_dir: str | Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The ``train`` split of a fetched dataset: images (N, 3, S, S) uint8, labels (N,) int64, class names.

    Decoded as the embed stage does (resize shorter side + centre crop to ``image_size``), so the fine-tuned
    model sees what the pipeline later evaluates it on. The test split is never read.
    """
    from ..data import class_names, load_labelled, read_index
    from ..errors import DataError

    index = read_index(dataset_dir)
    train = index[index["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise DataError(f"{dataset_dir} has no train split to fine-tune on; set the dataset's test_fraction < 1")
    return (*load_labelled(train, dataset_dir, image_size), class_names(index))
