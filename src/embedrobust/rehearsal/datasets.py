"""Generated datasets in the published on-disk layouts the real loaders read.

Each ``write_*`` writes one dataset under ``root`` (as its archive extracts there) and returns the path a study
config points at (``datasets.<name>.path`` or ``.root``). The bytes depend only on the arguments and the seed.
Images are small, with class-dependent structure a probe or a dense head can learn: each class (segmentation
label, depth value) has its own colour, and classification images add class-specific stripes; per-image jitter
and noise come from the seed.

=============  ===================================================================================
imagenet       ``train/<wnid>/<wnid>_<i>.JPEG``, ``val/<wnid>/ILSVRC2012_val_<n>.JPEG`` (the first K of the
               1000 sorted wnids) and ``LOC_synset_mapping.txt`` (all 1000, as Kaggle's ImageNet ships it)
cifar10        ``cifar-10-batches-py/`` pickles: ``data_batch_1..5``, ``test_batch``, ``batches.meta``
cifar100       ``cifar-100-python/`` pickles: ``train``, ``test``, ``meta`` (fine and coarse labels)
stl10          ``stl10_binary/``: ``{train,test}_{X,y}.bin``, ``unlabeled_X.bin``, ``class_names.txt``,
               ``fold_indices.txt``
ade20k         ``ADEChallengeData2016/{images,annotations}/{training,validation}/``
voc            ``VOCdevkit/VOC2012/`` with ``JPEGImages``, palette ``SegmentationClass``, ``ImageSets/Segmentation``
cityscapes     ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png``, ``gtFine/.../*_gtFine_labelIds.png``
nyu-depth-v2   ``{train,test}/rgb/<id>.png`` and ``{train,test}/depth/<id>.png`` (16-bit mm) or ``.npy`` (m)
=============  ===================================================================================

The torchvision files are in torchvision's format but cannot match its md5 sums: fetch them with
``check_integrity: false`` (``stand_in_config`` sets it).
"""

from __future__ import annotations

import copy
import importlib.util
import pickle
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.dense import voc_colormap
from ..data.sources import imagenet_class_map
from ..errors import ConfigError, DataError, unknown_name

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# CIFAR-100's 20 superclasses, each with its 5 fine classes (the fine label order is alphabetical)
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
CIFAR100_CLASSES = sorted(c for members in CIFAR100_SUPERCLASSES.values() for c in members)
CIFAR100_COARSE = sorted(CIFAR100_SUPERCLASSES)
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
STL10_SIZE = 96
CIFAR_SIZE = 32

# label values of the dense trees: a few of each dataset's classes, including its ignored values
ADE20K_LABELS = (0, 1, 150, 7)  # 0 = "other" (ignored), 1..150 the classes
VOC_LABELS = (0, 15, 255, 20)  # background, person, boundary (ignored), tvmonitor
CITYSCAPES_LABELS = (7, 26, 0, 33)  # road, car, unlabeled (ignored), bicycle
NYU_DEPTHS_M = (1.0, 2.5, 4.0)


# ---------------------------------------------------------------------------------------------------- pixels


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(40, 215, size=3)


def _class_images(label: int, n: int, size: tuple[int, int], seed: int, stream: int) -> np.ndarray:
    """(n, H, W, 3) uint8 images of one class: its colour and stripe orientation and frequency, each image with its
    own phase, colour jitter and noise. ``stream`` keeps the splits' images apart."""
    h, w = size
    cls = np.random.default_rng([seed, 101, label])
    base, angle, freq = _colour(cls), cls.uniform(0, np.pi), cls.uniform(1.5, 5.0)
    stripe = cls.uniform(-1, 1, size=3) * 45
    rng = np.random.default_rng([seed, 102, stream, label])
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    wave = np.sin(2 * np.pi * freq * along[None] + phase)[..., None]
    jitter = rng.normal(0, 12, size=(n, 1, 1, 3))
    noise = rng.normal(0, 8, size=(n, h, w, 3))
    return np.clip(np.round(base + jitter + wave * stripe + noise), 0, 255).astype(np.uint8)


