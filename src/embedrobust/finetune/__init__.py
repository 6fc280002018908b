"""Robustness-aware fine-tuning: utility(f_theta, f_0) + alpha * robustness(f_theta).

    enc = create_encoder(spec)
    trainer = Trainer(enc, {"method": "paper", "alpha": 1.0, "families": ["gaussian_noise"], "steps": 50})
    trainer.fit(images_uint8)                    # (N, 3, H, W); enc's weights are now fine-tuned
    trainer.save_weights("ft/model.pt")          # load back: create_encoder({**spec, "checkpoint": "ft/model.pt"})

Methods (``method``):
  - ``paper``: utility mean(1 - cos(f_theta(x), f_0(x))) (``utility: cosine``) or the distance of the unit
    embeddings in units of the original's per-dimension spread (``utility: whitened``) [+ task_weight * zero-shot CE] + alpha * mean over images of
    the spread of {f_theta(x), f_theta(p_1(x)), ..} (``robustness``: ``meb`` = differentiable DivergenceRadius,
    ``max`` / ``mean`` = half the largest / mean distance to the clean view), on L2-normalised embeddings;
  - ``deacl``: -cos(f_s(x), f_t(x)) - deacl_k cos(f_s(x_adv), f_s(x)), x_adv by L-inf PGD maximising
    1 - cos(f_s(x_adv), f_t(x)) (teacher = frozen original);
  - ``grace``: distillation + alpha * mean(1 - cos) between the clean and every perturbed and adversarial view,
    trained with an adaptive SAM step (per-parameter scaling |w| + eta, or a diagonal Fisher estimate);
  - ``subspace``: distillation + alpha * projection distance between the top-k principal subspaces of the clean
    and of each perturbed view's batch embeddings (image side only).

Trainer options (defaults in :data:`DEFAULTS`). In params, the ``finetune`` section sweeps base x methods x
alpha (x family with ``per_family``), see ``config.finetune_runs``; one run is :func:`train_finetuned`.
  method ("paper"): paper | deacl | grace | subspace. alpha (1.0): weight of the robustness term. families
  (None): list of perturbation names or mapping name -> {levels | severities | range: [lo, hi]} (deacl needs
  none). views (2): perturbed views per image.
  utility ("cosine"): cosine | whitened (paper, grace, subspace). sample_per ("image"): draw family and level per image or per batch. robustness ("meb"): meb | max | mean.
  steps (100), lr (1e-4), weight_decay (0.0), grad_clip (None): AdamW and its step count. batch_size (32).
  train_blocks (None = whole image tower): train only the last N transformer blocks and the layers after them.
  lora_rank (0 = off), lora_alpha (None = rank), lora_targets (["attn", "mlp"]): LoRA adapters instead.
  seed (params.seed): batches, views, PGD starts and LoRA init. amp (True): bf16 autocast on CUDA.
  task_weight (0.0), logit_scale (100.0), templates ("simple"): zero-shot CE term (CLIP, needs labels).
  deacl_k (2.0). pgd_eps (4/255), pgd_steps (5; 0 = random start only), pgd_step (None = 2.5 eps / steps).
  grace_rho (0.05), grace_scaling ("weight" | "fisher"), grace_eta (0.01). subspace_k (4).
  checkpoint_every (0 = only at the end): steps between resumable checkpoints.
"""

from .._lazy import lazy_exports

__all__ = [
    "DEFAULTS",
    "METHODS",
    "PerturbationSampler",
    "Trainer",
    "add_lora",
    "batch_indices",
    "losses",
    "merged_state_dict",
    "resolve_config",
    "is_trained",
    "resolve_families",
    "select_trainable",
    "train_finetuned",
    "train_split",
]

# Loaded on first use: config validation and the report resolve the fine-tuning runs (``options``, no torch)
# without importing the trainer.
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(["DEFAULTS", "METHODS", "resolve_config", "resolve_families"], "options"),
    **dict.fromkeys(["add_lora", "merged_state_dict", "select_trainable"], "peft"),
    "PerturbationSampler": "sampler",
    **dict.fromkeys(["is_trained", "train_finetuned", "train_split"], "stage"),
    **dict.fromkeys(["Trainer", "batch_indices"], "trainer"),
})
