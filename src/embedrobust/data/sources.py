"""Dataset sources: each turns a dataset config into ``out_dir/index.csv`` (+ ``out_dir/images/`` when it
generates images). Generated PNGs carry no metadata, so the same seed gives the same bytes.

``imagefolder`` indexes a local folder in place: ``class_names`` names its class folders (``imagenet``: wnids to
CLIP's class names; or a map file), ``n_per_class`` takes a seeded subset, and every indexed image is decoded
once so broken files fail the fetch together. ``torchvision`` exports a torchvision dataset to PNGs;
``check_integrity: false`` reads a local copy that is re-packed or generated (the file layout is still
torchvision's) without its md5 checks.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from PIL import Image

from ..core import reachable
from ..errors import ConfigError, DataError, OfflineError, unknown_name
from .decode import load_image, resize_crop
from .index import write_index

if TYPE_CHECKING:  # annotations only: a source that writes PNGs with Pillow never loads torch
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# scikit-image's bundled colour photographs (file in skimage/data, class name as a zero-shot prompt word)
SKIMAGE_PHOTOS = {
    "astronaut": ("astronaut.png", "astronaut"),
    "chelsea": ("chelsea.png", "cat"),
    "coffee": ("coffee.png", "cup of coffee"),
    "rocket": ("rocket.jpg", "rocket"),
    "motorcycle": ("motorcycle_left.png", "motorcycle"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "galaxy"),
    "retina": ("retina.jpg", "retina"),
    "immunohistochemistry": ("ihc.png", "tissue"),
}
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation, not for the whole download
# wnid -> CLIP's ImageNet class name, generated from timm + open_clip by assets/make_imagenet_classes.py
IMAGENET_CLASSES_FILE = Path(__file__).parent / "assets" / "imagenet_classes.tsv"
MAX_LISTED = 20  # problems named in one error message; the rest are counted

SourceFn = Callable[[str, dict, Path, int], pd.DataFrame]


# ---------------------------------------------------------------------------------------------------- helpers


def _int_param(cfg: dict, key: str, default: int | None, lo: int = 1) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise ConfigError(f"dataset config needs {key!r} (an integer >= {lo}).")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"dataset config {key!r} must be an integer >= {lo}, got {value!r}.")
    return int(value)


def _fraction(cfg: dict, default: float) -> float:
    value = cfg.get("test_fraction", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"dataset config 'test_fraction' must be a number in [0, 1], got {value!r}.")
    return float(value)


def _n_test(n: int, fraction: float) -> int:
    """Test images among ``n`` of a class: ``fraction`` of them rounded half up, leaving both splits non-empty
    whenever the class has two or more images and 0 < fraction < 1."""
    k = math.floor(n * fraction + 0.5)
    if n >= 2 and 0 < fraction < 1:
        k = min(max(k, 1), n - 1)
    return k


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Seeded per-class split. Returns an array of ``"train"``/``"test"`` aligned with ``labels``."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own, independent of any subsetting draw
    split = np.full(len(labels), "train", dtype=object)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        split[rng.permutation(members)[: _n_test(len(members), fraction)]] = "test"
    return split


def stratified_subset(labels: np.ndarray, n_per_class: int, seed: int, what: str) -> np.ndarray:
    """Sorted positions of a seeded subset of ``n_per_class`` items per class."""
    rng = np.random.default_rng([seed, 0])
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < n_per_class:
            raise ConfigError(
                f"{what}: class {c} has only {len(members)} images, fewer than n_per_class={n_per_class}. "
                "Lower n_per_class."
            )
        chosen.append(rng.choice(members, size=n_per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _fresh_images_dir(out_dir: Path) -> Path:
    """``out_dir/images``, emptied: a re-fetch with other settings must not leave stale images behind."""
    images = out_dir / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    return images


def _save_png(rgb: np.ndarray | torch.Tensor, path: Path) -> None:
    """Save (H, W, 3) or (3, H, W) uint8 as a PNG without metadata (Pillow writes no tIME/text chunks unless
    asked), so the bytes depend only on the pixels."""
    if not isinstance(rgb, np.ndarray):  # a tensor: told apart without importing torch, which fetch need not load
        rgb = rgb.permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG", compress_level=6)


# ---------------------------------------------------------------------------------------------------- sources


def _demo_digits(name: str, cfg: dict, out_dir: Path, seed: int) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    size = _int_param(cfg, "image_size", 32, lo=8)
    fraction = _fraction(cfg, 0.5)
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    keep = np.arange(len(labels))  # n_per_class null: all 1797 digits
    if cfg.get("n_per_class") is not None:
        keep = stratified_subset(labels, _int_param(cfg, "n_per_class", None), seed, f"dataset {name!r}")
    split = stratified_split(labels[keep], fraction, seed)
    images = _fresh_images_dir(out_dir)
    rows = []
    for pos, i in enumerate(keep):
        # values 0..16 are ink density: dark ink on white paper, as the digits were written
        gray = np.round(255.0 - digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
        big = Image.fromarray(gray).resize((size, size), Image.Resampling.BICUBIC)
        image_id = f"digit{i:04d}"
        _save_png(np.repeat(np.asarray(big)[..., None], 3, axis=-1), images / f"{image_id}.png")
        rows.append((image_id, f"images/{image_id}.png", int(labels[i]), DIGIT_WORDS[labels[i]], split[pos]))
    return pd.DataFrame(rows, columns=["image", "file", "label", "class_name", "split"])


def available_skimage_photos() -> dict[str, Path]:
    """The bundled photographs present in the installed scikit-image (none of them needs a download)."""
    import skimage.data

    data_dir = Path(skimage.data.__file__).parent
    return {k: data_dir / f for k, (f, _) in SKIMAGE_PHOTOS.items() if (data_dir / f).is_file()}


def _skimage_photos(name: str, cfg: dict, out_dir: Path, seed: int) -> pd.DataFrame:
    size = _int_param(cfg, "image_size", 224, lo=8)
    available = available_skimage_photos()
    wanted = cfg.get("photos") or sorted(available)
    for photo in wanted:
        if photo not in available:
            raise unknown_name("scikit-image photo", photo, sorted(available))
    images = _fresh_images_dir(out_dir)
    rows = []
    for label, photo in enumerate(sorted(wanted)):
        _save_png(resize_crop(load_image(available[photo]), size), images / f"{photo}.png")
        rows.append((photo, f"images/{photo}.png", label, SKIMAGE_PHOTOS[photo][1], "test"))
    return pd.DataFrame(rows, columns=["image", "file", "label", "class_name", "split"])


def _list_images(class_dir: Path) -> list[Path]:
    """Image files under ``class_dir`` (any depth), sorted; hidden files and folders are skipped.

    os.walk reads file types from the directory entries, so listing an ImageNet-sized tree costs no stat call
    per file."""
    found = []
    for parent, dirs, names in os.walk(class_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            Path(parent, n) for n in names if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES
        ]
    return sorted(found)


def _listed(items: list[str]) -> str:
    shown = "\n".join(f"  {item}" for item in items[:MAX_LISTED])
    more = f"\n  ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return shown + more


@functools.cache
def imagenet_class_map() -> Mapping[str, str]:
    """The 1000 ImageNet-1k wnids (sorted, i.e. in class-index order) -> CLIP's class names ("tench", ...)."""
    rows = (line.split("\t") for line in IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    return MappingProxyType({wnid: name for wnid, name in rows})  # cached: read-only


def read_class_map(path: Path | str) -> dict[str, str]:
    """A class-name map file as ``{folder: class name}``.

    Two formats: a JSON object ``{"folder": "name", ...}``, or lines ``folder name[, synonym, ...]`` (ImageNet's
    ``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca``) of which the first name is kept.

    Raises:
        DataError: the file is missing or unreadable, or an entry is malformed or repeated.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"class name map {path} cannot be read ({e}). Set class_names to an existing file.") from e
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"class name map {path} is not valid JSON ({e}).") from e
        bad = [k for k, v in mapping.items() if not isinstance(v, str) or not v.strip()]
        if bad:
            raise DataError(f"class name map {path}: the names of {bad[:5]} are not non-empty strings.")
        return {str(k): v.strip() for k, v in mapping.items()}
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        folder, *names = line.split(None, 1)
        name = names[0].split(",")[0].strip() if names else ""
        if not name:
            raise DataError(
                f"class name map {path} line {number}: {line.strip()!r} has no name; expected 'folder name[, ...]'."
            )
        if folder in mapping:
            raise DataError(f"class name map {path} line {number}: folder {folder!r} is listed twice.")
        mapping[folder] = name
    return mapping


def _class_names_for(name: str, cfg: dict, folders: list[str]) -> list[str]:
    """The class name of each folder: its own name, or its entry in the ``class_names`` map (a relative map path
    is read from the working directory, as ``path`` is)."""
    spec = cfg.get("class_names")
    if spec is None:
        return folders
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"dataset {name!r}: class_names must be 'imagenet' or a map file path, got {spec!r}.")
    if spec == "imagenet":
        mapping, what = imagenet_class_map(), "the built-in ImageNet-1k map (class_names: imagenet)"
        fix = "class_names: imagenet knows the 1000 ImageNet-1k wnids (n01440764, ...); give a map file instead"
    else:
        path = Path(spec).expanduser().resolve()
        mapping, what = read_class_map(path), f"class name map {path}"
        fix = "add them to the map"
    missing = [f for f in folders if f not in mapping]
    if missing:
        raise DataError(
            f"dataset {name!r}: {what} has no entry for {len(missing)} of {len(folders)} class folders:\n"
            f"{_listed(missing)}\nFix: {fix}, rename the folders, or remove class_names to use the folder names."
        )
    return [mapping[f] for f in folders]


def _decode_problem(path: Path) -> str | None:
    try:
        load_image(path)
    except DataError as e:
        return str(e)
    return None


def _check_decodable(name: str, root: Path, paths: list[Path]) -> None:
    """Decode every image once, so a broken file fails the fetch (all of them in one message), not the embedding.

    Threads, because Pillow releases the GIL while it decodes."""
    workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        problems = [p for p in pool.map(_decode_problem, paths, chunksize=64) if p is not None]
    if problems:
        raise DataError(
            f"dataset {name!r}: {len(problems)} of {len(paths)} images under {root} cannot be read:\n"
            f"{_listed(problems)}\nReplace or remove them, then fetch again."
        )


def _imagefolder(name: str, cfg: dict, out_dir: Path, seed: int) -> pd.DataFrame:
    if "path" not in cfg:
        raise ConfigError(f"dataset {name!r}: source 'imagefolder' needs 'path' (a directory of class folders).")
    root = Path(cfg["path"]).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"dataset {name!r}: image folder {root} does not exist or is not a directory.")
    subdirs = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    test_dir = subdirs.get("test") or subdirs.get("val")
    if "train" in subdirs and test_dir is not None:
        parts = [("train", subdirs["train"]), ("test", test_dir)]
    else:
        parts = [(None, root)]
    files: list[tuple[str | None, str, Path]] = []  # (split or None, class, file)
    for split, base in parts:
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files += [(split, class_dir.name, f) for f in _list_images(class_dir)]
    if not files:
        raise DataError(
            f"dataset {name!r}: no images under {root}. Expected class_x/img.png or train/class_x/... and test/class_x/..."
        )
    folders = sorted({c for _, c, _ in files})
    names = _class_names_for(name, cfg, folders)
    label_of = {f: k for k, f in enumerate(folders)}
    labels = np.array([label_of[c] for _, c, _ in files], dtype=np.int64)
    n_per_class = None if cfg.get("n_per_class") is None else _int_param(cfg, "n_per_class", None)
    if parts[0][0] is None:  # one pool: n_per_class per class, then the seeded split (as demo-digits)
        keep = np.arange(len(files))
        if n_per_class is not None:
            keep = stratified_subset(labels, n_per_class, seed, f"dataset {name!r}")
        split = stratified_split(labels[keep], _fraction(cfg, 0.5), seed)
    else:  # the folders' own splits: n_per_class per class in each split
        split_of = np.array([s for s, _, _ in files], dtype=object)
        keep = np.arange(len(files))
        if n_per_class is not None:
            keep = np.concatenate([
                members[stratified_subset(labels[members], n_per_class, seed, f"dataset {name!r} ({s})")]
                for s in ("train", "test")
                for members in [np.flatnonzero(split_of == s)]
            ])
        split = split_of[keep]
    chosen = [files[i] for i in keep]
    _check_decodable(name, root, [f for _, _, f in chosen])
    rows = [
        (f.relative_to(root).as_posix(), str(f), label_of[c], names[label_of[c]], s)
        for (_, c, f), s in zip(chosen, split)
    ]
    return pd.DataFrame(rows, columns=["image", "file", "label", "class_name", "split"])


# torchvision datasets with their own train/test splits: constructor keyword arguments of each split
TORCHVISION_SPLITS: dict[str, tuple[dict, dict]] = {
    **{n: ({"train": True}, {"train": False}) for n in ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "KMNIST")},
    **{n: ({"split": "train"}, {"split": "test"}) for n in ("STL10", "SVHN", "Food101", "DTD", "GTSRB", "Flowers102")},
    "OxfordIIITPet": ({"split": "trainval"}, {"split": "test"}),
}


def _download_url(cls: type) -> str:
    url = getattr(cls, "url", None) or getattr(cls, "_URL", None)
    if not url and getattr(cls, "mirrors", None):
        url = cls.mirrors[0]
    return url if isinstance(url, str) and "://" in url else "https://download.pytorch.org"


def _md5_free_tables(cls: type) -> dict[str, object]:
    """The class attributes that hold md5 sums, with every md5 blanked (None)."""
    tables: dict[str, object] = {}
    for attr in ("train_list", "test_list"):  # CIFAR10/100, STL10: [[file, md5], ...]
        if isinstance(getattr(cls, attr, None), list):
            tables[attr] = [[entry[0], None] for entry in getattr(cls, attr)]
    meta = getattr(cls, "meta", None)  # CIFAR10/100: {"filename", "key", "md5"}
    if isinstance(meta, dict) and "md5" in meta:
        tables["meta"] = {**meta, "md5": None}
    split_list = getattr(cls, "split_list", None)  # SVHN: {split: [url, file, md5]}
    if isinstance(split_list, dict):
        tables["split_list"] = {k: [*v[:2], None] for k, v in split_list.items()}
    file_dict = getattr(cls, "_file_dict", None)  # Flowers102: {part: (file, md5)}
    if isinstance(file_dict, dict):
        tables["_file_dict"] = {k: (v[0], None) for k, v in file_dict.items()}
    return tables


@functools.cache
def unverified(cls: type) -> type:
    """``cls`` without its md5 checks, for a local copy that is re-packed or generated (the file layout is still
    torchvision's).

    torchvision's ``check_integrity(path, md5=None)`` only checks that the file exists, so blanking the md5 column
    of the class's file tables turns each of its integrity checks (``_check_integrity``, CIFAR's meta file check)
    into an existence check and changes nothing else. Classes that only check existence anyway (MNIST, Food101,
    ...) behave as before.
    """
    attrs = {**_md5_free_tables(cls), "__doc__": f"torchvision {cls.__name__} without md5 checks.",
             "__module__": __name__}
    return type(cls.__name__, (cls,), attrs)


def _md5_differs(cls: type, root: Path, kwargs: dict) -> bool:
    """Whether the files are all there in torchvision's layout and only their md5 sums failed."""
    if not _md5_free_tables(cls):
        return False
    try:
        unverified(cls)(root=str(root), download=False, **kwargs)
    except Exception:  # what fails to load even without md5 checks is missing or broken, not re-packed
        return False
    return True


def _torchvision_split(
    name: str, cls: type, root: Path, kwargs: dict, download: bool, check_integrity: bool = True
) -> torch.utils.data.Dataset:
    load = cls if check_integrity else unverified(cls)
    try:
        return load(root=str(root), download=False, **kwargs)
    except (RuntimeError, FileNotFoundError, OSError):
        pass  # not there (torchvision says "Dataset not found or corrupted"): download if we can
    url = _download_url(cls)
    hint = (
        f"Download it on a machine with network access "
        f"(python -c \"import torchvision; torchvision.datasets.{cls.__name__}(root='{root}', download=True)\""
        f"), copy {root} here, or use source 'imagefolder' with your images."
    )
    state, error = f"is not under {root}", OfflineError
    if check_integrity and _md5_differs(cls, root, kwargs):
        state, error = f"is under {root} but its files do not match torchvision's md5 sums", DataError
        hint = (
            "For a local copy that is re-packed or generated (the file layout is still torchvision's) set "
            f"check_integrity: false; otherwise delete the copy and download it again. {hint}"
        )
    if not download:
        raise error(f"dataset {name!r}: torchvision {cls.__name__} {state} (download: false). {hint}")
    if not reachable(url):
        raise OfflineError(
            f"dataset {name!r}: torchvision {cls.__name__} {state} and cannot be downloaded "
            f"({urlparse(url).hostname} is unreachable). {hint}"
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torchvision's urlopen has none: a stalled server would hang
    try:
        return load(root=str(root), download=True, **kwargs)
    except Exception as e:  # torchvision raises URLError, HTTPError, RuntimeError, ... on failed downloads
        raise OfflineError(f"dataset {name!r}: downloading torchvision {cls.__name__} failed ({e}). {hint}") from e
    finally:
        socket.setdefaulttimeout(previous)


def _targets(ds: torch.utils.data.Dataset) -> np.ndarray:
    for attr in ("targets", "labels", "_labels"):
        t = getattr(ds, attr, None)
        if t is not None and len(t) == len(ds):
            return np.asarray(t, dtype=np.int64)
    return np.array([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)


def _readable(class_name: str) -> str:
    """Class names as prompt words: MNIST's "0 - zero" -> "zero", CIFAR-100's "aquarium_fish" -> "aquarium fish"."""
    return re.sub(r"^\d+ - ", "", str(class_name)).replace("_", " ")


def _torchvision(name: str, cfg: dict, out_dir: Path, seed: int) -> pd.DataFrame:
    import torchvision

    tv_name = cfg.get("name")
    if tv_name not in TORCHVISION_SPLITS:
        raise unknown_name("torchvision dataset", str(tv_name), sorted(TORCHVISION_SPLITS))
    if "root" not in cfg:
        raise ConfigError(f"dataset {name!r}: source 'torchvision' needs 'root' (where the dataset is stored).")
    cls = getattr(torchvision.datasets, tv_name)
    root = Path(cfg["root"]).expanduser()
    n_per_class = cfg.get("n_per_class")
    check_integrity = cfg.get("check_integrity", True)
    if not isinstance(check_integrity, bool):
        raise ConfigError(f"dataset {name!r}: check_integrity must be true or false, got {check_integrity!r}.")
    splits = [
        (s, _torchvision_split(name, cls, root, kw, bool(cfg.get("download", True)), check_integrity))
        for s, kw in zip(("train", "test"), TORCHVISION_SPLITS[tv_name])
    ]
    images = _fresh_images_dir(out_dir)
    rows = []
    for split, ds in splits:
        targets = _targets(ds)
        names = list(getattr(ds, "classes", None) or [str(c) for c in range(int(targets.max()) + 1)])
        keep = np.arange(len(ds))
        if n_per_class is not None:
            n = _int_param(cfg, "n_per_class", None)
            keep = stratified_subset(targets, n, seed, f"dataset {name!r} ({split})")
        for i in keep:
            image, label = ds[int(i)]
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)  # torchvision gives PIL images (L or RGB)
            image_id = f"{split}{int(i):06d}"
            _save_png(rgb, images / f"{image_id}.png")
            rows.append((image_id, f"images/{image_id}.png", int(label), _readable(names[int(label)]), split))
    return pd.DataFrame(rows, columns=["image", "file", "label", "class_name", "split"])


SOURCES: dict[str, SourceFn] = {
    "demo-digits": _demo_digits,
    "skimage-photos": _skimage_photos,
    "imagefolder": _imagefolder,
    "torchvision": _torchvision,
}


def list_sources() -> list[str]:
    """Names of the dataset sources (``cfg["source"]`` values)."""
    return sorted(SOURCES)


def fetch_dataset(name: str, cfg: dict, out_dir: Path | str, seed: int) -> Path:
    """Build a dataset's index (and its images, for generated sources).

    Args:
        name: the dataset's name in params (used in messages).
        cfg: its config; ``cfg["source"]`` picks the source, the other keys are the source's settings.
        out_dir: ``data/datasets/{name}``; gets ``index.csv`` and, for generated sets, ``images/``.
        seed: seeds every subset and split draw.

    Returns:
        Path of ``out_dir/index.csv``.
    """
    source = cfg.get("source")
    if source is None:
        raise ConfigError(f"dataset {name!r} has no 'source'. Known sources: {', '.join(list_sources())}.")
    if source not in SOURCES:
        raise unknown_name("dataset source", str(source), list_sources())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = SOURCES[source](name, cfg, out_dir, int(seed))
    return write_index(index, out_dir)