def _bands(values: Sequence[int | float], size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) map of vertical bands of equal width, one per value, in a seeded order."""
    h, w = size
    order = np.asarray(values)[rng.permutation(len(values))]
    columns = np.minimum(np.arange(w) * len(values) // w, len(values) - 1)
    return np.broadcast_to(order[columns], (h, w)).copy()


def _painted(values: np.ndarray, palette: dict, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: each value's colour plus noise, so that a dense head can read the labels from the pixels."""
    rgb = np.zeros((*values.shape, 3))
    for v, colour in palette.items():
        rgb[values == v] = colour
    return np.clip(np.round(rgb + rng.normal(0, 6, size=rgb.shape)), 0, 255).astype(np.uint8)


def _palette(values: Sequence[int | float], seed: int) -> dict:
    return {v: _colour(np.random.default_rng([seed, 103, k])) for k, v in enumerate(values)}


def _save(array: np.ndarray, path: Path, **kwargs) -> None:
    """Write an image without metadata (Pillow adds none unless asked), so the bytes depend only on the pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(array))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, format="JPEG", quality=90, **kwargs)
    else:
        image.save(path, format="PNG", compress_level=6, **kwargs)


def _fresh(*dirs: Path) -> None:
    """Remove what an earlier write left in the dataset's own folders (a smaller rewrite must not keep extra files)."""
    for d in dirs:
        if d.exists():
            shutil.rmtree(d)


def _count(value: int, what: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"{what} must be an integer >= {lo}, got {value!r}.")
    return int(value)


# ---------------------------------------------------------------------------------------------------- ImageNet


def _imagenet_lemmas() -> dict[str, str]:
    """wnid -> WordNet lemmas ("tench, Tinca tinca"), the text of LOC_synset_mapping.txt, from timm's data files
    (found without importing timm)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("timm is not installed; its ImageNet synset lemmas are needed for LOC_synset_mapping.txt.")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / "imagenet_synset_to_lemma.txt"
    return dict(line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)


def write_imagenet(
    root: Path, n_classes: int = 10, n_train: int = 4, n_val: int = 4, size: tuple[int, int] = (96, 128), seed: int = 0
) -> Path:
    """ImageNet-1k's first ``n_classes`` classes in ImageFolder layout, with Kaggle's ``LOC_synset_mapping.txt``.

    Returns ``root`` (``datasets.<name>.path`` of an imagefolder source; ``class_names: imagenet`` names the
    wnid folders, and so does ``class_names: <root>/LOC_synset_mapping.txt``).
    """
    wnids = list(imagenet_class_map())
    n_classes = _count(n_classes, "n_classes")
    if n_classes > len(wnids):
        raise ConfigError(f"ImageNet has {len(wnids)} classes, asked for n_classes={n_classes}.")
    root = Path(root)
    _fresh(root / "train", root / "val")
    lemmas = _imagenet_lemmas()
    root.mkdir(parents=True, exist_ok=True)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {lemmas[w]}\n" for w in wnids), encoding="utf-8")
    val_number = 0
    for split, n, stream in (("train", _count(n_train, "n_train"), 0), ("val", _count(n_val, "n_val"), 1)):
        for label, wnid in enumerate(wnids[:n_classes]):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i, pixels in enumerate(_class_images(label, n, size, seed, stream)):
                if split == "train":
                    file_name = f"{wnid}_{i + 1}.JPEG"
                else:  # val images are numbered across classes, as ILSVRC2012_val_00000001.JPEG ...
                    val_number += 1
                    file_name = f"ILSVRC2012_val_{val_number:08d}.JPEG"
                _save(pixels, folder / file_name)
    return root


# ---------------------------------------------------------------------------------------------------- torchvision


def _labelled(n_classes: int, n_per_class: int, size: int, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) images and (N,) labels, ``n_per_class`` per class, in a seeded order (the real batches
    are shuffled too)."""
    images = np.concatenate([_class_images(c, n_per_class, (size, size), seed, stream) for c in range(n_classes)])
    labels = np.repeat(np.arange(n_classes), n_per_class)
    order = np.random.default_rng([seed, 104, stream]).permutation(len(labels))
    return images[order], labels[order]


