"""Embed stage throughput: the bare model forward against the whole stage, for the demo models in params.yaml.

    .venv/bin/python benchmarks/bench_embed.py [--params params.yaml] [--threads 1] [--repeats 3]

For each model of the params (on the CPU), in one process:
  (a) bare forward: ``images/s`` of the model's image forward on already preprocessed (B, 3, H, W) tensors,
      B = ``embed.batch_size``, the same images the stage embeds;
  (b) end to end: ``embedrobust.stages.embed`` into a fresh store (decode, perturb under every condition,
      preprocess, forward, Zarr write, model creation included) in ``images x conditions / s``;
and their ratio (b) / (a). One embedding is one image under one condition, so a ratio of 1 means the stage costs
no more than its forwards. Then the end-to-end seconds split by phase (cumulative wall time inside each phase
in the same run; the Zarr write runs on its own thread, so it overlaps the rest). Best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def phase_timers():
    """Patch the stage's phases with cumulative wall-clock timers; yields {phase: seconds}."""
    from embedrobust.data.dataset import ImageDataset
    from embedrobust.embed.store import ChunkedStoreWriter
    from embedrobust.models.encoder import Encoder
    from embedrobust.perturb.registry import Perturbation

    totals: dict[str, float] = defaultdict(float)
    patched = [(ImageDataset, "__getitem__", "decode + resize"), (Perturbation, "__call__", "perturb"),
               (Encoder, "preprocess", "preprocess"), (Encoder, "encode_image", "encode_image"),
               (ChunkedStoreWriter, "__init__", "store setup"), (ChunkedStoreWriter, "write_chunk", "zarr write"),
               (ChunkedStoreWriter, "finalize", "finalize")]
    originals = [(cls, name, getattr(cls, name)) for cls, name, _ in patched]

    def timed(fn, key):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                totals[key] += time.perf_counter() - t
        return wrapper

    for (cls, name, key), (_, _, fn) in zip(patched, originals):
        setattr(cls, name, timed(fn, key))
    try:
        yield totals
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)


def bare_forward(encoder, images_u8: torch.Tensor, batch: int, repeats: int) -> float:
    """images/s of the image forward alone on preprocessed float32 batches."""
    x = encoder.preprocess(images_u8.float() / 255)
    batches = list(x.split(batch))
    best = float("inf")
    with torch.inference_mode():
        encoder._image_fn(encoder.model, batches[0])  # warm-up: first-call allocations
        for _ in range(repeats):
            t = time.perf_counter()
            for b in batches:
                encoder._image_fn(encoder.model, b)  # the exact call Encoder.encode_image makes after preprocess
            best = min(best, time.perf_counter() - t)
    return x.shape[0] / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from embedrobust import stages
    from embedrobust.config import conditions, load_params, stage_config
    from embedrobust.data import ImageDataset, read_index
    from embedrobust.models import create_encoder

    config = load_params(args.params)
    config["device"] = "cpu"
    dataset = sorted(config["datasets"])[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stages.fetch(stage_config(config, "fetch", dataset=dataset), root)
        ds_dir = stages.dataset_dir(root, dataset)
        index = read_index(ds_dir)
        size = int(config["datasets"][dataset].get("image_size", 224))
        ds = ImageDataset(index, ds_dir, size)
        images_u8 = torch.stack([ds[i][0] for i in range(len(ds))])
        n_cond = len(conditions(config))
        print(f"dataset {dataset}: {len(ds)} images at {size} px, {n_cond} conditions, "
              f"batch {config['embed']['batch_size']}, torch threads {torch.get_num_threads()}")
        for model in sorted(config["models"]):
            cfg = stage_config(config, "embed", dataset=dataset, model=model)
            spec = dict(cfg["models"][model], seed=config["seed"])
            encoder = create_encoder(spec, device="cpu")
            bare = bare_forward(encoder, images_u8, cfg["embed"]["batch_size"], args.repeats)
            best, best_phases = float("inf"), {}
            for _ in range(args.repeats):
                shutil.rmtree(stages.store_path(root, dataset, model), ignore_errors=True)  # a fresh store each time
                with phase_timers() as phases:
                    t = time.perf_counter()
                    stages.embed(copy.deepcopy(cfg), root, progress=False)
                    elapsed = time.perf_counter() - t
                if elapsed < best:
                    best, best_phases = elapsed, dict(phases)
            e2e = len(ds) * n_cond / best
            print(f"\n{model} ({spec['library']}:{spec['arch']}, input {encoder.input_size[0]} px)")
            print(f"  (a) bare forward   {bare:10.1f} images/s")
            print(f"  (b) embed stage    {e2e:10.1f} images x conditions/s   ({best:.2f} s for {len(ds) * n_cond})")
            print(f"  ratio (b)/(a)      {e2e / bare:10.2f}")
            forward = best_phases.get("encode_image", 0.0) - best_phases.get("preprocess", 0.0)
            split = {"forward (encode_image - preprocess)": forward,
                     **{k: v for k, v in best_phases.items() if k != "encode_image"}}
            accounted = sum(v for k, v in split.items() if k != "zarr write")  # the write overlaps on its thread
            split["other (loop, model creation, stack/cat)"] = best - accounted
            for k, v in sorted(split.items(), key=lambda kv: -kv[1]):
                print(f"    {k:42s} {v:7.2f} s  {100 * v / best:5.1f} %")


if __name__ == "__main__":
    main()
