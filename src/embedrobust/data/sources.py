"""Dataset sources: each turns a dataset config into ``out_dir/index.csv`` (+ ``out_dir/images/`` when it
generates images). Generated PNGs carry no metadata, so the same seed gives the same bytes.
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import ConfigError, DataError, OfflineError, unknown_name
from .decode import load_image, resize_crop
from .index import write_index

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
CONNECT_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation, not for the whole download

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
    if isinstance(rgb, torch.Tensor):
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
    return sorted(
        p
        for p in class_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
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
    classes = sorted({c for _, c, _ in files})
    labels = np.array([classes.index(c) for _, c, _ in files], dtype=np.int64)
    if parts[0][0] is None:
        split = stratified_split(labels, _fraction(cfg, 0.5), seed)
    else:
        split = np.array([s for s, _, _ in files], dtype=object)
    for _, _, f in files:
        load_image(f)  # a broken file fails now, with its path, not in the middle of embedding
    rows = [(f.relative_to(root).as_posix(), str(f), int(lab), c, s) for (_, c, f), lab, s in zip(files, labels, split)]
    return pd.DataFrame(rows, columns=["image", "file", "label", "class_name", "split"])


# torchvision datasets with their own train/test splits: constructor keyword arguments of each split
TORCHVISION_SPLITS: dict[str, tuple[dict, dict]] = {
    **{n: ({"train": True}, {"train": False}) for n in ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "KMNIST")},
    **{n: ({"split": "train"}, {"split": "test"}) for n in ("STL10", "SVHN", "Food101", "DTD", "GTSRB", "Flowers102")},
    "OxfordIIITPet": ({"split": "trainval"}, {"split": "test"}),
}


def network_available(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether ``url``'s server answers an HTTP HEAD request within ``timeout`` seconds.

    Any HTTP answer counts (even 403/404 for the server root); a DNS failure, a refused or silent connection
    does not. A bare TCP connect is not enough: sandboxes and proxies may accept connections they never serve.
    """
    parsed = urlparse(url)
    root = f"{parsed.scheme}://{parsed.netloc}/"
    try:
        with urllib.request.urlopen(urllib.request.Request(root, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):  # URLError, timeouts and resets are OSErrors
        return False


def _download_url(cls: type) -> str:
    url = getattr(cls, "url", None) or getattr(cls, "_URL", None)
    if not url and getattr(cls, "mirrors", None):
        url = cls.mirrors[0]
    return url if isinstance(url, str) and "://" in url else "https://download.pytorch.org"


def _torchvision_split(name: str, cls: type, root: Path, kwargs: dict, download: bool) -> torch.utils.data.Dataset:
    try:
        return cls(root=str(root), download=False, **kwargs)
    except (RuntimeError, FileNotFoundError, OSError):
        pass  # not there (torchvision says "Dataset not found or corrupted"): download if we can
    url = _download_url(cls)
    hint = (
        f"Download it on a machine with network access "
        f"(python -c \"import torchvision; torchvision.datasets.{cls.__name__}(root='{root}', download=True)\""
        f"), copy {root} here, or use source 'imagefolder' with your images."
    )
    if not download:
        raise OfflineError(
            f"dataset {name!r}: torchvision {cls.__name__} is not under {root} (download: false). {hint}"
        )
    if not network_available(url):
        raise OfflineError(
            f"dataset {name!r}: torchvision {cls.__name__} is not under {root} and cannot be downloaded "
            f"({urlparse(url).hostname} is unreachable). {hint}"
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torchvision's urlopen has none: a stalled server would hang
    try:
        return cls(root=str(root), download=True, **kwargs)
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
    splits = [
        (s, _torchvision_split(name, cls, root, kw, bool(cfg.get("download", True))))
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
