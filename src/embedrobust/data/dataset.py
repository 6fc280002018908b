"""The images an index lists, decoded as every stage decodes them: a torch Dataset, and all of them at once.

Apart from ``data.index`` because decoding needs torch (and resizing torchvision), which reading and writing an
index, all that the fetch stage does with it, does not.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from .decode import load_batch, load_image, resize_crop
from .index import resolve_files


class ImageDataset(torch.utils.data.Dataset):
    """The images of an index, decoded, resized (shorter side) and centre cropped.

    Item ``i`` is ``(image, i)``: uint8 (3, size, size) and the row position in ``index``. Holds only paths,
    so it pickles cheaply into DataLoader workers.
    """

    def __init__(self, index: pd.DataFrame, dataset_dir: Path | str, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.files = [str(p) for p in resolve_files(index, dataset_dir)]
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return resize_crop(load_image(self.files[i]), self.size), int(i)


def load_labelled(index: pd.DataFrame, dataset_dir: Path | str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row of ``index`` decoded as the embed stage decodes it (shorter side to ``size``, centre crop):
    images uint8 (N, 3, size, size) and labels int64 (N,), in index order."""
    images = load_batch(resolve_files(index, dataset_dir), int(size))
    return images, torch.tensor(index["label"].to_numpy(dtype="int64", copy=True))
