import numpy as np
import pytest
import xarray as xr


def make_store(embeddings, labels, split, conditions, text=None, n_classes=None):
    """Hand-built embedding store. ``embeddings`` (condition, image, dim); conditions are (family, level)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = n_classes or (len(text) if text is not None else int(labels.max()) + 1)
    names = ["clean" if f == "clean" else f"{f}@{lv:g}" for f, lv in conditions]
    data = {"embedding": (("condition", "image", "dim"), embeddings)}
    if text is not None:
        data["text_embedding"] = (("class", "dim"), np.asarray(text, dtype=np.float32))
    return xr.Dataset(
        data,
        coords={
            "condition": names,
            "family": ("condition", [f for f, _ in conditions]),
            "level": ("condition", np.array([lv for _, lv in conditions], dtype=np.float64)),
            "image": [f"img{i}" for i in range(len(labels))],
            "label": ("image", labels),
            "split": ("image", list(split)),
            "class_name": ("class", [f"c{c}" for c in range(n_classes)]),
        },
    )


@pytest.fixture
def store_factory():
    return make_store
