# Shared helpers: validated config, per-stage config subsets, wildcard constraints.
import os
import re
import sys
from pathlib import Path

# Jobs run `python -m embedrobust` from this checkout's src/, so a conda env with only the dependencies
# (--software-deployment-method conda) runs the same code as the virtual environment.
_SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, _SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p))

from embedrobust.plan import cached as _cached_plan, job_key
from embedrobust.config import canonical_json, stage_config
from embedrobust.paths import checkpoint_relpath

# One validation, with one clear error (the schema is src/embedrobust/schemas/params.schema.yaml), resolved into the
# plan once: the Snakefile is evaluated again by every dry run and every cluster job step, and those read the plan
# from .snakemake/ instead of importing torch, timm and open_clip to validate again (embedrobust.plan).
PLAN = _cached_plan(config, source="snakemake config (params.yaml)", cache_dir=Path(".snakemake") / "embedrobust-plan")
config.update(PLAN["config"])

DATASETS = PLAN["datasets"]
# The models of params and the fine-tuned ones (finetune section): the same stages evaluate both.
FINETUNED = PLAN["finetuned"]
MODELS = PLAN["models"]
# Dense tasks and task attacks: their own datasets x models (params sections dense, task_attack).
DENSE = PLAN["dense"]
TASK_ATTACK = PLAN["task_attack"]
# Text-side robustness of the CLIP models: its own datasets x models (params section text_robustness).
TEXT_ROBUSTNESS = PLAN["text_robustness"]


# Threads of the stages whose jobs are small (metrics, downstream, text, text_robustness, task_attack): half the
# cores, so two of them run side by side (each takes longer, the pair finishes sooner), and their bytes do not
# depend on the thread count (tested); embed, finetune and dense keep every core.
LIGHT_THREADS = max(1, workflow.cores // 2)


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"  # (?!) never matches: no names, no jobs


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    model=_alternatives(MODELS),


def stage_json(stage):
    """Rule params: the JSON of exactly what the stage reads, so Snakemake's params trigger reruns only it."""

    def get(wildcards):
        kw = {k: wildcards[k] for k in ("dataset", "model") if k in wildcards.keys()}
        planned = PLAN["stages"].get(job_key(stage, **kw))
        return planned if planned is not None else canonical_json(stage_config(config, stage, **kw))

    return get


def model_inputs(wildcards):
    """The fetched dataset, and the weights of a fine-tuned model."""
    inputs = {"index": f"data/datasets/{wildcards.dataset}/index.csv"}
    if wildcards.model in FINETUNED:
        inputs["weights"] = checkpoint_relpath(wildcards.model)
    return inputs


def dense_inputs(wildcards):
    """The fetched dense dataset, and the weights of a fine-tuned model."""
    inputs = {"index": f"data/dense_datasets/{wildcards.dataset}/index.csv"}
    if wildcards.model in FINETUNED:
        inputs["weights"] = checkpoint_relpath(wildcards.model)
    return inputs


def finetune_dataset(wildcards):
    return f"data/datasets/{FINETUNED[wildcards.model]['dataset']}/index.csv"


def has_text(model):
    return stage_json("text")({"dataset": DATASETS[0], "model": model}) != "null"


def downstream_inputs(wildcards):
    """The store, and the zero-shot class embeddings for CLIP models."""
    inputs = {"store": f"data/embeddings/{wildcards.dataset}/{wildcards.model}.zarr/zarr.json"}
    if has_text(wildcards.model):
        inputs["text"] = f"data/text/{wildcards.dataset}/{wildcards.model}.npz"
    return inputs


def text_robustness_inputs(wildcards):
    """The fetched dataset (class names), the image store (clean and cross-grid test images), fine-tuned weights."""
    return {**model_inputs(wildcards),
            "store": f"data/embeddings/{wildcards.dataset}/{wildcards.model}.zarr/zarr.json"}


# Local runs: stage jobs fork from one warm interpreter that imported torch, open_clip, timm, pandas and the rest
# once (embedrobust.warm), instead of each paying 5-13 s of imports. Same code, same environment, same bytes;
# remote executors, --touch and EMBEDROBUST_WARM=0 run every job in its own process.
from embedrobust import warm as _warm

_WARM = {}


onstart:
    if workflow.local_exec and not workflow.touch:
        _WARM["socket"] = _warm.start(Path(workflow.basedir), Path(".snakemake/embedrobust-warm.log"))


onsuccess:
    _warm.stop(_WARM.get("socket"))


onerror:
    _warm.stop(_WARM.get("socket"))
