"""Time DVC on an embedding store: `dvc add`, `dvc push` to a local remote, `dvc pull` into a fresh clone.

    .venv/bin/python benchmarks/bench_dvc.py --images 300 --conditions 25 --dim 192          (the demo's size)
    .venv/bin/python benchmarks/bench_dvc.py --images 50000 --conditions 46 --dim 768 --chunk 1024   (full study)

The store is written by the pipeline's own ChunkedStoreWriter with simulated embeddings (random float32, which,
like real embeddings, barely compresses), so its files are what the embed stage writes: one per chunk of images.
Everything happens in a temporary directory (--workdir) that is removed afterwards.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embedrobust.config import Condition
from embedrobust.embed.store import ChunkedStoreWriter, StoreLayout

BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env={"PATH": f"{BIN}:/usr/bin:/bin"})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--conditions", type=int, default=25)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--chunk", type=int, default=100, help="images per chunk (one file each)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-dvc-", dir=args.workdir))
    try:
        repo, remote, clone = work / "repo", work / "remote", work / "clone"
        repo.mkdir()
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                    ["dvc", "remote", "add", "-d", "local", str(remote)]):
            sh(cmd, repo)
        conds = [Condition("clean", math.nan)] + [Condition("f", float(v)) for v in range(1, args.conditions)]
        layout = StoreLayout(conds, [f"i{k}" for k in range(args.images)], np.zeros(args.images, np.int64),
                             ["test"] * args.images, ["c"], args.dim, args.chunk, {"params_sha256": "bench"})
        t = time.perf_counter()
        writer = ChunkedStoreWriter(repo / "store.zarr", layout)
        rng = np.random.default_rng(0)
        for k in writer.pending:
            sl = layout.chunk_slice(k)
            writer.write_chunk(k, rng.standard_normal((args.conditions, sl.stop - sl.start, args.dim), np.float32))
        writer.finalize()
        t_write = time.perf_counter() - t
        files = [p for p in (repo / "store.zarr").rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        t_add = sh(["dvc", "add", "-q", "store.zarr"], repo)
        for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "s"]):
            sh(cmd, repo)
        t_push = sh(["dvc", "push", "-q"], repo)
        sh(["git", "clone", "-q", str(repo), str(clone)], work)
        t_pull = sh(["dvc", "pull", "-q"], clone)
        print(f"store {args.images} images x {args.conditions} conditions x {args.dim} dims, chunk {args.chunk}: "
              f"{len(files)} files, {size / 2**20:.1f} MiB (written in {t_write:.1f} s)")
        print(f"dvc add  {t_add:7.2f} s   ({size / 2**20 / t_add:7.1f} MiB/s)")
        print(f"dvc push {t_push:7.2f} s   ({size / 2**20 / t_push:7.1f} MiB/s)  to a local-directory remote")
        print(f"dvc pull {t_pull:7.2f} s   ({size / 2**20 / t_pull:7.1f} MiB/s)  into a fresh clone")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