def _pickle(obj: dict, path: Path) -> None:
    # protocol 2, as the original Python 2 pickles; torchvision reads them with encoding="latin1"
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> (N, 3072): each row the red, then green, then blue plane, row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _filenames(names: list[str], labels: np.ndarray) -> list[str]:
    return [f"{names[c]}_s_{i:06d}.png" for i, c in enumerate(labels)]


def _first_classes(n_classes: int | None, names: Sequence[str], what: str) -> int:
    """How many of a dataset's classes to write: its first ``n_classes`` (None: all). The files still name every
    class, as ImageNet's first K wnids do, and the index's labels stay contiguous from 0."""
    if n_classes is None:
        return len(names)
    k = _count(n_classes, "n_classes")
    if k > len(names):
        raise ConfigError(f"{what} has {len(names)} classes, asked for n_classes={k}.")
    return k


def write_cifar10(root: Path, n_per_class: int = 4, seed: int = 0, n_classes: int | None = None) -> Path:
    """``root/cifar-10-batches-py/`` as ``torchvision.datasets.CIFAR10(root)`` reads it; the train images spread
    over the five batches; images of the first ``n_classes`` classes only (None: all). Returns ``root``
    (``datasets.<name>.root``)."""
    n = _count(n_per_class, "n_per_class")
    k = _first_classes(n_classes, CIFAR10_CLASSES, "CIFAR-10")
    base = Path(root) / "cifar-10-batches-py"
    _fresh(base)
    base.mkdir(parents=True)
    images, labels = _labelled(k, n, CIFAR_SIZE, seed, 0)
    for b, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        _pickle({"batch_label": f"training batch {b} of 5", "labels": labels[part].tolist(),
                 "data": _cifar_rows(images[part]), "filenames": _filenames(CIFAR10_CLASSES, labels[part])},
                base / f"data_batch_{b}")
    images, labels = _labelled(k, n, CIFAR_SIZE, seed, 1)
    _pickle({"batch_label": "testing batch 1 of 1", "labels": labels.tolist(), "data": _cifar_rows(images),
             "filenames": _filenames(CIFAR10_CLASSES, labels)}, base / "test_batch")
    _pickle({"num_cases_per_batch": 10000, "label_names": CIFAR10_CLASSES, "num_vis": 3072}, base / "batches.meta")
    return Path(root)


def write_cifar100(root: Path, n_per_class: int = 4, seed: int = 0, n_classes: int | None = None) -> Path:
    """``root/cifar-100-python/`` as ``torchvision.datasets.CIFAR100(root)`` reads it, coarse labels included;
    images of the first ``n_classes`` fine classes only (None: all; ``meta`` names all 100). Returns ``root``."""
    n = _count(n_per_class, "n_per_class")
    k = _first_classes(n_classes, CIFAR100_CLASSES, "CIFAR-100")
    base = Path(root) / "cifar-100-python"
    _fresh(base)
    base.mkdir(parents=True)
    coarse_of = np.array([
        CIFAR100_COARSE.index(next(s for s, members in CIFAR100_SUPERCLASSES.items() if c in members))
        for c in CIFAR100_CLASSES
    ])
    for file_name, label, stream in (("train", "training batch 1 of 1", 0), ("test", "testing batch 1 of 1", 1)):
        images, labels = _labelled(k, n, CIFAR_SIZE, seed, stream)
        _pickle({"filenames": _filenames(CIFAR100_CLASSES, labels), "batch_label": label,
                 "fine_labels": labels.tolist(), "coarse_labels": coarse_of[labels].tolist(),
                 "data": _cifar_rows(images)}, base / file_name)
    _pickle({"fine_label_names": CIFAR100_CLASSES, "coarse_label_names": CIFAR100_COARSE}, base / "meta")
    return Path(root)


