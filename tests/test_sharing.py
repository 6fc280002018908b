"""Sharing results through DVC: `make share` after a Snakemake run, `make pull` in a clone, and Snakemake has
nothing to do.

The clone gets data/ from a local-directory DVC remote. DVC does not keep modification times, so without the
`--touch` step of `make pull` Snakemake would rerun the whole workflow; with it, nothing runs and a real change
(a parameter edit) still reruns what depends on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from workflow_helpers import edited_params, lower_ci_level, planned_jobs, run

SHARED = ("data/embeddings", "data/metrics", "data/downstream", "data/regression", "data/text", "data/dense",
          "data/task_attack", "reports")


def tree_digest(root: Path, sub: str) -> dict[str, str]:
    """Relative path -> sha256 of every file under root/sub."""
    base = root / sub
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clone(project, tmp_path_factory) -> Path:
    """A git clone of `project` after `dvc push` there; nothing pulled yet (the first test pulls without touching,
    so the tests run in file order)."""
    remote = tmp_path_factory.mktemp("dvc-remote")
    run(["dvc", "remote", "add", "-d", "-f", "local", str(remote)], project)
    run(["make", "share"], project)  # Snakemake built the results: share records dvc.lock and pushes
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data"]):
        run(cmd, project)
    dest = tmp_path_factory.mktemp("clone") / "repo"
    run(["git", "clone", "-q", str(project), str(dest)], dest.parent)
    return dest


def test_pulled_data_alone_looks_stale_to_snakemake(clone):
    """Why `make pull` touches: after a bare `dvc pull`, modification times make Snakemake want to rerun."""
    run(["dvc", "pull", "--quiet"], clone)
    jobs = planned_jobs(clone)
    assert jobs.get("report") == 1 and sum(jobs.values()) > 2, jobs


def test_make_pull_leaves_nothing_to_do(clone):
    run(["make", "pull"], clone)
    assert planned_jobs(clone) == {}


def test_pulled_results_equal_the_pushed_ones(project, clone):
    run(["make", "pull"], clone)
    for sub in SHARED:
        assert tree_digest(clone, sub) == tree_digest(project, sub), sub
    assert (clone / "reports" / "metrics.json").read_text() == (project / "reports" / "metrics.json").read_text()


def test_param_edit_after_pull_reruns_only_what_depends_on_it(clone):
    run(["make", "pull"], clone)
    with edited_params(clone, lower_ci_level):
        assert planned_jobs(clone) == {"regression": 1, "report": 1, "all": 1}


def test_make_pull_refuses_data_that_does_not_match_the_checkout(clone):
    """A checkout whose params differ from the pushed results must not get them touched into looking current."""
    with edited_params(clone, lower_ci_level):
        proc = run(["make", "pull"], clone, check=False)
        assert proc.returncode != 0 and "does not match" in proc.stderr
        assert planned_jobs(clone) == {"regression": 1, "report": 1, "all": 1}


def test_share_refuses_results_older_than_the_params(project):
    """Recording dvc.lock for stale outputs would hand a clone results that its params did not produce."""
    with edited_params(project, lower_ci_level):
        proc = run(["make", "share"], project, check=False)
        assert proc.returncode != 0 and "not current" in proc.stderr and "regression" in proc.stderr
