"""Dense-task datasets (semantic segmentation, monocular depth): fetchers that write ``out_dir/index.csv`` and
``out_dir/dense.json``, and ``load_dense`` that reads one split back at a fixed size.

Sources (``cfg["source"]``):

- ``synthetic-shapes``: seeded cell-aligned rectangles (``attack.synthetic.shapes_segmentation``), written as PNG
  images and PNG class masks. Settings: ``n`` (48), ``image_size`` (64), ``n_classes`` (4), ``cell`` (16),
  ``test_fraction`` (0.25), ``val_fraction`` (0.2).
- ``synthetic-depth``: seeded depth ramps (``attack.synthetic.depth_ramps``), depth as 16-bit PNG in millimetres.
  Settings: ``n``, ``image_size``, ``test_fraction``, ``val_fraction``.
- ``ade20k``: ``path`` = ``ADEChallengeData2016`` with ``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png``; 150 classes; annotation value 0 ("other") -> 255 (ignored), v -> v-1.
- ``voc``: ``path`` = ``VOCdevkit/VOC2012`` (or ``VOCdevkit``) with ``JPEGImages/*.jpg``, ``SegmentationClass/*.png``
  (palette PNGs: the palette index is the class, 255 = boundary, ignored) and
  ``ImageSets/Segmentation/{train,val}.txt``; 21 classes.
- ``cityscapes``: ``path`` with ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
  ``gtFine/{train,val}/<city>/*_gtFine_labelIds.png``; label ids mapped to the 19 train ids, others -> 255.
- ``nyu-depth-v2``: ``path`` with ``{train,test}/rgb/<id>.{png,jpg}`` and ``{train,test}/depth/<id>.{png,npy}``
  (``val`` is accepted for ``test``); depth PNGs are 16-bit millimetres, ``.npy`` float metres; 0 (or <= 0, NaN)
  = no measurement. Pairs are matched by file stem.

Splits: real datasets' ``test`` split is their official validation split (what benchmarks report); ``val`` (for
model selection) is a seeded ``val_fraction`` of the official training split, ``train`` the rest. Real datasets
are never downloaded and never copied: their index holds absolute paths. Optional ``n_train`` / ``n_test`` take
seeded subsets (default: everything). Synthetic sources write their files under ``out_dir``.

The index columns: ``id`` (unique), ``image`` and ``target`` (paths, relative to the dataset directory or
absolute), ``split`` (``train`` / ``val`` / ``test``). ``dense.json`` holds the task, the number of classes, the
label mapping and the class names.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ConfigError, DataError, unknown_name
from .decode import load_image, resize_crop, resized_shape
from .layouts import LAYOUTS

# torch is imported by the functions that make tensors: fetching a real dataset only indexes its files, and the
# fetch_dense stage should not pay seconds of start-up for it.
if TYPE_CHECKING:
    import torch

IGNORE_INDEX = 255
INDEX_NAME = "index.csv"
META_NAME = "dense.json"
COLUMNS = ["id", "image", "target", "split"]
SPLITS = ("train", "val", "test")

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
CITYSCAPES_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]
# Cityscapes labelIds -> trainIds (cityscapesScripts helpers/labels.py); every other id -> 255
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


Fetched = tuple[pd.DataFrame, dict]
DenseSourceFn = Callable[[str, dict, Path, int], Fetched]


# ---------------------------------------------------------------------------------------------------- helpers


def _int(cfg: dict, key: str, default: int | None, lo: int = 1) -> int | None:
    value = cfg.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"dense dataset config {key!r} must be an integer >= {lo}, got {value!r}.")
    return int(value)


def _frac(cfg: dict, key: str, default: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"dense dataset config {key!r} must be a number in [0, 1), got {value!r}.")
    return float(value)


def _carve(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of ``round(fraction * n)`` positions (at least 1 when fraction > 0 and n >= 2, never all)."""
    k = int(np.floor(n * fraction + 0.5))
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:k]] = True
    return mask


