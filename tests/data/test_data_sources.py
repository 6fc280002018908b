"""Each dataset source on tiny settings, determinism, and failure modes."""

import http.server
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from embedrobust.core import reachable
from embedrobust.data import class_names, fetch_dataset, list_sources, load_image, read_index, sources
from embedrobust.errors import DataError, OfflineError, UnknownNameError

pytestmark = pytest.mark.filterwarnings("error")  # a clean run must not warn

DIGITS = {"source": "demo-digits", "image_size": 32, "n_per_class": 3, "test_fraction": 0.5}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    fetch_dataset("digits", DIGITS, out, seed=0)
    return out


def _bytes(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_list_sources():
    assert list_sources() == ["demo-digits", "imagefolder", "skimage-photos", "torchvision"]


def test_unknown_source_lists_known_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="demo-digits") as info:
        fetch_dataset("x", {"source": "demo-digit"}, tmp_path, 0)
    assert "Did you mean 'demo-digits'" in str(info.value)


def test_digits_counts_and_splits(digits_dir):
    index = read_index(digits_dir)
    assert len(index) == 30
    assert class_names(index) == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    per_class = index.groupby(["label", "split"]).size().unstack()
    assert (per_class["test"] == 2).all() and (per_class["train"] == 1).all()  # 3 * 0.5 rounds half up


def test_digits_labels_and_pixels_match_sklearn(digits_dir):
    from sklearn.datasets import load_digits

    digits = load_digits()
    for row in read_index(digits_dir).itertuples():
        i = int(row.image.removeprefix("digit"))
        assert row.label == digits.target[i]
        rgb = load_image(digits_dir / row.file).numpy()
        assert rgb.shape == (3, 32, 32)
        # shrink back to 8x8 by 4x4 block means: dark where the digit has ink
        small = rgb[0].reshape(8, 4, 8, 4).mean(axis=(1, 3))
        assert np.corrcoef(small.ravel(), -digits.images[i].ravel())[0, 1] > 0.9


def test_digits_same_seed_same_bytes(digits_dir, tmp_path):
    fetch_dataset("digits", DIGITS, tmp_path, seed=0)
    assert _bytes(tmp_path) == _bytes(digits_dir)


def test_digits_other_seed_other_subset(digits_dir, tmp_path):
    fetch_dataset("digits", DIGITS, tmp_path, seed=1)
    assert set(read_index(tmp_path)["image"]) != set(read_index(digits_dir)["image"])


def test_refetch_removes_stale_images(tmp_path):
    fetch_dataset("digits", DIGITS, tmp_path, seed=0)
    fetch_dataset("digits", {**DIGITS, "n_per_class": 1}, tmp_path, seed=0)
    assert len(list((tmp_path / "images").iterdir())) == len(read_index(tmp_path)) == 10


def test_skimage_photos(tmp_path):
    fetch_dataset("photos", {"source": "skimage-photos", "image_size": 24}, tmp_path, 0)
    index = read_index(tmp_path)
    assert {"astronaut", "chelsea", "coffee"} <= set(index["image"])
    assert (index["split"] == "test").all()
    assert class_names(index) == index.sort_values("label")["class_name"].tolist()  # one class per photo
    assert len(set(index["class_name"])) == len(index)
    for f in index["file"]:
        assert load_image(tmp_path / f).shape == (3, 24, 24)
    # the coffee photo is mostly warm: red channel brighter than blue on average
    coffee = load_image(tmp_path / "images/coffee.png").float()
    assert coffee[0].mean() > coffee[2].mean()


def test_skimage_photos_selection(tmp_path):
    fetch_dataset(
        "photos", {"source": "skimage-photos", "image_size": 16, "photos": ["rocket", "astronaut"]}, tmp_path, 0
    )
    index = read_index(tmp_path)
    assert index["image"].tolist() == ["astronaut", "rocket"] and index["label"].tolist() == [0, 1]


def test_skimage_photos_unknown(tmp_path):
    with pytest.raises(UnknownNameError, match="astronaut"):
        fetch_dataset("photos", {"source": "skimage-photos", "photos": ["astronot"]}, tmp_path, 0)


def _folder(root, classes, n, colour=lambda c, i: (c * 80, i * 30, 0)):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (6, 5), colour(c, i)).save(root / name / f"img{i}.png")


def test_imagefolder_flat(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["dog", "cat"], 4)
    (src / "cat" / "notes.txt").write_text("not an image, ignored")
    fetch_dataset("f", {"source": "imagefolder", "path": str(src)}, tmp_path / "out", 3)
    index = read_index(tmp_path / "out")
    assert class_names(index) == ["cat", "dog"]
    assert len(index) == 8 and not (tmp_path / "out" / "images").exists()
    assert index.groupby(["class_name", "split"]).size().tolist() == [2, 2, 2, 2]
    for row in index.itertuples():
        assert row.file.startswith("/") and row.file.endswith(row.image)
        assert row.image.split("/")[0] == row.class_name
        # cat is class 0 of sorted names, yet its pixels were written as folder 1 (colour red = 80)
        assert load_image(row.file)[0, 0, 0] == (80 if row.class_name == "cat" else 0)


