"""Robust image decoding to RGB uint8 tensors, and the deterministic resize + centre crop of a batch.

Conversion rules (one per Pillow mode family), applied after EXIF orientation:

- ``1``, ``L``, ``P`` (opaque), ``RGB``, ``YCbCr``, ... : Pillow's own conversion to RGB.
- Transparency (``LA``, ``La``, ``PA``, ``RGBA``, ``RGBa``, ``P`` with a transparent index or table):
  composited on **white**, ``out = (a * c + (255 - a) * 255) / 255`` rounded to nearest. White because a
  transparent background is meant to show the page behind it, and the colour values under fully transparent
  pixels are arbitrary (often black or garbage), so dropping alpha would expose them.
- ``CMYK`` (including Adobe-inverted CMYK JPEGs, which Pillow's decoder normalises): the device-independent
  formula ``R = (255 - C) (255 - K) / 255`` (same for G with M, B with Y), rounded. Embedded ICC profiles are
  not applied.
- High bit depth grayscale: ``I;16``/``I;16B``/``I;16L`` are scaled from the full 16-bit range,
  ``v * 255 / 65535``; ``I`` (32-bit integer, what older decoders give for 16-bit files) likewise when all
  values lie in [0, 65535], otherwise its value range is stretched to [0, 255]; ``F`` is scaled by 255 when it
  lies in [0, 1], otherwise stretched. Pillow's own conversion would clip everything above 255 instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError

# torch (and torchvision, for resizing) are imported where a tensor is made, not here: the fetch stage imports this
# module through its sources, and a source that only writes PNGs should not pay seconds for them.
if TYPE_CHECKING:
    import torch

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_WIDE_GRAY_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I", "F"}


def _round_div255(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest of ``x / 255`` for non-negative integer arrays."""
    return ((x + 127) // 255).astype(np.uint8)


def _composite_on_white(im: Image.Image) -> np.ndarray:
    rgba = np.asarray(im.convert("RGBA"), dtype=np.int32)
    rgb, a = rgba[..., :3], rgba[..., 3:]
    return _round_div255(rgb * a + 255 * (255 - a))


def _cmyk_to_rgb(im: Image.Image) -> np.ndarray:
    cmyk = np.asarray(im, dtype=np.int32)
    return _round_div255((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]))


def _wide_gray_to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16"):
        # np.asarray understands the byte order of every I;16 variant
        v = np.asarray(im).astype(np.float64)
        lo, hi = 0.0, 65535.0
    else:
        v = np.asarray(im, dtype=np.float64)
        vmin, vmax = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        if im.mode == "I" and vmin >= 0 and vmax <= 65535:
            lo, hi = 0.0, 65535.0
        elif im.mode == "F" and vmin >= 0 and vmax <= 1:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = vmin, vmax
    scaled = np.zeros_like(v) if hi <= lo else (v - lo) * (255.0 / (hi - lo))
    gray = np.floor(np.clip(scaled, 0, 255) + 0.5).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a loaded Pillow image of any supported mode."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info):
        return _composite_on_white(im)
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode in _WIDE_GRAY_MODES:
        return _wide_gray_to_rgb(im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
}


def _unidentified_reason(path: Path) -> str:
    """Why Pillow could not identify a file: a known header means a broken image, not a non-image."""
    with open(path, "rb") as f:
        head = f.read(24)
    kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
    if kind is None:
        return "is not an image (no known image format header)"
    if kind == "PNG" and head[12:16] == b"IHDR":
        width, height = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
        if width == 0 or height == 0:
            return f"is a PNG of zero size ({width}x{height})"
    return f"has a {kind} header but is corrupt or truncated (Pillow cannot identify it)"


def load_image(path: Path | str) -> torch.Tensor:
    """Decode one image file to RGB.

    Args:
        path: image file (any format Pillow reads; first frame of animations and multi-page files).

    Returns:
        uint8 tensor (3, H, W), RGB, EXIF orientation applied; see the module docstring for mode conversions.

    Raises:
        DataError: the file is missing, empty, not an image, truncated or corrupt, of zero size, or of a mode
            that has no RGB conversion. The message names the path.
    """
    path = Path(path)
    try:
        nbytes = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}. Check the path in the dataset index.") from e
    if nbytes == 0:
        raise DataError(f"image file {path} is empty (0 bytes). Replace or remove it and fetch the dataset again.")
    try:
        with Image.open(path) as im:
            if im.width == 0 or im.height == 0:
                raise DataError(f"image {path} has zero size ({im.width}x{im.height}). Replace or remove it.")
            # exif_transpose always returns a new, fully decoded image, so decoding errors surface here
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb_array(im)
    except UnidentifiedImageError as e:
        raise DataError(f"{path} {_unidentified_reason(path)}. Replace or remove it.") from e
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as e:
        raise DataError(f"image {path} is truncated or corrupt ({type(e).__name__}: {e}). Replace or remove it.") from e
    import torch

    # np.array copies: arrays viewing Pillow memory are read-only, which torch warns about
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, order="C")).permute(2, 0, 1).contiguous()


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(H', W') after scaling the shorter side to ``size``, the longer one rounded half up (at least ``size``)."""
    if height <= width:
        return size, max(size, int(np.floor(width * size / height + 0.5)))
    return max(size, int(np.floor(height * size / width + 0.5))), size


def resize_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (antialiased bilinear), then centre crop to a square.

    Args:
        image: uint8 (3, H, W).
        size: output side in pixels.

    Returns:
        uint8 (3, size, size). The crop starts at ``(H' - size) // 2``, ``(W' - size) // 2`` (floor: when the
        excess is odd the extra pixel is dropped at the bottom / right).
    """
    _, h, w = image.shape
    nh, nw = resized_shape(h, w, size)
    if (nh, nw) != (h, w):
        from torchvision.transforms.v2 import functional as TF

        image = TF.resize(image, [nh, nw], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return image[:, top : top + size, left : left + size].contiguous()


def load_batch(paths: Sequence[Path | str], size: int) -> torch.Tensor:
    """Decode, resize (shorter side to ``size``, antialiased bilinear) and centre crop a list of images.

    Returns:
        uint8 tensor (N, 3, size, size); deterministic (same files, same bytes).
    """
    import torch

    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if len(paths) == 0:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    return torch.stack([resize_crop(load_image(p), size) for p in paths])
