"""``embedrobust``: one command per pipeline stage, plus registry listings.

Each stage takes either ``--params FILE`` with ``--dataset``/``--model`` (or ``--all``), or ``--stage-config JSON``,
the exact subset of the config that Snakemake passes (see ``config.stage_config``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

from .errors import EmbedRobustError

STAGES = ("fetch", "finetune", "embed", "text", "metrics", "downstream", "regression", "fetch_dense", "dense",
          "task_attack", "text_robustness", "report")
PER_DATASET = {"fetch", "regression", "fetch_dense"}
PER_MODEL = {"embed", "text", "metrics", "downstream", "dense", "task_attack", "text_robustness"}
# Stages whose datasets and models come from their own section (dense, task_attack), not from datasets x models.
PLANNED = {"fetch_dense": "dense", "dense": "dense", "task_attack": "task_attack"}
# Stages that compute without torch (numpy, scikit-learn, statsmodels, matplotlib): --threads has nothing to set
# there, and importing torch to set it would add seconds to every such job.
NO_TORCH = {"downstream", "regression", "report"}
# Stages that import torch only after opening their input, and set its threads then (--threads passed on).
LATE_TORCH = {"metrics"}
# Stages that split their work over forked worker processes (embedrobust.forked): --threads is their number.
WORKERS = {"regression", "report"}


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
        if stage in PER_DATASET | PER_MODEL:
            s.add_argument("--dataset", help="dataset name (a key of params datasets, or of dense.datasets for the "
                                             "dense stages)")
            s.add_argument("--all", action="store_true", help="every dataset (and model) in params")
        if stage in PER_MODEL:
            s.add_argument("--model", help="model name (a key of params models, or a fine-tuned model's name)")
        if stage == "finetune":
            s.add_argument("--model", help="fine-tuned model name, {base}-ft-{method}-a{alpha} (default: all)")
            s.add_argument("--all", action="store_true", help="every fine-tuned model of the sweep (the default)")
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
    """Stage configs for the selected datasets/models."""
    from .config import all_models, dense_plan, finetune_runs, stage_config, task_attack_plan

    stage = args.command
    if stage == "report":
        return [stage_config(config, stage)]
    if stage == "finetune":
        runs = finetune_runs(config)
        return [stage_config(config, stage, model=m) for m in _selected("fine-tuned model", args.model, args.all, runs)]
    if stage in PLANNED:
        plan = (dense_plan if PLANNED[stage] == "dense" else task_attack_plan)(config)
        known_datasets = dict.fromkeys(plan["datasets"])
        known_models = dict.fromkeys(plan["models"])
    else:
        known_datasets, known_models = config["datasets"], all_models(config)
    datasets = _selected("dataset", args.dataset, args.all, known_datasets)
    if stage in PER_DATASET:
        return [stage_config(config, stage, dataset=d) for d in datasets]
    models = _selected("model", args.model, args.all, known_models)
    cfgs = [stage_config(config, stage, dataset=d, model=m) for d, m in itertools.product(datasets, models)]
    return [c for c in cfgs if c is not None]  # None: the stage does not apply (text for a non-CLIP model)


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
    if args.command in stages.DECLARED_DIRS:
        stages.DECLARED_DIRS[args.command](args.root).mkdir(parents=True, exist_ok=True)
    for cfg in cfgs:
        if args.command == "embed":
            stages.embed(cfg, args.root, progress=not args.no_progress)
        elif args.command in WORKERS:
            workers = args.threads  # 0: every CPU the process may use (the stage counts them)
            if args.command == "report":
                stages.report(cfg, args.root, args.out, workers=workers)
            else:
                stages.regression(cfg, args.root, workers=workers)
        elif args.command in LATE_TORCH:
            getattr(stages, args.command)(cfg, args.root, threads=args.threads)
        else:
            getattr(stages, args.command)(cfg, args.root)


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
