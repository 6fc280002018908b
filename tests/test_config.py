"""params.yaml: the schema, defaults, the perturbation grid and the per-stage subsets."""

from __future__ import annotations

import math
import re

import pytest
import yaml
from pathlib import Path

from embedrobust.config import DVC_PARAMS, conditions, load_params, stage_config, validate
from embedrobust.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_demo_params_are_valid():
    cfg = load_params(REPO / "params.yaml")
    assert conditions(cfg)[0].label == "clean"


def test_full_study_config_is_valid():
    cfg = load_params(REPO / "config" / "full_study.yaml")
    assert any(m["pretrained"] not in (None, "none") for m in cfg["models"].values())


def test_defaults_are_filled(tiny_config):
    del tiny_config["embed"]
    cfg = validate(tiny_config)
    assert cfg["embed"] == {"batch_size": 64, "chunk_images": 256, "num_workers": 0}


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda c: c["models"]["clip"].update(library="openclip"), "models.clip.library"),
        (lambda c: c.update(seed="zero"), "seed"),
        (lambda c: c["embed"].update(batch_size=0), "embed.batch_size"),
        (lambda c: c.update(unknown_section={}), "(top level)"),
        (lambda c: c["perturbations"]["families"]["gaussian_noise"].update(severities=[1]), "gaussian_noise"),
        (lambda c: c["perturbations"]["families"].update(glas_blur={"severities": [6]}), "glas_blur"),
    ],
)
def test_schema_errors_name_the_path(tiny_config, mutate, path):
    mutate(tiny_config)
    with pytest.raises(ConfigError, match=re.escape(path)):
        validate(tiny_config)


def test_unknown_perturbation_suggests_the_closest(tiny_config):
    tiny_config["perturbations"]["families"]["gausian_noise"] = {"levels": [0.1]}
    with pytest.raises(ConfigError, match="Did you mean 'gaussian_noise'"):
        validate(tiny_config)


def test_malformed_yaml_is_one_clear_error(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("seed: [0\nmodels: {")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(p)


def test_conditions_expand_severities_in_order(tiny_config):
    tiny_config["perturbations"]["families"] = {"contrast": {"severities": [1, 5]}}
    conds = conditions(validate(tiny_config))
    assert [c.label for c in conds] == ["clean", "contrast@0.4", "contrast@0.05"]
    assert math.isnan(conds[0].value)


def test_regression_params_reach_only_regression_and_report(tiny_config):
    a = validate(tiny_config)
    tiny_config["regression"]["ci_level"] = 0.8
    b = validate(tiny_config)
    changed = {
        stage
        for stage in ("fetch", "embed", "text", "metrics", "downstream", "regression", "report")
        if stage_config(a, stage, "digits", "clip") != stage_config(b, stage, "digits", "clip")
    }
    assert changed == {"regression", "report"}


def test_dvc_stages_read_the_sections_the_stages_read():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for stage, sections in DVC_PARAMS.items():
        assert sorted(dvc["stages"][stage]["params"]) == sorted(sections), stage


def test_params_file_is_written_and_read_back(tmp_path, tiny_config, write_params):
    cfg = load_params(write_params(tmp_path / "p.yaml", tiny_config))
    assert cfg["models"]["clip"]["arch"] == "embedrobust-tiny-clip"
