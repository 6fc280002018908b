"""Benchmark of the batched exact MEB (DivergenceRadius) solver against cyminiball (not a test).

Three kinds of point sets, 10,000 each, K = 20 points in d = 512, float64:
  gauss   standard Gaussian coordinates;
  sphere  Gaussian directions normalised to the unit sphere;
  emb     embedding-like: a shared unit vector plus noise of random scale in [0, 0.5] per set
          (per-coordinate std scale / sqrt(d)), renormalised to unit length.
Our solver runs on all sets (best of 3 runs); cyminiball, the Cython binding of Gaertner's
miniball, runs on a sample: on the raw 512-dim coordinates, and on QR-reduced (K-1)-dim
coordinates (the QR step is not counted in its time, which favours it). The largest relative
radius difference against cyminiball on the sampled sets and our own certificate (duality gap
and max_i ||x_i - c|| vs r) are printed with the timings.

cyminiball 2.1.2 does not build against NumPy 2, so it lives in a separate git-ignored venv and is
called through a subprocess (benchmarks/cyminiball_worker.py). Set it up once with:
    python3.11 -m venv .bench-venv
    .bench-venv/bin/pip install "numpy<2" "setuptools>=68" wheel
    .bench-venv/bin/pip install --no-build-isolation cyminiball==2.1.2
Run from the repository root:
    .venv/bin/python benchmarks/bench_meb.py [--threads 2] [--raw-sample 2] [--reduced-sample 50]
Without .bench-venv the cyminiball columns are skipped. ``--fp16`` adds the error that storing
the embeddings as float16 causes in each metric (embedding-like sets, compared with float64).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from embedrobust.metrics import minimum_enclosing_ball, robustness_metrics

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
WORKER = Path(__file__).with_name("cyminiball_worker.py")


def make_sets(kind: str, n: int, k: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, d, generator=g, dtype=torch.float64)
    if kind == "gauss":
        return x
    if kind == "sphere":
        return x / x.norm(dim=-1, keepdim=True)
    base = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
    base = base / base.norm(dim=-1, keepdim=True)
    scale = 0.5 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    x = base + scale * x / d**0.5
    return x / x.norm(dim=-1, keepdim=True)


def qr_reduce(sets: np.ndarray) -> np.ndarray:
    """(N, K, D) -> (N, K, K-1): coordinates of x_i - x_0 in an orthonormal basis of their span."""
    y = sets[:, 1:] - sets[:, :1]
    _, r = np.linalg.qr(np.transpose(y, (0, 2, 1)))  # y^T = Q R, so y = R^T Q^T
    coords = np.transpose(r, (0, 2, 1))
    return np.concatenate([np.zeros_like(coords[:, :1]), coords], axis=1)


def cyminiball_run(sets: np.ndarray) -> np.ndarray | None:
    """(N, 2) [radius, seconds] from cyminiball in the bench venv, or None if unavailable."""
    if not BENCH_PYTHON.exists() or len(sets) == 0:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.npy"), Path(tmp, "out.npy")
        np.save(src, sets)
        subprocess.run([str(BENCH_PYTHON), str(WORKER), str(src), str(dst)], check=True)
        return np.load(dst)


def fp16_storage_error(x: torch.Tensor) -> None:
    """Print max abs / relative error of each metric when (N, K, D) embeddings are stored as float16."""
    exact = robustness_metrics(x)
    stored = robustness_metrics(x.half().double())
    for name, ref in exact.items():
        err = (stored[name] - ref).abs()
        big = ref >= 0.01
        print(f"fp16 storage  {name:18} max abs err {err.max().item():.1e}  "
              f"max rel err where metric >= 0.01: {(err[big] / ref[big]).max().item():.1e}  "
              f"(metric range {ref.min().item():.1e}..{ref.max().item():.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--raw-sample", type=int, default=2)
    ap.add_argument("--reduced-sample", type=int, default=50)
    ap.add_argument("--fp16", action="store_true", help="also measure float16 storage error")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), N={args.n} K={args.k} d={args.d}, float64, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = (
        f"{'kind':7} {'ours total s':>12} {'cpu s':>6} {'ours ms/set':>11} {'max rel gap':>11} {'max |far-r|/r':>13} "
        f"{'cmb raw ms/set':>14} {'x raw':>8} {'cmb red ms/set':>14} {'x red':>7} {'max rel diff':>12}"
    )
    print(header)
    for i, kind in enumerate(["gauss", "sphere", "emb"]):
        x = make_sets(kind, args.n, args.k, args.d, seed=i)
        times, cpu_times = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = minimum_enclosing_ball(x)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        total = min(times)
        # CPU seconds (all threads) show the cost when other processes share the cores.
        cpu = min(cpu_times)
        ours_ms = 1e3 * total / args.n
        r = res.radius
        # Certified relative radius error: the true radius lies in [sqrt(r^2 - gap), r].
        rel_gap = ((r - (r**2 - res.gap).clamp_min(0).sqrt()) / r).max().item()
        far = torch.linalg.vector_norm(x - res.center[:, None], dim=-1).amax(-1)
        far_err = ((far - r).abs() / r).max().item()

        xs = x.numpy()
        raw = cyminiball_run(xs[: args.raw_sample])
        red = cyminiball_run(qr_reduce(xs[: args.reduced_sample]))
        cols, diffs = [], []
        for out in (raw, red):
            if out is None:
                cols += ["n/a", "n/a"]
                continue
            ms = 1e3 * out[:, 1].mean()
            cols += [f"{ms:.3f}", f"{ms / ours_ms:.0f}"]
            ref = r[: len(out)].numpy()
            diffs.append(np.max(np.abs(out[:, 0] - ref) / ref))
        diff = f"{max(diffs):.1e}" if diffs else "n/a"
        print(
            f"{kind:7} {total:12.3f} {cpu:6.2f} {ours_ms:11.4f} {rel_gap:11.1e} {far_err:13.1e} "
            f"{cols[0]:>14} {cols[1]:>8} {cols[2]:>14} {cols[3]:>7} {diff:>12}"
        )
        if args.fp16 and kind == "emb":
            fp16_storage_error(x)
        del x, res


if __name__ == "__main__":
    main()
