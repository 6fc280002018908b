"""``embedrobust``: one command per pipeline stage, plus registry listings.

Each stage takes either ``--params FILE`` with ``--dataset``/``--model`` (or ``--all``), or ``--stage-config JSON``,
the exact subset of the config that Snakemake passes (see ``config.stage_config``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
from pathlib import Path

from . import manifest
from .errors import EmbedRobustError

STAGES = manifest.names()
# Stages that compute without torch (numpy, scikit-learn, statsmodels, matplotlib): --threads has nothing to set
# there, and importing torch to set it would add seconds to every such job.
NO_TORCH = {s.name for s in manifest.STAGES if s.torch == "none"}
# Stages that import torch only after opening their input, and set its threads then (--threads passed on).
LATE_TORCH = {s.name for s in manifest.STAGES if s.torch == "late"}
# Stages that split their work over forked worker processes (embedrobust.forked): --threads is their number.
WORKERS = {s.name for s in manifest.STAGES if s.workers}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="embedrobust", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        s = sub.add_parser(stage, help=f"run the {stage} stage")
        s.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
        s.add_argument("--stage-config", help="JSON stage config (as Snakemake passes it); overrides --params")
        s.add_argument("--root", type=Path, default=Path("."), help="project root holding data/ (default: .)")
        s.add_argument("--no-progress", action="store_true", help="no progress bar")
        if stage in WORKERS:
            s.add_argument("--threads", type=int, default=0, help="worker processes (default: every CPU this "
                                                                   "process may use; the output does not depend on it)")
        else:
            s.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
        st = manifest.stage(stage)
        if "dataset" in st.wildcards:
            s.add_argument("--dataset", help="dataset name (a key of params datasets, or of dense.datasets for the "
                                             "dense stages)")
        if "model" in st.wildcards:
            s.add_argument("--model", help=st.cli_help.get("model", "model name (a key of params models, or a "
                                                                    "fine-tuned model's name)"))
        if st.wildcards:
            s.add_argument("--all", action="store_true",
                           help=st.cli_help.get("all", "every dataset (and model) of the stage's plan"))
        s.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                       help="an input the workflow hands the job (repeatable); checked against the stage manifest")
        s.add_argument("--output", action="append", default=[], metavar="NAME=PATH",
                       help="an output the workflow hands the job (repeatable); checked against the stage manifest")
        if stage == "report":
            s.add_argument("--out", type=Path, default=Path("reports/final.pdf"))
    pl = sub.add_parser("perturb", help="perturbation registry")
    pl.add_argument("--list", action="store_true", required=True, help="print every perturbation and its grid")
    ml = sub.add_parser("models", help="model registry")
    ml.add_argument("--list", action="store_true", required=True)
    ml.add_argument("--library", choices=["open_clip", "timm"])
    ml.add_argument("--filter", default="", help="substring filter")
    v = sub.add_parser("validate", help="validate a params file and print the perturbation grid")
    v.add_argument("--params", type=Path, nargs="+", default=[Path("params.yaml")],
                   help="params file, or a study file followed by overlays (merged as Snakemake merges them)")
    v.add_argument("--json", action="store_true", help="print the resolved plan (datasets, models, ...) as JSON")
    sh = sub.add_parser("share", help="record dvc.lock for a finished Snakemake run and push it (DVC remote)")
    sh.add_argument("--configfile", type=Path, nargs="+", help="the run's --configfile files (default: params.yaml)")
    sh.add_argument("--root", type=Path, default=Path("."), help="project root (default: .)")
    sh.add_argument("--no-push", action="store_true", help="record dvc.lock only")
    w = sub.add_parser("warm", help="serve the stage jobs of a local workflow run from one warm interpreter (the "
                                    "Snakefile starts it; see embedrobust.warm)")
    w.add_argument("--socket", required=True, help="Unix socket to listen on")
    w.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    w.add_argument("--idle", type=float, default=None, help="exit after this many seconds without a request")
    w.add_argument("--log", default=None, help="the server's log file (default: stderr)")
    return p


def _plan(cfg: dict) -> dict:
    """What a config resolves to: the datasets, models (fine-tuned ones included) and stage plans it runs."""
    from .config import all_models, conditions, dense_plan, finetune_runs, task_attack_plan

    dense, ta = dense_plan(cfg), task_attack_plan(cfg)
    return {"datasets": sorted(cfg["datasets"]), "models": sorted(cfg["models"]),
            "finetuned": sorted(finetune_runs(cfg)), "all_models": sorted(all_models(cfg)),
            "conditions": [c.label for c in conditions(cfg)],
            "dense": {"datasets": sorted(dense["datasets"]), "models": sorted(dense["models"])},
            "task_attack": {"datasets": sorted(ta["datasets"]), "models": sorted(ta["models"]),
                            "eps": list(ta["eps"])}}


def _selected(kind: str, name: str | None, everything: bool, known: dict) -> list[str]:
    """All names in ``known`` (``--all`` or none given), or the one asked for, which must exist."""
    from .errors import unknown_name

    if everything or not name:
        return list(known)
    if name not in known:
        raise unknown_name(kind, name, list(known))
    return [name]


def _targets(args, config: dict) -> list[dict]:
    """Stage configs for the selected datasets/models (those of the stage's domain in the stage manifest)."""
    from .config import stage_config, stage_domain

    st = manifest.stage(args.command)
    datasets, models = stage_domain(config, st.domain)
    chosen = {}
    if "dataset" in st.wildcards:
        chosen["dataset"] = _selected("dataset", args.dataset, args.all, dict.fromkeys(datasets))
    if "model" in st.wildcards:
        kind = "fine-tuned model" if st.domain == "finetune" else "model"
        chosen["model"] = _selected(kind, args.model, args.all, dict.fromkeys(models))
    cfgs = [stage_config(config, st.name, **dict(zip(chosen, combo)))
            for combo in itertools.product(*chosen.values())]
    return [c for c in cfgs if c is not None]  # None: the stage does not apply (text for a non-CLIP model)


def _pairs(kind: str, given: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise EmbedRobustError(f"--{kind} {item!r}: expected NAME=PATH")
        out.append((name, value))
    return out


def _check_io(args, cfgs: list[dict]) -> None:
    """The paths a rule hands the job (``--input``/``--output``) are the ones the stage manifest gives that job:
    the stage reads and writes those, so a rule that disagrees would track files the stage never touches."""
    inputs, outputs = _pairs("input", args.input), _pairs("output", args.output)
    if not (inputs or outputs):
        return
    if len(cfgs) != 1:
        raise EmbedRobustError("--input/--output describe one job; give one dataset/model (or --stage-config)")
    st, cfg = manifest.stage(args.command), cfgs[0]
    wildcards = {w: cfg.get(w) for w in st.wildcards}
    expected = {k: str(v) for k, v in manifest.outputs(st.name, **wildcards).items()}  # relative to the root
    if st.name == "report":
        pdf = dict(outputs).get("pdf")
        if pdf is not None:
            args.out = Path(pdf)  # the rest is written beside the PDF
            expected = {k: os.path.relpath(Path(pdf).parent / Path(v).name, args.root) for k, v in expected.items()}
    for name, value in outputs:
        if expected.get(name) != os.path.relpath(value, args.root):
            raise EmbedRobustError(f"--output {name}={value}: the stage manifest gives {st.name}'s output "
                                   f"{name!r} as {expected.get(name)!r} for this job; pass the manifest's paths (the "
                                   f"rules of workflow/rules/stages.smk take theirs from it), or none")
    names = {i.name for i in st.inputs}
    for name, value in inputs:
        rel = os.path.relpath(value, args.root)
        if name not in names or not manifest.input_pattern(st.name, name, wildcards).fullmatch(rel):
            raise EmbedRobustError(f"--input {name}={value}: not an input {st.name} reads for this job (its "
                                   f"inputs are {', '.join(sorted(names)) or 'none'}; see embedrobust.manifest)")


def _run_stage(args) -> None:
    from . import stages
    from .config import load_params

    if args.threads and args.command not in NO_TORCH | LATE_TORCH:
        import torch

        torch.set_num_threads(args.threads)
    if args.stage_config:
        cfgs = [json.loads(args.stage_config)]
    else:
        cfgs = _targets(args, load_params(args.params, root=args.root))
    _check_io(args, cfgs)
    declared = manifest.declared_dirs().get(args.command)
    if declared:
        (args.root / declared).mkdir(parents=True, exist_ok=True)
    st, kwargs = manifest.stage(args.command), {}
    if st.progress:
        kwargs["progress"] = not args.no_progress
    if st.workers:
        kwargs["workers"] = args.threads  # 0: every CPU the process may use (the stage counts them)
    if st.torch == "late":
        kwargs["threads"] = args.threads
    if st.name == "report":
        kwargs["out"] = args.out
    run = getattr(stages, st.name)
    for cfg in cfgs:
        run(cfg, args.root, **kwargs)


def main(argv: list[str] | None = None, warm: bool = True) -> int:
    """The CLI. A stage command of a local workflow run goes to the warm server where one runs
    (:mod:`embedrobust.warm`; ``warm=False`` is the server's child running it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if warm and argv and argv[0] in STAGES:
        from .warm import run_warm

        code = run_warm(argv)
        if code is not None:
            return code
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command == "perturb":
            from .perturb import describe_registry

            print(describe_registry())
        elif args.command == "models":
            from .models import list_models

            names = [n for n in list_models(args.library) if args.filter in n]
            print("\n".join(names))
        elif args.command == "validate":
            from .config import conditions, dense_plan, finetune_runs, load_params, task_attack_plan

            cfg = load_params(args.params)
            if args.json:
                print(json.dumps(_plan(cfg), indent=1))
                return 0
            grid = conditions(cfg)
            print(f"{' + '.join(map(str, args.params))}: valid; {len(cfg['datasets'])} dataset(s), {len(cfg['models'])} model(s), "
                  f"{len(grid)} conditions:")
            print("  " + ", ".join(c.label for c in grid))
            runs = finetune_runs(cfg)
            if runs:
                print(f"{len(runs)} fine-tuned model(s), evaluated beside their base: " + ", ".join(runs))
            dense = dense_plan(cfg)
            if dense["datasets"]:
                print(f"dense tasks: {', '.join(dense['datasets'])} x {', '.join(dense['models'])}; "
                      f"{len(dense['conditions'])} conditions, task attack eps {dense['eps']}")
            ta = task_attack_plan(cfg)
            if ta["eps"]:
                print(f"task attack (PGD on the linear probe): {', '.join(ta['datasets'])} x "
                      f"{', '.join(ta['models'])}; eps {ta['eps']}")
        elif args.command == "share":
            from .share import share

            share(args.root, args.configfile, push=not args.no_push)
        elif args.command == "warm":
            from . import warm as _warm

            # the server's children run each job's command line through this CLI, without the server
            _warm.serve(args.socket, args.parent, args.idle or _warm.IDLE_S, args.log,
                        run=lambda job_argv: main(job_argv, warm=False))
        else:
            _run_stage(args)
    except EmbedRobustError as exc:
        print(f"embedrobust {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
