"""The embedding store: an xarray Dataset in Zarr format 3, written chunk by chunk so that a killed run resumes.

Layout (docs/ARCHITECTURE.md): ``embedding`` (condition, image, dim) float32 in Zarr v3 shards of every condition of
``chunk_images`` images (one file each, so a store has few files and DVC stays fast), holding inner chunks of one
condition each (so a reader of one perturbation family decompresses only that family). A region write fills whole
shards and nothing else.

Resume protocol: the store is built under ``<path>.partial``. After a chunk's region write returns, its index is
added to ``<path>.progress.json`` beside it (atomic replace; outside the store, which Zarr would warn about), so the file never names a chunk that is not fully on disk; a chunk
cut off mid-write is simply written again. When every chunk is done the progress file is removed and the directory
is renamed to ``<path>`` in one step, so ``<path>`` only ever exists complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..core import Condition

# Variable-length strings have a Zarr v3 data type spec; fixed-width numpy '<U' strings do not (and warn).
STR = np.dtypes.StringDType()
ZARR_KW = dict(zarr_format=3, consolidated=False)


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=STR)


@dataclass
class StoreLayout:
    """What a store holds, fixed before the first chunk is written."""

    conditions: list[Condition]
    image_ids: list[str]
    labels: np.ndarray  # (N,) int64
    splits: list[str]
    class_names: list[str]
    dim: int
    chunk_images: int
    attrs: dict

    @property
    def n_chunks(self) -> int:
        return -(-len(self.image_ids) // self.chunk_images)

    def chunk_slice(self, k: int) -> slice:
        return slice(k * self.chunk_images, min((k + 1) * self.chunk_images, len(self.image_ids)))


def template(layout: StoreLayout) -> xr.Dataset:
    """The store's Dataset with a lazy (never computed) embedding array: writing it writes metadata only."""
    import dask.array as da

    c, n, d = len(layout.conditions), len(layout.image_ids), layout.dim
    emb = da.zeros((c, n, d), chunks=(c, layout.chunk_images, d), dtype=np.float32)
    ds = xr.Dataset(
        {"embedding": (("condition", "image", "dim"), emb)},
        coords={
            "condition": _strings(cond.label for cond in layout.conditions),
            "family": ("condition", _strings(cond.family for cond in layout.conditions)),
            "level": ("condition", np.array([cond.value for cond in layout.conditions], dtype=np.float64)),
            "image": _strings(layout.image_ids),
            "label": ("image", np.asarray(layout.labels, dtype=np.int64)),
            "split": ("image", _strings(layout.splits)),
            "class_name": ("class", _strings(layout.class_names)),
        },
        attrs=layout.attrs,
    )
    ds["embedding"].attrs = {
        "description": "raw (not L2-normalised) image embeddings; condition 'clean' is the unperturbed image",
        "units": "model output units",
    }
    return ds


class ChunkedStoreWriter:
    """Writes a store chunk by chunk under ``<path>.partial`` and publishes it at ``path`` when complete."""

    def __init__(self, path: str | Path, layout: StoreLayout):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.progress = self.path.with_name(self.path.name + ".progress.json")
        self.layout = layout
        self._done: set[int] = set()
        self._open()

    # -- state -------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.progress.is_file() and self.partial.is_dir():
            state = json.loads(self.progress.read_text())
            if state.get("params_sha256") == self.layout.attrs.get("params_sha256"):
                self._done = set(state["done"])
                return
            # A partial store from other params cannot be resumed: its chunks mean something else.
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        c, n, d = len(self.layout.conditions), self.layout.chunk_images, self.layout.dim
        template(self.layout).to_zarr(
            self.partial,
            compute=False,
            encoding={"embedding": {"chunks": (1, n, d), "shards": (c, n, d)}},
            **ZARR_KW,
        )
        self._save_progress()

    def _save_progress(self) -> None:
        tmp = self.progress.with_name(self.progress.name + ".tmp")
        tmp.write_text(json.dumps({"params_sha256": self.layout.attrs.get("params_sha256"), "done": sorted(self._done)}))
        os.replace(tmp, self.progress)

    @property
    def pending(self) -> list[int]:
        """Chunk indices not yet written, in order."""
        return [k for k in range(self.layout.n_chunks) if k not in self._done]

    # -- writing -----------------------------------------------------------------------------------------------
    def write_chunk(self, k: int, block: np.ndarray) -> None:
        """Write chunk ``k``: ``block`` is float32 (condition, images in chunk k, dim)."""
        sl = self.layout.chunk_slice(k)
        expected = (len(self.layout.conditions), sl.stop - sl.start, self.layout.dim)
        if block.shape != expected:
            raise ValueError(f"chunk {k}: expected block of shape {expected}, got {block.shape}")
        region = xr.Dataset({"embedding": (("condition", "image", "dim"), block.astype(np.float32, copy=False))})
        region.to_zarr(self.partial, region={"condition": slice(None), "image": sl, "dim": slice(None)}, **ZARR_KW)
        self._done.add(k)
        self._save_progress()

    def finalize(self) -> Path:
        """Publish the completed store at ``path``."""
        if self.pending:
            raise RuntimeError(f"store {self.path} still has {len(self.pending)} chunks to write")
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        self.progress.unlink()
        return self.path


def is_complete(path: str | Path, params_sha256: str) -> bool:
    """Whether ``path`` holds a finished store built from the params with this hash."""
    import zarr

    path = Path(path)
    if not (path / "zarr.json").is_file():
        return False
    try:
        return zarr.open_group(path, mode="r", zarr_format=3).attrs.get("params_sha256") == params_sha256
    except Exception:  # an unreadable store is not a finished one
        return False


def open_store(path: str | Path) -> xr.Dataset:
    """Open a finished store lazily; string coordinates come back as object arrays of Python str.

    (Zarr's variable-length strings load as numpy StringDType, which many numpy/pandas calls cannot cast.)
    """
    ds = xr.open_zarr(path, **ZARR_KW)
    strings = {name: (c.dims, c.values.astype(object)) for name, c in ds.coords.items() if c.dtype.kind == "T"}
    return ds.assign_coords(strings)
