"""Cost of one Snakemake evaluation of the workflow: a dry run, with the resolved plan computed vs read back.

    .venv/bin/python benchmarks/bench_snakefile.py                               (params.yaml, 5 runs each)
    .venv/bin/python benchmarks/bench_snakefile.py --configfile config/ssl_benchmark.yaml OVERLAY --runs 3

Snakemake evaluates the Snakefile on every invocation: a dry run, ``--touch`` (``make pull``), and on a cluster
every job step. Each run here is ``snakemake -n reports/final.pdf`` in a copy of the project, timed from start to
exit; "computed" runs set ``EMBEDROBUST_PLAN_CACHE=0`` (validation imports torch, torchvision, timm and open_clip),
"read back" runs find the plan ``embedrobust.plan`` stored in ``.snakemake/`` on the first. A study config's
dataset paths must exist (use a rehearsal overlay: ``python -m embedrobust.rehearsal``). ``uptime`` is printed
before and after: the runs share the CPUs with whatever else runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)


def _dry_run(project: Path, extra: list[str], env: dict) -> float:
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "-n", "reports/final.pdf", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="+", default=[], help="config files (absolute or relative to the repo)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    extra = ["--configfile", *[str((REPO / c).resolve()) for c in args.configfile]] if args.configfile else []
    print("load before:", os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        _copy(project)
        env = {**os.environ, "MPLBACKEND": "Agg"}
        computed = [_dry_run(project, extra, {**env, "EMBEDROBUST_PLAN_CACHE": "0"}) for _ in range(args.runs)]
        shutil.rmtree(project / ".snakemake", ignore_errors=True)
        first = _dry_run(project, extra, env)
        read_back = [_dry_run(project, extra, env) for _ in range(args.runs)]
    print(f"| dry run of {' + '.join(args.configfile) or 'params.yaml'} | median s | runs |")
    print("| --- | --- | --- |")
    print(f"| plan computed (EMBEDROBUST_PLAN_CACHE=0) | {statistics.median(computed):.2f} | {args.runs} |")
    print(f"| first run (computed, then stored) | {first:.2f} | 1 |")
    print(f"| plan read back | {statistics.median(read_back):.2f} | {args.runs} |")
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
