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
    assert set(metrics) == {"digits", "finetune", "attacks"}
    for rule in ("fetch", "finetune", "embed", "metrics", "downstream", "regression", "fetch_dense", "dense",
                 "task_attack", "report"):
        assert any((project / "logs" / "benchmarks" / rule).rglob("*.tsv")) or \
            (project / "logs" / "benchmarks" / f"{rule}.tsv").exists(), rule


def test_fine_tuned_model_is_evaluated_beside_its_base(project):
    ft = "clip-ft-paper-a0.5"
    assert (project / "data" / "models" / ft / "model.pt").is_file()
    assert not (project / "data" / "models" / ft / "checkpoint").exists()
    for stage in ("metrics", "downstream"):
        assert (project / "data" / stage / "digits" / f"{ft}.parquet").is_file()
    tuned = json.loads((project / "reports" / "metrics.json").read_text())["finetune"]
    rows = {r["family"]: r for r in tuned["robustness"] if r["model"] == ft}
    assert rows["gaussian_noise"]["trained"] and not rows["jpeg_compression"]["trained"]  # held out
    assert {r["task"] for r in tuned["utility"]} == {"linear_probe", "knn", "zero_shot"}
    assert [r["alpha"] for r in tuned["tradeoff"]] == [0.0, 0.5]


def test_finetune_param_reruns_only_the_fine_tuned_model(project):
    def more_steps(config):
        config["finetune"]["steps"] = 3

    with edited_params(project, more_steps):
        assert planned_jobs(project) == {"finetune": 1, "embed": 1, "text": 1, "metrics": 1, "downstream": 1,
                                         "task_attack": 1, "regression": 1, "report": 1, "all": 1}


def test_dense_tasks_and_task_attacks_reach_the_report(project):
    import pandas as pd

    dense = pd.read_parquet(project / "data" / "dense" / "shapes" / "vit.parquet")
    assert dense["condition"].tolist() == ["clean", "gaussian_noise@0.05", "gaussian_noise@0.2", "jpeg_compression@50",
                                           "jpeg_compression@10", "segpgd@0.0156863"]
    assert dense["metric"].eq("miou").all() and dense["n_images"].eq(4).all()
    for model in ("clip", "vit", "clip-ft-paper-a0.5"):
        ta = pd.read_parquet(project / "data" / "task_attack" / "digits" / f"{model}.parquet")
        assert ta["condition"].tolist() == ["clean", "pgd@0.0156863"]
    attacks = json.loads((project / "reports" / "metrics.json").read_text())["attacks"]
    assert {r["model"] for r in attacks["worst_case"]} == {"clip", "vit", "clip-ft-paper-a0.5"}
    assert {r["condition"] for r in attacks["dense"]} == {"clean", "gaussian_noise (mean of 2 levels)",
                                                          "jpeg_compression (mean of 2 levels)", "segpgd eps 4/255"}


def test_dense_param_reruns_only_dense_and_report(project):
    def more_steps(config):
        config["dense"]["options"]["steps"] = 3

    with edited_params(project, more_steps):
        assert planned_jobs(project) == {"dense": 1, "report": 1, "all": 1}


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


def test_dvc_reruns_only_the_stages_that_read_the_regression_params(project):
    from embedrobust.share import _empty_outputs

    _empty_outputs(project)  # stages without work here (text_robustness) leave no folder; DVC records it empty
    run(["dvc", "commit", "--force", "--quiet"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout
    with edited_params(project, lower_ci_level):
        dry = run(["dvc", "repro", "--dry"], project).stdout
    # text_robustness fits its own regression (zero-shot accuracy on text robustness) with the same settings
    assert set(re.findall(r"Running stage '(\w+)'", dry)) == {"regression", "text_robustness", "report"}, dry


def test_the_light_stages_give_the_same_bytes_on_two_threads_as_the_workflow_on_one(project, tmp_path):
    """Snakemake runs metrics, downstream, text and task_attack on half the cores (LIGHT_THREADS in
    workflow/rules/common.smk: 1 of the project's 2), so that two run side by side: their outputs must not
    depend on the thread count. Each stage runs again here on 2 threads, every other stage's data linked in."""
    import torch

    from embedrobust import stages
    from embedrobust.config import all_models, load_params, stage_config

    config = load_params(project / "params.yaml", root=project)
    paths = {"metrics": stages.metrics_path, "downstream": stages.downstream_path, "text": stages.text_path,
             "task_attack": stages.task_attack_path}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for stage, path in paths.items():
            root = tmp_path / stage
            (root / "data").mkdir(parents=True)
            out_dir = path(project, "d", "m").parent.parent.name  # data/<out_dir>/<dataset>/<model>.<ext>
            for d in (project / "data").iterdir():
                if d.name != out_dir:
                    (root / "data" / d.name).symlink_to(d)
            checked = 0
            for model in all_models(config):
                cfg = stage_config(config, stage, dataset="digits", model=model)
                if cfg is None:  # text: CLIP models only
                    continue
                getattr(stages, stage)(json.loads(json.dumps(cfg)), root)
                ours, theirs = path(root, "digits", model), path(project, "digits", model)
                assert ours.read_bytes() == theirs.read_bytes(), f"{stage} {model}: other bytes on 2 threads"
                checked += 1
            assert checked, stage
    finally:
        torch.set_num_threads(before)
