"""The perturbation grid on a device against the model forward it feeds: is the GPU the limit?

    .venv/bin/python benchmarks/bench_perturb_device.py [--device cuda] [--batch 64] [--model vit_base_patch16_224]

For each of the 19 ImageNet-C corruptions (at one severity), the time to perturb a batch of 224 px photographs
already on the device, then the time of the image forward of a ViT-B/16 (timm, random init: weights do not change
the time) on the same batch, fp32 and bf16 autocast. Prints ms per image for each, each corruption's time as a
fraction of the forward, and the grid's mean. Issue #3's criterion: on a GPU, the grid runs faster than the
forward (mean fraction < 1). CUDA times are taken between torch.cuda.synchronize() calls, best of --reps.
Runs on the CPU too (to check the script); the criterion is about GPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_perturb import NAMES, photos  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_ms(fn, device: torch.device, reps: int) -> float:
    """Best wall time of ``fn()`` in ms over ``reps`` runs, after one warm-up run."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 1000 * best


def device_photos(batch: int, device: torch.device, size: int = 224) -> torch.Tensor:
    """(batch, 3, size, size) float photographs in [0, 1] on ``device``: perturbation times depend on content
    (JPEG entropy coding, blur kernels on edges), so noise would flatter some families."""
    return (torch.from_numpy(photos(batch, size)).permute(0, 3, 1, 2).float() / 255).contiguous().to(device)


def perturb_ms(name: str, x: torch.Tensor, severity: int, gen: torch.Generator, reps: int) -> float:
    """Best ms per image of perturbation ``name`` on the batch ``x`` (on its device) at ImageNet-C ``severity``
    (1..5; families tabulated by level use their level at that severity)."""
    from embedrobust.perturb import get_perturbation

    p = get_perturbation(name)
    v = float(severity) if p.unit == "severity" else p.severities[severity - 1]
    return best_ms(lambda: p(x, v, gen), x.device, reps) / x.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--only", default="", help="comma-separated corruptions (default: all 19)")
    args = ap.parse_args()

    import timm

    device = torch.device(args.device)
    names = [n for n in args.only.split(",") if n] or NAMES
    x = device_photos(args.batch, device)
    gen = torch.Generator(device=device).manual_seed(0)

    model = timm.create_model(args.model, pretrained=False).to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def forward(bf16: bool):
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            return model((x - mean) / std)

    fwd = {"fp32": best_ms(lambda: forward(False), device, args.reps) / args.batch}
    if device.type == "cuda":
        fwd["bf16"] = best_ms(lambda: forward(True), device, args.reps) / args.batch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}: batch {args.batch} x 224 px, severity {args.severity}, best of {args.reps}")
    print(f"{args.model} forward: " + ", ".join(f"{k} {v:.3f} ms/img" for k, v in fwd.items()))
    ref = min(fwd.values())  # the faster forward is the stricter bar
    print(f"{'corruption':18s} {'ms/img':>8s} {'/ forward':>10s}")
    total = 0.0
    for n in names:
        ms = perturb_ms(n, x, args.severity, gen, args.reps)
        total += ms
        print(f"{n:18s} {ms:8.3f} {ms / ref:9.2f}x", flush=True)
    mean_ms = total / len(names)
    verdict = "faster" if mean_ms < ref else "SLOWER"
    print(f"grid mean ({len(names)}): {mean_ms:.3f} ms/img per condition = {mean_ms / ref:.2f} x the "
          f"{min(fwd, key=fwd.get)} forward ({verdict} than the forward)")


if __name__ == "__main__":
    main()
