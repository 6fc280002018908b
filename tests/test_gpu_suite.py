"""benchmarks/gpu_suite.py (the GPU check, `make gpu-check`) end to end on the CPU at --size tiny.

The GPU session runs it once, with minutes of device time: every step has to work before it gets there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from embedrobust.config import read_config

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"^[0-9]+(\.[0-9]*)?(e[+-]?[0-9]+)?")


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| step | what | figure | target | status |"
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[1:]]


def test_tiny_cpu_run_reports_every_step_ok_with_positive_figures(tmp_path):
    out = tmp_path / "gpu_suite.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--size", "tiny",
         "--out", str(out), "--hf-cache", str(tmp_path / "hf"), "--work", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    table = out.read_text()
    assert table in proc.stdout  # the same table is printed for the issue note
    header = table.splitlines()[0]
    assert "total wall time" in header and "torch " in header, header

    rows = _rows(table)
    assert all(len(r) == 5 for r in rows), rows
    by_step: dict[str, list[list[str]]] = {}
    for r in rows:
        by_step.setdefault(r[0], []).append(r)
    assert sorted(by_step) == ["1", "2", "3", "4"]
    for step, what, figure, _target, status in rows:
        assert status.startswith("ok ("), (step, what, status)
        m = NUMBER.match(figure)
        assert m and float(m[0]) > 0, (step, what, figure)

    assert len(by_step["1"]) == 1 and "images x conditions/s" in by_step["1"][0][2]
    assert "rehearsal hub cache" in by_step["1"][0][1]
    assert [r[3] for r in by_step["2"]] == ["-", "-", ">= 0.8"]  # bare forward, embed path, their ratio
    grid = read_config(REPO / "config" / "full_study.yaml")["perturbations"]["families"]
    names = [r[1].split(" ")[0] for r in by_step["3"]]
    assert names[: len(grid)] == list(grid)  # the study grid first, then the registry's other families
    assert by_step["3"][-1][1].startswith("study grid mean")
    assert [r[1].split(":")[0] for r in by_step["4"]] == [f"fine-tune {m}" for m in
                                                           ("paper", "deacl", "grace", "subspace")]
    assert all("s/step" in r[2] for r in by_step["4"])
