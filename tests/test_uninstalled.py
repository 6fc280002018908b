"""The conda route: `python -m embedrobust` from src/ on PYTHONPATH, with no installed package metadata.

Snakemake's conda environments hold the dependencies only and put this checkout's src/ on PYTHONPATH (see
workflow/rules/common.smk), so nothing may ask importlib.metadata for embedrobust itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from workflow_helpers import REPO

# Runs in a fresh interpreter: embedrobust's metadata is made missing, as in an environment that never installed it.
_NO_METADATA = textwrap.dedent("""
    import importlib.metadata as md, runpy, sys
    real_version, real_distribution = md.version, md.distribution
    def missing(fn):
        def call(name, *a, **k):
            if name.lower() == "embedrobust":
                raise md.PackageNotFoundError(name)
            return fn(name, *a, **k)
        return call
    md.version, md.distribution = missing(real_version), missing(real_distribution)
    sys.argv = ["embedrobust", *sys.argv[1:]]
    runpy.run_module("embedrobust", run_name="__main__", alter_sys=True)
""")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-c", _NO_METADATA, *args], cwd=REPO, env=env, capture_output=True,
                          text=True)


def test_the_cli_validates_params_without_installed_metadata():
    proc = _run("validate", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["datasets"] == ["digits"]


def test_store_provenance_names_the_version_without_installed_metadata():
    code = ("import importlib.metadata as md\n"
            "md.version = lambda n, v=md.version: (_ for _ in ()).throw(md.PackageNotFoundError(n)) "
            "if n == 'embedrobust' else v(n)\n"
            "from embedrobust.embed.run import package_versions\n"
            "import embedrobust\n"
            "assert package_versions()['embedrobust'] == embedrobust.__version__, package_versions()\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
