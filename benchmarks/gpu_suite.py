"""The GPU check: one command, one markdown table for the issue note.

    .venv/bin/python benchmarks/gpu_suite.py --device cuda              # make gpu-check; < 8 min on one H200
    .venv/bin/python benchmarks/gpu_suite.py --device cpu --size tiny   # the same code paths on a CPU, < 1 min

Steps, each timed and guarded (a failing one prints its error in its row and the suite goes on; the exit code is
1 if any failed):
  1. the embed stage of config/full_study.yaml on the device for one (dataset, model) pair, through the dress
     rehearsal (embedrobust.rehearsal: generated pretrained weights in a local Hugging Face cache, the dataset in
     its real layout): the real fetch and embed stages, at the model's own precision (bf16), in images x
     conditions per second;
  2. the embed path's clean-condition throughput (uint8 host batch -> device -> Encoder.encode_image -> host, as
     embed.run does per batch) against the bare image forward of the same open_clip model on a device tensor;
  3. each ImageNet-C family (the study grid's first) in ms per image on the same batch size, as a fraction of
     that bare forward (bench_perturb_device's timing);
  4. one fine-tuning step per method (paper, deacl, grace, subspace) with the study's trainer config: seconds
     per step and peak memory.
Targets (a ratio >= 0.8, a grid faster than the forward) are GPU criteria: they are judged on CUDA only.
``--size tiny`` shrinks everything (the rehearsal's size overlay, the tiny CLIP, batch 8) so that the CPU test
(tests/test_gpu_suite.py) covers every step. The table is rewritten to ``--out`` after every row, so a run cut
short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import math
import os
import platform
import re
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

T0 = time.perf_counter()  # the header's total wall time counts the imports: seconds of a short run

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_perturb import NAMES, photos  # noqa: E402
from bench_perturb_device import best_ms, device_photos, perturb_ms, sync  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "config" / "full_study.yaml"
RATIO_TARGET = 0.8


@dataclasses.dataclass(frozen=True)
class Size:
    pair: tuple[str, str]  # (dataset, model) of config/full_study.yaml for step 1
    shrink: bool  # step 1 under the rehearsal's size overlay, else the study's own size
    arch: str  # open_clip architecture of steps 2-4 (random init: weights do not change the time)
    side: int  # its input size (px), also the perturbed images' size
    batch: int
    reps: int  # best of, for steps 2 and 3
    ft_batch: int
    classes: int = 0  # step 1's images when not shrunk: classes x per_class in each split
    per_class: int = 0
    severity: int = 3  # bench_perturb_device's default: the middle of the ImageNet-C table


SIZES = {
    # step 1: 1024 images x 46 conditions, four batches of 256 per condition, so that model loading and the first
    # batch's kernel selection do not dominate the throughput
    "full": Size(pair=("imagenet", "clip-vit-b16"), shrink=False, arch="ViT-B-16", side=224, batch=256, reps=5,
                 ft_batch=16, classes=16, per_class=32),
    # the size overlay's 12 images at 56 px, and the 2-block tiny CLIP at 64 px: ~30 s on one CPU thread
    "tiny": Size(pair=("imagenet", "dinov2-vit-s14"), shrink=True, arch="embedrobust-tiny-clip", side=64, batch=8,
                 reps=2, ft_batch=4),
}


@dataclasses.dataclass
class Result:
    figure: str
    target: str = "-"
    met: bool | None = None  # None: nothing judged
    what: str | None = None  # replaces the row's description once the figure is known


def _memo(fn):
    """Cache ``fn()``'s value or its exception: the rows that need an earlier figure neither redo nor retry it."""
    state: dict = {}

    @functools.wraps(fn)
    def wrapper():
        if not state:
            try:
                state["value"] = fn()
            except Exception as err:  # noqa: BLE001 -- re-raised to every caller
                state["error"] = err
        if "error" in state:
            raise state["error"]
        return state["value"]

    return wrapper


