"""The whole workflow, end to end, on a tiny config in a temporary copy of the project (Snakemake and DVC)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env() -> dict:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MPLBACKEND="Agg", SOURCE_DATE_EPOCH="0")
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["snakemake", "--workflow-profile", "workflow/profiles/default", "--cores", "2", *args], cwd, check)


def planned_jobs(cwd: Path) -> dict[str, int]:
    """Rule -> job count of a dry run ({} when there is nothing to do)."""
    out = snakemake(cwd, "-n").stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_params) -> Path:
    """A git + DVC copy of the project with a tiny params.yaml, run once to reports/final.pdf."""
    root = tmp_path_factory.mktemp("project")
    copy_project(root)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, root)
    snakemake(root, "reports/final.pdf")
    return root


def test_workflow_builds_the_report(project):
    pdf = project / "reports" / "final.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"digits"}
    for rule in ("fetch", "embed", "metrics", "downstream", "regression", "report"):
        assert any((project / "logs" / "benchmarks" / rule).rglob("*.tsv")) or \
            (project / "logs" / "benchmarks" / f"{rule}.tsv").exists(), rule


def test_second_run_does_nothing(project):
    assert planned_jobs(project) == {}


def test_lint_is_clean(project):
    proc = snakemake(project, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr


def test_logs_hold_no_warnings_or_tracebacks(project):
    for log in (project / "logs").rglob("*.log"):
        text = log.read_text()
        assert "Warning" not in text and "Traceback" not in text, f"{log}:\n{text}"


def test_bad_params_fail_with_one_clear_error(project, tmp_path):
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load((project / "params.yaml").read_text())
    config["models"]["clip"]["arch"] = "ViT-Q-99"
    bad.write_text(yaml.safe_dump(config))
    proc = run([sys.executable, "-m", "embedrobust", "embed", "--params", str(bad), "--root", str(tmp_path)],
               project, check=False)
    assert proc.returncode == 2
    assert "models.clip.arch" in proc.stderr and "ViT-Q-99" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_regression_param_reruns_only_regression_and_report(project):
    params = project / "params.yaml"
    original = params.read_text()
    try:
        config = yaml.safe_load(original)
        config["regression"]["ci_level"] = 0.8
        params.write_text(yaml.safe_dump(config, sort_keys=False))
        assert planned_jobs(project) == {"regression": 1, "report": 1, "all": 1}
    finally:
        params.write_text(original)
    assert planned_jobs(project) == {}


def test_dvc_reruns_only_regression_and_report(project):
    run(["dvc", "commit", "--force", "--quiet"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout
    params = project / "params.yaml"
    original = params.read_text()
    try:
        config = yaml.safe_load(original)
        config["regression"]["ci_level"] = 0.8
        params.write_text(yaml.safe_dump(config, sort_keys=False))
        dry = run(["dvc", "repro", "--dry"], project).stdout
        ran = set(re.findall(r"Running stage '(\w+)'", dry))
        assert ran == {"regression", "report"}, dry
    finally:
        params.write_text(original)
