"""The resolved plan the Snakefile reads: equal whether resolved or read back, keyed on everything it depends on,
never a stored failure, and read back without importing the model libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from embedrobust import plan as plan_mod
from embedrobust.config import canonical_json, stage_config, validate
from embedrobust.errors import ConfigError


def test_a_plan_read_back_equals_a_fresh_one(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fresh = plan_mod.resolve(tiny_config)
    first = plan_mod.cached(tiny_config, cache_dir=tmp_path / "cache")
    again = plan_mod.cached(tiny_config, cache_dir=tmp_path / "cache")
    assert fresh == first == again
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


def test_every_job_reads_its_stage_config_as_the_config_module_gives_it(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = plan_mod.resolve(tiny_config)
    cfg = validate(tiny_config)
    assert plan["models"] == ["clip", "clip-ft-paper-a0.5", "vit"]
    for key, planned in plan["stages"].items():
        stage, ds, model = (None if part == "-" else part for part in key.split("/"))
        assert planned == canonical_json(stage_config(cfg, stage, dataset=ds, model=model)), key
    # every (dataset, model) of the image stages, the dense and task-attack grids, one report
    assert plan_mod.job_key("embed", "digits", "clip-ft-paper-a0.5") in plan["stages"]
    assert plan_mod.job_key("dense", "shapes", "vit") in plan["stages"]
    assert plan_mod.job_key("task_attack", "digits", "clip-ft-paper-a0.5") in plan["stages"]
    assert plan["stages"][plan_mod.job_key("text", "digits", "vit")] == "null"  # no text tower
    assert plan_mod.job_key("report") in plan["stages"]


def test_the_key_covers_the_config_the_libraries_and_the_package_files(tiny_config, monkeypatch):
    key = plan_mod.cache_key(tiny_config)
    assert plan_mod.cache_key({**tiny_config, "seed": 1}) != key
    assert plan_mod.cache_key(tiny_config) == key
    monkeypatch.setattr("embedrobust.warm.code_stamp", lambda package=None, files="*.py": files)
    assert plan_mod.cache_key(tiny_config) != key  # the package's state is part of the key
    monkeypatch.setattr(plan_mod, "_versions", lambda: {"timm": "0.0"})
    assert plan_mod.cache_key(tiny_config) != key


def test_an_invalid_config_is_refused_every_time_and_never_stored(tiny_config, tmp_path):
    bad = {**tiny_config, "perturbations": {"families": {"jpeg_compression": {"levels": [150]}}}}
    for _ in range(2):
        with pytest.raises(ConfigError, match="jpeg_compression"):
            plan_mod.cached(bad, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_plan_read_back_still_checks_that_input_paths_exist(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos" / "cat"
    photos.mkdir(parents=True)
    cfg = {**tiny_config, "datasets": {"mine": {"source": "imagefolder", "path": "photos"}}}
    plan_mod.cached(cfg, cache_dir=tmp_path / "cache")
    photos.rmdir()
    (tmp_path / "photos").rmdir()
    with pytest.raises(ConfigError, match="datasets.mine.path: 'photos'"):
        plan_mod.cached(cfg, cache_dir=tmp_path / "cache")


def test_the_package_stamp_covers_every_file_but_byte_code(tmp_path):
    from embedrobust.warm import code_stamp

    for f in ("a.py", "schemas/params.schema.yaml", "__pycache__/a.cpython-311.pyc"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("0")
    before = code_stamp(tmp_path, files="*")
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_text("byte code")
    assert code_stamp(tmp_path, files="*") == before
    (tmp_path / "schemas" / "params.schema.yaml").write_text("changed")
    assert code_stamp(tmp_path, files="*") != before
    assert code_stamp(tmp_path) == code_stamp(tmp_path, files="*.py")  # the warm server's stamp: sources only


def test_reading_a_plan_back_imports_no_model_library(tiny_config, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(tiny_config))
    script = (
        "import json, sys\n"
        "from embedrobust.plan import cached\n"
        "cached(json.load(open('config.json')), cache_dir='cache')\n"
        "print(json.dumps(sorted(m for m in ('torch', 'torchvision', 'timm', 'open_clip') if m in sys.modules)))\n"
    )
    loaded = [json.loads(subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                                        check=True).stdout) for _ in range(2)]
    assert loaded[0] == ["open_clip", "timm", "torch", "torchvision"]  # resolving validates against the registries
    assert loaded[1] == []


def test_the_cache_can_be_turned_off(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBEDROBUST_PLAN_CACHE", "0")
    plan_mod.cached(tiny_config, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