def _assign_splits(official: list[str], cfg: dict, seed: int, val_default: float = 0.1) -> np.ndarray:
    """Splits of items whose official split is ``train`` or ``test``: seeded subsets (``n_train``/``n_test``,
    else ``""`` = dropped), then ``val_fraction`` of the kept train items become ``val``."""
    official = np.asarray(official, dtype=object)
    out = official.copy()
    rng = np.random.default_rng([seed, 2])
    for split, key in (("train", "n_train"), ("test", "n_test")):
        limit = _int(cfg, key, None)
        members = np.flatnonzero(official == split)
        if limit is not None and limit < len(members):
            drop = rng.permutation(members)[limit:]
            out[drop] = ""
    train = np.flatnonzero(out == "train")
    out[train[_carve(len(train), _frac(cfg, "val_fraction", val_default), np.random.default_rng([seed, 3]))]] = "val"
    return out


def _layout_error(name: str, source: str, root: Path, what: str) -> DataError:
    return DataError(f"dataset {name!r} ({source}): {what} under {root}; expected {LAYOUTS[source]}. "
                     f"Set 'path' to a local copy (nothing is downloaded).")


def _root(name: str, cfg: dict, source: str) -> Path:
    if "path" not in cfg:
        raise ConfigError(f"dataset {name!r}: source {source!r} needs 'path': {LAYOUTS[source]}.")
    root = Path(cfg["path"]).expanduser().resolve()
    if not root.is_dir():
        raise _layout_error(name, source, root, "the path does not exist or is not a directory")
    return root


def _frame(ids, images, targets, splits) -> pd.DataFrame:
    df = pd.DataFrame({"id": list(ids), "image": [str(p) for p in images], "target": [str(p) for p in targets],
                       "split": list(splits)}, columns=COLUMNS)
    return df[df["split"] != ""].reset_index(drop=True)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=6)


# ---------------------------------------------------------------------------------------------------- synthetic


def _synthetic(name: str, cfg: dict, out_dir: Path, seed: int, task: str) -> Fetched:
    import torch

    from ..attack.synthetic import depth_ramps, shapes_segmentation

    n = _int(cfg, "n", 48)
    size = _int(cfg, "image_size", 64, lo=8)
    test_fraction = _frac(cfg, "test_fraction", 0.25)
    gen = torch.Generator().manual_seed(int(seed))
    if task == "segmentation":
        n_classes = _int(cfg, "n_classes", 4, lo=2)
        cell = _int(cfg, "cell", 16)
        x, y = shapes_segmentation(n, size=size, n_classes=n_classes, cell=cell, generator=gen)
        meta = {"n_classes": n_classes, "classes": ["background", *[f"shape{k}" for k in range(1, n_classes)]]}
    else:
        x, y = depth_ramps(n, size=size, generator=gen)
        meta = {"depth_scale": 1000.0}
    (out_dir / "images").mkdir()
    (out_dir / "targets").mkdir()
    rgb = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    ids, images, targets = [], [], []
    for i in range(n):
        image_id = f"{i:05d}"
        _save_png(rgb[i], out_dir / "images" / f"{image_id}.png")
        if task == "segmentation":
            _save_png(y[i].numpy().astype(np.uint8), out_dir / "targets" / f"{image_id}.png")
        else:  # 16-bit PNG in millimetres, as NYU-Depth-v2 exports store it
            _save_png(np.round(y[i].numpy() * 1000.0).astype(np.uint16), out_dir / "targets" / f"{image_id}.png")
        ids.append(image_id)
        images.append(f"images/{image_id}.png")
        targets.append(f"targets/{image_id}.png")
    official = np.where(_carve(n, test_fraction, np.random.default_rng([seed, 1])), "test", "train").tolist()
    return _frame(ids, images, targets, _assign_splits(official, cfg, seed, val_default=0.2)), meta


def _synthetic_shapes(name: str, cfg: dict, out_dir: Path, seed: int) -> Fetched:
    return _synthetic(name, cfg, out_dir, seed, "segmentation")


def _synthetic_depth(name: str, cfg: dict, out_dir: Path, seed: int) -> Fetched:
    return _synthetic(name, cfg, out_dir, seed, "depth")


# ---------------------------------------------------------------------------------------------------- real sets


