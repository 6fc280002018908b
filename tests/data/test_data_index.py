"""index.csv round trip, class_names, ImageDataset."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from embedrobust.data import ImageDataset, class_names, read_index, resolve_files, write_index
from embedrobust.errors import DataError

pytestmark = pytest.mark.filterwarnings("error")  # a clean run must not warn


def frame(**overrides):
    df = pd.DataFrame(
        {
            "image": ["a", "b", "c"],
            "file": ["images/a.png", "images/b.png", "/abs/c.png"],
            "label": [1, 0, 1],
            "class_name": ["None", "zero", "None"],
            "split": ["train", "test", "test"],
        }
    )
    return df.assign(**overrides)


def test_round_trip_keeps_values_and_dtypes(tmp_path):
    write_index(frame(), tmp_path)
    back = read_index(tmp_path)
    pd.testing.assert_frame_equal(back, frame(), check_dtype=False)
    assert back["label"].dtype == np.int64
    assert back["class_name"].tolist() == ["None", "zero", "None"]  # not parsed as missing


def test_write_is_deterministic(tmp_path):
    write_index(frame(), tmp_path / "a")
    write_index(frame(), tmp_path / "b")
    assert (tmp_path / "a/index.csv").read_bytes() == (tmp_path / "b/index.csv").read_bytes()


def test_missing_index_says_fetch(tmp_path):
    with pytest.raises(DataError, match="embedrobust fetch"):
        read_index(tmp_path)


def test_duplicate_ids_rejected(tmp_path):
    (tmp_path / "index.csv").write_text("image,file,label,class_name,split\na,x,0,c,train\na,y,0,c,test\n")
    with pytest.raises(DataError, match="not unique"):
        read_index(tmp_path)


def test_missing_column_rejected(tmp_path):
    (tmp_path / "index.csv").write_text("image,file,label,split\na,x,0,train\n")
    with pytest.raises(DataError, match="class_name"):
        read_index(tmp_path)


def test_class_names_ordered_by_label():
    assert class_names(frame()) == ["zero", "None"]


def test_class_names_gap_rejected():
    with pytest.raises(DataError, match="missing \\[1\\]"):
        class_names(frame(label=[2, 0, 2]))


def test_class_names_clash_rejected():
    with pytest.raises(DataError, match="several class names"):
        class_names(frame(class_name=["x", "zero", "y"]))


def test_resolve_files(tmp_path):
    files = resolve_files(frame(), tmp_path)
    assert files[0] == tmp_path / "images/a.png" and str(files[2]) == "/abs/c.png"


def test_image_dataset_items_and_pickling(tmp_path):
    (tmp_path / "images").mkdir()
    arrays = [np.full((4, 8, 3), v, np.uint8) for v in (10, 20)]
    for name, a in zip("ab", arrays):
        Image.fromarray(a).save(tmp_path / "images" / f"{name}.png")
    index = frame().iloc[:2]
    ds = pickle.loads(pickle.dumps(ImageDataset(index, tmp_path, 4)))
    assert len(ds) == 2
    image, pos = ds[1]
    assert pos == 1 and image.dtype == torch.uint8 and image.shape == (3, 4, 4)
    assert torch.equal(image, torch.full((3, 4, 4), 20, dtype=torch.uint8))
