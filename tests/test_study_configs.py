"""Every shipped config through the real command lines: Snakemake's CLI and `dvc repro`, dry runs.

A config passed with --configfile is the whole config of its run: none of the demo's (params.yaml) datasets or
models may join it. The study configs name dataset paths that do not exist here, so each dry run points them at
generated copies (the rehearsal overlay without its size cut): the models, datasets and grid are the file's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from embedrobust.config import finetune_runs, merge_configs, read_config, validate

from workflow_helpers import REPO, copy_project, run, snakemake

CONFIGS = ["params.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "config").glob("*.yaml"))]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A git + DVC copy of the project (no data)."""
    root = tmp_path_factory.mktemp("configs") / "repo"
    root.mkdir()
    copy_project(root)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, root)
    return root


def _paths_overlay(config: str, root: Path) -> list[str]:
    """The --configfile words of a config's run: the file, and for a study the overlay of its dataset paths."""
    if config == "params.yaml":
        return []
    from embedrobust.rehearsal.study import prepare

    overlay = prepare(REPO / config, root / "rehearsal" / Path(config).stem, weights=False, size=False)
    return [config, str(overlay)]


def _expected(config: str, files: list[str], root: Path) -> dict:
    raw = read_config(REPO / config)
    merged = raw
    for f in files[1:]:
        merged = merge_configs(merged, read_config(f))
    cfg = validate(merged)
    return {"datasets": sorted(raw["datasets"]), "models": sorted(raw["models"]),
            "all_models": sorted([*raw["models"], *finetune_runs(cfg)])}


def _planned(stdout: str, rule: str) -> set[tuple[str, str]]:
    """(dataset, model) of every planned job of ``rule`` in a Snakemake dry run's output."""
    pattern = rf"rule {rule}:\n(?:    .*\n)*?    output: data/\w+/([^/\s]+)/([^/\s,]+?)(?:\.zarr/zarr\.json|\.parquet|\.npz)"
    return set(re.findall(pattern, stdout))


@pytest.mark.parametrize("config", CONFIGS)
def test_snakemake_runs_exactly_the_configs_datasets_and_models(config, checkout):
    files = _paths_overlay(config, checkout)
    args = ["-n", "reports/final.pdf", *(["--configfile", *files] if files else [])]
    out = snakemake(checkout, *args).stdout
    want = _expected(config, files, checkout)
    embedded = _planned(out, "embed")
    assert sorted({d for d, _ in embedded}) == want["datasets"]
    assert sorted({m for _, m in embedded}) == want["all_models"]
    fetched = set(re.findall(r"output: data/datasets/([^/]+)/index\.csv", out))
    assert sorted(fetched) == want["datasets"]


@pytest.mark.parametrize("config", [c for c in CONFIGS if c != "params.yaml"])
def test_a_study_config_shares_nothing_with_the_demo(config, checkout):
    demo = read_config(REPO / "params.yaml")
    study = read_config(REPO / config)
    assert not set(demo["datasets"]) & set(study["datasets"])
    assert not set(demo["models"]) & set(study["models"])


@pytest.mark.parametrize("config", CONFIGS)
def test_dvc_repro_runs_the_config_written_to_params_yaml(config, checkout):
    """DVC reads params.yaml: a study runs under `dvc repro` once written there (what `embedrobust share` does)."""
    files = _paths_overlay(config, checkout)
    params = checkout / "params.yaml"
    original = params.read_text()
    try:
        if files:
            merged = merge_configs(read_config(REPO / files[0]), read_config(files[1]))
            params.write_text(yaml.safe_dump(merged, sort_keys=False))
        # A dry run hashes each stage's deps, and upstream outputs do not exist yet in a fresh checkout (a real
        # `dvc repro` makes them as it goes): empty output folders stand in.
        for stage in yaml.safe_load((checkout / "dvc.yaml").read_text())["stages"].values():
            for out_ in stage["outs"]:
                path = checkout / (out_ if isinstance(out_, str) else next(iter(out_)))
                if not path.suffix:
                    path.mkdir(parents=True, exist_ok=True)
        out = run(["dvc", "repro", "--dry"], checkout).stdout
        for stage in ("fetch", "embed", "metrics", "downstream", "regression", "report"):
            assert f"Running stage '{stage}'" in out, stage
        plan = json.loads(run(["python", "-m", "embedrobust", "validate", "--json"], checkout).stdout)
        want = _expected(config, files, checkout)
        assert plan["datasets"] == want["datasets"] and plan["all_models"] == want["all_models"]
    finally:
        params.write_text(original)


def test_the_full_study_runs_the_text_grid_on_its_clip_models(checkout):
    files = _paths_overlay("config/full_study.yaml", checkout)
    out = snakemake(checkout, "-n", "reports/final.pdf", "--configfile", *files).stdout
    raw = read_config(REPO / "config/full_study.yaml")
    clip = sorted(m for m, spec in raw["models"].items() if spec["library"] == "open_clip")
    planned = _planned(out, "text_robustness")
    assert sorted({m for _, m in planned}) == clip == sorted(raw["text_robustness"]["models"])
    assert sorted({d for d, _ in planned}) == sorted(raw["datasets"])


def test_the_full_study_with_seeds_plans_every_model_under_each_seed(checkout, tmp_path):
    files = _paths_overlay("config/full_study.yaml", checkout)
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("seeds: [0, 1]\n")
    out = snakemake(checkout, "-n", "reports/final.pdf", "--configfile", *files, str(seeds)).stdout
    want = _expected("config/full_study.yaml", files, checkout)["all_models"]
    embedded = {m for _, m in _planned(out, "embed")}
    assert embedded == {*want, *(f"{m}-seed1" for m in want)}
    tuned = set(re.findall(r"output: data/models/([^/]+)/model\.pt", out))
    assert tuned == {*(m for m in want if "-ft-" in m), *(f"{m}-seed1" for m in want if "-ft-" in m)}
    clip = read_config(REPO / "config/full_study.yaml")["text_robustness"]["models"]
    assert {m for _, m in _planned(out, "text_robustness")} == {*clip, *(f"{m}-seed1" for m in clip)}
