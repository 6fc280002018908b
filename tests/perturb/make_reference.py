"""Generate the reference arrays the perturbation tests compare against (run once, with the refs venv).

    python -m venv /work/main/.refs-venv
    /work/main/.refs-venv/bin/pip install imagecorruptions==1.1.2 --no-deps
    /work/main/.refs-venv/bin/pip install numpy scipy scikit-image opencv-python-headless Pillow
    /work/main/.refs-venv/bin/python tests/perturb/make_reference.py
    /work/main/.refs-venv/bin/python tests/perturb/make_reference.py --cifar   # reference_cifar.npz

The reference is imagecorruptions 1.1.2 (bethgelab), patched at runtime for a current stack: ``np.float_`` is
gone in NumPy 2, ``skimage.filters.gaussian(multichannel=True)`` became ``channel_axis=-1``, and
``pkg_resources`` may be missing. It draws from the global ``np.random``, which is seeded before each call with
the seed stored beside the output, so a test can redraw the same numbers.

ImageNet-C's elastic_transform (hendrycks/robustness make_imagenet_c.py) is not in imagecorruptions, which
has a different one; ``imagenet_c_elastic`` below follows ImageNet-C's definition step by step with its own
libraries (OpenCV, scikit-image, SciPy) so that ours can be checked against it.

Writes tests/perturb/reference.npz: inputs (uint8 (K, 96, 96, 3) photographs from scikit-image), outputs
rounded to uint8 per (corruption, severity, image), and for the noise corruptions statistics of the
difference image over several seeds. With ``--cifar``, writes tests/perturb/reference_cifar.npz instead:
CIFAR-10-C's deterministic corruptions (make_cifar_c.py's severity tables, 32 px inputs).
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


# --- CIFAR-10-C (hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py), deterministic families ----------
# Written out from make_cifar_c.py (its module runs the whole dataset on import, so it cannot be imported).
OUT_CIFAR = Path(__file__).with_name("reference_cifar.npz")


def _disk(radius, alias_blur=0.1, dtype=np.float32):
    if radius <= 8:
        L, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        L, ksize = np.arange(-radius, radius + 1), (5, 5)
    X, Y = np.meshgrid(L, L)
    d = np.array((X**2 + Y**2) <= radius**2, dtype=dtype)
    d /= np.sum(d)
    return cv2.GaussianBlur(d, ksize=ksize, sigmaX=alias_blur)


def _clipped_zoom(img, z):
    from scipy.ndimage import zoom as scizoom

    h = img.shape[0]
    ch = int(np.ceil(h / z))
    top = (h - ch) // 2
    img = scizoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
    t = (img.shape[0] - h) // 2
    return img[t : t + h, t : t + h]


def _hsv_edit(x, channel, fn):
    from skimage import color

    x = color.rgb2hsv(np.array(x) / 255.0)
    x[:, :, channel] = fn(x[:, :, channel])
    return np.clip(color.hsv2rgb(x), 0, 1) * 255


CIFAR_C = {
    "gaussian_blur": lambda x, s: np.clip(_gaussian(np.array(x) / 255.0, sigma=[0.4, 0.6, 0.7, 0.8, 1][s - 1],
                                                    channel_axis=-1), 0, 1) * 255,
    "defocus_blur": lambda x, s: np.clip(np.array([
        cv2.filter2D(np.array(x)[:, :, d] / 255.0, -1,
                     _disk(*[(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1])) for d in range(3)
    ]).transpose((1, 2, 0)), 0, 1) * 255,
    "zoom_blur": lambda x, s: np.clip(sum(
        (_clipped_zoom((np.array(x) / 255.0).astype(np.float32), z) for z in np.arange(1, [1.06, 1.11, 1.16, 1.21, 1.26][s - 1], 0.01)),
        (np.array(x) / 255.0).astype(np.float32)) / (len(np.arange(1, [1.06, 1.11, 1.16, 1.21, 1.26][s - 1], 0.01)) + 1), 0, 1) * 255,
    "contrast": lambda x, s: np.clip((np.array(x) / 255.0 - np.mean(np.array(x) / 255.0, axis=(0, 1), keepdims=True))
                                     * [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
                                     + np.mean(np.array(x) / 255.0, axis=(0, 1), keepdims=True), 0, 1) * 255,
    "brightness": lambda x, s: _hsv_edit(x, 2, lambda v: np.clip(v + [0.05, 0.1, 0.15, 0.2, 0.3][s - 1], 0, 1)),
    "saturate": lambda x, s: _hsv_edit(x, 1, lambda v: np.clip(
        v * [0.3, 0.1, 1.5, 2, 2.5][s - 1] + [0, 0, 0, 0.1, 0.2][s - 1], 0, 1)),
    "jpeg_compression": lambda x, s: _jpeg(x, [80, 65, 58, 50, 40][s - 1]),
    "pixelate": lambda x, s: np.asarray(x.resize((int(32 * [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]),) * 2, Image.BOX)
                                        .resize((32, 32), Image.BOX), dtype=np.float64),
}


def _jpeg(x, q):
    from io import BytesIO

    buf = BytesIO()
    x.save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(buf), dtype=np.float64)


def main_cifar() -> None:
    imgs = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.LANCZOS)) for im in photographs()[:2]])
    arrays: dict[str, np.ndarray] = {"inputs": imgs}
    for name, fn in CIFAR_C.items():
        for s in range(1, 6):
            for i in range(len(imgs)):
                out = np.asarray(fn(Image.fromarray(imgs[i]), s), dtype=np.float64)
                arrays[f"{name}/{s}/{i}"] = np.clip(np.round(out), 0, 255).astype(np.uint8)
    np.savez_compressed(OUT_CIFAR, **arrays)
    print(f"wrote {OUT_CIFAR} ({OUT_CIFAR.stat().st_size / 1e6:.2f} MB, {len(arrays)} arrays)")


if __name__ == "__main__":
    main_cifar() if "--cifar" in sys.argv else main()
