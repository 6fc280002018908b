"""Time cyminiball on point sets stored in .npy files (runs in the bench venv, not the project's).

Usage: python cyminiball_worker.py IN.npy OUT.npy   with IN of shape (N, K, D) float64.
Writes (N, 2): [radius, seconds] per set. Used by bench_meb.py through a subprocess, because
cyminiball 2.1.2 does not build against NumPy 2 (see bench_meb.py for the venv recipe).
"""

import sys
import time

import cyminiball
import numpy as np


def main(src: str, dst: str) -> None:
    sets = np.load(src)
    out = np.empty((len(sets), 2))
    for i, pts in enumerate(sets):
        pts = np.ascontiguousarray(pts)
        t0 = time.perf_counter()
        _, r2 = cyminiball.compute(pts)
        out[i] = np.sqrt(r2), time.perf_counter() - t0
    np.save(dst, out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
