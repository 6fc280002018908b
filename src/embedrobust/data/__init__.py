"""Datasets: sources that build ``index.csv``, the index itself, and robust image decoding.

The names load with their module on first use: fetching and reading an index need pandas and Pillow only, while
decoding needs torch and torchvision, seconds of start-up that the fetch stage should not pay.
"""

from .._lazy import lazy_exports

__all__ = [
    "ImageDataset",
    "class_names",
    "fetch_dataset",
    "list_sources",
    "load_labelled",
    "load_batch",
    "load_image",
    "read_index",
    "resize_crop",
    "resized_shape",
    "resolve_files",
    "write_index",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["load_batch", "load_image", "resize_crop", "resized_shape"], "decode"),
    **dict.fromkeys(["ImageDataset", "load_labelled"], "dataset"),
    **dict.fromkeys(["class_names", "read_index", "resolve_files", "write_index"], "index"),
    **dict.fromkeys(["fetch_dataset", "list_sources"], "sources"),
})
