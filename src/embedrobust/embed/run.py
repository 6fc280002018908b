"""The perturb x embed loop: decode -> perturb on the device -> model preprocess -> forward -> Zarr chunk."""

from __future__ import annotations

import dataclasses
import functools
import logging
import platform
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..core import Condition, seed_from_key, sha256
from .store import ChunkedStoreWriter, StoreLayout, is_complete

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def condition_seed(seed: int, chunk: int, cond: Condition) -> int:
    """Seed of the random draws for one chunk under one condition.

    Derived from what is drawn, not from the order of drawing, so a resumed run (or a grid with one more family)
    draws the same noise for the same images.
    """
    return seed_from_key(f"{seed}|{chunk}|{cond.family}|{cond.value!r}")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"python": platform.python_version(), "embedrobust": __version__}
    for pkg in ("torch", "torchvision", "open_clip_torch", "timm", "numpy", "xarray", "zarr", "pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def bind_perturbations(conds: list[Condition], encoder, options: dict | None = None) -> list[Callable | None]:
    """One callable ``fn(images, value, generator)`` per condition (None for clean), resolved once per run.

    Attacks (``Perturbation.needs_encoder``) get the encoder they differentiate through; ``options`` (family ->
    keyword options, ``config.family_options``) are bound too.
    """
    from ..perturb import get_perturbation

    options = options or {}
    bound: list[Callable | None] = []
    for cond in conds:
        if cond.is_clean:
            bound.append(None)
            continue
        p = get_perturbation(cond.family)
        kw = dict(options.get(cond.family, {}))
        if p.needs_encoder:
            kw["encoder"] = encoder
        if kw:
            p = dataclasses.replace(p, fn=functools.partial(p.fn, **kw))
        bound.append(p)
    return bound


def embed_conditions(
    encoder,
    images: torch.Tensor,
    conds: list[Condition],
    generators: list[torch.Generator | None],
    perturbations: list[Callable | None] | None = None,
) -> torch.Tensor:
    """Embed one batch under every condition.

    Args:
        encoder: an ``embedrobust.models.Encoder``.
        images: float (B, 3, H, W) in [0, 1] on the encoder's device.
        conds: the grid; generators[i] drives condition i's random draws (None for deterministic families).
        perturbations: ``bind_perturbations(conds, encoder)``, when the caller embeds many batches.
    Returns:
        float32 (len(conds), B, D) raw embeddings, on the CPU.
    """
    if perturbations is None:
        perturbations = bind_perturbations(conds, encoder)
    out = []
    for cond, p, gen in zip(conds, perturbations, generators):
        x = images if p is None else p(images, cond.value, gen)
        out.append(encoder.encode_image(x).float().cpu())
    return torch.stack(out)


def run_embed(stage_cfg: dict, dataset_dir: Path, out_path: Path, progress: bool = True,
              root: Path | None = None, *, conds: list[Condition], options: dict) -> Path:
    """Build the embedding store of one (dataset, model) at ``out_path``, resuming a killed run.

    Args:
        stage_cfg: ``config.stage_config(config, "embed", dataset, model)``.
        conds: its perturbation grid (``config.conditions``), clean first; options: family -> keyword options
            (``config.family_options``).
        dataset_dir: the fetched dataset (index.csv and images).
        out_path: the ``.zarr`` directory to publish.
        root: project root against which a relative model ``checkpoint`` resolves (default: the cwd). The
            store's params hash keeps the relative path, so it does not depend on where the project lives.
    """
    from tqdm import tqdm

    from ..data import ImageDataset, class_names, read_index
    from ..models import create_encoder
    from ..models.spec import resolved

    seed = stage_cfg["seed"]
    ds_name, model_name = stage_cfg["dataset"], stage_cfg["model"]
    ds_cfg = stage_cfg["datasets"][ds_name]
    model_spec = resolved(stage_cfg["models"][model_name], root, seed)
    emb_cfg = stage_cfg["embed"]
    device = resolve_device(stage_cfg["device"])

    index = read_index(dataset_dir)
    encoder = create_encoder(model_spec, device=device)
    layout = StoreLayout(
        conditions=conds,
        image_ids=index["image"].astype(str).tolist(),
        labels=index["label"].to_numpy(np.int64),
        splits=index["split"].astype(str).tolist(),
        class_names=class_names(index),
        dim=encoder.embed_dim,
        chunk_images=emb_cfg["chunk_images"],
        attrs={
            "dataset": ds_name,
            "model_name": model_name,
            # The checkpoint as params give it (relative to the project root): the store does not depend on where
            # the project lives.
            "model": {**encoder.describe(), "checkpoint": stage_cfg["models"][model_name].get("checkpoint")},
            "pretrained": bool(encoder.pretrained),
            "image_size": int(ds_cfg["image_size"]),
            "preprocess": "decode -> RGB uint8 -> resize shorter side + centre crop to image_size -> "
            "perturbation (float [0, 1]) -> model preprocess (resize, crop, normalise)",
            "seed": seed,
            "versions": package_versions(),
            "params_sha256": sha256(stage_cfg),
        },
    )
    if is_complete(out_path, layout.attrs["params_sha256"]):
        log.info("%s is complete for these params; nothing to do", out_path)
        return out_path
    writer = ChunkedStoreWriter(out_path, layout)
    pending = writer.pending
    log.info(
        "%s x %s: %d images x %d conditions, %d of %d chunks to compute on %s",
        ds_name, model_name, len(layout.image_ids), len(conds), len(pending), layout.n_chunks, device,
    )

    perturbations = bind_perturbations(conds, encoder, options)
    size = layout.attrs["image_size"]
    dataset = ImageDataset(index, dataset_dir, size)
    batch = emb_cfg["batch_size"]
    # Batches never straddle chunks: a chunk's bytes depend only on its own images, whatever was resumed.
    batches = [
        list(range(start, min(start + batch, sl.stop)))
        for k in pending
        for sl in [layout.chunk_slice(k)]
        for start in range(sl.start, sl.stop, batch)
    ]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=emb_cfg.get("num_workers", 0),
        pin_memory=device.type == "cuda",
    )

    n_todo = sum(layout.chunk_slice(k).stop - layout.chunk_slice(k).start for k in pending)
    bar = tqdm(total=n_todo * len(conds), unit="emb", disable=not progress,
               mininterval=2.0, desc=f"embed {ds_name}/{model_name}")
    # One writer thread: the Zarr write of chunk k overlaps the compute of chunk k + 1.
    with ThreadPoolExecutor(max_workers=1) as pool:
        inflight: Future | None = None
        chunk_iter = iter(pending)
        current, parts, generators = None, [], []
        for images_u8, positions in loader:
            k = int(positions[0]) // layout.chunk_images
            if k != current:
                current = next(chunk_iter)
                assert current == k, (current, k)
                parts = []
                generators = [
                    None if c.is_clean else torch.Generator(device=device).manual_seed(condition_seed(seed, k, c))
                    for c in conds
                ]
            images = images_u8.to(device, non_blocking=True).float().div_(255.0)
            parts.append(embed_conditions(encoder, images, conds, generators, perturbations))
            bar.update(images.shape[0] * len(conds))
            if int(positions[-1]) + 1 == layout.chunk_slice(k).stop:
                block = torch.cat(parts, dim=1).numpy()
                if inflight is not None:
                    inflight.result()
                inflight = pool.submit(writer.write_chunk, k, block)
        if inflight is not None:
            inflight.result()
    bar.close()
    return writer.finalize()
