"""Dense-task dataset fetchers (synthetic, and real layouts on tiny fake trees) and load_dense."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from embedrobust.attack.synthetic import depth_ramps, shapes_segmentation
from embedrobust.data.dense import (
    CITYSCAPES_TRAIN_IDS,
    LAYOUTS,
    fetch_dense,
    list_dense_sources,
    load_dense,
    read_dense_index,
)
from embedrobust.errors import ConfigError, DataError, UnknownNameError
from embedrobust.rehearsal.datasets import write_ade20k, write_cityscapes, write_nyu, write_voc

REAL = ["ade20k", "voc", "cityscapes", "nyu-depth-v2"]


def _labels(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _pattern(values, h=24, w=32):
    """(h, w) labels: vertical bands of ``values``."""
    out = np.zeros((h, w), np.uint8)
    for k, v in enumerate(values):
        out[:, k * w // len(values):(k + 1) * w // len(values)] = v
    return out


# ---------------------------------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_writes_an_index_and_loads_back_the_generated_masks(tmp_path):
    cfg = {"source": "synthetic-shapes", "n": 20, "image_size": 32, "cell": 8}
    path = fetch_dense("shapes", cfg, tmp_path / "s", 3)
    index, meta = read_dense_index(path.parent)
    assert list(index.columns) == ["id", "image", "target", "split"]
    assert set(index["split"]) == {"train", "val", "test"} and len(index) == 20
    assert meta["task"] == "segmentation" and meta["n_classes"] == 4 and meta["ignore_index"] == 255
    assert all((path.parent / f).is_file() for f in [*index["image"], *index["target"]])
    x, m = shapes_segmentation(20, size=32, n_classes=4, cell=8, generator=torch.Generator().manual_seed(3))
    for split in ("train", "val", "test"):
        images, masks, info = load_dense(path.parent, split, 32)
        pos = [int(i) for i in info["ids"]]
        assert images.dtype == torch.uint8 and images.shape == (len(pos), 3, 32, 32)
        assert masks.dtype == torch.int64 and masks.shape == (len(pos), 32, 32)
        assert torch.equal(masks, m[pos])
        assert torch.equal(images, (x[pos] * 255).round().to(torch.uint8))


def test_synthetic_depth_round_trips_in_millimetres(tmp_path):
    path = fetch_dense("d", {"source": "synthetic-depth", "n": 8, "image_size": 16}, tmp_path / "d", 0)
    _, d = depth_ramps(8, size=16, generator=torch.Generator().manual_seed(0))
    images, depth, meta = load_dense(path.parent, "test", 16)
    assert meta["task"] == "depth" and depth.dtype == torch.float32 and depth.shape == (len(meta["ids"]), 16, 16)
    torch.testing.assert_close(depth, d[[int(i) for i in meta["ids"]]], atol=5e-4, rtol=0)


def test_same_seed_same_bytes_other_seed_other_split(tmp_path):
    cfg = {"source": "synthetic-shapes", "n": 12, "image_size": 32, "cell": 8}
    a, b, c = (fetch_dense("s", cfg, tmp_path / k, s).parent for k, s in (("a", 1), ("b", 1), ("c", 2)))
    for rel in ["index.csv", "dense.json", "images/00003.png", "targets/00003.png"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert (a / "targets/00003.png").read_bytes() != (c / "targets/00003.png").read_bytes()


def test_refetch_replaces_the_directory_and_a_failed_fetch_keeps_the_old_one(tmp_path):
    out = tmp_path / "s"
    fetch_dense("s", {"source": "synthetic-shapes", "n": 12, "image_size": 32, "cell": 8}, out, 0)
    fetch_dense("s", {"source": "synthetic-shapes", "n": 6, "image_size": 32, "cell": 8}, out, 0)
    assert len(list((out / "images").iterdir())) == 6
    with pytest.raises(ConfigError):
        fetch_dense("s", {"source": "synthetic-shapes", "n": 0}, out, 0)
    assert len(read_dense_index(out)[0]) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary directories left behind


def test_unknown_source_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="synthetic-shapes"):
        fetch_dense("x", {"source": "synthetic-shape"}, tmp_path / "x", 0)
    assert set(REAL) < set(list_dense_sources())


# ---------------------------------------------------------------------------------------------------- real layouts


SIZE = (24, 32)  # small, and not square: loading crops the longer side
BUILDERS = {
    "ade20k": lambda root: write_ade20k(root, n_train=3, n_val=1, size=SIZE),
    "voc": lambda root: write_voc(root, n_train=3, n_val=1, size=SIZE),
    "cityscapes": lambda root: write_cityscapes(root, n_train=3, n_val=1, size=SIZE),
    "nyu-depth-v2": lambda root: write_nyu(root, n_train=3, n_test=2, size=SIZE),
}


@pytest.mark.parametrize("source", REAL)
def test_real_layouts_index_official_val_as_test_and_carve_val_from_train(tmp_path, source):
    root = BUILDERS[source](tmp_path / "raw")
    path = fetch_dense("real", {"source": source, "path": str(root), "val_fraction": 0.34}, tmp_path / "out", 0)
    index, meta = read_dense_index(path.parent)
    counts = index["split"].value_counts().to_dict()
    n_test = 2 if source == "nyu-depth-v2" else 1
    assert counts == {"train": 2, "val": 1, "test": n_test}
    assert all(index["image"].map(lambda p: p.startswith("/")))  # real data is referenced, not copied
    assert not (path.parent / "images").exists()


def test_ade20k_zero_is_ignored_and_classes_shift_down(tmp_path):
    root = BUILDERS["ade20k"](tmp_path / "raw")  # ADEChallengeData2016: the loader also takes its parent
    out = fetch_dense("ade", {"source": "ade20k", "path": str(root.parent)}, tmp_path / "out", 0).parent
    images, labels, meta = load_dense(out, "test", 24)
    assert meta["n_classes"] == 150 and images.shape == (1, 3, 24, 24)
    assert sorted(labels.unique().tolist()) == [0, 6, 149, 255]


@pytest.mark.parametrize("rgb_masks", [False, True])
def test_voc_palette_indices_are_classes_and_255_is_ignore(tmp_path, rgb_masks):
    root = write_voc(tmp_path / "raw", n_train=3, n_val=1, size=SIZE, rgb_masks=rgb_masks)  # VOC2012
    out = fetch_dense("voc", {"source": "voc", "path": str(root.parent)}, tmp_path / "out", 0).parent
    _, labels, meta = load_dense(out, "test", 24)
    assert meta["n_classes"] == 21 and meta["classes"][15] == "person"
    assert sorted(labels.unique().tolist()) == [0, 15, 20, 255]


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    out = fetch_dense("cs", {"source": "cityscapes", "path": str(BUILDERS["cityscapes"](tmp_path / "raw"))},
                      tmp_path / "o", 0)
    _, labels, meta = load_dense(out.parent, "train", 24)
    assert meta["n_classes"] == 19
    assert sorted(labels.unique().tolist()) == sorted([CITYSCAPES_TRAIN_IDS[7], CITYSCAPES_TRAIN_IDS[26],
                                                       CITYSCAPES_TRAIN_IDS[33], 255])
    assert CITYSCAPES_TRAIN_IDS[26] == 13  # car


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_nyu_depth_png_millimetres_and_npy_metres(tmp_path, test_name):
    raw = write_nyu(tmp_path / "raw", n_train=3, n_test=2, size=SIZE, depths=(1.234, 2.5), depth_format="mixed",
                    test_name=test_name)
    assert {p.suffix for p in (raw / test_name / "depth").iterdir()} == {".png", ".npy"}
    out = fetch_dense("nyu", {"source": "nyu-depth-v2", "path": str(raw)}, tmp_path / "o", 0)
    _, depth, meta = load_dense(out.parent, "test", 24)
    assert depth.dtype == torch.float32 and depth.shape == (2, 24, 24)
    assert sorted(depth.unique().tolist()) == pytest.approx([0.0, 1.234, 2.5])


@pytest.mark.parametrize("source", REAL)
def test_missing_path_names_the_expected_layout(tmp_path, source):
    with pytest.raises(DataError) as err:
        fetch_dense("real", {"source": source, "path": str(tmp_path / "nowhere")}, tmp_path / "out", 0)
    assert str(tmp_path / "nowhere") in str(err.value) and LAYOUTS[source] in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("source", REAL)
def test_wrong_layout_is_a_data_error(tmp_path, source):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="expected"):
        fetch_dense("real", {"source": source, "path": str(tmp_path / "empty")}, tmp_path / "out", 0)
    with pytest.raises(ConfigError, match="path"):
        fetch_dense("real", {"source": source}, tmp_path / "out", 0)


def test_subsets_and_load_resizes_labels_by_nearest_neighbour_aligned_with_the_image(tmp_path):
    root = tmp_path / "raw"
    for split, n in (("train", 6), ("val", 4)):
        for i in range(n):
            labels = _pattern([0, 1, 2, 3], h=40, w=60)
            rgb = np.repeat(((labels + 1) * 50)[..., None], 3, axis=-1).astype(np.uint8)
            path = root / "leftImg8bit" / split / "c" / f"c_{i}_leftImg8bit.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path)
            ids = np.array([0, 7, 8, 11], np.uint8)[labels]  # -> ignore, road, sidewalk, building
            _labels(root / "gtFine" / split / "c" / f"c_{i}_gtFine_labelIds.png", ids)
    cfg = {"source": "cityscapes", "path": str(root), "n_train": 4, "n_test": 3, "val_fraction": 0.25}
    out = fetch_dense("cs", cfg, tmp_path / "o", 5).parent
    assert read_dense_index(out)[0]["split"].value_counts().to_dict() == {"train": 3, "val": 1, "test": 3}
    images, labels, _ = load_dense(out, "test", 20)
    assert images.shape == (3, 3, 20, 20) and labels.shape == (3, 20, 20)
    assert set(labels.unique().tolist()) <= {255, 0, 1, 2}
    # away from band edges the label still matches the image's band (crop and resize are the same geometry)
    band = {0: 100, 1: 150, 2: 200, 255: 50}
    expect = torch.tensor([band[int(v)] for v in labels[0].flatten()]).view(20, 20)
    match = (images[0, 0].int() - expect).abs() <= 2
    lab = labels[0]
    edge = torch.zeros_like(match)
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, 1:] != lab[:, :-1]
    assert bool((match | edge).all()) and match.float().mean() > 0.7  # only pixels at a label edge may blend


def test_meta_is_json_with_the_task(tmp_path):
    out = fetch_dense("s", {"source": "synthetic-shapes", "n": 8, "image_size": 32, "cell": 8}, tmp_path / "s", 0)
    meta = json.loads((out.parent / "dense.json").read_text())
    assert meta["source"] == "synthetic-shapes" and meta["task"] == "segmentation"
