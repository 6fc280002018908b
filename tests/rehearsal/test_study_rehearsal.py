"""Dress rehearsal: each shipped study config end to end to reports/final.pdf on this CPU, then shared.

The real command line (`snakemake ... reports/final.pdf --configfile config/<study>.yaml <overlay>`), the real
pretrained-loading path (open_clip / timm tags resolved in a local Hugging Face cache, HF_HUB_OFFLINE=1) and
datasets in their real layouts; only size differs (embedrobust.rehearsal.study.shrink). Then `make share`, a fresh
clone, `make pull`, and Snakemake has nothing to do.

Marked `rehearsal`: `make test` skips it, `make rehearsal` (CI, after the suite) runs it. Generated weights are
kept in EMBEDROBUST_REHEARSAL_CACHE (default ~/.cache/embedrobust-rehearsal) so a second run skips building them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from embedrobust.config import read_config

from workflow_helpers import REPO, copy_project, planned_jobs, run, snakemake

pytestmark = pytest.mark.rehearsal
STUDIES = ["config/full_study.yaml", "config/ssl_benchmark.yaml"]
DEMO_NAMES = ("digits", "tiny-clip", "vit-tiny", "shapes", "ramps")


def _cache() -> Path:
    default = Path.home() / ".cache" / "embedrobust-rehearsal"
    return Path(os.environ.get("EMBEDROBUST_REHEARSAL_CACHE", default))


@pytest.fixture(scope="module", params=STUDIES, ids=lambda s: Path(s).stem)
def rehearsal(request, tmp_path_factory):
    """(project, study, overlay, seconds): the study run to reports/final.pdf in a git + DVC copy."""
    from embedrobust.rehearsal.study import prepare

    study = request.param
    base = tmp_path_factory.mktemp(Path(study).stem)
    project = base / "repo"
    project.mkdir()
    copy_project(project)
    work = base / "rehearsal"
    overlay = prepare(REPO / study, work, hf_cache=_cache() / "hf")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
                ["dvc", "remote", "add", "-d", "-f", "local", str(base / "dvc-remote")]):
        run(cmd, project)
    with pytest.MonkeyPatch.context() as mp:  # the jobs, and the later share / pull, read the generated cache
        mp.setenv("HF_HUB_CACHE", str(_cache() / "hf"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        start = time.monotonic()
        snakemake(project, "reports/final.pdf", "--configfile", study, str(overlay))
        seconds = time.monotonic() - start
        print(f"\nrehearsal {study}: {seconds:.0f} s to reports/final.pdf", flush=True)
        yield project, study, overlay, seconds


def _pdf_text(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(path).pages]


def test_the_report_names_exactly_the_configured_models_and_datasets(rehearsal):
    project, study, _, _ = rehearsal
    raw = read_config(REPO / study)
    pages = _pdf_text(project / "reports" / "final.pdf")
    first = pages[0]
    for name in [*raw["models"], *raw["datasets"]]:
        assert name in first, name
    text = "\n".join(pages)
    metrics = (project / "reports" / "metrics.json").read_text()
    for demo in DEMO_NAMES:
        assert demo not in text and demo not in metrics, demo
    assert set(json.loads(metrics)) >= set(raw["datasets"])


def test_every_model_was_loaded_through_its_pretrained_tag_from_the_hub_cache(rehearsal):
    from embedrobust.embed import open_store

    project, study, _, _ = rehearsal
    raw = read_config(REPO / study)
    hf = str(_cache() / "hf")
    for ds in raw["datasets"]:
        for model in raw["models"]:
            attrs = open_store(project / "data" / "embeddings" / ds / f"{model}.zarr").attrs
            assert attrs["pretrained"], (ds, model)
            weights = json.dumps(attrs["model"])
            assert hf in weights, (ds, model, weights)


def test_no_untrained_warning_for_pretrained_models(rehearsal):
    project, _, _, _ = rehearsal
    assert "UNTRAINED" not in _pdf_text(project / "reports" / "final.pdf")[0]


def test_share_then_a_fresh_clone_pulls_and_has_nothing_to_do(rehearsal, tmp_path):
    project, study, overlay, _ = rehearsal
    run(["make", "share", f"CONFIG={study} {overlay}"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert sorted(params["models"]) == sorted(read_config(REPO / study)["models"])
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"]):
        run(cmd, project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["make", "pull"], clone)
    assert planned_jobs(clone) == {}
    for sub in ("data/embeddings", "data/metrics", "data/downstream", "data/regression"):
        a = sorted(p.relative_to(project) for p in (project / sub).rglob("*") if p.is_file())
        b = sorted(p.relative_to(clone) for p in (clone / sub).rglob("*") if p.is_file())
        assert a == b, sub
        assert all((project / p).read_bytes() == (clone / p).read_bytes() for p in a), sub
    assert (project / "reports" / "final.pdf").read_bytes() == (clone / "reports" / "final.pdf").read_bytes()
