"""params.yaml: the schema, defaults, the perturbation grid and the per-stage subsets."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from embedrobust.config import DVC_PARAMS, conditions, load_params, stage_config, validate
from embedrobust.errors import ConfigError

from workflow_helpers import with_local_paths

REPO = Path(__file__).resolve().parents[1]


def test_demo_params_are_valid():
    cfg = load_params(REPO / "params.yaml")
    assert conditions(cfg)[0].label == "clean"


def test_full_study_config_is_valid(tmp_path):
    cfg = validate(with_local_paths(REPO / "config" / "full_study.yaml", tmp_path))
    assert any(m["pretrained"] not in (None, "none") for m in cfg["models"].values())


def test_ssl_benchmark_config_runs_the_benchmarks_attacks_at_8_over_255(tmp_path):
    from embedrobust.config import dense_plan, task_attack_plan

    cfg = validate(with_local_paths(REPO / "config" / "ssl_benchmark.yaml", tmp_path))
    eps = 8 / 255
    assert [c.label for c in conditions(cfg)] == ["clean", f"embed_attack@{eps:g}"]
    dense, ta = dense_plan(cfg), task_attack_plan(cfg)
    assert sorted(dense["datasets"]) == ["ade20k", "cityscapes", "nyu", "voc"] and dense["eps"] == [eps]
    assert sorted(ta["datasets"]) == ["cifar10", "cifar100", "stl10"] and ta["eps"] == [eps]
    assert ta["options"]["steps"] == dense["options"]["steps"] == 20
    assert len(ta["models"]) == len(dense["models"]) == 4  # every model of the list, not only the first


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


def test_finetune_sweep_names_one_model_per_base_method_and_alpha(tiny_config):
    from embedrobust.config import all_models, finetune_runs

    tiny_config["finetune"] = {"base": ["clip", "vit"], "methods": {"paper": None, "deacl": {"pgd_steps": 1}},
                               "alpha": [0.1, 1], "families": ["gaussian_noise"]}
    cfg = validate(tiny_config)
    runs = finetune_runs(cfg)
    assert list(runs)[:2] == ["clip-ft-paper-a0.1", "clip-ft-paper-a1"] and len(runs) == 8
    assert runs["vit-ft-deacl-a1"]["train"]["pgd_steps"] == 1
    # a family of the grid is trained at the grid's values, so training and evaluation agree
    assert runs["clip-ft-paper-a1"]["train"]["families"] == {"gaussian_noise": {"levels": [0.05, 0.2]}}
    spec = all_models(cfg)["clip-ft-paper-a1"]
    assert spec["checkpoint"] == "data/models/clip-ft-paper-a1/model.pt" and spec["arch"] == "embedrobust-tiny-clip"


def test_finetune_per_family_trains_one_model_per_family(tiny_config):
    from embedrobust.config import finetune_runs

    tiny_config["finetune"] = {"base": "vit", "families": None, "per_family": True}
    del tiny_config["finetune"]["families"]
    runs = finetune_runs(validate(tiny_config))
    assert list(runs) == ["vit-ft-paper-a1-gaussian_noise", "vit-ft-paper-a1-jpeg_compression"]


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["finetune"].update(base=["nope"]), "finetune.base"),
    (lambda c: c["finetune"].update(families=["gausian_noise"]), "gaussian_noise"),
    (lambda c: c["finetune"].update(steps=0), "finetune.steps"),
    (lambda c: c["models"].update({"clip-ft-paper-a0.5": dict(c["models"]["clip"])}), "already a key of models"),
])
def test_bad_finetune_section_is_one_clear_error(tiny_config, edit, match):
    edit(tiny_config)
    with pytest.raises(ConfigError, match=match):
        validate(tiny_config)


def test_empty_finetune_base_turns_fine_tuning_off(tiny_config):
    from embedrobust.config import all_models

    tiny_config["finetune"]["base"] = []
    assert list(all_models(validate(tiny_config))) == ["clip", "vit"]


def test_finetune_params_reach_only_the_fine_tuned_models_stages(tiny_config):
    a = validate(tiny_config)
    tiny_config["finetune"]["steps"] = 3
    b = validate(tiny_config)
    ft = "clip-ft-paper-a0.5"
    changed = {
        (stage, model)
        for stage in ("finetune", "embed", "text", "metrics", "downstream")
        for model in ("clip", "vit", ft)
        if stage != "finetune" or model == ft
        if stage_config(a, stage, "digits", model) != stage_config(b, stage, "digits", model)
    }
    assert changed == {("finetune", ft), ("embed", ft), ("text", ft)}


def test_family_options_are_checked_against_the_function(tiny_config):
    from embedrobust.config import family_options

    tiny_config["perturbations"]["families"]["embed_attack"] = {"levels": [0.01], "options": {"steps": 2}}
    assert family_options(validate(tiny_config)) == {"embed_attack": {"steps": 2}}
    tiny_config["perturbations"]["families"]["embed_attack"]["options"] = {"stepz": 2}
    with pytest.raises(ConfigError, match="embed_attack.options.*steps"):
        validate(tiny_config)
    tiny_config["perturbations"]["families"]["embed_attack"]["options"] = {"steps": 2}
    tiny_config["perturbations"]["families"]["contrast"] = {"levels": [0.5], "options": {"x": 1}}
    with pytest.raises(ConfigError, match="contrast"):
        validate(tiny_config)


@pytest.mark.parametrize("option", ["scale", "table", "encoder"])
def test_options_the_pipeline_binds_are_not_params_options(tiny_config, option):
    """scale comes from the image size, table from perturbations.table, encoder from the embed stage."""
    tiny_config["perturbations"]["families"]["defocus_blur"] = {"severities": [1], "options": {option: 1}}
    with pytest.raises(ConfigError, match="defocus_blur.options: defocus_blur takes no options"):
        validate(tiny_config)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["dense"].update(models=["vt"]), "dense.models: unknown model 'vt'. Did you mean 'vit'"),
    (lambda c: c["dense"].update(families=["contrast"]), "not a family of the perturbation grid"),
    (lambda c: c["dense"]["options"].update(stepz=3), "dense.options: unknown option 'stepz'"),
    (lambda c: c["dense"]["datasets"]["shapes"].update(source="coco"), "dense.datasets.shapes.source"),
    (lambda c: c["task_attack"].update(datasets=["digit"]), "task_attack.datasets: unknown dataset 'digit'"),
    (lambda c: c["task_attack"]["options"].update(Cs=[1]), "task_attack.options: unknown option 'Cs'"),
    (lambda c: c["task_attack"].update(eps=[2]), "task_attack.eps"),
])
def test_bad_attack_sections_are_one_clear_error(tiny_config, edit, match):
    edit(tiny_config)
    with pytest.raises(ConfigError, match=re.escape(match)):
        validate(tiny_config)


def test_dense_runs_the_chosen_families_of_the_grid_on_the_chosen_models(tiny_config):
    from embedrobust.config import dense_plan, task_attack_plan

    tiny_config["dense"]["families"] = ["gaussian_noise"]
    cfg = validate(tiny_config)
    plan = dense_plan(cfg)
    assert plan["models"] == ["vit"] and list(plan["datasets"]) == ["shapes"]
    assert plan["conditions"] == [["clean", None], ["gaussian_noise", 0.05], ["gaussian_noise", 0.2]]
    # the task attack defaults to every dataset and every model, the fine-tuned one included
    ta = task_attack_plan(cfg)
    assert ta["datasets"] == ["digits"] and ta["models"] == ["clip", "vit", "clip-ft-paper-a0.5"]


def test_empty_attack_sections_turn_the_stages_off(tiny_config):
    from embedrobust.config import dense_plan, task_attack_plan

    tiny_config["dense"] = {"datasets": {}}
    tiny_config["task_attack"] = {"eps": []}
    cfg = validate(tiny_config)
    assert dense_plan(cfg)["models"] == [] and task_attack_plan(cfg)["models"] == []
    del tiny_config["dense"], tiny_config["task_attack"]
    cfg = validate(tiny_config)
    assert not dense_plan(cfg)["datasets"] and not task_attack_plan(cfg)["eps"]


def test_dense_params_reach_only_the_dense_stages_and_report(tiny_config):
    a = validate(tiny_config)
    tiny_config["dense"]["options"]["steps"] = 3
    b = validate(tiny_config)
    stages = {"fetch": ("digits", None), "embed": ("digits", "vit"), "metrics": ("digits", "vit"),
              "downstream": ("digits", "vit"), "task_attack": ("digits", "vit"), "fetch_dense": ("shapes", None),
              "dense": ("shapes", "vit"), "regression": ("digits", None), "report": (None, None)}
    changed = {s for s, (d, m) in stages.items() if stage_config(a, s, d, m) != stage_config(b, s, d, m)}
    assert changed == {"dense", "report"}


def test_attacked_probe_is_the_downstream_probe_unless_told_otherwise(tiny_config):
    from embedrobust.config import task_attack_plan

    opts = task_attack_plan(validate(tiny_config))["options"]
    assert opts == {"C": [1.0], "val_fraction": 0.3, "max_iter": 500, "steps": 2}
    tiny_config["task_attack"]["options"]["C"] = [0.1, 10.0]
    assert task_attack_plan(validate(tiny_config))["options"]["C"] == [0.1, 10.0]


def test_cifar10_c_table_maps_severities_and_binds_severity_unit_families(tiny_config):
    from embedrobust.config import family_options

    tiny_config["perturbations"] = {"table": "cifar10-c", "families": {
        "gaussian_noise": {"severities": [1, 5]}, "glass_blur": {"severities": [1]},
        "embed_attack": {"levels": [0.01]}}}  # natural-unit levels need no table entry
    cfg = validate(tiny_config)
    assert [c.label for c in conditions(cfg)] == ["clean", "gaussian_noise@0.04", "gaussian_noise@0.1",
                                                  "glass_blur@1", "embed_attack@0.01"]
    assert family_options(cfg) == {"glass_blur": {"table": "cifar10-c"}}


def test_a_family_missing_from_the_table_is_one_clear_error(tiny_config):
    tiny_config["perturbations"] = {"table": "cifar10-c", "families": {"frost": {"severities": [1]}}}
    with pytest.raises(ConfigError, match="perturbations.families.frost: frost: no 'cifar10-c' severity table"):
        validate(tiny_config)


# (family, a level just outside its domain, one just inside): the domains the registry must keep
DOMAIN_EDGES = [
    ("jpeg_compression", 150, 100), ("jpeg_compression", 0, 1), ("jpeg_compression", 50.5, 50),
    ("webp", 101, 0), ("webp", 12.5, 12),
    ("gaussian_noise", -0.01, 0), ("speckle_noise", -0.01, 0), ("impulse_noise", 1.01, 1),
    ("shot_noise", 0, 0.01), ("shot_noise", -1, math.inf),
    ("gaussian_blur", -0.5, 0), ("gaussian_blur", math.inf, 60),
    ("brightness", 1.01, 1), ("brightness", -0.1, 0), ("contrast", -0.1, 0), ("sharpness", -0.1, 0),
    ("gamma", 0, 0.01), ("hue", 0.51, -0.5), ("rotate", 181, -180),
    ("pixelate", 0, 0.01), ("pixelate", 1.01, 1), ("rescale", 0, 0.01), ("crop_resize", 1.01, 1),
    ("embed_attack", 1.01, 1), ("embed_attack", -0.01, 0),
    ("glass_blur", 5.5, 5), ("fog", -0.5, 0),  # severity-unit families: levels are continuous severities
]


@pytest.mark.parametrize("family, outside, inside", DOMAIN_EDGES, ids=lambda v: str(v))
def test_a_level_outside_its_familys_domain_is_one_clear_error(tiny_config, family, outside, inside):
    from embedrobust.perturb import get_perturbation

    p = get_perturbation(family)
    tiny_config["perturbations"]["families"][family] = {"levels": [inside]}
    validate(tiny_config)
    tiny_config["perturbations"]["families"][family] = {"levels": [inside, outside]}
    want = (f"perturbations.families.{family}.levels: {outside:g} is not in {family}'s domain, {p.domain} "
            f"({p.param}); give values in that domain, or severities")
    with pytest.raises(ConfigError, match=re.escape(want)):
        validate(tiny_config)


def test_every_natural_unit_family_has_a_finite_or_justified_domain():
    from embedrobust.perturb import get_perturbation, list_perturbations

    for name in list_perturbations():
        p = get_perturbation(name)
        if p.unit == "severity":
            assert p.domain == "[0, 5]", name
        else:
            assert all(math.isfinite(b) for b in p.bounds) or p.domain_note, name


def test_every_familys_identity_and_severity_tables_lie_in_its_domain():
    from embedrobust.perturb import TABLES, get_perturbation, list_perturbations

    for name in list_perturbations():
        p = get_perturbation(name)
        assert p.identity is None or p.admits(p.identity), name
        tables = [p.severities] + [t[name] for t in TABLES.values() if name in t and p.unit == "natural"]
        assert all(p.admits(v) for rows in tables for v in rows), name


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["finetune"].update(families={"jpeg_compression": {"levels": [150]}}),
     "finetune.families.jpeg_compression.levels: 150 is not in jpeg_compression's domain, integers in [1, 100]"),
    (lambda c: c["finetune"].update(families={"pixelate": {"range": [0, 0.5]}}),
     "finetune.families.pixelate.range: 0 is not in pixelate's domain, (0, 1]"),
    (lambda c: c["finetune"].update(families={"pixelate": {"range": [0.5, 0.2]}}),
     "finetune.families.pixelate.range: [0.5, 0.2] is not ordered"),
    (lambda c: c["dense"].update(eps=[2]), "dense.eps: 2 is not in the L-inf radius domain, [0, 1]"),
    (lambda c: c["task_attack"].update(eps=[-0.1]), "task_attack.eps: -0.1 is not in the L-inf radius domain, [0, 1]"),
])
def test_other_sections_values_go_through_the_same_domain_check(tiny_config, edit, match):
    edit(tiny_config)
    with pytest.raises(ConfigError, match=re.escape(match)):
        validate(tiny_config)


def test_missing_input_paths_are_listed_together(tiny_config, tmp_path):
    gone = tmp_path / "nowhere"
    tiny_config["datasets"]["imagenet"] = {"source": "imagefolder", "path": str(gone / "imagenet")}
    tiny_config["datasets"]["cifar"] = {"source": "torchvision", "name": "CIFAR10", "root": str(gone / "tv"),
                                        "download": False}
    tiny_config["dense"]["datasets"]["ade"] = {"source": "ade20k", "path": str(gone / "ade")}
    tiny_config["models"]["vit"]["checkpoint"] = str(gone / "vit.pt")
    with pytest.raises(ConfigError) as err:
        validate(tiny_config, source="p.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "p.yaml: 4 input paths missing; fix each before running:"
    assert lines[1:] == [
        f"  - datasets.imagenet.path: '{gone / 'imagenet'}' does not exist; set datasets.imagenet.path to your copy "
        "of imagenet: a directory of class folders, or of train/ and val/ (or test/) class folders",
        f"  - datasets.cifar.root: '{gone / 'tv'}' does not exist; set datasets.cifar.root to the directory that "
        "holds torchvision's CIFAR10, or set datasets.cifar.download: true to download it there",
        f"  - dense.datasets.ade.path: '{gone / 'ade'}' does not exist; set dense.datasets.ade.path to your local "
        "copy of ade20k, ADEChallengeData2016/ with images/{training,validation}/*.jpg and "
        "annotations/{training,validation}/*.png (it is never downloaded)",
        f"  - models.vit.checkpoint: '{gone / 'vit.pt'}' does not exist; set it to an existing weights file (a "
        f"relative path is read from the project root, {Path.cwd()}), or remove it",
    ]


@pytest.mark.parametrize("download", [{"download": True}, {}])  # download defaults to true
def test_a_torchvision_root_to_download_into_need_not_exist(tiny_config, tmp_path, download):
    tiny_config["datasets"]["cifar"] = {"source": "torchvision", "name": "CIFAR10", "root": str(tmp_path / "tv"),
                                        **download}
    validate(tiny_config)


def test_fine_tuned_checkpoints_are_not_inputs(tiny_config, tmp_path, monkeypatch):
    from embedrobust.config import all_models

    monkeypatch.chdir(tmp_path)  # an empty project: the finetune stage has not written data/models yet
    spec = all_models(validate(tiny_config, root=tmp_path))["clip-ft-paper-a0.5"]
    assert not (tmp_path / spec["checkpoint"]).exists()


def test_relative_paths_are_read_as_the_stages_read_them(tiny_config, tmp_path, monkeypatch):
    project, cwd = tmp_path / "project", tmp_path / "cwd"
    (project / "weights").mkdir(parents=True)
    (project / "weights" / "vit.pt").touch()
    (cwd / "images").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    tiny_config["datasets"]["folder"] = {"source": "imagefolder", "path": "images"}  # data.sources: from the cwd
    tiny_config["models"]["vit"]["checkpoint"] = "weights/vit.pt"  # models.spec.resolved: from the project root
    validate(tiny_config, root=project)
    with pytest.raises(ConfigError, match=re.escape(f"models.vit.checkpoint: 'weights/vit.pt' (= {Path.cwd()}/weights")):
        validate(tiny_config)
