"""Share a finished run through DVC, whichever engine built it.

Snakemake writes no ``dvc.lock``, so after a Snakemake run ``dvc push`` finds nothing to push. ``share`` records
the lock for what Snakemake built, once Snakemake confirms that the outputs are current, and pushes. DVC reads
its parameters from ``params.yaml`` only, so a run of another config (``--configfile config/full_study.yaml``,
with or without a size overlay) is first written to ``params.yaml``: the lock and the params file then describe the
shared results together, and a clone that checks out both gets them with ``make pull``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import yaml

from .config import read_config, read_configs, validate
from .errors import ConfigError, DataError

log = logging.getLogger(__name__)
PARAMS = "params.yaml"
_PROFILE = ("--workflow-profile", "workflow/profiles/default")


def _run(cmd: list[str], root: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DataError(f"{what} failed ({' '.join(cmd[2:])}, exit {proc.returncode}):\n{tail}")
    return proc


def write_params(root: Path, configfiles: list[Path]) -> bool:
    """Make ``root/params.yaml`` hold the merged ``configfiles``; True when it changed."""
    raw = read_configs(configfiles)
    cfg = validate(raw, source=" + ".join(map(str, configfiles)))  # a bad config fails before anything is written
    raw = with_dvc_params(raw, cfg)
    params = root / PARAMS
    if params.is_file() and read_config(params) == raw:
        return False
    header = (f"# The config of the shared results, written by `embedrobust share` from {' + '.join(map(str, configfiles))}.\n"
              f"# DVC reads params.yaml: commit it with dvc.lock so that a clone can `make pull` these results.\n")
    tmp = params.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    tmp.replace(params)
    return True


def with_dvc_params(raw: dict, cfg: dict) -> dict:
    """``raw`` plus every params key that dvc.yaml's stages list (``config.DVC_PARAMS``) and ``raw`` lacks, from
    the validated ``cfg`` (schema defaults): DVC refuses a stage whose params are missing from params.yaml, and a
    study need not spell out the sections it leaves at their defaults."""
    import copy

    from .config import DVC_PARAMS

    out = copy.deepcopy(raw)
    for key in sorted({k for keys in DVC_PARAMS.values() for k in keys}):
        parts = key.split(".")
        node, source = out, cfg
        for i, part in enumerate(parts):
            if not isinstance(source, dict) or part not in source:
                break
            if part not in node:
                node[part] = copy.deepcopy(source[part])
                break
            if i < len(parts) - 1 and not isinstance(node[part], dict):
                break
            node, source = node[part], source[part]
    return out


def _empty_outputs(root: Path) -> None:
    """Create the output folders of dvc.yaml's stages that had no work in this config (a study without dense
    tasks writes no data/dense): DVC records them empty, where it would refuse a missing output."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        for out in stage.get("outs", []):
            path = root / (out if isinstance(out, str) else next(iter(out)))
            if not path.suffix and not path.exists():
                path.mkdir(parents=True)


def pending_jobs(root: Path) -> str:
    """Snakemake's dry-run summary for params.yaml, or '' when there is nothing to do."""
    proc = _run([sys.executable, "-m", "snakemake", *_PROFILE, "--cores", "1", "--dry-run", "reports/final.pdf"],
                root, "snakemake --dry-run")
    if "Nothing to be done" in proc.stdout:
        return ""
    stats = proc.stdout.split("Job stats:")[-1].split("Reasons:")[0]
    return stats.strip()


def share(root: Path, configfiles: list[Path] | None = None, push: bool = True) -> None:
    """Record ``dvc.lock`` for the current outputs and push them to the default DVC remote.

    Args:
        root: the project root (holds Snakefile, dvc.yaml, params.yaml).
        configfiles: the --configfile files of the run to share, in order; None for a run of params.yaml.
        push: push to the remote after recording the lock.

    Raises:
        DataError: when Snakemake still has jobs to run for this config (results older than params or code), or a
            dvc command fails.
    """
    root = Path(root)
    if configfiles:
        if write_params(root, [Path(c) for c in configfiles]):
            print(f"share: params.yaml now holds {' + '.join(map(str, configfiles))} (DVC reads its params there)",
                  file=sys.stderr)
    elif not (root / PARAMS).is_file():
        raise ConfigError(f"share: no {PARAMS} in {root}; pass the run's config with --configfile")
    todo = pending_jobs(root)
    if todo:
        raise DataError("share: the results are not current for this config; Snakemake would still run:\n"
                        f"{todo}\nFinish the run first (make demo, make full, make ssl, or snakemake with the same "
                        f"--configfile), then share.")
    _empty_outputs(root)
    _run([sys.executable, "-m", "dvc", "commit", "--force"], root, "dvc commit")
    if push:
        _run([sys.executable, "-m", "dvc", "push", "--quiet"], root, "dvc push")
    print("share: dvc.lock records the results" + (" and they are pushed" if push else "") +
          "; commit params.yaml and dvc.lock (git add params.yaml dvc.lock && git commit) so a clone can "
          "`make pull` them.", file=sys.stderr)
