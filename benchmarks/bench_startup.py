"""Start-up cost of each stage: wall time from interpreter start to the stage's first line of work.

    .venv/bin/python benchmarks/bench_startup.py                     (7 runs of every stage, median)
    .venv/bin/python benchmarks/bench_startup.py --runs 11 --stages fetch regression
    mkdir /tmp/old && git archive HEAD~5 src | tar -x -C /tmp/old          (then, before / after on one load:)
    .venv/bin/python benchmarks/bench_startup.py --src src /tmp/old/src

Each run is a fresh ``python -m embedrobust <stage> --stage-config JSON --root EMPTY_DIR``, the command Snakemake
starts for every job. The stage config names inputs that do not exist, so the stage gets through its imports and
its config handling (the perturbation grid, the dataset source) and stops with an error at the first input it
reads: what is timed is the interpreter, the CLI, every import on the stage's path, up to that read. A run counts
only when it failed for that reason (its message names the missing input), so a stage that fails earlier, for
another reason, is reported instead of timed.

metrics opens its store before it imports torch (its solver), so it stops there without it; the report's config
is the demo's whole config, as Snakemake hands it (fine-tuning runs, dense and task-attack plans resolved).
The model stages stop before they build their model: embed at its dataset index (the models package is imported,
open_clip / timm are not yet); text at an unknown architecture, so it pays for importing open_clip. The target for
a stage that builds no model is a median <= 2.5 s on a quiet machine; `uptime` is printed before and after, since
the runs share the CPUs with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from embedrobust.config import load_params, stage_config

GRID = {"presets": [], "families": {"gaussian_noise": {"severities": [1, 2]}, "embed_attack": {"levels": [0.01]}}}
CLIP = {"library": "open_clip", "arch": "embedrobust-tiny-clip", "pretrained": "none"}


def stage_runs(root: Path) -> dict[str, tuple[list[str], str]]:
    """Stage -> (CLI arguments, a string the error message must hold: the input it could not read)."""
    missing = str(root / "missing")
    cfgs = {
        "fetch": {"seed": 0, "dataset": "d", "datasets": {"d": {"source": "imagefolder", "path": missing}}},
        "fetch_dense": {"seed": 0, "dataset": "d", "dense_datasets": {"d": {"source": "voc", "path": missing}}},
        "metrics": {"dataset": "d", "model": "m", "perturbations": GRID},
        "downstream": {"seed": 0, "dataset": "d", "model": "m", "downstream": {"tasks": ["knn"], "knn": {"k": 1}}},
        "regression": {"dataset": "d", "models": ["m"], "regression": {}},
        # the demo's whole config, as the report gets it (fine-tuning runs, dense and task-attack plans)
        "report": stage_config(load_params(REPO / "params.yaml"), "report"),
        "embed": {"seed": 0, "device": "cpu", "dataset": "d", "model": "m",
                  "datasets": {"d": {"source": "demo-digits"}}, "models": {"m": CLIP}, "perturbations": GRID,
                  "embed": {"batch_size": 8, "chunk_images": 8}},
        "text": {"seed": 0, "device": "cpu", "dataset": "d", "model": "m",
                 "models": {"m": {**CLIP, "arch": "no-such-arch"}}, "templates": "simple"},
    }
    expect = {"text": "no-such-arch"}
    threaded = {"embed", "text", "metrics", "downstream", "regression", "report"}  # given --threads (workflow/rules)
    return {s: ([s, *(["--threads", "1"] if s in threaded else []), "--stage-config", json.dumps(c), "--root",
                 str(root)], expect.get(s, str(root))) for s, c in cfgs.items()}


BASELINES = {"python": ["-c", "pass"], "import torch": ["-c", "import torch"]}
NO_MODEL = ("fetch", "fetch_dense", "metrics", "downstream", "regression", "report")
REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def timed(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - t, proc


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--stages", nargs="*", help="stages to time (default: all of them and the baselines)")
    ap.add_argument("--src", nargs="+", type=Path, default=[SRC],
                    help="source trees to time side by side, one column each (PYTHONPATH; default: this "
                         "checkout's src), e.g. a `git archive` of an older commit's src")
    args = ap.parse_args()

    # One thread each, as a Snakemake job on a shared machine often gets.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        runs = stage_runs(Path(tmp))
        cases = {**{f"({b})": (a, None) for b, a in BASELINES.items()},
                 **{s: (["-m", "embedrobust", *a], e) for s, (a, e) in runs.items()}}
        if args.stages:
            unknown = sorted(set(args.stages) - set(runs))
            if unknown:
                ap.error(f"unknown stages {unknown}; known: {', '.join(runs)}")
            cases = {s: cases[s] for s in args.stages}
        envs = [{**env, "PYTHONPATH": str(src.resolve())} for src in args.src]
        print(f"load before: {load()}")
        times: dict[tuple[str, int], list[float]] = {(name, k): [] for name in cases for k in range(len(envs))}
        for (name, k) in times:  # one warm-up each: page cache, .pyc files
            timed(cases[name][0], envs[k])
        for _ in range(args.runs):  # round robin, so a burst of load from elsewhere hits every case alike
            for (name, k), ts in times.items():
                cmd, expect = cases[name]
                seconds, proc = timed(cmd, envs[k])
                if expect is None and proc.returncode != 0 or expect is not None and (
                        proc.returncode == 0 or expect not in proc.stderr):
                    sys.exit(f"{name} ({args.src[k]}): did not stop at its missing input (rc {proc.returncode}):\n"
                             f"{proc.stderr[-2000:]}")
                ts.append(seconds)
        print(f"load after:  {load()}")
    print(f"\nmedian [min - max] seconds to the first line of work, {args.runs} runs")
    for k, src in enumerate(args.src):
        print(f"  column {k + 1}: {src}")
    print(f"{'stage':<16}" + "".join(f"{f'column {k + 1}':>22}" for k in range(len(envs))))
    for name in cases:
        cells = []
        for k in range(len(envs)):
            ts = times[(name, k)]
            flag = "*" if name in NO_MODEL and statistics.median(ts) > 2.5 else " "
            cells.append(f"{statistics.median(ts):>8.2f}{flag} [{min(ts):.2f} - {max(ts):.2f}]")
        print(f"{name:<16}" + "".join(f"{c:>22}" for c in cells))
    print("* a stage that builds no model, over the 2.5 s target")


if __name__ == "__main__":
    main()
