"""Seed replicates (`seeds: [0, 1, ...]`): each model again under every further seed, as `{model}-seed{s}`."""

import pytest

from embedrobust.config import (
    all_models,
    finetune_runs,
    model_seed,
    replicates,
    stage_config,
    task_attack_plan,
    validate,
)
from embedrobust.errors import ConfigError


@pytest.fixture
def seeded(tiny_config):
    tiny_config["seeds"] = [0, 1]
    return validate(tiny_config)


def test_every_model_and_fine_tuned_model_gets_a_replicate_after_it(seeded):
    assert list(all_models(seeded)) == ["clip", "clip-seed1", "vit", "vit-seed1", "clip-ft-paper-a0.5",
                                        "clip-ft-paper-a0.5-seed1"]
    assert replicates(seeded)["clip-ft-paper-a0.5-seed1"] == ("clip-ft-paper-a0.5", 1)


def test_a_replicate_runs_its_stages_under_its_seed_and_the_primary_under_the_study_seed(seeded):
    for stage in ("embed", "downstream", "task_attack"):
        assert stage_config(seeded, stage, "digits", "vit-seed1")["seed"] == 1, stage
        assert stage_config(seeded, stage, "digits", "vit")["seed"] == 0, stage
    assert model_seed(seeded, "clip-ft-paper-a0.5-seed1") == 1
    run = finetune_runs(seeded)["clip-ft-paper-a0.5-seed1"]
    assert run["train"]["seed"] == 1 and run["replicate"] == {"of": "clip-ft-paper-a0.5", "seed": 1}
    assert stage_config(seeded, "finetune", model="clip-ft-paper-a0.5-seed1")["seed"] == 1


def test_a_replicate_keeps_the_images_and_the_random_init_weights_of_the_primary_seed(seeded):
    assert stage_config(seeded, "fetch", "digits") == stage_config(validate({**seeded, "seeds": None}), "fetch",
                                                                   "digits")
    assert all_models(seeded)["vit-seed1"]["seed"] == 0  # init seed pinned: the same model, other draws
    ft = stage_config(seeded, "finetune", model="clip-ft-paper-a0.5-seed1")
    assert ft["models"]["clip"]["seed"] == 0
    tuned = all_models(seeded)["clip-ft-paper-a0.5-seed1"]
    assert tuned["checkpoint"] == "data/models/clip-ft-paper-a0.5-seed1/model.pt"


def test_adding_seeds_changes_nothing_the_primary_run_computes(tiny_config):
    one = validate(tiny_config)
    two = validate({**tiny_config, "seeds": [0, 1, 2]})
    for stage in ("embed", "text", "metrics", "downstream", "task_attack"):
        for model in ("clip", "vit"):
            assert stage_config(one, stage, "digits", model) == stage_config(two, stage, "digits", model), stage
    assert stage_config(one, "finetune", model="clip-ft-paper-a0.5") == \
        stage_config(two, "finetune", model="clip-ft-paper-a0.5")


def test_the_regression_learns_which_models_are_replicates(seeded):
    cfg = stage_config(seeded, "regression", "digits")
    assert cfg["replicates"]["vit-seed1"] == ["vit", 1] and cfg["seeds"] == [0, 1]
    assert "replicates" not in stage_config(validate({**seeded, "seeds": [0]}), "regression", "digits")


def test_a_named_model_brings_its_replicates(seeded):
    assert task_attack_plan(seeded)["models"] == list(all_models(seeded))
    named = validate({**seeded, "task_attack": {**seeded["task_attack"], "models": ["vit"]}})
    assert task_attack_plan(named)["models"] == ["vit", "vit-seed1"]


def test_seeds_must_begin_with_the_study_seed(tiny_config):
    with pytest.raises(ConfigError, match=r"seeds: \[1, 2\] must begin with the study seed \(0\).*seeds: \[0, 1, 2\]"):
        validate({**tiny_config, "seeds": [1, 2]})


def test_a_replicate_name_may_not_collide_with_a_model(tiny_config):
    tiny_config["models"]["vit-seed1"] = dict(tiny_config["models"]["vit"])
    with pytest.raises(ConfigError, match="replicate name 'vit-seed1' is already a model's name"):
        validate({**tiny_config, "seeds": [0, 1]})


def test_repeated_seeds_are_refused_by_the_schema(tiny_config):
    with pytest.raises(ConfigError, match="seeds"):
        validate({**tiny_config, "seeds": [0, 0]})
