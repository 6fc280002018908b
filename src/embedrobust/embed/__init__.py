"""Perturb x embed into a resumable, chunked Zarr store."""

from .._lazy import lazy_exports

__all__ = ["ChunkedStoreWriter", "StoreLayout", "open_store", "run_embed"]

# Loaded on first use: the stages that only read a store (metrics, downstream, report) should not import the
# embedding run, and torch with it.
__getattr__, __dir__ = lazy_exports(__name__, {"run_embed": "run", **dict.fromkeys(__all__[:3], "store")})