def _ade20k(name: str, cfg: dict, out_dir: Path, seed: int) -> Fetched:
    root = _root(name, cfg, "ade20k")
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    ids, images, targets, official = [], [], [], []
    for folder, split in (("training", "train"), ("validation", "test")):
        img_dir, ann_dir = root / "images" / folder, root / "annotations" / folder
        if not img_dir.is_dir() or not ann_dir.is_dir():
            raise _layout_error(name, "ade20k", root, f"no images/{folder} or annotations/{folder}")
        files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise _layout_error(name, "ade20k", root, f"no images in images/{folder}")
        for f in files:
            ann = ann_dir / f"{f.stem}.png"
            if not ann.is_file():
                raise _layout_error(name, "ade20k", root, f"no annotation {ann.name} for {f.name}")
            ids.append(f"{split}/{f.stem}")
            images.append(f)
            targets.append(ann)
            official.append(split)
    return _frame(ids, images, targets, _assign_splits(official, cfg, seed)), {"n_classes": 150, "label_map": "ade20k"}


def _voc(name: str, cfg: dict, out_dir: Path, seed: int) -> Fetched:
    root = _root(name, cfg, "voc")
    if (root / "VOC2012").is_dir():
        root = root / "VOC2012"
    sets = root / "ImageSets" / "Segmentation"
    for need in (root / "JPEGImages", root / "SegmentationClass", sets / "train.txt", sets / "val.txt"):
        if not need.exists():
            raise _layout_error(name, "voc", root, f"no {need.relative_to(root)}")
    ids, images, targets, official = [], [], [], []
    for list_name, split in (("train.txt", "train"), ("val.txt", "test")):
        for stem in (s.strip() for s in (sets / list_name).read_text().splitlines()):
            if not stem:
                continue
            img, seg = root / "JPEGImages" / f"{stem}.jpg", root / "SegmentationClass" / f"{stem}.png"
            if not img.is_file() or not seg.is_file():
                raise _layout_error(name, "voc", root, f"{list_name} lists {stem!r} but JPEGImages/{stem}.jpg or "
                                                       f"SegmentationClass/{stem}.png is missing")
            ids.append(f"{split}/{stem}")
            images.append(img)
            targets.append(seg)
            official.append(split)
    if "train" not in official or "test" not in official:
        raise _layout_error(name, "voc", root, "empty ImageSets/Segmentation/train.txt or val.txt")
    meta = {"n_classes": 21, "label_map": "voc", "classes": VOC_CLASSES}
    return _frame(ids, images, targets, _assign_splits(official, cfg, seed)), meta


def _cityscapes(name: str, cfg: dict, out_dir: Path, seed: int) -> Fetched:
    root = _root(name, cfg, "cityscapes")
    ids, images, targets, official = [], [], [], []
    for folder, split in (("train", "train"), ("val", "test")):
        img_dir, gt_dir = root / "leftImg8bit" / folder, root / "gtFine" / folder
        if not img_dir.is_dir() or not gt_dir.is_dir():
            raise _layout_error(name, "cityscapes", root, f"no leftImg8bit/{folder} or gtFine/{folder}")
        files = sorted(img_dir.glob("*/*_leftImg8bit.png"))
        if not files:
            raise _layout_error(name, "cityscapes", root, f"no leftImg8bit/{folder}/<city>/*_leftImg8bit.png")
        for f in files:
            stem = f.name[: -len("_leftImg8bit.png")]
            gt = gt_dir / f.parent.name / f"{stem}_gtFine_labelIds.png"
            if not gt.is_file():
                raise _layout_error(name, "cityscapes", root, f"no gtFine/{folder}/{f.parent.name}/{gt.name}")
            ids.append(f"{split}/{stem}")
            images.append(f)
            targets.append(gt)
            official.append(split)
    meta = {"n_classes": 19, "label_map": "cityscapes", "classes": CITYSCAPES_CLASSES}
    return _frame(ids, images, targets, _assign_splits(official, cfg, seed)), meta


