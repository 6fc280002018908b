"""Generate the reference arrays the perturbation tests compare against (run once, with the refs venv).

    python -m venv /work/main/.refs-venv
    /work/main/.refs-venv/bin/pip install imagecorruptions==1.1.2 --no-deps
    /work/main/.refs-venv/bin/pip install numpy scipy scikit-image opencv-python-headless Pillow
    /work/main/.refs-venv/bin/python tests/perturb/make_reference.py

The reference is imagecorruptions 1.1.2 (bethgelab), patched at runtime for a current stack: ``np.float_`` is
gone in NumPy 2, ``skimage.filters.gaussian(multichannel=True)`` became ``channel_axis=-1``, and
``pkg_resources`` may be missing. It draws from the global ``np.random``, which is seeded before each call with
the seed stored beside the output, so a test can redraw the same numbers.

ImageNet-C's elastic_transform (hendrycks/robustness make_imagenet_c.py) is not in imagecorruptions, which
has a different one; ``imagenet_c_elastic`` below follows ImageNet-C's definition step by step with its own
libraries (OpenCV, scikit-image, SciPy) so that ours can be checked against it.

Writes tests/perturb/reference.npz: inputs (uint8 (K, 96, 96, 3) photographs from scikit-image), outputs
rounded to uint8 per (corruption, severity, image), and for the noise corruptions statistics of the
difference image over several seeds.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

if not hasattr(np, "float_"):
    np.float_ = np.float64
try:
    import pkg_resources  # noqa: F401  (only checking that it exists)
except ImportError:  # setuptools >= 81 dropped it; imagecorruptions only needs resource_filename
    import importlib.resources as _res

    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda pkg, name: str(_res.files(pkg).joinpath(name))
    sys.modules["pkg_resources"] = shim

import cv2  # noqa: E402
import skimage.filters  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.ndimage import map_coordinates  # noqa: E402
from skimage import data  # noqa: E402

_gaussian = skimage.filters.gaussian


def _gaussian_compat(image, *args, multichannel=None, **kw):
    if multichannel:
        kw["channel_axis"] = -1
    return _gaussian(image, *args, **kw)


skimage.filters.gaussian = _gaussian_compat
import imagecorruptions.corruptions as ic  # noqa: E402

ic.gaussian = _gaussian_compat

SIZE = 96
OUT = Path(__file__).with_name("reference.npz")
EXACT = ["gaussian_blur", "defocus_blur", "zoom_blur", "brightness", "contrast", "saturate", "jpeg_compression",
         "glass_blur", "motion_blur", "snow", "fog"]
STATS = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "frost", "spatter"]
N_STATS_SEEDS = 4
N_OVERLAY_SEEDS = 32  # frost/spatter outputs vary much more between draws (texture, crop, drops)


def photographs() -> np.ndarray:
    """Astronaut, chelsea, coffee: central square crops resized to SIZE px (Lanczos). uint8 (3, S, S, 3)."""
    out = []
    for img in (data.astronaut(), data.chelsea(), data.coffee()):
        h, w = img.shape[:2]
        s = min(h, w)
        crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.LANCZOS)))
    return np.stack(out)


def seed_of(name: str, severity: int, image: int, rep: int = 0) -> int:
    return 100000 * (sorted(ic.__dict__).index(name) % 97) + 1000 * rep + 10 * severity + image


def imagenet_c_elastic(image: np.ndarray, severity: int) -> np.ndarray:
    """ImageNet-C's elastic_transform (make_imagenet_c.py, 224 px constants in units of 244)."""
    c = [(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2), (244 * 0.05, 244 * 0.01, 244 * 0.02),
         (244 * 0.07, 244 * 0.01, 244 * 0.02), (244 * 0.12, 244 * 0.01, 244 * 0.02)][severity - 1]
    image = np.array(image, dtype=np.float32) / 255.0
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + np.random.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, m, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (_gaussian(np.random.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (_gaussian(np.random.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    return np.clip(map_coordinates(image, indices, order=1, mode="reflect").reshape(shape), 0, 1) * 255


def run(name: str, img: np.ndarray, severity: int, seed: int) -> np.ndarray:
    np.random.seed(seed)
    if name == "elastic_transform_imagenet_c":
        out = imagenet_c_elastic(img, severity)
    else:
        out = getattr(ic, name)(Image.fromarray(img), severity)
    return np.asarray(out, dtype=np.float64)


def main() -> None:
    imgs = photographs()
    arrays: dict[str, np.ndarray] = {"inputs": imgs}
    for name in EXACT + ["elastic_transform_imagenet_c"]:
        n_img = 2 if name not in ("snow", "fog", "elastic_transform_imagenet_c") else 1
        for s in range(1, 6):
            for i in range(n_img):
                seed = seed_of(name.split("_imagenet")[0], s, i)
                out = run(name, imgs[i], s, seed)
                arrays[f"{name}/{s}/{i}"] = np.clip(np.round(out), 0, 255).astype(np.uint8)
                arrays[f"{name}/{s}/{i}/seed"] = np.array(seed)
    for name in STATS:
        for s in range(1, 6):
            diffs = []
            for r in range(N_OVERLAY_SEEDS if name in ("frost", "spatter") else N_STATS_SEEDS):
                out = run(name, imgs[0], s, seed_of(name, s, 0, r)) / 255.0
                diffs.append(out - imgs[0] / 255.0)
            d = np.stack(diffs)  # (R, H, W, 3)
            # per channel: mean difference, its std over pixels, mean |difference|, fraction of changed values
            arrays[f"{name}/{s}/stats"] = np.stack([
                d.mean((0, 1, 2)), d.std((1, 2)).mean(0), np.abs(d).mean((0, 1, 2)),
                (np.abs(d) > 0.5 / 255).mean((0, 1, 2)),
            ]).astype(np.float64)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