def _stl10_bytes(images: np.ndarray) -> bytes:
    # STL-10 stores each image column-major: (N, 3, W, H), which torchvision transposes back
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


def write_stl10(root: Path, n_per_class: int = 4, n_unlabeled: int = 10, seed: int = 0,
                n_classes: int | None = None) -> Path:
    """``root/stl10_binary/`` as ``torchvision.datasets.STL10(root)`` reads it (96 x 96 images; labels 1..10 on
    disk), images of the first ``n_classes`` classes only (None: all). torchvision needs ``unlabeled_X.bin`` even
    for the labelled splits: a few unlabeled images are written. Returns ``root``."""
    n = _count(n_per_class, "n_per_class")
    k = _first_classes(n_classes, STL10_CLASSES, "STL-10")
    base = Path(root) / "stl10_binary"
    _fresh(base)
    base.mkdir(parents=True)
    for split, stream in (("train", 0), ("test", 1)):
        images, labels = _labelled(k, n, STL10_SIZE, seed, stream)
        (base / f"{split}_X.bin").write_bytes(_stl10_bytes(images))
        (base / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    rng = np.random.default_rng([seed, 105])
    unlabeled = [_class_images(int(c), 1, (STL10_SIZE, STL10_SIZE), seed, 2 + i)
                 for i, c in enumerate(rng.integers(0, k, _count(n_unlabeled, "n_unlabeled")))]
    (base / "unlabeled_X.bin").write_bytes(_stl10_bytes(np.concatenate(unlabeled)))
    (base / "class_names.txt").write_text("".join(f"{c}\n" for c in STL10_CLASSES))
    # ten folds of train indices, a fifth of the train set each (the real folds: 1,000 of 5,000)
    fold = max(1, k * n // 5)
    (base / "fold_indices.txt").write_text(
        "".join(" ".join(map(str, rng.permutation(k * n)[:fold])) + " \n" for _ in range(10))
    )
    return Path(root)


# ---------------------------------------------------------------------------------------------------- dense


def _label_png(labels: np.ndarray, path: Path, palette: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8)))
    if palette is not None:  # palette image: the index is the class, as VOC ships its masks
        image = image.convert("P")  # "L" -> "P" keeps the values as indices
        image.putpalette(palette.flatten().tolist())
    image.save(path, format="PNG", compress_level=6)


def _segmentation(values: Sequence[int], size: tuple[int, int], seed: int, stream: int, i: int):
    rng = np.random.default_rng([seed, 106, stream, i])
    labels = _bands(values, size, rng)
    return _painted(labels, _palette(values, seed), rng), labels


def write_ade20k(
    root: Path, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (48, 64),
    labels: Sequence[int] = ADE20K_LABELS, seed: int = 0,
) -> Path:
    """``root/ADEChallengeData2016/`` (the SceneParsing release): JPEG images and PNG annotations (0 = other,
    1..150 the classes). Returns ``root/ADEChallengeData2016``."""
    base = Path(root) / "ADEChallengeData2016"
    _fresh(base)
    for folder, prefix, n, stream in (("training", "train", n_train, 0), ("validation", "val", n_val, 1)):
        for i in range(_count(n, f"n_{prefix}")):
            stem = f"ADE_{prefix}_{i + 1:08d}"
            rgb, lab = _segmentation(labels, size, seed, stream, i)
            _save(rgb, base / "images" / folder / f"{stem}.jpg")
            _label_png(lab, base / "annotations" / folder / f"{stem}.png")
    return base


