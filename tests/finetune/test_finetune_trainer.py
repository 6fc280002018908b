"""The Trainer on tiny random-init models: loss terms, one step, short runs, checkpoints, saved weights."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedrobust.errors import ConfigError
from embedrobust.finetune import PerturbationSampler, Trainer, batch_indices
from embedrobust.metrics import divergence_radius
from embedrobust.models import create_encoder

VIT = {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32}
CLIP = {"library": "open_clip", "arch": "embedrobust-tiny-clip", "pretrained": "none"}
FAMS = {"gaussian_noise": {"levels": [0.05, 0.2]}, "brightness": {"levels": [0.1, 0.3]}}


@functools.cache
def _built(library: str):
    return create_encoder(VIT if library == "timm" else CLIP)


def _encoder(spec):
    """A fresh copy of the seeded random-init model (building one takes seconds; copying, milliseconds)."""
    return copy.deepcopy(_built(spec["library"]))


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def _trainer(spec=VIT, **cfg):
    return Trainer(_encoder(spec), {"families": FAMS, "batch_size": 4, "steps": 4, "lr": 1e-3, **cfg})


def _cos(a, b):
    return F.cosine_similarity(a.double(), b.double(), dim=-1)


def test_paper_terms_match_encoder_and_metric():
    base = _encoder(VIT)
    tr = _trainer(alpha=0.5)
    x = _images(4).float() / 255
    terms = tr.losses(x, step=3)
    views = PerturbationSampler(FAMS, 2, "image", 0).views(x, 3)
    clean = base.encode_image(x)
    pts = torch.stack([clean, *[base.encode_image(v) for v in views]], 1)
    dr = divergence_radius(pts.double()).mean()
    assert np.isclose(float(terms["utility"].detach()), 0.0, atol=1e-6)  # nothing trained yet: f_theta = f_0
    assert np.isclose(float(terms["robustness"].detach()), float(dr), atol=1e-4)
    assert np.isclose(float(terms["total"].detach()), 0.5 * float(dr), atol=1e-4)


def test_deacl_terms_match_direct_cosines():
    base = _encoder(VIT)
    tr = _trainer(method="deacl", families=None)
    x = _images(4).float() / 255
    terms = tr.losses(x, step=0)
    adv = tr.pgd(x, base.encode_image(x), step=0)
    assert float((adv - x).abs().max()) <= 4 / 255 + 1e-6
    s, a = base.encode_image(x), base.encode_image(adv)
    want = float((-_cos(s, s) - 2.0 * _cos(a, s)).mean())
    assert np.isclose(float(terms["total"].detach()), want, atol=1e-4)


def test_grace_terms_match_direct_alignment():
    base = _encoder(VIT)
    tr = _trainer(method="grace", alpha=2.0, pgd_steps=1)
    x = _images(4).float() / 255
    terms = tr.losses(x, step=1)
    views = PerturbationSampler(FAMS, 2, "image", 0).views(x, 1)
    s = base.encode_image(x)
    adv = base.encode_image(tr.pgd(x, s, step=1))
    others = [base.encode_image(v) for v in views] + [adv]
    want = float(torch.stack([1 - _cos(o, s) for o in others]).mean())
    assert np.isclose(float(terms["robustness"].detach()), want, atol=1e-4)
    assert np.isclose(float(terms["total"].detach()), 2.0 * want, atol=1e-4)


def test_subspace_term_matches_numpy_projection_distance():
    base = _encoder(VIT)
    tr = _trainer(method="subspace", subspace_k=2, views=1)
    x = _images(6).float() / 255
    terms = tr.losses(x, step=2)
    (view,) = PerturbationSampler(FAMS, 1, "image", 0).views(x, 2)

    def proj(e):
        z = F.normalize(e.double(), dim=-1).numpy()
        v = np.linalg.svd(z - z.mean(0), full_matrices=False)[2][:2].T
        return v @ v.T

    want = ((proj(base.encode_image(x)) - proj(base.encode_image(view))) ** 2).sum() / 4
    assert np.isclose(float(terms["robustness"].detach()), want, atol=1e-4)


def test_task_term_is_zero_shot_cross_entropy():
    base = _encoder(CLIP)
    text = F.normalize(torch.randn(3, base.embed_dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    tr = Trainer(_encoder(CLIP), {"families": FAMS, "task_weight": 1.0, "logit_scale": 10.0}, text)
    x, y = _images(4).float() / 255, torch.tensor([0, 1, 2, 0])
    terms = tr.losses(x, y, step=0)
    want = F.cross_entropy(10.0 * F.normalize(base.encode_image(x), dim=-1) @ text.T, y)
    assert np.isclose(float(terms["task"].detach()), float(want), atol=1e-5)


@pytest.mark.parametrize("method", ["paper", "deacl", "grace", "subspace"])
def test_one_step_lowers_objective_on_fixed_batch(method):
    # pgd_steps 0: the adversarial view is the seeded random start, so the objective is fixed across the step
    extra = {"pgd_steps": 0} if method in ("deacl", "grace") else {}
    tr = _trainer(method=method, lr=1e-6, alpha=1.0, views=1, **extra)
    x = _images(4)
    before = float(tr.losses(x, step=0)["total"].detach())
    tr.train_step(x)
    after = float(tr.losses(x, step=0)["total"].detach())
    assert after < before


def test_train_blocks_freezes_earlier_blocks():
    tr = _trainer(train_blocks=1)
    before = {n: p.detach().clone() for n, p in tr.encoder.model.named_parameters()}
    tr.train_step(_images(4))
    changed = {n for n, p in tr.encoder.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("blocks.11.", "norm.")) for n in changed)


def test_short_run_lowers_divergence_radius_with_bounded_drift(tmp_path):
    from embedrobust.data import ImageDataset, fetch_dataset, read_index

    fetch_dataset("d", {"source": "demo-digits", "n_per_class": 2, "image_size": 32}, tmp_path, 0)
    index = read_index(tmp_path)
    ds = ImageDataset(index, tmp_path, 32)
    imgs = torch.stack([ds[i][0] for i in range(len(ds))])
    fams = {"gaussian_noise": {"levels": [0.08, 0.18]}, "contrast": {"levels": [0.4, 0.2]}}
    base = _encoder(VIT)
    tr = Trainer(_encoder(VIT), {"families": fams, "alpha": 1.0, "steps": 8, "batch_size": 8,
                                       "lr": 1e-4, "train_blocks": 4})
    tr.fit(imgs)
    x = imgs.float() / 255

    def mean_dr(enc):
        from embedrobust.perturb import get_perturbation

        out = []
        for f, spec in fams.items():
            views = [get_perturbation(f)(x, v, torch.Generator().manual_seed(7)) for v in spec["levels"]]
            pts = torch.stack([enc.encode_image(x), *[enc.encode_image(v) for v in views]], 1)
            out.append(divergence_radius(pts.double()).mean())
        return float(torch.stack(out).mean())

    drift = float((1 - _cos(tr.encoder.encode_image(x), base.encode_image(x))).mean())
    assert mean_dr(tr.encoder) < 0.8 * mean_dr(base)
    assert drift < 0.1


@pytest.mark.parametrize("lora", [0, 2])
def test_resume_continues_identically(tmp_path, lora):
    imgs = _images(12)
    straight = _trainer(lora_rank=lora, steps=4)
    straight.fit(imgs)
    first = _trainer(lora_rank=lora, steps=2)
    first.fit(imgs, checkpoint_dir=tmp_path)
    resumed = _trainer(lora_rank=lora, steps=4)
    resumed.fit(imgs, checkpoint_dir=tmp_path)
    assert resumed.step == 4
    for (n, a), (_, b) in zip(straight.encoder.model.named_parameters(), resumed.encoder.model.named_parameters()):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("spec,cfg", [(VIT, {"train_blocks": 2}), (CLIP, {"lora_rank": 2}), (CLIP, {})])
def test_saved_weights_load_through_create_encoder(tmp_path, spec, cfg):
    tr = Trainer(_encoder(spec), {"families": FAMS, "batch_size": 4, "steps": 2, "lr": 1e-3, **cfg})
    tr.fit(_images(8))
    path = tr.save_weights(tmp_path / "model.pt")
    loaded = create_encoder(tr.finetuned_spec(path))
    x = _images(3, seed=5).float() / 255
    assert not torch.allclose(_encoder(spec).encode_image(x), loaded.encode_image(x), atol=1e-4)
    assert torch.allclose(tr.encoder.encode_image(x), loaded.encode_image(x), atol=1e-5)


def test_sampler_is_seeded_and_draws_configured_levels():
    s = PerturbationSampler(FAMS, n_views=3, per="image", seed=1)
    x = _images(5).float() / 255
    assert torch.equal(s.views(x, 7), s.views(x, 7))
    assert not torch.equal(s.views(x, 7), s.views(x, 8))
    draws = [v for row in s.draw(50, 0) for v in row]
    assert {v.family for v in draws} == set(FAMS)
    assert all(v.value in FAMS[v.family]["levels"] for v in draws)


def test_sampler_per_batch_uses_one_condition_per_view():
    rows = PerturbationSampler(FAMS, n_views=2, per="batch").draw(6, 3)
    assert all(len(set(row)) == 1 for row in rows)


def test_sampler_range_draws_inside_range():
    rows = PerturbationSampler({"gaussian_noise": {"range": [0.1, 0.2]}}, 1).draw(40, 0)
    vals = [v.value for v in rows[0]]
    assert min(vals) >= 0.1 and max(vals) <= 0.2 and len(set(vals)) > 1


def test_sampler_reads_the_severity_table():
    from embedrobust.finetune import resolve_families
    from embedrobust.perturb import with_table

    assert resolve_families(["gaussian_noise"], "cifar10-c") == {"gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10)}
    s = PerturbationSampler({"glass_blur": {"levels": [1.0]}}, 1, seed=0, table="cifar10-c")
    x = _images(2).float() / 255
    (view,) = s.views(x, 0)
    from embedrobust.finetune.sampler import _mix

    want = with_table("glass_blur", "cifar10-c")(x, 1.0, torch.Generator().manual_seed(_mix(0, 0, 2, 0, 0)))
    imagenet = PerturbationSampler({"glass_blur": {"levels": [1.0]}}, 1, seed=0).views(x, 0)[0]
    assert torch.equal(view, want) and not torch.equal(imagenet, want)


def test_a_family_missing_from_the_table_says_what_helps():
    with pytest.raises(ConfigError, match="frost: no 'cifar10-c' severity table.*Either drop frost, or drop "
                                          "perturbations.table"):
        PerturbationSampler(["frost"], 1, table="cifar10-c")  # severity unit: levels would not help
    assert PerturbationSampler({"embed_attack": {"levels": [0.01]}}, 1, table="cifar10-c").families


def test_batch_indices_cover_each_epoch_once():
    n, b = 10, 3
    idx = torch.cat([batch_indices(n, b, 0, t) for t in range(10)])  # 30 positions = 3 epochs
    for e in range(3):
        assert sorted(idx[e * n:(e + 1) * n].tolist()) == list(range(n))


@pytest.mark.parametrize("cfg,word", [({"method": "sam"}, "method"), ({"lr_typo": 1}, "unknown"),
                                      ({"families": ["no_such_family"]}, "no_such_family"),
                                      ({"lora_rank": 2, "train_blocks": 1}, "not both")])
def test_bad_config_raises_config_error(cfg, word):
    with pytest.raises(ConfigError, match=word):
        Trainer(_encoder(VIT), {"families": FAMS, **cfg})


def test_lora_trains_only_adapters_and_starts_at_base_outputs():
    base = _encoder(CLIP)
    tr = Trainer(_encoder(CLIP), {"families": FAMS, "lora_rank": 2})
    assert tr.names and all(n.endswith((".A", ".B")) for n in tr.names)
    assert any("in_proj_weight" in n for n in tr.names)  # open_clip's fused q/k/v is adapted too
    x = _images(2).float() / 255
    assert torch.allclose(tr.encoder.encode_image(x), base.encode_image(x), atol=1e-6)


def test_dataloader_input_is_cycled_until_steps():
    imgs = _images(6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(imgs, torch.zeros(6, dtype=torch.long)),
                                         batch_size=4)
    tr = _trainer(steps=3, views=1, train_blocks=1)
    log = tr.fit(loader)
    assert [row["step"] for row in log] == [0, 1, 2] and tr.step == 3


def test_whitening_uses_a_seeded_subset_not_the_first_images(monkeypatch):
    import embedrobust.finetune.trainer as trainer_mod
    from embedrobust.finetune import batch_indices

    monkeypatch.setattr(trainer_mod, "WHITEN_IMAGES", 4)
    base, x = _encoder(VIT), _images(8)
    std = _trainer(utility="whitened").fit_whitening(x)
    subset = x[batch_indices(8, 4, 0, 0)]
    want = F.normalize(base.encode_image(subset.float() / 255).double(), dim=-1).std(0)
    first = F.normalize(base.encode_image(x[:4].float() / 255).double(), dim=-1).std(0)
    assert torch.allclose(std.double(), want, atol=1e-5) and not torch.allclose(std.double(), first, atol=1e-5)


def test_whitened_utility_uses_the_original_embeddings_spread():
    base = _encoder(VIT)
    x = _images(8)
    tr = _trainer(utility="whitened")
    std = tr.fit_whitening(x)
    want = F.normalize(base.encode_image(x.float() / 255).double(), dim=-1).std(0)
    assert torch.allclose(std.double(), want, atol=1e-5)
    tr.train_step(x)  # after a step f_theta != f_0: the term is the whitened distance, checked directly
    s, t = tr.student(x[:4].float() / 255), tr.original(x[:4].float() / 255)
    got = float(tr.losses(x[:4], step=0)["utility"].detach())
    want_u = float(((F.normalize(s, dim=-1) - F.normalize(t, dim=-1)) / std).square().mean().detach())
    assert got > 0 and np.isclose(got, want_u, rtol=1e-4)


def test_one_step_with_whitened_utility_lowers_objective():
    tr = _trainer(utility="whitened", lr=1e-6, views=1)
    x = _images(4)
    tr.fit_whitening(_images(8, seed=1))
    before = float(tr.losses(x, step=0)["total"].detach())
    tr.train_step(x)
    assert float(tr.losses(x, step=0)["total"].detach()) < before


def test_train_blocks_counts_resnet_bottlenecks():
    spec = {"library": "timm", "arch": "resnet18", "pretrained": "none", "image_size": 32}
    tr = Trainer(create_encoder(spec), {"families": FAMS, "batch_size": 4, "steps": 1, "lr": 1e-3, "train_blocks": 1})
    before = {n: p.detach().clone() for n, p in tr.encoder.model.named_parameters()}
    tr.train_step(_images(4))
    changed = {n for n, p in tr.encoder.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("layer4.1.") for n in changed)
