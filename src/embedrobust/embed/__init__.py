"""Perturb x embed into a resumable, chunked Zarr store."""

from .run import run_embed
from .store import ChunkedStoreWriter, StoreLayout, open_store

__all__ = ["ChunkedStoreWriter", "StoreLayout", "open_store", "run_embed"]
