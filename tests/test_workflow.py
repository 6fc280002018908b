"""The whole workflow, end to end, on a tiny config in a temporary copy of the project (Snakemake and DVC).

The `project` fixture (tests/conftest.py) builds it once per session; tests/test_sharing.py uses the same build.
"""

from __future__ import annotations

import json
import re
import sys

import yaml
from workflow_helpers import edited_params, lower_ci_level, planned_jobs, run, snakemake

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
    with edited_params(project, lower_ci_level):
        assert planned_jobs(project) == {"regression": 1, "report": 1, "all": 1}
    assert planned_jobs(project) == {}


def test_dvc_reruns_only_regression_and_report(project):
    run(["dvc", "commit", "--force", "--quiet"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout
    with edited_params(project, lower_ci_level):
        dry = run(["dvc", "repro", "--dry"], project).stdout
    assert set(re.findall(r"Running stage '(\w+)'", dry)) == {"regression", "report"}, dry
