"""The stage manifest: every pipeline stage, once, as data.

A stage is recorded by what it is: its name, what it runs per (dataset, fine-tuned model, dataset x model, or once)
and over which plan (the study's datasets x models, the fine-tuning runs, the dense or task-attack or
text-robustness sections), its output and input path templates, the params sections it reads, the library packages
it runs, and how it uses threads and torch. Everything else that names stages is derived from here:

- the CLI's subcommands and options (``embedrobust.cli``);
- the artifact paths (``embedrobust.paths`` formats these templates) and the output directories DVC declares;
- the Snakemake rules (``workflow/rules/stages.smk`` defines one rule per stage from this list);
- ``dvc.yaml`` and the stage table of ``docs/ARCHITECTURE.md`` (written by ``python -m embedrobust.generate``;
  tests check both are current).

A new stage is an entry here and a function of the same name in ``embedrobust.stages``; its stage config is the
sections it reads unless ``config.stage_config`` says more (tests/test_manifest.py adds a toy stage that way).
This module imports nothing of the package: the Snakefile, the CLI and the generators read it cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: what a stage runs per: its jobs' wildcards
RUNS = {"dataset": ("dataset",), "model": ("model",), "dataset_model": ("dataset", "model"), "once": ()}
#: the plans a stage's datasets and models come from (``config.stage_domain`` resolves them)
DOMAINS = ("study", "finetune", "dense", "task_attack", "text_robustness")


@dataclass(frozen=True)
class Artifact:
    """One output of a stage. ``path`` is a template relative to the project root, with the stage's wildcards.

    ``marker``: a file inside the ``path`` directory that stands for it in Snakemake (a Zarr store's ``zarr.json``:
    a ``directory()`` output would put a timestamp file inside the Zarr hierarchy). ``directory``: the output is a
    directory Snakemake declares as such. ``report``: Snakemake ``report()`` keywords (the HTML report's entries).
    ``dvc_metric``: DVC lists it under ``metrics`` rather than ``outs``. ``dvc_note``: the comment dvc.yaml gives it.
    """

    name: str
    path: str
    marker: str = ""
    directory: bool = False
    report: dict | None = None
    dvc_metric: bool = False
    dvc_note: str = ""

    @property
    def dvc_path(self) -> str:
        """What DVC tracks for it: its stage's data/ directory (data/metrics), or the file itself (reports/)."""
        return "/".join(self.path.split("/")[:2]) if self.path.startswith("data/") else self.path

    @property
    def target(self) -> str:
        """The path Snakemake tracks (the marker file of a marked directory)."""
        return f"{self.path}/{self.marker}" if self.marker else self.path


@dataclass(frozen=True)
class Input:
    """One input of a stage: artifact ``artifact`` of stage ``stage``.

    ``each``: wildcards the input is expanded over, across the upstream stage's jobs (the others are the job's
    own). ``optional``: included only where the upstream job exists (a fine-tuned model's weights, a CLIP model's
    class embeddings). ``bind``: the upstream job's wildcards come from elsewhere (``"run_dataset"``: the dataset a
    fine-tuning run trains on).
    """

    name: str
    stage: str
    artifact: str
    each: tuple[str, ...] = ()
    optional: bool = False
    bind: str = ""


@dataclass(frozen=True)
class Stage:
    """One pipeline stage (see the module docstring). ``torch``: ``"none"`` (the stage never imports it), ``"late"``
    (after opening its input; the stage sets its threads), ``"early"`` (the CLI sets its threads first).
    ``workers``: ``--threads`` is its number of worker processes. ``threads``: the rule's, ``"all"`` the workflow's
    cores, ``"light"`` half of them, ``""`` one. ``gpu``: the rule asks for a GPU unless ``device: cpu``.
    ``progress``: the stage shows a progress bar (``--no-progress`` turns it off). ``persist``: DVC keeps its outputs when the stage reruns (it skips or resumes its own work). ``declared``: its
    output directory must exist even where it writes nothing (DVC declares it)."""

    name: str
    doc: str
    runs: str
    domain: str
    outputs: tuple[Artifact, ...]
    params: tuple[str, ...]
    packages: tuple[str, ...]
    inputs: tuple[Input, ...] = ()
    torch: str = "early"
    workers: bool = False
    threads: str = "light"
    priority: int = 0
    gpu: bool = False
    runtime: int = 0
    declared: bool = False
    persist: bool = False
    progress: bool = False
    dvc_args: tuple[str, ...] = ("--all",)
    cli_help: dict = field(default_factory=dict)

    @property
    def wildcards(self) -> tuple[str, ...]:
        return RUNS[self.runs]

    def output(self, name: str) -> Artifact:
        for a in self.outputs:
            if a.name == name:
                return a
        raise KeyError(f"stage {self.name!r} has no output {name!r}; it has {[a.name for a in self.outputs]}")

    @property
    def log(self) -> str:
        """Log file template (Snakemake's ``log:``); the benchmark is beside it under logs/benchmarks."""
        return "logs/" + "/".join([self.name, *(f"{{{w}}}" for w in self.wildcards)]) + ".log"

    @property
    def benchmark(self) -> str:
        return "logs/benchmarks/" + self.log.removeprefix("logs/").removesuffix(".log") + ".tsv"

    @property
    def out_dirs(self) -> list[str]:
        """What DVC tracks as this stage's outs: the data/ directory of its artifacts, or each report file."""
        return list(dict.fromkeys(a.dvc_path for a in self.outputs if not a.dvc_metric))


_GPU = {"gpu": True, "runtime": 240}
_WEIGHTS = Input("weights", "finetune", "weights", optional=True)
_INDEX = Input("index", "fetch", "index")
_STORE = Input("store", "embed", "store")
_TABLE = "{dataset}/{model}.parquet"
_REGRESSION_TABLES = ("fits", "binned", "predictions", "accuracy_drop", "bootstrap", "model_family",
                      "rank_correlation", "panel_fits", "seed_spread")

STAGES: tuple[Stage, ...] = (
    Stage("fetch", "the dataset: images and index.csv (splits, labels)", "dataset", "study",
          (Artifact("index", "data/datasets/{dataset}/index.csv"),),
          ("seed", "datasets"), ("data",), torch="early", threads=""),
    Stage("finetune", "one run of the fine-tuning sweep: model.pt, finetune.json, log.jsonl", "model", "finetune",
          (Artifact("weights", "data/models/{model}/model.pt",
                    dvc_note="persist: a run whose params hash matches its finetune.json is skipped, and a killed "
                             "run resumes from data/models/<model>/checkpoint/."),),
          ("seed", "seeds", "device", "datasets", "models", "perturbations", "finetune"), ("finetune", "models"),
          inputs=(Input("index", "fetch", "index", bind="run_dataset"),), threads="all", priority=2, **_GPU,
          declared=True, persist=True,
          cli_help={"model": "fine-tuned model name, {base}-ft-{method}-a{alpha} (default: all)",
                    "all": "every fine-tuned model of the sweep (the default)"}),
    Stage("embed", "embeddings under the perturbation grid (xarray / Zarr v3; built in .partial, renamed when "
                   "complete)", "dataset_model", "study",
          (Artifact("store", "data/embeddings/{dataset}/{model}.zarr", marker="zarr.json",
                    dvc_note="persist: DVC must not delete the stores before the stage runs, so a killed run resumes "
                             "and unchanged (dataset, model) stores are kept (the stage skips a store whose params "
                             "hash matches)."),),
          ("seed", "seeds", "device", "datasets", "models", "perturbations", "embed", "finetune"),
          ("embed", "perturb", "models", "data"), inputs=(_INDEX, _WEIGHTS), threads="all", priority=1, **_GPU,
          persist=True, progress=True, dvc_args=("--all", "--no-progress")),
    Stage("text", "zero-shot class embeddings (CLIP models only)", "dataset_model", "study",
          (Artifact("classes", "data/text/{dataset}/{model}.npz"),),
          ("seed", "seeds", "device", "models", "downstream.tasks", "downstream.zero_shot", "finetune"),
          ("downstream", "models"), inputs=(_INDEX, _WEIGHTS), declared=True),
    Stage("metrics", "per image x family: cosine, Euclidean, DivergenceRadius", "dataset_model", "study",
          (Artifact("table", "data/metrics/" + _TABLE),), ("perturbations",), ("metrics", "embed"),
          inputs=(_STORE,), torch="late"),
    Stage("downstream", "per image x condition x task outcome", "dataset_model", "study",
          (Artifact("table", "data/downstream/" + _TABLE),), ("seed", "seeds", "downstream"),
          ("downstream", "embed"), inputs=(_STORE, Input("classes", "text", "classes", optional=True)), torch="none"),
    Stage("regression", "performance on robustness: OLS fits, bootstrap, panels, spread across seeds", "dataset",
          "study",
          (Artifact("summary", "data/regression/{dataset}/summary.json"),
           *(Artifact(t, f"data/regression/{{dataset}}/{t}.csv") for t in _REGRESSION_TABLES)),
          ("seed", "seeds", "regression", "finetune"), ("regression",),
          inputs=(Input("metrics", "metrics", "table", each=("model",)),
                  Input("downstream", "downstream", "table", each=("model",))),
          torch="none", workers=True, threads="all"),
    Stage("fetch_dense", "dense dataset: images, masks or depth maps, index.csv, dense.json", "dataset", "dense",
          (Artifact("index", "data/dense_datasets/{dataset}/index.csv"),), ("seed", "dense.datasets"), ("data",),
          threads="", declared=True),
    Stage("dense", "dense head under the grid and SegPGD / DepthPGD", "dataset_model", "dense",
          (Artifact("table", "data/dense/" + _TABLE),),
          ("seed", "seeds", "device", "models", "perturbations", "finetune", "dense"), ("attack", "data", "models"),
          inputs=(Input("index", "fetch_dense", "index"), _WEIGHTS), threads="all", **_GPU, declared=True),
    Stage("task_attack", "linear probe under cross-entropy PGD", "dataset_model", "task_attack",
          (Artifact("table", "data/task_attack/" + _TABLE),),
          ("seed", "seeds", "device", "datasets", "models", "finetune", "downstream.linear_probe", "task_attack"),
          ("attack", "data", "models"), inputs=(_INDEX, _WEIGHTS), **_GPU, declared=True),
    Stage("text_robustness", "CLIP prompts under text perturbations: text DR, zero-shot, the image x text grid",
          "dataset_model", "text_robustness",
          (Artifact("store", "data/text_robustness/{dataset}/{model}.zarr", marker="zarr.json"),
           Artifact("table", "data/text_robustness/" + _TABLE),
           Artifact("regression", "data/text_robustness/{dataset}/{model}.regression", marker="summary.json")),
          ("seed", "seeds", "device", "datasets", "models", "finetune", "downstream.zero_shot", "regression",
           "text_robustness"), ("textperturb", "models"), inputs=(_INDEX, _WEIGHTS, _STORE), gpu=True,
          runtime=120, declared=True),
    Stage("report", "the PDF, its figures as SVG, metrics.json, the resolved config", "once", "study",
          (Artifact("pdf", "reports/final.pdf", report={"category": "Report", "labels": {"file": "final.pdf"}}),
           Artifact("metrics", "reports/metrics.json", dvc_metric=True,
                    dvc_note="cached (not `cache: false`): metrics.json is generated, git-ignored, and shared by dvc "
                             "push/pull like the rest of the results; `dvc metrics show/diff` read it all the same"),
           Artifact("config", "reports/config.resolved.yaml"),
           Artifact("figures", "reports/figures", directory=True,
                    report={"patterns": ["{section}/{name}.svg"], "category": "{section}",
                            "labels": {"figure": "{name}"}})),
          ("seed", "seeds", "device", "datasets", "models", "perturbations", "embed", "downstream", "regression",
           "finetune", "dense", "task_attack", "text_robustness", "report"), ("report",),
          inputs=(Input("regression", "regression", "summary", each=("dataset",)),
                  Input("metrics", "metrics", "table", each=("dataset", "model")),
                  Input("downstream", "downstream", "table", each=("dataset", "model")),
                  Input("stores", "embed", "store", each=("dataset", "model")),
                  Input("finetuned", "finetune", "weights", each=("model",)),
                  Input("dense", "dense", "table", each=("dataset", "model")),
                  Input("task_attack", "task_attack", "table", each=("dataset", "model")),
                  Input("text_robustness", "text_robustness", "table", each=("dataset", "model")),
                  Input("text_regression", "text_robustness", "regression", each=("dataset", "model"))),
          torch="none", workers=True, threads="all", dvc_args=()),
)

BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    """The stage called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; the stages are {', '.join(BY_NAME)}") from None


def names() -> tuple[str, ...]:
    return tuple(BY_NAME)


def path(stage_name: str, artifact: str, root: Path | str = ".", **wildcards: str) -> Path:
    """The artifact's path under ``root`` for one job (its directory for a marked one, e.g. the Zarr store)."""
    return Path(root) / stage(stage_name).output(artifact).path.format(**wildcards)


def outputs(stage_name: str, root: Path | str = ".", **wildcards: str) -> dict[str, Path]:
    """Every output of one job, as Snakemake tracks them (``Artifact.target``), under ``root``."""
    return {a.name: Path(root) / a.target.format(**wildcards) for a in stage(stage_name).outputs}


def relpath(stage_name: str, artifact: str, **wildcards: str) -> str:
    """An artifact's path relative to the project root, as text (the report's provenance lines name them); a
    wildcard not given reads ``<name>`` (``data/dense/shapes/<model>.parquet``)."""
    st = stage(stage_name)
    return st.output(artifact).path.format(**{w: wildcards.get(w, f"<{w}>") for w in st.wildcards})


def declared_dirs() -> dict[str, str]:
    """Stage -> the output directory that must exist even where the stage writes nothing (DVC declares it)."""
    return {s.name: s.out_dirs[0] for s in STAGES if s.declared}


def dvc_params() -> dict[str, list[str]]:
    """Stage -> the params sections it reads (DVC's params deps; Snakemake's params trigger reads the same)."""
    return {s.name: list(s.params) for s in STAGES}


# -- jobs, from a resolved plan (embedrobust.plan) -----------------------------------------------------------------
def job_key(stage_name: str, dataset: str | None = None, model: str | None = None) -> str:
    """The key of one job's stage config in a plan's ``stages``: ``stage/dataset/model`` (``-`` for none)."""
    return f"{stage_name}/{dataset or '-'}/{model or '-'}"


def job_index(planned: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """Stage -> the wildcards of each of its jobs that runs: the plan's keys whose stage config is not null."""
    out: dict[str, list[dict[str, str]]] = {s.name: [] for s in STAGES}
    for key, cfg in planned.items():
        name, ds, model = key.split("/")
        if cfg != "null" and name in out:
            values = {"dataset": ds, "model": model}
            out[name].append({w: values[w] for w in BY_NAME[name].wildcards})
    return out


def _bound(inp: Input, plan: dict, wildcards: dict) -> dict:
    if inp.bind == "run_dataset":
        return {"dataset": plan["finetuned"][wildcards["model"]]["dataset"]}
    if inp.bind:
        raise ValueError(f"unknown binding {inp.bind!r}")
    return {}


def inputs(stage_name: str, plan: dict, wildcards: dict, index: dict | None = None) -> dict[str, list[str]]:
    """One job's inputs, name -> paths (relative to the project root), from the plan's jobs (``index``: its
    ``job_index``, computed once by a caller that asks for many jobs)."""
    index = job_index(plan["stages"]) if index is None else index
    out: dict[str, list[str]] = {}
    for inp in stage(stage_name).inputs:
        up = stage(inp.stage)
        art = up.output(inp.artifact)
        fixed = {w: wildcards[w] for w in up.wildcards if w not in inp.each and w in wildcards}
        fixed.update(_bound(inp, plan, wildcards))
        matches = [j for j in index[inp.stage] if all(j.get(k) == v for k, v in fixed.items())]
        if not inp.each and not inp.optional and not matches:
            matches = [fixed]  # a required input no job makes: Snakemake names it as missing
        paths = [art.target.format(**j) for j in matches]
        if paths or inp.each:
            out[inp.name] = paths
    return out


def input_pattern(stage_name: str, name: str, wildcards: dict) -> re.Pattern:
    """What a path given for input ``name`` of one job may be: its template, the job's own wildcards fixed."""
    inp = next(i for i in stage(stage_name).inputs if i.name == name)
    template = stage(inp.stage).output(inp.artifact).target
    fixed = {} if inp.bind else {w: wildcards[w] for w in stage(inp.stage).wildcards
                                 if w not in inp.each and wildcards.get(w)}
    parts = re.split(r"\{(\w+)\}", template)
    rx = "".join(re.escape(p) if i % 2 == 0 else (re.escape(fixed[p]) if p in fixed else "[^/]+")
                 for i, p in enumerate(parts))
    return re.compile(rx)


# -- the stage table of docs/ARCHITECTURE.md -----------------------------------------------------------------------
def table() -> str:
    """The manifest as a Markdown table (docs/ARCHITECTURE.md holds it; a test checks it is current)."""
    per = {"dataset": "dataset", "model": "fine-tuned model", "dataset_model": "dataset x model", "once": "once"}
    rows = ["| stage | runs per | over | outputs | inputs (from stage) | params sections | packages |",
            "|---|---|---|---|---|---|---|"]
    for s in STAGES:
        outs = "<br>".join(f"`{a.target}`" for a in s.outputs)
        ins = ", ".join(f"{i.name} ({i.stage}{', optional' if i.optional else ''})" for i in s.inputs) or "-"
        rows.append(f"| `{s.name}` | {per[s.runs]} | {s.domain} | {outs} | {ins} | {', '.join(s.params)} | "
                    f"{', '.join(s.packages)} |")
    return "\n".join(rows) + "\n"
