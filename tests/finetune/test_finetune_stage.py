"""run_finetune: params -> weights + manifest whose specs load through create_encoder."""

from __future__ import annotations

import json

import pytest
import torch

from embedrobust.errors import ConfigError
from embedrobust.finetune import run_finetune
from embedrobust.models import create_encoder

CFG = {
    "seed": 0,
    "device": "cpu",
    "models": {"vit": {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32}},
    "perturbations": {"families": {"gaussian_noise": {"levels": [0.05, 0.2]}, "contrast": {"severities": [1]}}},
}


def _images():
    return torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_per_family_run_writes_one_loadable_model_per_family(tmp_path):
    cfg = {**CFG, "finetune": {"base": "vit", "steps": 1, "batch_size": 3, "per_family": True, "train_blocks": 1}}
    manifest = json.loads(run_finetune(cfg, _images(), tmp_path).read_text())
    assert set(manifest["models"]) == {"vit-ft-gaussian_noise", "vit-ft-contrast"}
    assert manifest["config"]["families"] is None  # default: the perturbations grid
    spec = manifest["models"]["vit-ft-contrast"]
    assert spec["checkpoint"] == str(tmp_path / "vit-ft-contrast" / "model.pt")
    assert create_encoder(spec).embed_dim == 192
    assert len((tmp_path / "vit-ft-contrast" / "log.jsonl").read_text().splitlines()) == 1


def test_unknown_base_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="finetune.base"):
        run_finetune({**CFG, "finetune": {"base": "nope"}}, _images(), tmp_path)


def test_train_split_returns_train_images_with_their_labels(tmp_path):
    from embedrobust.data import fetch_dataset, read_index
    from embedrobust.finetune import train_split

    fetch_dataset("d", {"source": "demo-digits", "n_per_class": 2, "image_size": 16}, tmp_path, 0)
    index = read_index(tmp_path)
    images, labels, names = train_split(tmp_path, 16)
    train = index[index["split"] == "train"]
    assert images.shape == (len(train), 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == train["label"].tolist()
    assert len(names) == 10
