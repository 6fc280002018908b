"""Helpers for the workflow tests: run commands in a copy of the project, read Snakemake's plan."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# The test modules that use the session-built project (``project`` and the fixtures built on it). Under
# ``make test`` (pytest-xdist) they run on one worker, which builds the project once; every other module is one unit
# of work, so its module fixtures are built once too. test_xdist_groups_cover_every_user_of_the_project keeps
# this list complete.
PROJECT_MODULES = frozenset({"tests/report/test_final_pdf.py", "tests/report/test_snakemake_report.py",
                             "tests/test_sharing.py", "tests/test_workflow.py"})


def work_unit(nodeid: str) -> str:
    """The xdist unit of work of a test: ``project`` for the project's tests, else its module."""
    module = nodeid.split("::", 1)[0]
    return "project" if module in PROJECT_MODULES else module


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


def build_project(root: Path, params: dict) -> Path:
    """A git + DVC copy of the project with a tiny params.yaml, run once to reports/final.pdf."""
    copy_project(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, root)
    snakemake(root, "reports/final.pdf")
    return root


@contextlib.contextmanager
def edited_params(root: Path, edit):
    """Within the block, root/params.yaml has ``edit(config)`` applied; the original is restored afterwards."""
    params = root / "params.yaml"
    original = params.read_text()
    config = yaml.safe_load(original)
    edit(config)
    params.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        yield
    finally:
        params.write_text(original)


def lower_ci_level(config: dict) -> None:
    """A regression-only edit: it must rerun regression and report, nothing else."""
    config["regression"]["ci_level"] = 0.8


def with_local_paths(config_file: Path, tmp: Path) -> dict:
    """The raw config of ``config_file`` with every input path that validation checks (image folders, torchvision
    roots, real dense datasets, model checkpoints) pointed at a new empty directory or file under ``tmp``: a study
    written for another machine's /datasets then validates here. Not validated."""
    config = yaml.safe_load(Path(config_file).read_text())

    def local(kind: str, name: str, is_dir: bool = True) -> str:
        path = tmp / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_dir:
            path.mkdir(exist_ok=True)
        else:
            path.touch()
        return str(path)

    for name, spec in config["datasets"].items():
        for key in ("path", "root"):
            if key in spec:
                spec[key] = local(f"datasets-{key}", name)
    for name, spec in ((config.get("dense") or {}).get("datasets") or {}).items():
        if "path" in spec:
            spec["path"] = local("dense", name)
    for name, spec in config["models"].items():
        if spec.get("checkpoint"):
            spec["checkpoint"] = local("checkpoints", name, is_dir=False)
    return config
