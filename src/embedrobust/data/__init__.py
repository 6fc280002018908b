"""Datasets: sources that build ``index.csv``, the index itself, and robust image decoding."""

from .decode import load_batch, load_image, resize_crop, resized_shape
from .index import ImageDataset, class_names, load_labelled, read_index, resolve_files, write_index
from .sources import fetch_dataset, list_sources

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
