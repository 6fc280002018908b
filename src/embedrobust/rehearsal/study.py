"""Prepare a dress rehearsal of a study config: weights, datasets and a size overlay in one directory.

``prepare(config, out)`` reads a study config (e.g. ``config/full_study.yaml``) and writes under ``out``:
  - ``hf/``: the Hugging Face hub cache with generated weights for every pretrained model of the config, at the
    repo ids and file names open_clip and timm resolve (``weights``); point ``HF_HUB_CACHE`` at it and set
    ``HF_HUB_OFFLINE=1``;
  - ``datasets/<name>/`` and ``torchvision/``: every dataset of the config in its real on-disk layout
    (``datasets``);
  - ``overlay.yaml``: the config's dataset paths pointed there, and its size cut (``shrink``).

The run is then the real command line with the overlay after the study file::

    HF_HUB_CACHE=out/hf HF_HUB_OFFLINE=1 snakemake --cores all reports/final.pdf \\
        --configfile config/full_study.yaml out/overlay.yaml

Only size differs from the real run: fewer classes and images per class at 64 px, the first and last level of each
image and text family, a few optimisation steps, patch-token grids of 4 x 4 where an architecture allows another
input size, two of the 80 prompt templates, the first point of each fine-tuning sweep, fewer bootstrap resamples
and no DataLoader workers. Models, datasets, families, methods and code paths are the config's own.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..config import merge_configs, read_config, validate

# Images per class and split: enough for a stratified val carve-out of the linear probe, few enough for 2 cores.
N_PER_CLASS = 2
N_PER_CLASS_FEW = 1  # torchvision sets: a probe still fits on one image per class
IMAGENET_CLASSES = 2
TORCHVISION_CLASSES = 5  # the first 5 of CIFAR-10/100 and STL-10: CIFAR-100's 100 would be the largest set by far
DENSE_IMAGES = (8, 4)  # dense (train, test) images; the loaders carve val from train
STEPS = 2
PATCHES = 4  # a 4 x 4 token grid: input side = 4 x patch size
IMAGE_SIZE = 64
ENSEMBLE = ("a bad photo of a {}.", "a photo of many {}.")  # the first two of OpenAI's 80 ImageNet templates


def _patch_size(spec: dict) -> int | None:
    """The ViT patch size of a model spec, or None where the input size is fixed by the weights (ResNets)."""
    arch = spec["arch"]
    if spec["library"] == "timm":
        m = re.search(r"patch(\d+)", arch)
        return int(m[1]) if m else None
    m = re.fullmatch(r"ViT-[A-Za-z]+-(\d+)(?:-.*)?", arch)  # open_clip ViT-B-32, ViT-L-14-336, ...
    return int(m[1]) if m else None


def _shrunk_steps(options: dict | None, keys=("steps", "train_steps")) -> dict:
    out = {}
    for key in keys:
        if options and key in options:
            v = options[key]
            out[key] = [min(int(x), 5) for x in v[:1]] if isinstance(v, list) else min(int(v), STEPS)
    return out


def _ends(families: dict) -> dict:
    """Overlay of a grid's families: the first and last of each family's levels, and a few attack steps."""
    out = {}
    for name, spec in families.items():
        cut: dict = {}
        for key in ("severities", "levels"):
            if key in (spec or {}) and len(spec[key]) > 2:
                cut[key] = [spec[key][0], spec[key][-1]]
        cut.update({"options": steps} if (steps := _shrunk_steps((spec or {}).get("options"), ("steps",))) else {})
        if cut:
            out[name] = cut
    return out


def shrink(raw: dict) -> dict:
    """The size overlay of a study config (mapping merged onto it): same models, datasets, families and methods;
    fewer images, levels and steps."""
    over: dict = {}
    ds_over = {}
    for name, ds in (raw.get("datasets") or {}).items():
        if ds.get("source") in ("torchvision", "imagefolder"):
            # images at IMAGE_SIZE px: the perturbations run at that size (spatial parameters scaled to it),
            # the model's own preprocessing then resizes to its input size as it does for any image
            few = ds["source"] == "torchvision"
            ds_over[name] = {"n_per_class": N_PER_CLASS_FEW if few else N_PER_CLASS, "image_size": IMAGE_SIZE}
    if ds_over:
        over["datasets"] = ds_over
    models = {}
    for name, spec in (raw.get("models") or {}).items():
        patch = _patch_size(spec)
        if patch:
            models[name] = {"image_size": PATCHES * patch}
    if models:
        over["models"] = models
    fams = _ends((raw.get("perturbations") or {}).get("families") or {})
    if fams:
        over["perturbations"] = {"families": fams}
    text = _ends((raw.get("text_robustness") or {}).get("families") or {})
    if text:
        over["text_robustness"] = {"families": text}
    if raw.get("embed"):
        over["embed"] = {"batch_size": 32, "chunk_images": 32, "num_workers": 0}  # workers cost more than a few images
    ds_cfg = raw.get("downstream") or {}
    down: dict = {}
    if "knn" in ds_cfg:
        down["knn"] = {"k": 3}
    if (ds_cfg.get("zero_shot") or {}).get("templates") == "imagenet":  # the prompt ensemble, two of its 80
        down["zero_shot"] = {"templates": list(ENSEMBLE)}
    if down:
        over["downstream"] = down
    if "regression" in raw:
        over["regression"] = {"n_bins": 3, "min_bin_size": 2,
                              **({"bootstrap": 20} if "bootstrap" in raw["regression"] else {})}
    ft = raw.get("finetune") or {}
    if ft.get("base"):
        alpha = ft.get("alpha")
        over["finetune"] = {"steps": STEPS, "batch_size": 4, "checkpoint_every": 1,
                            **({"alpha": alpha[:1]} if isinstance(alpha, list) else {})}
    dense = raw.get("dense") or {}
    if dense.get("datasets"):
        over["dense"] = {"datasets": {n: {"image_size": 64} for n in dense["datasets"]},
                         "options": {**_shrunk_steps(dense.get("options")), "train_batch_size": 4, "batch_size": 4}}
    ta = raw.get("task_attack") or {}
    if ta.get("eps"):
        over["task_attack"] = {"options": {**_shrunk_steps(ta.get("options"), ("steps",)), "batch_size": 32}}
    return over


def prepare(config: Path, out: Path, weights: bool = True, size: bool = True, seed: int = 0,
            hf_cache: Path | None = None) -> Path:
    """Write the rehearsal of ``config`` under ``out`` (see the module docstring); returns ``out/overlay.yaml``.

    ``weights=False`` skips the weights (a dry run reads none); ``size=False`` leaves the config's size as it is
    (the overlay then only points the datasets at the generated copies). Existing weights and datasets are kept, so
    a second call costs little. ``hf_cache`` puts the weights elsewhere than ``out/hf`` (one cache for several
    rehearsals: the weights are the costly part).
    """
    from . import datasets as gen

    config, out = Path(config), Path(out)
    hf_cache = Path(hf_cache) if hf_cache is not None else out / "hf"
    raw = read_config(config)
    overlay = shrink(raw) if size else {}
    paths: dict = {}
    for section, entries in (("datasets", raw.get("datasets")), ("dense", (raw.get("dense") or {}).get("datasets"))):
        for name, ds in (entries or {}).items():
            key = gen.stand_in_for(ds)
            if key is None:
                continue  # generated sources (digits, synthetic-*) need no stand-in
            n = (overlay.get("datasets", {}).get(name) or {}).get("n_per_class") or N_PER_CLASS
            where = gen.write_all(out / "datasets", [key], n_per_class=n, n_classes=IMAGENET_CLASSES,
                                  n_dense=DENSE_IMAGES, seed=seed, torchvision_classes=TORCHVISION_CLASSES)[key]
            moved = gen.stand_in_config(ds, where)
            entry = {k: v for k, v in moved.items() if ds.get(k) != v}
            node = paths.setdefault(section, {}) if section == "datasets" else \
                paths.setdefault("dense", {}).setdefault("datasets", {})
            node[name] = entry
    overlay = merge_configs(overlay, paths)
    if weights:
        from ..models.spec import normalise_spec
        from .weights import write_pretrained

        write_pretrained({n: normalise_spec(s) for n, s in raw["models"].items()}, hf_cache, seed=seed)
    validate(merge_configs(raw, overlay), source=f"{config} + rehearsal overlay")
    out.mkdir(parents=True, exist_ok=True)
    target = out / "overlay.yaml"
    header = (f"# Dress rehearsal overlay for {config} (embedrobust.rehearsal): the same study, smaller.\n"
              f"# Run: HF_HUB_CACHE={hf_cache} HF_HUB_OFFLINE=1 snakemake --cores all reports/final.pdf "
              f"--configfile {config} {target}\n")
    target.write_text(header + yaml.safe_dump(overlay, sort_keys=True))
    return target


def rehearsal_config(config: Path, out: Path) -> dict:
    """The merged raw config of a prepared rehearsal (study file + overlay), as Snakemake sees it."""
    return merge_configs(read_config(config), read_config(Path(out) / "overlay.yaml"))

