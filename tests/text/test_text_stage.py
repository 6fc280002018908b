"""The text_robustness stage end to end on a tiny config, after the real fetch, embed, text and downstream stages."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from embedrobust import stages
from embedrobust.config import stage_config, validate
from embedrobust.embed import open_store

FAMILIES = {"char_swap": {"levels": [0.0, 0.3]}, "case": {"levels": [1.0]}, "template_shift": {"levels": [2]},
            "synonym": {"levels": [1.0]}}


@pytest.fixture(scope="module")
def params(tiny_params):
    raw = copy.deepcopy(tiny_params)
    raw["finetune"]["base"] = []
    raw["dense"] = {"datasets": {}}
    raw["text_robustness"] = {"families": FAMILIES, "cross": [{"image": "gaussian_noise", "text": "char_swap"}]}
    return raw


@pytest.fixture(scope="module")
def built(tmp_path_factory, params):
    root = tmp_path_factory.mktemp("textrob")
    cfg = validate(params)
    stages.fetch(stage_config(cfg, "fetch", "digits"), root)
    for stage in ("embed", "text", "downstream"):
        sc = stage_config(cfg, stage, "digits", "clip")
        stages.embed(sc, root, progress=False) if stage == "embed" else getattr(stages, stage)(sc, root)
    stages.text_robustness(stage_config(cfg, "text_robustness", "digits", "clip"), root)
    table = pd.read_parquet(stages.text_robustness_path(root, "digits", "clip"))
    return root, table


def _rows(table, name):
    return table[table["table"] == name]


def test_clean_prompts_give_the_downstream_stages_zero_shot_accuracy_exactly(built):
    root, table = built
    out = pd.read_parquet(stages.downstream_path(root, "digits", "clip"))
    zs = out[(out["task"] == "zero_shot") & (out["family"] == "clean")]
    clean = _rows(table, "zero_shot").set_index("condition").loc["clean"]
    assert clean["accuracy"] == zs["correct"].mean() and clean["p_true"] == zs["p_true"].mean()
    assert clean["n_images"] == len(zs)


def test_clean_class_embeddings_are_the_text_stages_bit_for_bit(built):
    root, _ = built
    store = open_store(stages.text_robustness_store_path(root, "digits", "clip"))
    with np.load(stages.text_path(root, "digits", "clip")) as z:
        assert np.array_equal(store["class_embedding"].sel(condition="clean").values, z["text_embedding"])


def test_the_store_holds_every_prompt_and_its_embedding(built):
    root, _ = built
    store = open_store(stages.text_robustness_store_path(root, "digits", "clip"))
    assert store["prompt_embedding"].dims == ("condition", "class", "template", "dim")
    assert store.sizes["template"] == 2 and store.sizes["class"] == 10
    assert store["condition"].values.tolist() == ["clean", "case@1", "char_swap@0", "char_swap@0.3", "synonym@1",
                                                  "template_shift@2"]
    assert store["n_prompts"].values.tolist() == [1, 1, 1, 1, 1, 2]
    clean = store.sel(condition="clean")
    assert np.isnan(clean["prompt_embedding"].values[:, 1]).all() and (clean["prompt"].values[:, 1] == "").all()
    assert clean["prompt"].values[7, 0] == "a photo of a seven."
    assert store["prompt"].sel(condition="template_shift@2").values[7].tolist() == ["a picture of a seven.",
                                                                                   "an image of a seven."]


def test_level_zero_changes_nothing_and_case_is_a_no_op_for_clips_tokenizer(built):
    root, table = built
    store = open_store(stages.text_robustness_store_path(root, "digits", "clip"))
    emb = store["class_embedding"]
    assert np.array_equal(emb.sel(condition="char_swap@0").values, emb.sel(condition="clean").values)
    rob = _rows(table, "robustness").set_index(["condition", "class"])
    assert (rob.loc["char_swap@0", "divergence_radius"] == 0).all()
    # the tokenizer lower-cases: every prompt's text changed, no embedding moved
    assert (rob.loc["case@1", "divergence_radius"] == 0).all() and (rob.loc["case@1", "changed_prompts"] == 1).all()
    assert (rob.loc["char_swap@0.3", "divergence_radius"] > 0).any()


def test_the_cross_grid_and_the_tower_comparison(built):
    _, table = built
    cross, towers = _rows(table, "cross"), _rows(table, "towers")
    assert len(cross) == 3 * 3 and set(cross["image_family"]) == {"clean", "gaussian_noise"}
    clean = _rows(table, "zero_shot").set_index("condition")["accuracy"]
    both_clean = cross[(cross["level_index"] == 0) & (cross["image_level_index"] == 0)]["accuracy"].iloc[0]
    assert both_clean == clean["clean"]
    assert towers["level_index"].tolist() == [1, 2] and towers["condition"].tolist() == ["char_swap@0", "char_swap@0.3"]
    k2 = towers.iloc[1]
    text_only = cross[(cross["level_index"] == 2) & (cross["image_level_index"] == 0)]["accuracy"].iloc[0]
    assert k2["text_accuracy"] == text_only == clean["char_swap@0.3"]
    assert k2["text_drop_points"] == pytest.approx(100 * (k2["clean_accuracy"] - k2["text_accuracy"]))
    assert k2["limiting_tower"] in ("image", "text", "tie")


def test_the_regression_predicts_each_held_out_text_family(built):
    root, _ = built
    rdir = stages.text_robustness_regression_dir(root, "digits", "clip")
    preds = pd.read_csv(rdir / "predictions.csv")
    assert set(preds["held_out_family"]) == set(FAMILIES) and set(preds["granularity"]) == {"bin", "level"}
    assert set(pd.read_csv(rdir / "fits.csv")["granularity"]) == {"image", "bin", "level"}
    assert (rdir / "summary.json").is_file()


def test_the_cli_reruns_to_the_same_bytes_and_skips_models_without_a_text_tower(built, params, tmp_path):
    from embedrobust.cli import main

    root, _ = built
    twin = tmp_path / "twin"
    for sub in ("datasets", "embeddings"):
        shutil.copytree(root / "data" / sub, twin / "data" / sub)
    # keys sorted: the families in another order than the fixture's stage config had them
    (twin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
    assert main(["text_robustness", "--params", str(twin / "params.yaml"), "--root", str(twin), "--all"]) == 0

    def files(d):
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

    first, second = root / "data" / "text_robustness", twin / "data" / "text_robustness"
    assert files(first) == files(second)
    assert sorted(p.name for p in (second / "digits").iterdir()) == ["clip.parquet", "clip.regression", "clip.zarr"]


def test_the_report_section_reads_the_stage_and_says_which_tower_limits(built, params, tmp_path):
    from embedrobust.report.text_pages import text_robustness_pages
    from embedrobust.report.typeset import Report, table_page, text_pages

    root, table = built
    doc = Report("text robustness")
    with doc.optional_section("Text robustness"):  # as build_report calls it
        got = text_robustness_pages(doc, validate(params), root, text_pages, table_page)
    doc.build(tmp_path / "text.pdf")
    clip = got["digits"]["clip"]
    assert doc.n_figures == 5 and doc.n_tables == 4
    assert clip["clean_accuracy"] == _rows(table, "zero_shot")["accuracy"].iloc[0]
    assert set(clip["divergence_radius"]) == set(FAMILIES) and clip["divergence_radius"]["case"] == 0
    assert [t["limiting_tower"] for t in clip["towers"]] == _rows(table, "towers")["limiting_tower"].tolist()