def _num(x: float) -> str:
    """Three significant digits, never rounded to 0 (the table's figures are read as positive numbers)."""
    return f"{x:.3g}" if x >= 1e-3 else f"{x:.2e}"


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "/").strip()


def _autocast(device: torch.device):
    """bf16 autocast where the Encoder and the Trainer use it (CUDA); elsewhere they run fp32."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} torch threads)"


def _peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"peak {_num(torch.cuda.max_memory_allocated(device) / 2**30)} GiB allocated"
    # no allocator statistics on the CPU: the process's peak resident set (Linux reports KiB)
    return f"process peak RSS {_num(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)} GiB"


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _host_photos(n: int, side: int) -> torch.Tensor:
    """(n, 3, side, side) uint8 photographs, as the stage's DataLoader yields them."""
    return torch.from_numpy(photos(n, side)).permute(0, 3, 1, 2).contiguous()


class Suite:
    def __init__(self, args, size: Size, device: torch.device, out: Path | None) -> None:
        self.args, self.size, self.device, self.out = args, size, device, out
        self.batch = args.batch or size.batch
        self.side = size.side
        self.rows: list[tuple[str, ...]] = []
        self.failed = 0
        self.start = T0
        self.bare_forward_ms = _memo(self._bare_forward_ms)
        self.embed_path_ms = _memo(self._embed_path_ms)

    # -- the table ------------------------------------------------------------------------------------------------
    def row(self, step: str, what: str, run: Callable[[], Result]) -> None:
        """Run one guarded, timed row of the table."""
        t = time.perf_counter()
        try:
            res = run()
            seconds = time.perf_counter() - t
            status = f"{'BELOW TARGET' if res.met is False and self.device.type == 'cuda' else 'ok'} ({seconds:.1f} s)"
            cells = (step, res.what or what, res.figure, res.target, status)
        except Exception as err:  # noqa: BLE001 -- a failing step is reported in its row; the suite goes on
            seconds = time.perf_counter() - t
            traceback.print_exc(file=sys.stderr)
            self.failed += 1
            cells = (step, what, "-", "-", f"FAILED ({seconds:.1f} s): {type(err).__name__}: {err}")
            _free(self.device)
        self.rows.append(tuple(_cell(c) for c in cells))
        print(f"[{time.perf_counter() - self.start:6.1f} s] {' | '.join(self.rows[-1])}", file=sys.stderr, flush=True)
        self.write(done=False)

    def table(self, done: bool) -> str:
        total = time.perf_counter() - self.start
        cuda = f", CUDA {torch.version.cuda}" if self.device.type == "cuda" else ""
        state = f"total wall time {total:.0f} s" if done else f"still running, {total:.0f} s so far"
        judged = "" if self.device.type == "cuda" else "; targets are judged on CUDA only"
        lines = [f"**GPU check** (`benchmarks/gpu_suite.py --device {self.device.type} --size {self.args.size}`): "
                 f"{_device_name(self.device)}, torch {torch.__version__}{cuda}; {state}{judged}",
                 "", "| step | what | figure | target | status |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def write(self, done: bool) -> None:
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.out.with_name(self.out.name + ".tmp")
            tmp.write_text(self.table(done))
            os.replace(tmp, self.out)

    def _precision(self) -> str:
        return "bf16 autocast" if self.device.type == "cuda" else "fp32 (autocast is CUDA only)"

    # -- step 1 ---------------------------------------------------------------------------------------------------
    def embed_stage(self, work: Path, hf_cache: Path) -> Result:
        from embedrobust import stages
        from embedrobust.config import conditions, merge_configs, read_config, stage_config, validate
        from embedrobust.embed import open_store
        from embedrobust.models.spec import normalise_spec
        from embedrobust.rehearsal import datasets as gen
        from embedrobust.rehearsal.study import prepare
        from embedrobust.rehearsal.weights import write_pretrained

        size, (dataset, model) = self.size, self.args.pair or self.size.pair
        raw = read_config(STUDY)
        t = time.perf_counter()
        # weights=False: prepare would build all six models' weights; only the pair's model is loaded here
        overlay = read_config(prepare(STUDY, work, weights=False, size=size.shrink, seed=raw["seed"],
                                      hf_cache=hf_cache))
        if not size.shrink:
            # the rehearsal writes 3 classes x 2 images, too few batches for a throughput: same writer, more images
            key = gen.stand_in_for(raw["datasets"][dataset])
            gen.write_all(work / "datasets", [key], n_per_class=size.per_class, n_classes=size.classes,
                          seed=raw["seed"])
            overlay = merge_configs(overlay, {"datasets": {dataset: {"n_per_class": size.per_class}}})
        cfg = merge_configs(raw, overlay)
        cfg["device"] = self.device.type
        cfg = validate(cfg, source=f"{STUDY.name} + rehearsal overlay")
        write_pretrained({model: normalise_spec(raw["models"][model])}, hf_cache, seed=cfg["seed"])
        prep_s = time.perf_counter() - t
        root = work / "project"
        t = time.perf_counter()
        stages.fetch(stage_config(cfg, "fetch", dataset=dataset), root)
        fetch_s = time.perf_counter() - t
        t = time.perf_counter()
        stages.embed(stage_config(cfg, "embed", dataset=dataset, model=model), root, progress=False)
        sync(self.device)
        embed_s = time.perf_counter() - t
        store = open_store(stages.store_path(root, dataset, model))
        n_cond, n_img = store.sizes["condition"], store.sizes["image"]
        if n_cond != len(conditions(cfg)):
            raise RuntimeError(f"the store has {n_cond} conditions, the config {len(conditions(cfg))}")
        attrs = store.attrs["model"]
        # the point of the rehearsal: the model came through its pretrained tag, from the generated hub cache
        if not store.attrs["pretrained"] or not str(attrs.get("weights_file") or "").startswith(str(hf_cache)):
            raise RuntimeError(f"{model} was not loaded from the rehearsal weights in {hf_cache}: {attrs}")
        if not bool(torch.from_numpy(store["embedding"].values).isfinite().all()):
            raise RuntimeError("the store holds non-finite embeddings")
        spec = cfg["models"][model]
        precision = spec["precision"] if self.device.type == "cuda" else f"{spec['precision']} on CUDA, fp32 here"
        what = (f"embed stage {dataset} x {model} ({spec['library']}:{spec['arch']}, {precision}, "
                f"{attrs['input_size'][0]} px): {n_img} images x {n_cond} conditions, batch "
                f"{cfg['embed']['batch_size']}, weights by pretrained tag from the rehearsal hub cache "
                f"(prepare + weights {prep_s:.1f} s, fetch {fetch_s:.1f} s, embed {embed_s:.1f} s incl. model load)")
        return Result(f"{_num(n_img * n_cond / embed_s)} images x conditions/s", what=what)

    # -- step 2 ---------------------------------------------------------------------------------------------------
    @functools.cached_property
    def encoder(self):
        from embedrobust.models import create_encoder

        spec = {"library": "open_clip", "arch": self.size.arch, "pretrained": None, "precision": "bf16",
                "image_size": self.side}
        return create_encoder(spec, device=self.device)

    def _bare_forward_ms(self) -> float:
        model = self.encoder.model
        x = torch.randn(self.batch, 3, self.side, self.side, device=self.device)

        def forward():
            with torch.inference_mode(), _autocast(self.device):
                return model.encode_image(x)

        return best_ms(forward, self.device, self.size.reps) / self.batch

    def _embed_path_ms(self) -> float:
        from embedrobust.config import CLEAN
        from embedrobust.embed.run import embed_conditions

        enc = self.encoder
        u8 = _host_photos(self.batch, self.side)
        if self.device.type == "cuda":
            u8 = u8.pin_memory()  # the stage's DataLoader pins its batches on CUDA

        def batch():
            # run_embed's per-batch path for the clean condition; embed_conditions returns on the host
            images = u8.to(self.device, non_blocking=True).float().div_(255.0)
            return embed_conditions(enc, images, [CLEAN], [None], [None])

        return best_ms(batch, self.device, self.size.reps) / self.batch

    def forward_rows(self) -> None:
        shape = f"batch {self.batch} x {self.side} px, {self._precision()}, best of {self.size.reps}"
        self.row("2", f"bare forward: open_clip {self.size.arch} encode_image on a random device tensor, {shape}",
                 lambda: Result(f"{_num(1000 / self.bare_forward_ms())} img/s ({_num(self.bare_forward_ms())} ms/img)"))
        self.row("2", f"embed path, clean condition: uint8 host batch -> device -> Encoder.encode_image (preprocess "
                 f"+ forward) -> host, {shape}",
                 lambda: Result(f"{_num(1000 / self.embed_path_ms())} img/s ({_num(self.embed_path_ms())} ms/img)"))

        def ratio() -> Result:
            r = self.bare_forward_ms() / self.embed_path_ms()
            return Result(f"{r:.3f}", f">= {RATIO_TARGET}", r >= RATIO_TARGET)

        self.row("2", "ratio: embed path img/s / bare forward img/s", ratio)

    # -- step 3 ---------------------------------------------------------------------------------------------------
    def perturb_rows(self, grid: list[str]) -> None:
        x = _memo(lambda: device_photos(self.batch, self.device, self.side))
        gen = torch.Generator(device=self.device).manual_seed(0)
        times: dict[str, float] = {}
        for name in [*grid, *(n for n in NAMES if n not in grid)]:
            def one(name=name) -> Result:
                ms = times[name] = perturb_ms(name, x(), self.size.severity, gen, self.size.reps)
                return Result(f"{_num(ms)} ms/img ({_num(ms / self.bare_forward_ms())} x forward)")

            where = "study grid" if name in grid else "registry, not in the study grid"
            self.row("3", f"{name} ({where}): severity {self.size.severity}, batch {self.batch} x {self.side} px, "
                     f"best of {self.size.reps}", one)

        def mean() -> Result:
            missing = [n for n in grid if n not in times]
            if missing:
                raise RuntimeError(f"no time for {', '.join(missing)}")
            ms = sum(times[n] for n in grid) / len(grid)
            frac = ms / self.bare_forward_ms()
            return Result(f"{_num(frac)} x forward ({_num(ms)} ms/img per condition)", "< 1 x forward", frac < 1)

        self.row("3", f"study grid mean ({len(grid)} families) against step 2's bare forward", mean)

    # -- step 4 ---------------------------------------------------------------------------------------------------
    def finetune_rows(self, runs: dict[str, dict]) -> None:
        from embedrobust.finetune import METHODS, Trainer
        from embedrobust.finetune.peft import blocks
        from embedrobust.models import create_encoder

        images = _memo(lambda: _host_photos(self.size.ft_batch, self.side))
        for method in METHODS:
            def one(method=method) -> Result:
                train = next((r["train"] for r in runs.values() if r["method"] == method), None)
                if train is None:
                    raise RuntimeError(f"no {method} run in the study's fine-tuning sweep")
                enc = create_encoder({"library": "open_clip", "arch": self.size.arch, "pretrained": None,
                                      "image_size": self.side}, device=self.device)
                tb = train["train_blocks"]
                # the study trains the last 4 blocks; the tiny CLIP has 2
                tb = None if tb is None else min(int(tb), len(blocks(enc)))
                trainer = Trainer(enc, {**train, "batch_size": self.size.ft_batch, "steps": 2, "checkpoint_every": 0,
                                        "train_blocks": tb})
                try:
                    trainer.train_step(images())  # warm-up: optimiser state, kernels, allocator
                    sync(self.device)
                    if self.device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(self.device)
                    t = time.perf_counter()
                    terms = trainer.train_step(images())
                    sync(self.device)
                    seconds = time.perf_counter() - t
                    if not all(math.isfinite(v) for v in terms.values()):
                        raise RuntimeError(f"non-finite loss terms {terms}")
                    blk = "all blocks" if tb is None else f"last {tb} blocks"
                    return Result(f"{_num(seconds)} s/step; {_peak_memory(self.device)}",
                                  what=f"fine-tune {method}: one step of open_clip {self.size.arch}, batch "
                                       f"{self.size.ft_batch} x {self.side} px, {blk}, {train['views']} views, "
                                       f"{self._precision() if train['amp'] else 'fp32'}")
                finally:
                    del trainer, enc
                    _free(self.device)

            self.row("4", f"fine-tune {method}: one step of open_clip {self.size.arch}, batch {self.size.ft_batch}",
                     one)


def _study_parts() -> tuple[list[str], dict[str, dict]]:
    """The study grid's families and, per method, a fine-tuning run of its sweep (trainer config as the
    finetune stage resolves it)."""
    from embedrobust.config import finetune_runs, merge_configs, read_config
    from embedrobust.finetune import METHODS

    raw = read_config(STUDY)
    base = raw["finetune"]["base"]
    base = "clip-vit-b16" if "clip-vit-b16" in base else base[0]
    runs = finetune_runs(merge_configs(raw, {"finetune": {"base": [base], "methods": list(METHODS)}}))
    return list(raw["perturbations"]["families"]), runs


def _pair(text: str) -> tuple[str, str]:
    dataset, sep, model = text.partition(":")
    if not (dataset and sep and model):
        raise argparse.ArgumentTypeError(f"expected DATASET:MODEL, got {text!r}")
    return dataset, model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--batch", type=int, help="batch of steps 2 and 3 (default: full 256, tiny 8)")
    ap.add_argument("--pair", type=_pair, metavar="DATASET:MODEL",
                    help="step 1's pair of config/full_study.yaml (default: full imagenet:clip-vit-b16, "
                         "tiny imagenet:dinov2-vit-s14)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_suite.md")
    ap.add_argument("--hf-cache", type=Path,
                    default=Path(os.environ.get("EMBEDROBUST_REHEARSAL_CACHE",
                                                Path.home() / ".cache" / "embedrobust-rehearsal")) / "hf",
                    help="hub cache for the generated weights (default: the rehearsal tests' cache, so runs share "
                         "them)")
    ap.add_argument("--work", type=Path, help="keep step 1's rehearsal and project here (default: a temp dir)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    # huggingface_hub reads these once, at import (open_clip and timm import it): set them before anything does
    os.environ["HF_HUB_CACHE"] = str(args.hf_cache.resolve())
    os.environ["HF_HUB_OFFLINE"] = "1"

    suite = Suite(args, SIZES[args.size], device, args.out)
    pair = ":".join(args.pair or suite.size.pair)
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_suite-")))
        suite.row("1", f"embed stage of {STUDY.name} for {pair} through the rehearsal",
                  lambda: suite.embed_stage(work, args.hf_cache.resolve()))
        _free(device)
        suite.forward_rows()
        try:
            grid, runs = _study_parts()
        except Exception:  # noqa: BLE001 -- steps 3 and 4 then report it in their rows
            traceback.print_exc(file=sys.stderr)
            grid, runs = list(NAMES), {}
        suite.perturb_rows(grid)
        suite.__dict__.pop("encoder", None)  # step 4 builds one model per method; this one would only hold memory
        _free(device)
        suite.finetune_rows(runs)
    suite.write(done=True)
    print(suite.table(done=True))
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
