"""The embedding store: layout, metadata, and resumption after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from embedrobust import stages
from embedrobust.config import canonical_json, stage_config, validate
from embedrobust.embed import open_store
from embedrobust.metrics import robustness_metrics


def _config(tiny_config, families, chunk=8, n_per_class=3):
    tiny_config["datasets"]["digits"]["n_per_class"] = n_per_class
    tiny_config["perturbations"]["families"] = families
    tiny_config["embed"] = {"batch_size": chunk, "chunk_images": chunk}
    return validate(tiny_config)


def _embed(cfg, root: Path, model="vit") -> Path:
    stages.fetch(stage_config(cfg, "fetch", "digits"), root)
    return stages.embed(stage_config(cfg, "embed", "digits", model), root, progress=False)


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_store_layout(tmp_path, tiny_config):
    cfg = _config(tiny_config, {"gaussian_noise": {"levels": [0.1, 0.3]}, "contrast": {"severities": [2]}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Zarr v3 strings and metadata must not warn
        path = _embed(cfg, tmp_path)
        ds = open_store(path)
    assert ds["embedding"].dims == ("condition", "image", "dim")
    assert ds["embedding"].dtype == np.float32
    assert ds.sizes["condition"] == 4 and ds.sizes["image"] == 30
    assert list(ds["condition"].values) == ["clean", "gaussian_noise@0.1", "gaussian_noise@0.3", "contrast@0.3"]
    assert list(ds["family"].values) == ["clean", "gaussian_noise", "gaussian_noise", "contrast"]
    assert np.isnan(ds["level"].values[0]) and ds["level"].values[1] == pytest.approx(0.1)
    assert set(ds["split"].values) == {"train", "test"}
    assert ds["label"].dtype == np.int64 and list(ds["class_name"].values[:2]) == ["zero", "one"]
    assert ds.attrs["pretrained"] is False and ds.attrs["model"]["arch"] == "vit_tiny_patch16_224"
    assert "torch" in ds.attrs["versions"]
    assert ds.attrs["params_sha256"] == __import__("embedrobust.config", fromlist=["sha256"]).sha256(
        stage_config(cfg, "embed", "digits", "vit"))
    arr = zarr.open_array(path / "embedding", mode="r")
    assert arr.shards == (4, 8, ds.sizes["dim"])  # one file per block of images, every condition
    assert arr.chunks == (1, 8, ds.sizes["dim"])  # read per condition
    assert len(list((path / "embedding").rglob("c/*/*/*"))) == 4  # 30 images / 8 per shard
    assert not np.isnan(ds["embedding"].values).any()


def test_identity_gives_zero_and_stronger_gives_more(tmp_path, tiny_config):
    cfg = _config(tiny_config, {"brightness": {"levels": [0.0]}, "gaussian_noise": {"levels": [0.02, 0.3]}})
    ds = open_store(_embed(cfg, tmp_path))
    emb = torch.from_numpy(ds["embedding"].values).double()  # (C, N, D)

    def metrics(label):
        k = list(ds["condition"].values).index(label)
        return robustness_metrics(torch.stack([emb[0], emb[k]], dim=1))  # (N, 2, D)

    for value in metrics("brightness@0").values():
        assert torch.all(value == 0)
    weak, strong = metrics("gaussian_noise@0.02"), metrics("gaussian_noise@0.3")
    for name in weak:
        assert strong[name].mean() > weak[name].mean() > 0, name


def test_killed_run_resumes_to_the_same_bytes(tmp_path, tiny_config):
    # 60 images in chunks of 4: 15 chunks, so the kill lands mid-run.
    cfg = _config(tiny_config, {"gaussian_noise": {"levels": [0.1, 0.2]}, "jpeg_compression": {"levels": [30]}},
                  chunk=4, n_per_class=6)
    reference = _embed(cfg, tmp_path / "a")

    root = tmp_path / "b"
    stages.fetch(stage_config(cfg, "fetch", "digits"), root)
    stage = canonical_json(stage_config(cfg, "embed", "digits", "vit"))
    cmd = [sys.executable, "-m", "embedrobust", "embed", "--no-progress", "--threads", "1",
           "--root", str(root), "--stage-config", stage]
    progress = stages.store_path(root, "digits", "vit").with_name("vit.zarr.progress.json")
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if progress.exists() and len(json.loads(progress.read_text())["done"]) >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(progress.read_text())["done"]
    assert 3 <= len(done) < 15, "the kill must land mid-run"
    assert not stages.store_path(root, "digits", "vit").exists()  # never published half-done

    resumed = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f"{15 - len(done)} of 15 chunks" in resumed.stderr  # resumes exactly where the progress file says
    assert _files(stages.store_path(root, "digits", "vit")) == _files(reference)


def test_rerun_with_same_params_does_nothing(tmp_path, tiny_config):
    cfg = _config(tiny_config, {"contrast": {"levels": [0.5]}})
    path = _embed(cfg, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    stages.embed(stage_config(cfg, "embed", "digits", "vit"), tmp_path, progress=False)
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before


def test_same_seed_same_bytes_other_seed_other_noise(tmp_path, tiny_config):
    cfg = _config(tiny_config, {"gaussian_noise": {"levels": [0.2]}})
    a = _files(_embed(cfg, tmp_path / "a"))
    assert a == _files(_embed(cfg, tmp_path / "b"))
    cfg["seed"] = 1
    c = open_store(_embed(cfg, tmp_path / "c"))["embedding"].values
    b = open_store(stages.store_path(tmp_path / "b", "digits", "vit"))["embedding"].values
    assert not np.array_equal(b[1], c[1])
