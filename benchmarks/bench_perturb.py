"""Time every ImageNet-C corruption per 224 px image: ours (batched torch) against imagecorruptions 1.1.2.

    .venv/bin/python benchmarks/bench_perturb.py [--batch 16] [--threads 1] [--severity 3] [--only a,b]

The reference runs in the refs venv (/work/main/.refs-venv, see tests/perturb/make_reference.py) in a
subprocess, patched the same way as there. Both sides use the same number of threads. Prints per corruption
ms/image for both and the speed-up, then the whole grid, the grid without glass blur, and glass blur alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REFS_PY = ROOT / ".refs-venv" / "bin" / "python"
NAMES = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "glass_blur",
         "motion_blur", "zoom_blur", "gaussian_blur", "snow", "frost", "fog", "spatter", "brightness", "contrast",
         "saturate", "elastic_transform", "pixelate", "jpeg_compression"]

def photos(n: int, size: int = 224) -> np.ndarray:
    from PIL import Image
    from skimage import data

    base = [data.astronaut(), data.chelsea(), data.coffee()]
    out = []
    for i in range(n):
        img = base[i % 3]
        h, w = img.shape[:2]
        s = min(h, w)
        crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS)))
    return np.stack(out)


def _ours_timer(batch: int, reps: int):
    from embedrobust.perturb import get_perturbation

    x = torch.from_numpy(photos(batch)).permute(0, 3, 1, 2).float() / 255.0

    def run(name: str, severity: int) -> float:
        p = get_perturbation(name)
        v = float(severity) if p.unit == "severity" else p.severities[severity - 1]
        g = torch.Generator().manual_seed(0)
        p(x[:2], v, g)  # warm caches (kernels, textures)
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            p(x, v, g)
            best = min(best, time.perf_counter() - t)
        return 1000 * best / batch

    return run


# The reference runs as a server in the refs venv: one corruption name per line in, ms per image out, so that
# ours and the reference are timed alternately under the same machine load.
_REF_SERVER = """
import json, sys, time
sys.path.insert(0, {tests!r})
import make_reference as mr
import cv2
cv2.setNumThreads({threads})
from PIL import Image
import numpy as np
imgs = np.load({imgs!r})
print("ready", flush=True)
for line in sys.stdin:
    name, severity, n = line.split()
    severity, n = int(severity), int(n)
    fn = getattr(mr.ic, name)
    np.random.seed(0)
    fn(Image.fromarray(imgs[0]), severity)
    best = float("inf")
    for rep in range(2 if n > 1 else 1):
        t = time.perf_counter()
        for i in range(n):
            fn(Image.fromarray(imgs[i % len(imgs)]), severity)
        best = min(best, (time.perf_counter() - t) / n)
    print(json.dumps(1000 * best), flush=True)
"""


def _ref_timer(threads: int):
    tmp = Path("/tmp/bench_perturb_imgs.npy")
    np.save(tmp, photos(3))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    code = _REF_SERVER.format(tests=str(ROOT / "tests" / "perturb"), threads=threads, imgs=str(tmp))
    proc = subprocess.Popen([str(REFS_PY), "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "ready"

    def run(name: str, severity: int, n: int) -> float:
        proc.stdin.write(f"{name} {severity} {n}\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    return run, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ref-images", type=int, default=6)
    ap.add_argument("--only", default="", help="comma-separated corruptions to time (default: all 19); the grid "
                    "totals are printed only for the whole grid")
    ap.add_argument("--no-ref", action="store_true", help="time ours only (skip the reference)")
    args = ap.parse_args()
    names = NAMES
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(NAMES))
        if unknown:
            ap.error(f"unknown corruption(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    torch.set_num_threads(args.threads)
    ours_run = _ours_timer(args.batch, args.reps)
    ref_run, proc = _ref_timer(args.threads) if REFS_PY.exists() and not args.no_ref else (None, None)
    ours, ref = {}, {}
    for name in names:
        ours[name] = ours_run(name, args.severity)
        if ref_run is not None:
            ref[name] = ref_run(name, args.severity, 1 if name == "glass_blur" else args.ref_images)
    if proc is not None:
        proc.stdin.close()
        proc.wait()
    print(f"224 px, severity {args.severity}, threads {args.threads}, ours batch {args.batch} (best of {args.reps}),"
          f" reference imagecorruptions 1.1.2 ({'found' if ref else 'skipped' if args.no_ref else 'missing: ' + str(REFS_PY)})")
    print(f"{'corruption':<18} {'ours ms/img':>12} {'ref ms/img':>11} {'speed-up':>9}")
    for n in names:
        r = ref.get(n, float("nan"))
        print(f"{n:<18} {ours[n]:>12.2f} {r:>11.2f} {r / ours[n]:>8.1f}x")
    if ref and names == NAMES:
        def total(names):
            return sum(ours[n] for n in names), sum(ref[n] for n in names)

        for label, names in [("whole grid (19)", NAMES), ("grid without glass", [n for n in NAMES if n != "glass_blur"]),
                             ("glass_blur alone", ["glass_blur"])]:
            o, r = total(names)
            print(f"{label:<22} ours {o:8.1f} ms/img  ref {r:8.1f} ms/img  speed-up {r / o:6.1f}x")


if __name__ == "__main__":
    main()