def _nyu(name: str, cfg: dict, out_dir: Path, seed: int) -> Fetched:
    root = _root(name, cfg, "nyu-depth-v2")
    test_name = "test" if (root / "test").is_dir() else "val"
    ids, images, targets, official = [], [], [], []
    for folder, split in (("train", "train"), (test_name, "test")):
        rgb_dir, depth_dir = root / folder / "rgb", root / folder / "depth"
        if not rgb_dir.is_dir() or not depth_dir.is_dir():
            raise _layout_error(name, "nyu-depth-v2", root, f"no {folder}/rgb or {folder}/depth")
        depths = {p.stem: p for p in sorted(depth_dir.iterdir()) if p.suffix.lower() in (".png", ".npy")}
        files = sorted(p for p in rgb_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise _layout_error(name, "nyu-depth-v2", root, f"no images in {folder}/rgb")
        for f in files:
            if f.stem not in depths:
                raise _layout_error(name, "nyu-depth-v2", root, f"no {folder}/depth/{f.stem}.png or .npy")
            ids.append(f"{split}/{f.stem}")
            images.append(f)
            targets.append(depths[f.stem])
            official.append(split)
    return _frame(ids, images, targets, _assign_splits(official, cfg, seed)), {"depth_scale": 1000.0}


DENSE_SOURCES: dict[str, tuple[str, DenseSourceFn]] = {
    "synthetic-shapes": ("segmentation", _synthetic_shapes),
    "synthetic-depth": ("depth", _synthetic_depth),
    "ade20k": ("segmentation", _ade20k),
    "voc": ("segmentation", _voc),
    "cityscapes": ("segmentation", _cityscapes),
    "nyu-depth-v2": ("depth", _nyu),
}


def list_dense_sources() -> list[str]:
    """Names of the dense dataset sources (``cfg["source"]`` values)."""
    return sorted(DENSE_SOURCES)


def dense_task(source: str) -> str:
    """``"segmentation"`` or ``"depth"``: the task of a dense source."""
    if source not in DENSE_SOURCES:
        raise unknown_name("dense dataset source", str(source), list_dense_sources())
    return DENSE_SOURCES[source][0]


def fetch_dense(name: str, cfg: dict, out_dir: Path | str, seed: int) -> Path:
    """Build a dense dataset's ``index.csv`` and ``dense.json`` (and its files, for synthetic sources).

    The directory is built in a temporary sibling and renamed into place, so an interrupted fetch never leaves a
    half-written dataset.

    Args:
        name: the dataset's name in params (used in messages).
        cfg: its config; ``cfg["source"]`` picks the source (see the module docstring for each source's keys).
        out_dir: ``data/datasets/{name}``; replaced as a whole.
        seed: seeds synthetic generation, the val split and any subset.
    Returns:
        Path of ``out_dir/index.csv``.
    Raises:
        ConfigError: unknown source, missing ``path`` or a bad setting. DataError: a real dataset's path is
            missing or not laid out as expected (the message names the layout and the path).
    """
    source = cfg.get("source")
    if source is None:
        raise ConfigError(f"dataset {name!r} has no 'source'. Dense sources: {', '.join(list_dense_sources())}.")
    task = dense_task(source)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        index, meta = DENSE_SOURCES[source][1](name, cfg, tmp, int(seed))
        if index.empty or not (index["split"] == "test").any() or not (index["split"] == "train").any():
            raise DataError(f"dataset {name!r} ({source}): needs train and test images, got splits "
                            f"{sorted(set(index['split']))}. Add images or lower test_fraction / val_fraction.")
        meta = {"source": source, "task": task, "ignore_index": IGNORE_INDEX, "label_map": None, "classes": None,
                "n_classes": None, "depth_scale": None, **meta}
        index.to_csv(tmp / INDEX_NAME, index=False, lineterminator="\n")
        (tmp / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / INDEX_NAME


# ---------------------------------------------------------------------------------------------------- loading


def read_dense_index(dataset_dir: Path | str) -> tuple[pd.DataFrame, dict]:
    """``(index, meta)`` of a fetched dense dataset. Raises DataError when it was not fetched."""
    dataset_dir = Path(dataset_dir)
    path, meta_path = dataset_dir / INDEX_NAME, dataset_dir / META_NAME
    if not path.is_file() or not meta_path.is_file():
        raise DataError(f"no dense dataset index at {dataset_dir} (index.csv + dense.json). Fetch it first.")
    index = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; a dense index needs {COLUMNS}. Fetch it again.")
    return index[COLUMNS], json.loads(meta_path.read_text())


def voc_colormap() -> np.ndarray:
    """The PASCAL VOC colour map (256, 3) uint8 (index k's colour from the bits of k)."""
    cmap = np.zeros((256, 3), dtype=np.uint8)
    for k in range(256):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[k] = (r, g, b)
    return cmap


def _read_labels(path: Path, label_map: str | None) -> np.ndarray:
    """(H, W) int64 class ids (255 = ignore) of one label file, after the dataset's mapping."""
    with Image.open(path) as im:
        if label_map == "voc" and im.mode in ("RGB", "RGBA"):  # colour-rendered masks: colours back to indices
            rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
            key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            cmap = voc_colormap().astype(np.int64)
            lut = {int((c[0] << 16) | (c[1] << 8) | c[2]): k for k, c in enumerate(cmap) if k < 21 or k == 255}
            out = np.full(key.shape, IGNORE_INDEX, dtype=np.int64)
            for colour, k in lut.items():
                out[key == colour] = k
            return out
        raw = np.asarray(im if im.mode in ("P", "L", "I", "I;16") else im.convert("L")).astype(np.int64)
    if label_map == "ade20k":
        return np.where(raw == 0, IGNORE_INDEX, raw - 1)
    if label_map == "cityscapes":
        lut = np.full(max(256, int(raw.max()) + 1), IGNORE_INDEX, dtype=np.int64)
        for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
            lut[label_id] = train_id
        return lut[raw]
    return raw


def _read_depth(path: Path, scale: float) -> np.ndarray:
    """(H, W) float32 depth in metres, 0 where unknown."""
    if path.suffix.lower() == ".npy":
        d = np.load(path).astype(np.float32)
    else:
        with Image.open(path) as im:
            d = np.asarray(im).astype(np.float32) / float(scale or 1000.0)
    if d.ndim != 2:
        raise DataError(f"depth map {path} has shape {d.shape}; expected (H, W).")
    return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)


def resize_crop_target(target: torch.Tensor, size: int) -> torch.Tensor:
    """(H, W) labels or depth -> (size, size): shorter side to ``size`` by nearest neighbour (pixel centres,
    ``nearest-exact``), then the same centre crop as ``decode.resize_crop`` applies to the image."""
    import torch.nn.functional as F

    h, w = target.shape
    nh, nw = resized_shape(h, w, size)
    if (nh, nw) != (h, w):
        target = F.interpolate(target[None, None].double(), size=(nh, nw), mode="nearest-exact")[0, 0].to(target.dtype)
    top, left = (nh - size) // 2, (nw - size) // 2
    return target[top : top + size, left : left + size].contiguous()


def load_dense(dataset_dir: Path | str, split: str, image_size: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Load one split of a fetched dense dataset at a fixed square size.

    Args:
        dataset_dir: the fetched directory (``index.csv`` + ``dense.json``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: output side S; images are resized (shorter side, antialiased bilinear) and centre cropped,
            targets likewise with nearest neighbour.
    Returns:
        images uint8 (N, 3, S, S); targets (N, S, S): int64 classes with 255 = ignore (segmentation) or float32
        metres with 0 = unknown (depth); meta: ``dense.json`` plus ``ids`` (the rows' ids, in order).
    """
    import torch

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dataset_dir = Path(dataset_dir)
    index, meta = read_dense_index(dataset_dir)
    rows = index[index["split"] == split]
    seg = meta["task"] == "segmentation"
    images, targets = [], []
    for image, target in zip(rows["image"], rows["target"]):
        ip, tp = Path(image), Path(target)
        ip, tp = (ip if ip.is_absolute() else dataset_dir / ip), (tp if tp.is_absolute() else dataset_dir / tp)
        img = load_image(ip)
        if seg:
            t = torch.from_numpy(_read_labels(tp, meta.get("label_map")))
        else:
            t = torch.from_numpy(_read_depth(tp, meta.get("depth_scale") or 1000.0))
        if tuple(t.shape) != tuple(img.shape[-2:]):
            raise DataError(f"target {tp} is {tuple(t.shape)} but image {ip} is {tuple(img.shape[-2:])}.")
        images.append(resize_crop(img, image_size))
        targets.append(resize_crop_target(t, image_size))
    dtype = torch.int64 if seg else torch.float32
    if images:
        x, y = torch.stack(images), torch.stack(targets).to(dtype)
    else:
        x = torch.empty((0, 3, image_size, image_size), dtype=torch.uint8)
        y = torch.empty((0, image_size, image_size), dtype=dtype)
    return x, y, {**meta, "ids": rows["id"].tolist(), "split": split}