def write_voc(
    root: Path, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (48, 64),
    labels: Sequence[int] = VOC_LABELS, rgb_masks: bool = False, seed: int = 0,
) -> Path:
    """``root/VOCdevkit/VOC2012/``: ``JPEGImages``, ``SegmentationClass`` palette PNGs (index = class, 255 =
    boundary; ``rgb_masks`` renders them to colours instead) and ``ImageSets/Segmentation/{train,val,trainval}.txt``.
    Returns ``root/VOCdevkit/VOC2012``."""
    base = Path(root) / "VOCdevkit" / "VOC2012"
    _fresh(base)
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    cmap = voc_colormap()
    stems: dict[str, list[str]] = {}
    number = 0
    for split, n, stream in (("train", n_train, 0), ("val", n_val, 1)):
        stems[split] = []
        for i in range(_count(n, f"n_{split}")):
            number += 1
            stem = f"2007_{number:06d}"
            rgb, lab = _segmentation(labels, size, seed, stream, i)
            _save(rgb, base / "JPEGImages" / f"{stem}.jpg")
            if rgb_masks:
                _save(cmap[lab], base / "SegmentationClass" / f"{stem}.png")
            else:
                _label_png(lab, base / "SegmentationClass" / f"{stem}.png", palette=cmap)
            stems[split].append(stem)
    for split in ("train", "val"):
        (sets / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems[split]))
    (sets / "trainval.txt").write_text("".join(f"{s}\n" for s in sorted(stems["train"] + stems["val"])))
    return base


