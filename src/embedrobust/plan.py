"""The resolved workflow plan: a config validated once, with every job's stage config, memoized on disk.

``resolve(config)`` validates a raw config (``config.validate``) and computes what the workflow reads from it: the
dataset and model sets of each stage and, for every job (stage x dataset x model), the canonical JSON of its
``stage_config`` (the rules' ``params``). Validation needs the registries (perturbations, fine-tuning methods,
open_clip's and timm's architectures), so it imports torch, torchvision, timm and open_clip: 5 to 10 s on 2 cores.
Snakemake evaluates the Snakefile on every invocation: each dry run, ``--touch``, and on a cluster every job (the
job step runs Snakemake again). ``cached(config, source, cache_dir)`` therefore stores the plan under a key of
everything it depends on, and later evaluations read it without importing any of those libraries:

- the raw config itself (canonical JSON);
- the package's files (path, size and modification time of every source, schema and asset file);
- the interpreter and the versions of the libraries whose registries validation reads;
- the working directory (relative paths are read from it).

A plan holds only successes: an invalid config is validated, and refused, every time. Input paths (datasets,
checkpoints) are checked again on every hit, since they may have gone since. ``EMBEDROBUST_PLAN_CACHE=0`` turns the
cache off. The plan is JSON through and through (a fresh plan is JSON round-tripped too), so a hit and a miss give
equal objects.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from pathlib import Path

from . import manifest
from .config import (
    all_models,
    canonical_json,
    check_paths,
    dense_plan,
    finetune_runs,
    stage_config,
    stage_domain,
    task_attack_plan,
    text_robustness_plan,
    validate,
)
from .manifest import job_key  # noqa: F401 (the Snakefile reads a job's stage config by this key)

# Distributions whose registries (architectures, tags) or behaviour validation reads.
LIBRARIES = ("torch", "torchvision", "timm", "open_clip_torch", "jsonschema", "numpy")
KEEP = 16  # plans kept per cache directory (the newest): one per recent config and code state


def _jobs(wildcards: tuple[str, ...], datasets: list[str], models: list[str]) -> list[dict[str, str]]:
    values = {"dataset": datasets, "model": models}
    return [dict(zip(wildcards, combo)) for combo in itertools.product(*(values[w] for w in wildcards))]


def resolve(config: dict, source: str = "params") -> dict:
    """The plan of a raw config (validated here; ``config.validate`` raises its one clear error).

    Returns:
        ``{"config", "datasets", "models", "finetuned", "dense", "task_attack", "text_robustness", "stages"}``:
        the validated config with defaults, the sorted dataset and model names (fine-tuned and replicates
        included), the fine-tuning runs and the dense / task-attack / text-robustness plans (as ``config``'s
        functions of those names give them), and ``stages``: ``job_key`` -> canonical JSON of that job's
        ``stage_config`` (``"null"`` where the stage does not apply).
    """
    cfg = validate(config, source=source)
    datasets, models = sorted(cfg["datasets"]), sorted(all_models(cfg))
    finetuned, dense = finetune_runs(cfg), dense_plan(cfg)
    task_attack, text = task_attack_plan(cfg), text_robustness_plan(cfg)
    stages: dict[str, str] = {}
    for st in manifest.STAGES:  # every job of every stage, over the datasets and models of its domain
        ds_names, model_names = stage_domain(cfg, st.domain)
        for kw in _jobs(st.wildcards, sorted(ds_names), sorted(model_names)):
            stages[job_key(st.name, **kw)] = canonical_json(stage_config(cfg, st.name, **kw))
    plan = {"config": cfg, "datasets": datasets, "models": models, "finetuned": finetuned, "dense": dense,
            "task_attack": task_attack, "text_robustness": text, "stages": stages}
    return json.loads(canonical_json(plan))


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def cache_key(config: dict) -> str:
    """The key of ``config``'s plan as things are now (see the module docstring for what it covers)."""
    from .warm import code_stamp, interpreter

    state = {"config": config, "package": code_stamp(files="*"), "libraries": _versions(),
             "python": interpreter(), "cwd": os.getcwd()}
    return hashlib.sha256(canonical_json(state).encode()).hexdigest()


def cached(config: dict, source: str = "params", cache_dir: str | Path | None = None) -> dict:
    """``resolve(config)``, read from ``cache_dir`` where the same config was resolved in the same state before;
    written there otherwise (atomically: concurrent cluster job steps read whole files). ``cache_dir`` None, or
    ``EMBEDROBUST_PLAN_CACHE=0``, resolves every time."""
    if cache_dir is None or os.environ.get("EMBEDROBUST_PLAN_CACHE", "1") == "0":
        return resolve(config, source)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{cache_key(config)}.json"
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or unreadable: resolve afresh (and overwrite)
        plan = None
    if plan is not None:
        check_paths(plan["config"], source, Path.cwd())
        return plan
    plan = resolve(config, source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".plan-", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(canonical_json(plan))
    os.replace(tmp, path)
    old = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)[KEEP:]
    for p in old:
        p.unlink(missing_ok=True)
    return plan
