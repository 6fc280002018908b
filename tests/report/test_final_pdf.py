"""reports/final.pdf of the tiny workflow (the session's `project` build): what its pages say and how it is made.

Text is read back with pypdf, so these tests see what a reader's viewer (and search) sees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embedrobust.report import formatting as F
from embedrobust.report.summary import HEADLINE_GRANULARITY

DATASET, TASK = "digits", "linear_probe"
MODELS = ["clip", "vit", "clip-ft-paper-a0.5"]


def _pages(pdf: Path) -> list[str]:
    from pypdf import PdfReader

    return [" ".join(page.extract_text().split()) for page in PdfReader(pdf).pages]


@pytest.fixture(scope="module")
def pages(project) -> list[str]:
    return _pages(project / "reports" / "final.pdf")


@pytest.fixture(scope="module")
def metrics(project) -> dict:
    return json.loads((project / "reports" / "metrics.json").read_text())


def _summary(pages: list[str]) -> str:
    """The pages up to and including the contents: the summary."""
    out = []
    for page in pages:
        out.append(page)
        if "Contents" in page:
            break
    return " ".join(out)


def _ci(v: dict, kind: str, signed: bool = False) -> str:
    return F.ci(v["estimate"], v["ci_low"], v["ci_high"], kind, signed)


def test_the_summary_quotes_r2_and_heldout_mae_of_every_metric_from_metrics_json(pages, metrics):
    text, boot = _summary(pages), metrics[DATASET]["bootstrap"]
    for metric in metrics[DATASET]["metrics"]:
        for stat, kind in (("r2", "r2"), ("heldout_mae_points", "points")):
            values = [boot[stat][f"{DATASET}/{m}"][TASK][metric][HEADLINE_GRANULARITY] for m in MODELS]
            values = [v for v in values if v["estimate"] is not None]
            # the sentence gives the range over the models: its two ends, each with its interval
            for v in (min(values, key=lambda v: v["estimate"]), max(values, key=lambda v: v["estimate"])):
                assert _ci(v, kind) in text, (metric, stat, _ci(v, kind))


def test_the_summary_quotes_the_rank_correlation_and_the_most_damaging_families(pages, metrics):
    text = _summary(pages)
    rc = metrics[DATASET]["rank_correlation"][TASK]["divergence_radius"]["pooled"]
    assert f"Spearman's ρ between the two = {_ci(rc['spearman'], 'rho', True)}" in text
    for m in MODELS:
        drops = metrics[DATASET]["accuracy_drop_points"][f"{DATASET}/{m}"][TASK]
        worst = sorted(drops, key=lambda f: (-drops[f], f))[0]
        assert f"{m}: {worst}, " in text, m


def test_the_summary_quotes_fine_tuning_and_the_worst_case_from_metrics_json(pages, metrics):
    text = _summary(pages)
    curve = metrics["finetune"]["tradeoff"]
    base, tuned = (next(r for r in curve if r["alpha"] == a) for a in (0.0, 0.5))
    assert (f"α = 0.5: mean DR on trained families {F.unit(base['dr_trained'], 'dr')} → "
            f"{F.unit(tuned['dr_trained'], 'dr')}") in text
    worst = [r for r in metrics["attacks"]["worst_case"] if r["pgd_%"] is not None]
    eps = max(r["eps_value"] for r in worst)
    at = [r for r in worst if r["eps_value"] == eps]
    lo = min(at, key=lambda r: r["pgd_%"])
    assert f"eps {F.eps_label(eps)}): linear-probe accuracy under PGD on the probe {F.unit(lo['pgd_%'], 'percent')}%" \
        in text


def test_the_first_page_names_the_models_and_warns_they_are_untrained(pages):
    assert "UNTRAINED" in pages[0]
    for m in MODELS:
        assert m in pages[0], m


def test_the_robustness_figure_names_every_family_on_every_panel(pages, tiny_params):
    page = next(p for p in pages if "per-image robustness of each model under each perturbation family" in p)
    for family in tiny_params["perturbations"]["families"]:
        # three panels (one per metric), each with its own family tick labels: text, not paths
        assert page.count(family) >= 3, family
    for m in MODELS:
        assert m in page, m  # the model legend


def test_the_report_is_at_most_twenty_pages_with_its_contents_on_them(pages):
    assert len(pages) <= 20
    contents = _summary(pages)
    for section in ("Models compared", "Robustness per perturbation family", "Accuracy against robustness",
                    "Fine-tuning for robustness", "Worst case: attacks", "Dense tasks",
                    "Appendix C. Configuration and provenance"):
        assert section in contents, section


def test_every_figure_is_also_an_svg_file_for_the_snakemake_report(project, pages):
    text = " ".join(pages)
    n = 0
    while f"Figure {n + 1}. " in text:
        n += 1
    files = sorted((project / "reports" / "figures").glob("*/*.svg"))
    assert n > 5 and len(files) == n
    assert all(f.read_bytes().startswith(b"<?xml") for f in files)


def test_the_appendix_cites_the_resolved_config_which_holds_the_validated_config(project, pages):
    from embedrobust.config import load_params, stage_config

    appendix = next(p for p in pages if "Appendix C. Configuration and provenance" in p and "Contents" not in p)
    assert "reports/config.resolved.yaml" in appendix
    resolved = yaml.safe_load((project / "reports" / "config.resolved.yaml").read_text())
    assert resolved == stage_config(load_params(project / "params.yaml", root=project), "report")["config"]


def test_the_same_artifacts_give_the_same_pdf_bytes(project, tmp_path):
    """The workflow built the report with 2 workers converting figures (--cores 2); one worker gives its bytes."""
    copy = tmp_path / "copy"
    shutil.copytree(project / "data", copy / "data")
    shutil.copy2(project / "params.yaml", copy / "params.yaml")
    # the project's own src/, as its workflow runs it
    env = dict(os.environ, MPLBACKEND="Agg", SOURCE_DATE_EPOCH="0", PYTHONPATH=str(project / "src"))
    subprocess.run([sys.executable, "-m", "embedrobust", "report", "--threads", "1", "--params", "params.yaml",
                    "--root", ".", "--out", "reports/final.pdf"], cwd=copy, env=env, check=True, capture_output=True)
    assert (copy / "reports" / "final.pdf").read_bytes() == (project / "reports" / "final.pdf").read_bytes()
    for f in (project / "reports" / "figures").rglob("*.svg"):
        assert (copy / "reports" / "figures" / f.relative_to(project / "reports" / "figures")).read_bytes() == \
            f.read_bytes()
