"""The params section text_robustness: validation errors, defaults, and which stages read it."""

from __future__ import annotations

import pytest

from embedrobust.config import DVC_PARAMS, stage_config, text_robustness_plan, validate
from embedrobust.errors import ConfigError


def _with(tiny_config, **section):
    tiny_config["text_robustness"] = {"families": {"char_swap": {"levels": [0.1]}}, **section}
    return tiny_config


def test_the_section_is_off_by_default(tiny_config):
    cfg = validate(tiny_config)
    assert cfg["text_robustness"] == {"families": {}, "cross": []}
    assert text_robustness_plan(cfg)["models"] == []
    assert stage_config(cfg, "text_robustness", "digits", "clip") is None


def test_every_model_with_a_text_tower_is_evaluated_by_default(tiny_config):
    cfg = validate(_with(tiny_config))
    assert text_robustness_plan(cfg)["models"] == ["clip", "clip-ft-paper-a0.5"]
    assert stage_config(cfg, "text_robustness", "digits", "vit") is None
    assert stage_config(cfg, "text_robustness", "digits", "clip")["families"] == {
        "char_swap": {"levels": [0.1], "options": {}}}


@pytest.mark.parametrize("section, match", [
    ({"families": {"char_swapp": {"levels": [0.1]}}}, r"families\.char_swapp: unknown text perturbation.*'char_swap'"),
    ({"families": {"keyboard": {"levels": [0.1, 1.5]}}}, r"keyboard\.levels: 1\.5 is not in .*\[0, 1\]"),
    ({"families": {"template_shift": {"levels": [2.5]}}}, r"template_shift\.levels: 2\.5 .*integers in \[0, 24\]"),
    ({"families": {"case": {"levels": [0.5, 0.5]}}}, r"case\.levels: .* repeats a level"),
    ({"families": {"case": {"levels": [0.5], "options": {"mod": "upper"}}}}, r"case\.options: .*'mode'"),
    ({"families": {"case": {"levels": [0.5], "options": {"mode": "title"}}}}, r"case\.options: .*mode 'title'"),
    ({"families": {"word_drop": {"levels": [0.5], "options": {"scope": "words"}}}}, r"scope 'words' is not one of"),
    ({"families": {"synonym": {"levels": [0.5], "options": {"scope": "prompt"}}}}, r"synonym takes no options"),
    ({"families": {"case": {"levels": [0.5]}}, "models": ["vit"]}, r"models: 'vit' is a timm model without a text"),
    ({"families": {"case": {"levels": [0.5]}}, "models": ["clipp"]}, r"models: unknown model 'clipp'.*'clip'"),
    ({"families": {"case": {"levels": [0.5]}}, "datasets": ["digit"]}, r"datasets: unknown dataset 'digit'"),
    ({"families": {"case": {"levels": [0.5]}}, "cross": [{"image": "gaussian_nois", "text": "case"}]},
     r"cross\[0\]\.image: unknown image family 'gaussian_nois'.*'gaussian_noise'.*perturbation grid"),
    ({"families": {"case": {"levels": [0.5]}}, "cross": [{"image": "gaussian_noise", "text": "keyboard"}]},
     r"cross\[0\]\.text: unknown text family 'keyboard'.*text_robustness\.families \(case\)"),
    ({"families": {"case": {"levels": []}}}, r"text_robustness\.families\.case\.levels"),
])
def test_a_bad_section_is_one_clear_error(tiny_config, section, match):
    tiny_config["text_robustness"] = section
    with pytest.raises(ConfigError, match=match):
        validate(tiny_config)


def test_synonyms_must_be_lists_of_names(tiny_config):
    tiny_config["datasets"]["digits"]["synonyms"] = {"seven": "7"}
    with pytest.raises(ConfigError, match=r"datasets\.digits\.synonyms\.seven"):
        validate(tiny_config)


def test_text_robustness_params_reach_only_its_stage_and_the_report(tiny_config):
    a = validate(_with(tiny_config))
    tiny_config["text_robustness"]["families"]["char_swap"]["levels"] = [0.2]
    b = validate(tiny_config)
    stages = ("fetch", "embed", "text", "metrics", "downstream", "regression", "task_attack", "text_robustness",
              "report")
    changed = {s for s in stages if stage_config(a, s, "digits", "clip") != stage_config(b, s, "digits", "clip")}
    assert changed == {"text_robustness", "report"}


def test_dvc_lists_the_sections_the_stage_reads(tiny_config):
    cfg = stage_config(validate(_with(tiny_config)), "text_robustness", "digits", "clip")
    read = {"seed", "seeds", "device", "datasets", "models", "finetune", "downstream.zero_shot", "regression",
            "text_robustness"}
    assert set(DVC_PARAMS["text_robustness"]) == read
    assert set(cfg) == {"seed", "device", "dataset", "model", "models", "templates", "synonyms", "families", "cross",
                        "regression"}
