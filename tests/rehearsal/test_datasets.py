"""Generated datasets: each is read by the real loader, carries learnable class structure, and is deterministic."""

from pathlib import Path

import numpy as np
import pytest
import torchvision
import yaml

from embedrobust.data import class_names, fetch_dataset, load_image, read_index, sources
from embedrobust.data.dense import fetch_dense, load_dense, read_dense_index
from embedrobust.errors import ConfigError, DataError, OfflineError, UnknownNameError
from embedrobust.rehearsal.datasets import (
    CIFAR100_CLASSES,
    WRITERS,
    stand_in_config,
    stand_in_for,
    write_all,
    write_cifar10,
    write_cifar100,
    write_imagenet,
    write_stl10,
)

REPO = Path(__file__).resolve().parents[2]
TORCHVISION = {"CIFAR10": (write_cifar10, 10), "CIFAR100": (write_cifar100, 100), "STL10": (write_stl10, 10)}
DENSE = ["ade20k", "voc", "cityscapes", "nyu-depth-v2"]


def _bytes(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _tv_cfg(name, root, **extra):
    return {"source": "torchvision", "name": name, "root": str(root), **extra}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_files_load_through_the_source_without_md5_checks(tmp_path, name):
    write, n_classes = TORCHVISION[name]
    root = write(tmp_path / "tv", n_per_class=2, seed=0)
    fetch_dataset("d", _tv_cfg(name, root, download=False, check_integrity=False), tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert index.groupby("split")["label"].value_counts().eq(2).all() and len(index) == 4 * n_classes
    names = class_names(index)
    assert len(names) == n_classes
    assert names[0] == "airplane" if n_classes == 10 else names[1] == "aquarium fish"  # "_" -> " " as prompt words
    # the exported PNG is torchvision's own decoding of the generated file
    ds = sources.unverified(getattr(torchvision.datasets, name))(
        root=str(root), download=False, **sources.TORCHVISION_SPLITS[name][1]
    )
    row = index[index["image"] == "test000003"].iloc[0]
    image, label = ds[3]
    assert row.label == label
    np.testing.assert_array_equal(load_image(tmp_path / "out" / row.file).permute(1, 2, 0).numpy(), np.asarray(image))


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_md5_checks_reject_generated_files_with_the_fix(tmp_path, name):
    root = TORCHVISION[name][0](tmp_path / "tv", n_per_class=1, seed=0)
    with pytest.raises(RuntimeError):  # torchvision itself: "not found or corrupted"
        getattr(torchvision.datasets, name)(root=str(root), download=False, **sources.TORCHVISION_SPLITS[name][0])
    with pytest.raises(DataError, match="do not match torchvision's md5 sums.*check_integrity: false"):
        fetch_dataset("d", _tv_cfg(name, root, download=False), tmp_path / "out", 0)


def test_torchvision_md5_mismatch_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "reachable", lambda url, timeout=3.0: False)
    root = write_cifar10(tmp_path / "tv", n_per_class=1)
    with pytest.raises(OfflineError, match="do not match torchvision's md5 sums.*check_integrity: false"):
        fetch_dataset("d", _tv_cfg("CIFAR10", root, download=True), tmp_path / "out", 0)


def test_check_integrity_must_be_a_boolean(tmp_path):
    with pytest.raises(ConfigError, match="check_integrity"):
        fetch_dataset("d", _tv_cfg("CIFAR10", tmp_path, check_integrity="no"), tmp_path / "out", 0)


def test_cifar100_coarse_labels_are_the_superclasses(tmp_path):
    import pickle

    root = write_cifar100(tmp_path, n_per_class=1)
    with open(root / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    with open(root / "cifar-100-python" / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    pairs = {(CIFAR100_CLASSES[f], meta["coarse_label_names"][c]) for f, c in zip(entry["fine_labels"],
                                                                                  entry["coarse_labels"])}
    assert ("aquarium_fish", "fish") in pairs and ("tractor", "vehicles_2") in pairs and len(pairs) == 100


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_a_class_subset_is_the_first_classes(tmp_path, name):
    root = TORCHVISION[name][0](tmp_path / "tv", n_per_class=2, seed=0, n_classes=3)
    fetch_dataset("d", _tv_cfg(name, root, download=False, check_integrity=False), tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert index.groupby("split")["label"].value_counts().eq(2).all() and len(index) == 12
    first = {"CIFAR10": ["airplane", "automobile", "bird"], "CIFAR100": ["apple", "aquarium fish", "baby"],
             "STL10": ["airplane", "bird", "car"]}[name]
    assert class_names(index) == first
    with pytest.raises(ConfigError, match="asked for n_classes=101"):
        TORCHVISION[name][0](tmp_path / "tv2", n_per_class=1, n_classes=101)


def test_stl10_folds_load(tmp_path):
    root = write_stl10(tmp_path, n_per_class=2)
    ds = sources.unverified(torchvision.datasets.STL10)(root=str(root), split="train", folds=9, download=False)
    assert len(ds) == 4 and ds[0][0].size == (96, 96)


def test_imagenet_folders_get_clip_names(tmp_path):
    root = write_imagenet(tmp_path / "imagenet", n_classes=3, n_train=2, n_val=1, size=(24, 32))
    assert sorted(p.name for p in (root / "train").iterdir()) == ["n01440764", "n01443537", "n01484850"]
    mapping = (root / "LOC_synset_mapping.txt").read_text().splitlines()
    assert len(mapping) == 1000 and mapping[0] == "n01440764 tench, Tinca tinca"
    cfg = {"source": "imagefolder", "path": str(root), "class_names": "imagenet"}
    fetch_dataset("imagenet", cfg, tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert class_names(index) == ["tench", "goldfish", "great white shark"]
    assert index["split"].value_counts().to_dict() == {"train": 6, "test": 3}
    assert index["image"].str.match(r"^(train/n\d{8}/n\d{8}_\d+|val/n\d{8}/ILSVRC2012_val_\d{8})\.JPEG$").all()


def test_imagenet_loc_synset_mapping_as_the_class_map(tmp_path):
    root = write_imagenet(tmp_path / "imagenet", n_classes=8, n_train=1, n_val=1, size=(16, 16))
    cfg = {"source": "imagefolder", "path": str(root), "class_names": str(root / "LOC_synset_mapping.txt")}
    fetch_dataset("imagenet", cfg, tmp_path / "out", 0)
    assert class_names(read_index(tmp_path / "out"))[7] == "cock"  # WordNet's first lemma (CLIP says "rooster")


def test_classification_images_carry_class_structure(tmp_path):
    root = write_imagenet(tmp_path / "imagenet", n_classes=6, n_train=4, n_val=4, size=(24, 32), seed=3)
    fetch_dataset("i", {"source": "imagefolder", "path": str(root)}, tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    colour = np.stack([load_image(f).float().mean(dim=(1, 2)).numpy() for f in index["file"]])
    train, test = (index["split"] == "train").to_numpy(), (index["split"] == "test").to_numpy()
    labels = index["label"].to_numpy()
    centroids = np.stack([colour[train & (labels == c)].mean(0) for c in range(6)])
    nearest = np.argmin(((colour[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels[test]).mean() >= 0.9


@pytest.mark.parametrize("source", DENSE)
def test_dense_trees_load_through_the_dense_sources(tmp_path, source):
    path = write_all(tmp_path / "datasets", [source], n_dense=(4, 2))[source]
    out = fetch_dense(source, {"source": source, "path": str(path), "val_fraction": 0.25}, tmp_path / "out", 0)
    index, meta = read_dense_index(out.parent)
    assert index["split"].value_counts().to_dict() == {"train": 3, "val": 1, "test": 2}
    images, targets, _ = load_dense(out.parent, "test", 32)
    assert images.shape == (2, 3, 32, 32) and targets.shape == (2, 32, 32)
    values = sorted(targets.unique().tolist())
    expected = {"ade20k": [0, 6, 149, 255], "voc": [0, 15, 20, 255], "cityscapes": [0, 13, 18, 255],
                "nyu-depth-v2": [0.0, 1.0, 2.5, 4.0]}[source]
    assert values == pytest.approx(expected)
    # each target value has its own colour: the mean colours of two values are far apart
    means = [images.permute(0, 2, 3, 1)[targets == v].float().mean(0) for v in values]
    assert min(float((a - b).abs().max()) for i, a in enumerate(means) for b in means[i + 1:]) > 10


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    which = sorted(WRITERS)
    kwargs = {"n_per_class": 1, "n_classes": 2, "n_dense": (2, 1)}
    a, b, c = (write_all(tmp_path / k, which, seed=s, **kwargs) for k, s in (("a", 0), ("b", 0), ("c", 1)))
    assert [p.relative_to(tmp_path / "a") for p in a.values()] == [p.relative_to(tmp_path / "b") for p in b.values()]
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    files_a, files_c = _bytes(tmp_path / "a"), _bytes(tmp_path / "c")
    assert files_a.keys() == files_c.keys()
    same = sorted(k for k in files_a if files_a[k] == files_c[k])
    # every image differs; names, and maps that are a few shuffled bands, need not
    targets = ("/annotations/", "/SegmentationClass/", "/gtFine/", "/depth/")
    assert all(k.endswith((".txt", "meta")) or any(t in k for t in targets) for k in same)


def test_rewrite_leaves_no_stale_files(tmp_path):
    write_imagenet(tmp_path, n_classes=2, n_train=3, n_val=1, size=(8, 8))
    write_imagenet(tmp_path, n_classes=1, n_train=1, n_val=1, size=(8, 8))
    assert len(list((tmp_path / "train").rglob("*.JPEG"))) == 1


def test_unknown_stand_in_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="cifar10"):
        write_all(tmp_path, ["cifar-10"])
    with pytest.raises(ConfigError, match="CIFAR10"):
        stand_in_for({"source": "torchvision", "name": "SVHN"})
    assert stand_in_for({"source": "demo-digits"}) is None and stand_in_for({"source": "synthetic-shapes"}) is None


def test_shipped_configs_datasets_fetch_from_their_stand_ins(tmp_path):
    configs = [yaml.safe_load((REPO / "config" / f).read_text()) for f in ("full_study.yaml", "ssl_benchmark.yaml")]
    classification = {n: d for c in configs for n, d in c["datasets"].items()}
    dense = {n: d for c in configs for n, d in c["dense"]["datasets"].items()}
    keys = {n: stand_in_for(d) for n, d in {**classification, **dense}.items()}
    assert set(keys.values()) == set(WRITERS)
    paths = write_all(tmp_path / "datasets", sorted(set(keys.values())), n_per_class=2, n_classes=3, n_dense=(3, 1))
    for name, cfg in classification.items():
        cfg = {**stand_in_config(cfg, paths[keys[name]]), "n_per_class": 2}
        fetch_dataset(name, cfg, tmp_path / "out" / name, 0)
        assert read_index(tmp_path / "out" / name)["split"].value_counts().eq(2 * len(class_names(
            read_index(tmp_path / "out" / name)))).all()
    assert class_names(read_index(tmp_path / "out" / "imagenet"))[0] == "tench"
    for name, cfg in dense.items():
        fetch_dense(name, stand_in_config(cfg, paths[keys[name]]), tmp_path / "dense" / name, 0)
