# Shared helpers: the validated config resolved into the plan, and what each stage's rule reads from the stage
# manifest (src/embedrobust/manifest.py) and the plan: inputs, outputs, wildcard values, threads, resources.
import os
import re
import shlex
import sys
from pathlib import Path

# Jobs run `python -m embedrobust` from this checkout's src/, so a conda env with only the dependencies
# (--software-deployment-method conda) runs the same code as the virtual environment.
_SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, _SRC)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p))

from embedrobust.plan import cached as _cached_plan, job_key
from embedrobust.config import canonical_json, stage_config
from embedrobust import manifest as _manifest

# One validation, with one clear error (the schema is src/embedrobust/schemas/params.schema.yaml), resolved into the
# plan once: the Snakefile is evaluated again by every dry run and every cluster job step, and those read the plan
# from .snakemake/ instead of importing torch, timm and open_clip to validate again (embedrobust.plan).
PLAN = _cached_plan(config, source="snakemake config (params.yaml)", cache_dir=Path(".snakemake") / "embedrobust-plan")
config.update(PLAN["config"])

# Threads of the stages whose jobs are small (metrics, downstream, text, text_robustness, task_attack): half the
# cores, so two of them run side by side (each takes longer, the pair finishes sooner), and their bytes do not
# depend on the thread count (tested); embed, finetune and dense keep every core.
LIGHT_THREADS = max(1, workflow.cores // 2)


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"  # (?!) never matches: no names, no jobs


def stage_json(stage):
    """Rule params: the JSON of exactly what the stage reads, so Snakemake's params trigger reruns only it."""

    def get(wildcards):
        kw = {k: wildcards[k] for k in ("dataset", "model") if k in wildcards.keys()}
        planned = PLAN["stages"].get(job_key(stage, **kw))
        return planned if planned is not None else canonical_json(stage_config(config, stage, **kw))

    return get


_JOBS = _manifest.job_index(PLAN["stages"])


def stage_inputs(stage):
    """A job's inputs, name -> paths, from the stage manifest and the plan's jobs (embedrobust.manifest.inputs)."""
    return lambda wildcards: _manifest.inputs(stage, PLAN, dict(wildcards.items()), _JOBS)


def stage_outputs(st):
    """The stage's outputs as Snakemake declares them: directory() and report() where the manifest says."""
    out = {}
    for a in st.outputs:
        target = directory(a.target) if a.directory else a.target
        out[a.name] = report(target, **a.report) if a.report else target
    return out


def stage_constraints(st):
    """Each wildcard takes the values of the stage's jobs only (a dense dataset is not a study dataset)."""
    return {w: _alternatives(sorted({job[w] for job in _JOBS[st.name]})) for w in st.wildcards}


def stage_threads(st):
    return {"all": workflow.cores, "light": LIGHT_THREADS, "": 1}[st.threads]


def stage_resources(st):
    if not st.gpu:
        return {}
    return {"mem_mb": 8000, "gpu": lambda wc: 0 if config.get("device", "auto") == "cpu" else 1,
            "runtime": st.runtime or 240}


def thread_flag(st):
    """``--threads N`` for the stages that use it (torch's threads, or worker processes); none for the others."""
    return (lambda wildcards, threads: f"--threads {threads}") if st.threads else ""


def stage_io(st):
    """The job's inputs and outputs as the CLI takes them (``--input NAME=PATH``, ``--output NAME=PATH``): the
    stage checks them against the manifest, so a rule cannot track files the stage does not read or write. The
    inputs a stage gathers across many jobs (regression's and the report's) stay off the command line: a full study
    has thousands, and Linux caps one argument (the shell's command string) at 128 KiB."""
    gathered = {i.name for i in st.inputs if i.each}

    def io(wildcards, input, output):
        args = []
        for kind, files in (("input", input), ("output", output)):
            for name, value in files.items():
                if kind == "input" and name in gathered:
                    continue
                for path in [value] if isinstance(value, str) else value:
                    args += [f"--{kind}", shlex.quote(f"{name}={path}")]
        return " ".join(args)

    return io


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
