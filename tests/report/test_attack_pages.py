"""The worst-case and dense tables of the report, from hand-made artifacts."""

import json
import math

import numpy as np
import pandas as pd

from embedrobust.report.attack_pages import dense_summary, worst_case_table
from embedrobust.stages import write_json

EPS = [1 / 255, 4 / 255]


def _outcomes():
    """Linear probe on 4 test images of model m: clean all right, embed_attack@1/255 3 right, @4/255 1 right."""
    rows = []
    for family, level, correct in [("clean", math.nan, [1, 1, 1, 1]), ("embed_attack", EPS[0], [1, 1, 1, 0]),
                                   ("embed_attack", EPS[1], [1, 0, 0, 0]), ("jpeg_compression", 50, [1, 1, 0, 0])]:
        for i, c in enumerate(correct):
            rows.append({"dataset": "d", "model": "m", "task": "linear_probe", "family": family, "level": level,
                         "image": f"i{i}", "correct": bool(c)})
    rows.append({"dataset": "d", "model": "m", "task": "knn", "family": "embed_attack", "level": EPS[0],
                 "image": "i0", "correct": False})  # another task: not in the table
    return pd.DataFrame(rows)


def _rob():
    return pd.DataFrame({"dataset": "d", "model": "m", "image": ["i0", "i1", "i0", "i1"],
                         "family": ["embed_attack", "embed_attack", "jpeg_compression", "jpeg_compression"],
                         "divergence_radius": [0.2, 0.4, 0.9, 0.9]})


def _task_attack():
    return pd.DataFrame({"dataset": "d", "model": "m", "kind": ["clean", "attack"], "value": [math.nan, EPS[1]],
                         "metric_value": [0.75, 0.25]})


def test_worst_case_table_puts_both_attacks_side_by_side():
    table = worst_case_table(_rob(), _outcomes(), _task_attack())
    assert table["eps"].tolist() == ["1/255", "4/255"]
    assert table["clean_%"].tolist() == [100.0, 100.0]
    assert table["embed_attack_%"].tolist() == [75.0, 25.0]
    assert np.allclose(table["embed_attack_DR"], 0.3)  # mean over images of the family's one ball
    # PGD ran at 4/255 only: NaN at 1/255, and its own probe's clean accuracy beside it
    assert math.isnan(table["pgd_%"].iloc[0]) and table["pgd_%"].iloc[1] == 25.0
    assert table["pgd_clean_%"].iloc[1] == 75.0


def test_worst_case_table_is_empty_without_attacks():
    out = _outcomes()
    out = out[out["family"] != "embed_attack"]
    assert worst_case_table(_rob(), out, pd.DataFrame()).empty


def test_dense_summary_averages_levels_and_keeps_each_eps():
    dense = pd.DataFrame({
        "dataset": "s", "model": "m", "task": "segmentation", "metric": "miou",
        "kind": ["clean", "perturbation", "perturbation", "attack", "attack"],
        "family": ["clean", "gaussian_noise", "gaussian_noise", "segpgd", "segpgd"],
        "value": [math.nan, 0.1, 0.2, 1 / 255, 4 / 255], "metric_value": [0.9, 0.6, 0.4, 0.5, 0.1],
        "target_aligned": True})
    s = dense_summary(dense)
    assert s["condition"].tolist() == ["clean", "gaussian_noise (mean of 2 levels)", "segpgd eps 1/255",
                                       "segpgd eps 4/255"]
    assert np.allclose(s["value"], [0.9, 0.5, 0.5, 0.1])


def test_metrics_json_is_strict_json(tmp_path):
    path = tmp_path / "m.json"
    write_json({"a": [float("nan"), np.float32(0.5), np.bool_(True)], "b": float("inf")}, path)
    assert json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))) == \
        {"a": [None, 0.5, True], "b": None}


def test_worst_case_figure_marks_an_attack_that_did_not_run():
    import warnings

    from embedrobust.report.attack_pages import worst_case_figure

    out = _outcomes()
    table = worst_case_table(_rob(), out[out["family"] != "embed_attack"], _task_attack())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty legend warns: the report's logs must stay clean
        fig = worst_case_figure(table)
    left, right = fig.axes
    assert not left.lines and left.texts[0].get_text().startswith("not run") and len(right.lines) == 1
