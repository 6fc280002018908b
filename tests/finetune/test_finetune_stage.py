"""One fine-tuning run: weights + manifest whose spec loads through create_encoder; resumable; stale state dropped."""

from __future__ import annotations

import json

import torch

from embedrobust.finetune import is_trained, train_finetuned
from embedrobust.models import create_encoder

SPEC = {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32}
TRAIN = {"method": "paper", "alpha": 1.0, "families": {"gaussian_noise": {"levels": [0.1, 0.3]}}, "steps": 2,
         "batch_size": 3, "train_blocks": 1, "seed": 0}


def _images():
    return torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_run_writes_loadable_weights_a_manifest_and_the_loss_log(tmp_path):
    weights = train_finetuned(SPEC, TRAIN, _images(), tmp_path, fingerprint="abc")
    manifest = json.loads((tmp_path / "finetune.json").read_text())
    assert weights == tmp_path / "model.pt"
    assert manifest["params_sha256"] == "abc" and manifest["steps"] == 2
    assert manifest["spec"]["checkpoint"] == str(weights)
    assert [json.loads(r)["step"] for r in (tmp_path / "log.jsonl").read_text().splitlines()] == [0, 1]
    assert not (tmp_path / "checkpoint").exists()  # the optimiser state is not kept once model.pt exists
    tuned = create_encoder(manifest["spec"])
    base = create_encoder(SPEC)
    x = _images().float() / 255
    assert not torch.equal(tuned.encode_image(x), base.encode_image(x))


def test_is_trained_only_for_the_same_params(tmp_path):
    assert not is_trained(tmp_path, "abc")
    train_finetuned(SPEC, TRAIN, _images(), tmp_path, fingerprint="abc")
    assert is_trained(tmp_path, "abc")
    assert not is_trained(tmp_path, "other")


def test_same_params_give_the_same_weights(tmp_path):
    a = torch.load(train_finetuned(SPEC, TRAIN, _images(), tmp_path / "a", fingerprint="x"))
    b = torch.load(train_finetuned(SPEC, TRAIN, _images(), tmp_path / "b", fingerprint="x"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    from embedrobust.finetune import Trainer

    full = torch.load(train_finetuned(SPEC, TRAIN, _images(), tmp_path / "full", fingerprint="x"))
    # A run killed after step 1: its checkpoint (and stamp) are on disk, model.pt is not.
    out = tmp_path / "killed"
    trainer = Trainer(create_encoder(SPEC), {**TRAIN, "steps": 1})
    trainer.fit(_images(), checkpoint_dir=out / "checkpoint")
    (out / "checkpoint.params_sha256").write_text("x")
    resumed = torch.load(train_finetuned(SPEC, TRAIN, _images(), out, fingerprint="x"))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    # the loss log runs from step 0, the killed run's row included
    assert [json.loads(r)["step"] for r in (out / "log.jsonl").read_text().splitlines()] == [0, 1]
    assert (out / "log.jsonl").read_text() == (tmp_path / "full" / "log.jsonl").read_text()


def test_checkpoint_of_other_params_is_not_resumed(tmp_path):
    from embedrobust.finetune import Trainer

    Trainer(create_encoder(SPEC), {**TRAIN, "steps": 1, "lr": 0.5}).fit(_images(), checkpoint_dir=tmp_path / "checkpoint")
    (tmp_path / "checkpoint.params_sha256").write_text("old")
    fresh = torch.load(train_finetuned(SPEC, TRAIN, _images(), tmp_path / "fresh", fingerprint="new"))
    stale = torch.load(train_finetuned(SPEC, TRAIN, _images(), tmp_path, fingerprint="new"))
    assert all(torch.equal(fresh[k], stale[k]) for k in fresh)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 2


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