def write_cityscapes(
    root: Path, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (32, 64),
    labels: Sequence[int] = CITYSCAPES_LABELS, seed: int = 0,
) -> Path:
    """Cityscapes' ``leftImg8bit/{train,val}/<city>/`` PNGs and ``gtFine`` label-id PNGs (cityscapesScripts
    label ids; the loader maps them to the 19 train ids). Returns ``root``."""
    root = Path(root)
    _fresh(root / "leftImg8bit", root / "gtFine")
    for split, city, n, stream in (("train", "aachen", n_train, 0), ("val", "lindau", n_val, 1)):
        for i in range(_count(n, f"n_{split}")):
            stem = f"{city}_{i:06d}_000019"
            rgb, lab = _segmentation(labels, size, seed, stream, i)
            _save(rgb, root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            _label_png(lab, root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    return root


def write_nyu(
    root: Path, n_train: int = 8, n_test: int = 4, size: tuple[int, int] = (48, 64),
    depths: Sequence[float] = NYU_DEPTHS_M, depth_format: str = "png", test_name: str = "test", seed: int = 0,
) -> Path:
    """NYU-Depth-v2 as exported to files: ``{train,test}/rgb/<id>.png`` and ``{train,test}/depth/<id>.png``
    (16-bit millimetres) or ``.npy`` (float32 metres); ``depth_format`` ``"mixed"`` alternates the two. The top
    row has no measurement (0), as the Kinect's holes. ``test_name`` ``"val"`` names the test folder ``val``.
    Returns ``root``."""
    if depth_format not in ("png", "npy", "mixed"):
        raise unknown_name("depth format", depth_format, ["mixed", "npy", "png"])
    if test_name not in ("test", "val"):
        raise unknown_name("NYU test folder name", test_name, ["test", "val"])
    root = Path(root)
    _fresh(root / "train", root / "test", root / "val")
    palette = _palette(depths, seed)
    for folder, n, stream in (("train", n_train, 0), (test_name, n_test, 1)):
        (root / folder / "depth").mkdir(parents=True)
        for i in range(_count(n, f"n_{folder}")):
            rng = np.random.default_rng([seed, 107, stream, i])
            depth = _bands(depths, size, rng).astype(np.float64)
            depth[0, :] = 0.0
            _save(_painted(depth, palette, rng), root / folder / "rgb" / f"{i:05d}.png")
            depth = depth.astype(np.float32)
            if depth_format == "npy" or (depth_format == "mixed" and i % 2):
                np.save(root / folder / "depth" / f"{i:05d}.npy", depth)
            else:
                _save(np.round(depth * 1000.0).astype(np.uint16), root / folder / "depth" / f"{i:05d}.png")
    return root


# ---------------------------------------------------------------------------------------------------- all


# writer key -> (folder under write_all's root, as the shipped configs' /datasets/...; the writer)
WRITERS: dict[str, tuple[str, Callable[..., Path]]] = {
    "imagenet": ("imagenet", write_imagenet),
    "cifar10": ("torchvision", write_cifar10),
    "cifar100": ("torchvision", write_cifar100),
    "stl10": ("torchvision", write_stl10),
    "ade20k": (".", write_ade20k),
    "voc": (".", write_voc),
    "cityscapes": ("cityscapes", write_cityscapes),
    "nyu-depth-v2": ("nyu_depth_v2", write_nyu),
}
TORCHVISION_KEYS = {"CIFAR10": "cifar10", "CIFAR100": "cifar100", "STL10": "stl10"}


def stand_in_for(cfg: dict) -> str | None:
    """The writer key (``WRITERS``) of a dataset config's generated stand-in; None for sources that need none
    (demo-digits, skimage-photos, synthetic-*).

    Raises:
        ConfigError: a real dataset this module cannot generate (another torchvision dataset).
    """
    source = cfg.get("source")
    if source == "imagefolder":
        return "imagenet"
    if source == "torchvision":
        key = TORCHVISION_KEYS.get(cfg.get("name"))
        if key is None:
            raise ConfigError(f"no generated stand-in for torchvision {cfg.get('name')!r}; "
                              f"known: {', '.join(sorted(TORCHVISION_KEYS))}.")
        return key
    return source if source in WRITERS else None


def stand_in_config(cfg: dict, path: Path) -> dict:
    """A copy of a dataset config that reads its stand-in at ``path`` (``write_all``'s value): ``path`` or
    ``root`` replaced; torchvision sets never download and skip the md5 checks their generated files cannot pass."""
    out = copy.deepcopy(cfg)
    if out.get("source") == "torchvision":
        out.update(root=str(path), download=False, check_integrity=False)
    else:
        out["path"] = str(path)
    return out


def write_all(
    root: Path, which: Sequence[str], n_per_class: int = 4, n_classes: int = 10, n_dense: tuple[int, int] = (8, 4),
    seed: int = 0, torchvision_classes: int | None = None,
) -> dict[str, Path]:
    """Write the stand-ins ``which`` (``WRITERS`` keys) under ``root``, laid out as the shipped configs expect
    ``/datasets`` (``imagenet/``, ``torchvision/``, ``ADEChallengeData2016/``, ``VOCdevkit/VOC2012/``,
    ``cityscapes/``, ``nyu_depth_v2/``).

    Args:
        n_per_class: classification images per class and split.
        n_classes: ImageNet classes (the first of the sorted wnids).
        torchvision_classes: the first K classes of CIFAR-10/100 and STL-10 (None: all of each).
        n_dense: dense (train, test) images; the loaders carve val from train.

    Returns:
        key -> the path a config points at (``path``, or ``root`` for torchvision sets; see ``stand_in_config``).
    """
    unknown = [k for k in which if k not in WRITERS]
    if unknown:
        raise unknown_name("dataset stand-in", unknown[0], sorted(WRITERS))
    n_train, n_test = n_dense
    out = {}
    for key in dict.fromkeys(which):
        folder, write = WRITERS[key]
        where = Path(root) / folder
        if key == "imagenet":
            out[key] = write(where, n_classes=n_classes, n_train=n_per_class, n_val=n_per_class, seed=seed)
        elif folder == "torchvision":
            out[key] = write(where, n_per_class=n_per_class, seed=seed, n_classes=torchvision_classes)
        elif key == "nyu-depth-v2":
            out[key] = write(where, n_train=n_train, n_test=n_test, seed=seed)
        else:
            out[key] = write(where, n_train=n_train, n_val=n_test, seed=seed)
    return out