def test_imagefolder_split_dirs(tmp_path):
    src = tmp_path / "src"
    _folder(src / "train", ["a", "b"], 2)
    _folder(src / "val", ["a", "b"], 1)
    fetch_dataset("f", {"source": "imagefolder", "path": str(src)}, tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert index["split"].value_counts().to_dict() == {"train": 4, "test": 2}
    assert all(img.startswith(("train/", "val/")) for img in index["image"])
    assert all((s == "train") == img.startswith("train/") for s, img in zip(index["split"], index["image"]))


def test_imagefolder_broken_file_fails_with_path(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["a", "b"], 2)
    (src / "b" / "bad.png").write_bytes(b"")
    with pytest.raises(DataError, match="bad.png"):
        fetch_dataset("f", {"source": "imagefolder", "path": str(src)}, tmp_path / "out", 0)


def test_imagefolder_lists_every_broken_file_in_one_error(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["a", "b"], 2)
    (src / "a" / "empty.png").write_bytes(b"")
    (src / "b" / "text.png").write_text("not an image")
    (src / "b" / "cut.png").write_bytes((src / "b" / "img0.png").read_bytes()[:30])
    with pytest.raises(DataError) as info:
        fetch_dataset("f", {"source": "imagefolder", "path": str(src)}, tmp_path / "out", 0)
    message = str(info.value)
    assert "3 of 7 images" in message
    for reason in ("empty.png is empty", "text.png is not an image", "cut.png"):  # load_image's own words
        assert reason in message


def test_imagefolder_broken_files_beyond_twenty_are_counted(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["a"], 1)
    for i in range(23):
        (src / "a" / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError) as info:
        fetch_dataset("f", {"source": "imagefolder", "path": str(src)}, tmp_path / "out", 0)
    message = str(info.value)
    assert "bad19.png" in message and "bad20.png" not in message and "and 3 more" in message


def test_imagefolder_n_per_class_per_split(tmp_path):
    src = tmp_path / "src"
    _folder(src / "train", ["a", "b"], 4)
    _folder(src / "val", ["a", "b"], 3)
    (src / "train" / "a" / "broken.png").write_bytes(b"")  # only the chosen images are decoded
    cfg = {"source": "imagefolder", "path": str(src), "n_per_class": 2}
    fetch_dataset("f", cfg, tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert index.groupby(["split", "class_name"]).size().tolist() == [2, 2, 2, 2]
    fetch_dataset("f", cfg, tmp_path / "again", 0)
    assert read_index(tmp_path / "again").equals(index)


def test_imagefolder_skips_hidden_folders(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["a", "b"], 2)
    _folder(src / "a" / ".ipynb_checkpoints", ["x"], 1)
    fetch_dataset("f", {"source": "imagefolder", "path": str(src)}, tmp_path / "out", 0)
    assert len(read_index(tmp_path / "out")) == 4


def test_imagefolder_class_names_imagenet(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["n01443537", "n01440764"], 2)
    fetch_dataset("f", {"source": "imagefolder", "path": str(src), "class_names": "imagenet"}, tmp_path / "out", 0)
    assert class_names(read_index(tmp_path / "out")) == ["tench", "goldfish"]  # labels follow the sorted wnids


@pytest.mark.parametrize(
    "text",
    [
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n",  # LOC_synset_mapping.txt
        "n01440764\ttench\n\nn01443537\tgoldfish\n",  # tab-separated, blank lines
        '{"n01440764": "tench", "n01443537": "goldfish", "n99999999": "unused"}',
    ],
    ids=["loc-synset-mapping", "tsv", "json"],
)
def test_imagefolder_class_names_map_file(tmp_path, text):
    src = tmp_path / "src"
    _folder(src, ["n01443537", "n01440764"], 2)
    (tmp_path / "map.txt").write_text(text)
    cfg = {"source": "imagefolder", "path": str(src), "class_names": str(tmp_path / "map.txt")}
    fetch_dataset("f", cfg, tmp_path / "out", 0)
    assert class_names(read_index(tmp_path / "out")) == ["tench", "goldfish"]


def test_imagefolder_class_names_names_the_folders_missing_from_the_map(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["n01440764", "cats", "dogs"], 1)
    (tmp_path / "map.json").write_text('{"n01440764": "tench"}')
    for spec in (str(tmp_path / "map.json"), "imagenet"):
        with pytest.raises(DataError) as info:
            fetch_dataset("f", {"source": "imagefolder", "path": str(src), "class_names": spec}, tmp_path / "out", 0)
        message = str(info.value)
        assert "2 of 3 class folders" in message and "cats" in message and "dogs" in message
        assert "n01440764" not in message.split("folders:")[1].split("Fix")[0]
        assert "remove class_names" in message


def test_imagefolder_class_names_map_file_errors(tmp_path):
    src = tmp_path / "src"
    _folder(src, ["a"], 1)
    cfg = {"source": "imagefolder", "path": str(src)}
    with pytest.raises(DataError, match="cannot be read"):
        fetch_dataset("f", {**cfg, "class_names": str(tmp_path / "nope.txt")}, tmp_path / "out", 0)
    (tmp_path / "map.txt").write_text("a apple\na again\n")
    with pytest.raises(DataError, match="line 2: folder 'a' is listed twice"):
        fetch_dataset("f", {**cfg, "class_names": str(tmp_path / "map.txt")}, tmp_path / "out", 0)
    (tmp_path / "map.txt").write_text("a\n")
    with pytest.raises(DataError, match="line 1: 'a' has no name"):
        fetch_dataset("f", {**cfg, "class_names": str(tmp_path / "map.txt")}, tmp_path / "out", 0)


def test_imagefolder_missing_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        fetch_dataset("f", {"source": "imagefolder", "path": str(tmp_path / "nope")}, tmp_path / "out", 0)


def test_torchvision_offline_fails_fast(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "reachable", lambda url, timeout=3.0: calls.append(url) or False)
    start = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        fetch_dataset("c", {"source": "torchvision", "name": "CIFAR10", "root": str(tmp_path / "root")}, tmp_path, 0)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert str(tmp_path / "root") in message and "imagefolder" in message and "download=True" in message
    assert calls and "cs.toronto.edu" in calls[0]


def test_torchvision_download_false_never_touches_network(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "reachable", lambda *a, **k: pytest.fail("network checked"))
    cfg = {"source": "torchvision", "name": "CIFAR10", "root": str(tmp_path), "download": False}
    with pytest.raises(OfflineError, match="download: false"):
        fetch_dataset("c", cfg, tmp_path / "out", 0)


def test_digits_all_when_n_per_class_is_null(tmp_path):
    fetch_dataset("digits", {**DIGITS, "n_per_class": None, "image_size": 8}, tmp_path, 0)
    assert len(read_index(tmp_path)) == 1797  # scikit-learn's digits


def test_network_check_gives_up_on_a_silent_server():
    # a listening socket that is never served accepts the TCP connection but never answers
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        start = time.perf_counter()
        assert reachable(f"http://127.0.0.1:{server.getsockname()[1]}/x.tar.gz", timeout=0.5) is False
        assert time.perf_counter() - start < 3


def test_network_check_refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the check: nothing listens there
    assert reachable(f"http://127.0.0.1:{port}/", timeout=0.5) is False


def test_torchvision_unknown_name(tmp_path):
    with pytest.raises(UnknownNameError, match="CIFAR10"):
        fetch_dataset("c", {"source": "torchvision", "name": "CIFAR11", "root": str(tmp_path)}, tmp_path, 0)


def _write_idx(path, array):
    """MNIST's IDX format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, raw bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_export_from_local_mnist(tmp_path):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train)
    _write_idx(raw / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1, 0, 9]))
    _write_idx(raw / "t10k-images-idx3-ubyte", test)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.array([1, 0]))
    cfg = {"source": "torchvision", "name": "MNIST", "root": str(tmp_path / "root")}
    fetch_dataset("m", cfg, tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert index["split"].value_counts().to_dict() == {"train": 6, "test": 2}
    assert dict(zip(index["label"], index["class_name"])) == {0: "zero", 1: "one", 9: "nine"}
    row = index[index["image"] == "train000005"].iloc[0]
    assert row.label == 9
    pixels = load_image(tmp_path / "out" / row.file).numpy()
    np.testing.assert_array_equal(pixels, np.stack([train[5]] * 3))


def test_torchvision_subsample_per_class(tmp_path):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte", np.zeros((6, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1, 0, 1]))
    _write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28)))
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.array([1, 0, 1, 0]))
    cfg = {"source": "torchvision", "name": "MNIST", "root": str(tmp_path / "root"), "n_per_class": 2}
    fetch_dataset("m", cfg, tmp_path / "out", 0)
    index = read_index(tmp_path / "out")
    assert index.groupby(["split", "label"]).size().tolist() == [2, 2, 2, 2]


@pytest.mark.parametrize("status, answered", [(404, True), (403, True), (502, False)])
def test_network_check_counts_any_status_below_500(status, answered):
    """A 404 for the root is still a server; a 502 is a proxy refusing the host, so the fetch fails fast as offline."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        assert reachable(f"http://127.0.0.1:{server.server_address[1]}/a/b", timeout=2) is answered
        thread.join()
