"""The stage manifest is the one list of stages: the CLI, the paths, the plan, dvc.yaml and the architecture page
follow it, and a new stage is a manifest entry plus a stage function."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from embedrobust import cli, generate, manifest, paths, stages
from embedrobust.config import DVC_PARAMS, stage_config, validate

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_and_the_architecture_page_are_what_the_manifest_generates():
    """`python -m embedrobust.generate` writes both; a manifest edit without it fails here."""
    for path, text in generate.targets(REPO).items():
        assert path.read_text() == text, f"{path.name} is not current: run python -m embedrobust.generate"


def test_dvc_yaml_has_each_stage_with_the_manifests_command_params_outs_and_data_deps():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(dvc) == list(manifest.names())
    for st in manifest.STAGES:
        entry = dvc[st.name]
        assert entry["cmd"].split() == ["python", "-m", "embedrobust", st.name, *st.dvc_args]
        assert entry["params"] == list(st.params)
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in entry["outs"]]
        assert outs == [d for d in st.out_dirs], st.name
        upstream = {d for i in st.inputs for d in manifest.stage(i.stage).out_dirs}
        assert {d for d in entry["deps"] if not d.startswith("src/")} == upstream, st.name


def test_each_stage_declares_the_library_packages_its_code_deps_hold():
    for st in manifest.STAGES:
        deps = generate.code_deps(generate.stage_modules(st.name))
        assert {f"src/embedrobust/{p}" for p in st.packages} <= deps, st.name


def test_the_cli_paths_and_dvc_params_are_derived_from_the_manifest():
    assert cli.STAGES == manifest.names()
    assert set(DVC_PARAMS) == set(manifest.names())
    sub = cli._parser()._subparsers._group_actions[0].choices
    assert set(manifest.names()) <= set(sub)
    assert set(paths.DECLARED_DIRS) == {s.name for s in manifest.STAGES if s.declared}
    for st in manifest.STAGES:
        assert callable(getattr(stages, st.name)), st.name


def test_every_input_names_an_output_of_an_earlier_stage():
    order = manifest.names()
    for st in manifest.STAGES:
        for inp in st.inputs:
            assert order.index(inp.stage) < order.index(st.name), (st.name, inp.name)
            manifest.stage(inp.stage).output(inp.artifact)  # KeyError if not


def test_the_paths_module_formats_the_manifests_templates():
    root = Path("r")
    assert paths.store_path(root, "d", "m") == root / "data/embeddings/d/m.zarr"
    assert paths.checkpoint_relpath("m") == "data/models/m/model.pt"
    assert paths.regression_dir(root, "d") == root / "data/regression/d"
    assert manifest.outputs("embed", root, dataset="d", model="m")["store"] == root / "data/embeddings/d/m.zarr/zarr.json"
    # the report's provenance lines: a wildcard not given reads <name>
    assert manifest.relpath("dense", "table", dataset="shapes") == "data/dense/shapes/<model>.parquet"


@pytest.fixture
def tiny_plan(tiny_config):
    from embedrobust.plan import resolve

    return resolve(tiny_config)


def test_job_inputs_follow_the_plan(tiny_plan):
    """Fine-tuned weights only for fine-tuned models, class embeddings only for CLIP models, regression over every
    model of its dataset."""
    ft = next(iter(tiny_plan["finetuned"]))
    embed_ft = manifest.inputs("embed", tiny_plan, {"dataset": "digits", "model": ft})
    assert embed_ft == {"index": ["data/datasets/digits/index.csv"], "weights": [f"data/models/{ft}/model.pt"]}
    assert "weights" not in manifest.inputs("embed", tiny_plan, {"dataset": "digits", "model": "vit"})
    assert "classes" in manifest.inputs("downstream", tiny_plan, {"dataset": "digits", "model": "clip"})
    assert "classes" not in manifest.inputs("downstream", tiny_plan, {"dataset": "digits", "model": "vit"})
    reg = manifest.inputs("regression", tiny_plan, {"dataset": "digits"})
    assert reg["metrics"] == [f"data/metrics/digits/{m}.parquet" for m in tiny_plan["models"]]
    assert manifest.inputs("finetune", tiny_plan, {"model": ft}) == {"index": ["data/datasets/digits/index.csv"]}
    report = manifest.inputs("report", tiny_plan, {})
    assert report["dense"] == [f"data/dense/shapes/{m}.parquet" for m in tiny_plan["dense"]["models"]]
    assert report["text_robustness"] == []  # the section is off in the tiny config


def test_the_cli_refuses_an_output_the_manifest_does_not_give(tiny_config, capsys):
    cfg = stage_config(validate(tiny_config), "metrics", "digits", "vit")
    argv = ["metrics", "--stage-config", json.dumps(cfg), "--output", "table=data/metrics/digits/other.parquet"]
    assert cli.main(argv, warm=False) == 2
    err = capsys.readouterr().err
    assert "--output table=data/metrics/digits/other.parquet" in err and "data/metrics/digits/vit.parquet" in err


def test_the_cli_refuses_an_input_of_another_job(tiny_config, capsys):
    cfg = stage_config(validate(tiny_config), "metrics", "digits", "vit")
    argv = ["metrics", "--stage-config", json.dumps(cfg), "--input", "store=data/embeddings/digits/clip.zarr/zarr.json"]
    assert cli.main(argv, warm=False) == 2
    assert "not an input metrics reads for this job" in capsys.readouterr().err


# -- a new stage: a manifest entry and a stage function, nothing else --------------------------------------------
TOY = manifest.Stage("toy", "number of images per split", "dataset", "study",
                     (manifest.Artifact("table", "data/toy/{dataset}.parquet"),), ("seed", "datasets"), ("data",),
                     inputs=(manifest.Input("index", "fetch", "index"),), torch="none", declared=True)


@pytest.fixture
def toy_stage(monkeypatch):
    def toy(cfg: dict, root: Path) -> Path:
        from embedrobust.data import read_index

        out = manifest.path("toy", "table", root, dataset=cfg["dataset"])
        counts = read_index(paths.dataset_dir(root, cfg["dataset"]))["split"].value_counts().sort_index()
        out.parent.mkdir(parents=True, exist_ok=True)
        counts.rename("n").reset_index().to_parquet(out)
        return out

    monkeypatch.setattr(manifest, "STAGES", (*manifest.STAGES, TOY))
    monkeypatch.setattr(manifest, "BY_NAME", {**manifest.BY_NAME, "toy": TOY})
    monkeypatch.setattr(stages, "toy", toy, raising=False)
    monkeypatch.setattr(cli, "STAGES", manifest.names())
    return TOY


def test_a_toy_stage_gets_a_default_stage_config_and_a_plan_entry(toy_stage, tiny_config):
    cfg = validate(tiny_config)
    assert stage_config(cfg, "toy", dataset="digits") == {"seed": 0, "dataset": "digits", "model": None,
                                                           "datasets": cfg["datasets"]}
    from embedrobust.plan import resolve

    plan = resolve(tiny_config)
    assert manifest.job_key("toy", "digits") in plan["stages"]
    assert manifest.inputs("toy", plan, {"dataset": "digits"}) == {"index": ["data/datasets/digits/index.csv"]}


def test_a_toy_stage_runs_from_the_cli_and_gets_its_dvc_stage_and_table_row(toy_stage, tiny_config, tmp_path,
                                                                          write_params, monkeypatch):
    from embedrobust.data import fetch_dataset

    params = write_params(tmp_path / "params.yaml", tiny_config)
    fetch_dataset("digits", validate(tiny_config)["datasets"]["digits"], paths.dataset_dir(tmp_path, "digits"), seed=0)
    assert cli.main(["toy", "--params", str(params), "--root", str(tmp_path), "--all",
                     "--output", f"table={tmp_path}/data/toy/digits.parquet"], warm=False) == 0
    table = pd.read_parquet(tmp_path / "data/toy/digits.parquet")
    assert set(table["split"]) == {"train", "test"} and table["n"].sum() == 30
    real = generate.stage_modules
    # the toy's function lives in this test, not in stages.py, where the code deps are read from: give it fetch's
    monkeypatch.setattr(generate, "stage_modules", lambda name: real("fetch"))
    lines = generate.dvc_stage(toy_stage)
    assert lines[:2] == ["  toy:", "    cmd: python -m embedrobust toy --all"]
    assert "      - data/datasets" in lines and lines[-2:] == ["    outs:", "      - data/toy"]
    assert "| `toy` | dataset | study | `data/toy/{dataset}.parquet` | index (fetch) |" in manifest.table()
