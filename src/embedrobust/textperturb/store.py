"""The perturbed-prompt store: ``data/text_robustness/<dataset>/<model>.zarr``, an xarray Dataset in Zarr format 3.

Layout (the image store's conventions, ``embed.store``):

- ``prompt_embedding`` (condition, class, template, dim) float32: raw (not normalised) text embeddings of every
  prompt; a condition with fewer prompts per class than the ``template`` axis (template_shift at a small count,
  or the clean set when a shift uses more templates) holds NaN in the slots it does not use;
- ``class_embedding`` (condition, class, dim) float32: the prompt-ensemble class embedding of each condition
  (unit prompt embeddings averaged, re-normalised: ``downstream.class_text_embeddings``), what zero-shot uses;
- ``prompt`` (condition, class, template) str: the prompts themselves ('' in unused slots);
- coords ``condition`` (label, ``clean`` or ``family@level``), ``family`` and ``level`` (condition), ``n_prompts``
  (condition) int64, ``class_name`` (class), ``template`` (slot index) int64;
- attrs: ``model`` (the encoder's description), ``templates`` (the clean templates), ``params_sha256``, ``versions``.

Written under ``<path>.partial`` one condition at a time (chunks of one condition and a block of classes) and
renamed to ``<path>`` when complete, so ``<path>`` only ever exists complete. The same inputs give the same bytes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from ..core import Condition
from ..embed.store import STR, ZARR_KW

CHUNK_BYTES = 8 << 20  # prompt_embedding chunk target: (1, classes, templates, dim) float32 of about 8 MiB


def _strings(values) -> np.ndarray:
    return np.array(list(values), dtype=STR)


class TextStoreWriter:
    """Writes a text store condition by condition under ``<path>.partial``; ``finalize`` publishes it."""

    def __init__(self, path: str | Path, conditions: list[Condition], class_names: list[str],
                 prompts: list[list[list[str]]], dim: int, attrs: dict):
        import dask.array as da

        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.conditions = conditions
        n_cond, n_cls = len(conditions), len(class_names)
        self.n_templates = max(len(row) for cond in prompts for row in cond)
        self.dim = dim
        text = np.full((n_cond, n_cls, self.n_templates), "", dtype=object)
        for k, cond in enumerate(prompts):
            for c, row in enumerate(cond):
                text[k, c, : len(row)] = row
        block = max(1, min(n_cls, CHUNK_BYTES // max(1, self.n_templates * dim * 4)))
        ds = xr.Dataset(
            {
                "prompt_embedding": (("condition", "class", "template", "dim"),
                                     da.zeros((n_cond, n_cls, self.n_templates, dim),
                                              chunks=(1, block, self.n_templates, dim), dtype=np.float32)),
                "class_embedding": (("condition", "class", "dim"),
                                    da.zeros((n_cond, n_cls, dim), chunks=(1, n_cls, dim), dtype=np.float32)),
                "prompt": (("condition", "class", "template"), text.astype(STR)),
            },
            coords={
                "condition": _strings(c.label for c in conditions),
                "family": ("condition", _strings(c.family for c in conditions)),
                "level": ("condition", np.array([c.value for c in conditions], dtype=np.float64)),
                "n_prompts": ("condition", np.array([len(p[0]) if p else 0 for p in prompts], dtype=np.int64)),
                "class_name": ("class", _strings(class_names)),
                "template": np.arange(self.n_templates, dtype=np.int64),
            },
            attrs=attrs,
        )
        ds["prompt_embedding"].attrs = {"description": "raw (not L2-normalised) prompt embeddings; NaN in unused "
                                                       "template slots", "units": "model output units"}
        ds["class_embedding"].attrs = {"description": "prompt-ensemble class embeddings (unit rows)"}
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        ds.to_zarr(self.partial, compute=False,
                   encoding={"prompt_embedding": {"chunks": (1, block, self.n_templates, dim)},
                             "class_embedding": {"chunks": (1, n_cls, dim)},
                             "prompt": {"chunks": (1, n_cls, self.n_templates)}}, **ZARR_KW)
        self._done: set[int] = set()

    def write(self, k: int, prompt_embedding: np.ndarray, class_embedding: np.ndarray) -> None:
        """Condition ``k``'s prompt embeddings (class, its prompts, dim) and class embeddings (class, dim)."""
        n_cls, used, dim = prompt_embedding.shape
        block = np.full((1, n_cls, self.n_templates, dim), np.nan, dtype=np.float32)
        block[0, :, :used] = prompt_embedding
        region = xr.Dataset({
            "prompt_embedding": (("condition", "class", "template", "dim"), block),
            "class_embedding": (("condition", "class", "dim"), class_embedding[None].astype(np.float32)),
        })
        region.to_zarr(self.partial, region={"condition": slice(k, k + 1), "class": slice(None),
                                             "template": slice(None), "dim": slice(None)}, **ZARR_KW)
        self._done.add(k)

    def finalize(self) -> Path:
        missing = [c.label for k, c in enumerate(self.conditions) if k not in self._done]
        if missing:
            raise RuntimeError(f"text store {self.path}: conditions {missing} were not written")
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        return self.path
