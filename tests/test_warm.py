"""The warm server (embedrobust.warm): a stage run through it is the stage run in its own process, only sooner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedrobust import warm
from embedrobust.config import canonical_json, stage_config, validate

SRC = Path(__file__).resolve().parents[1] / "src"


def _env(**extra) -> dict:
    drop = (warm.ENV_SOCKET, warm.ENV_SWITCH, "PYTEST_CURRENT_TEST")  # pytest changes the last one per test
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": str(SRC), **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server started the way the Snakefile starts one; (socket, log, the environment of its jobs)."""
    tmp = tmp_path_factory.mktemp("warm")
    sock, log = str(tmp / "s.sock"), tmp / "warm.log"
    env = _env(**{warm.ENV_SOCKET: sock})
    proc = subprocess.Popen([sys.executable, "-m", "embedrobust", "warm", "--socket", sock, "--log", str(log),
                             "--parent", str(os.getpid())], env=env)
    deadline = time.monotonic() + 120
    while "listening" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    yield sock, log, env
    proc.terminate()
    proc.wait(timeout=20)


def _stage(args: list[str], cwd: Path, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embedrobust", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, **kw)


def _forks(log: Path) -> int:
    return log.read_text().count(": embed in") + log.read_text().count(": fetch in")


def test_a_stage_through_the_server_writes_the_same_bytes_as_in_its_own_process(server, tmp_path, tiny_config):
    sock, log, env = server
    cfg = validate(tiny_config)
    fetch = canonical_json(stage_config(cfg, "fetch", "digits"))
    embed = canonical_json(stage_config(cfg, "embed", "digits", "vit"))
    runs = {}
    cold = {k: v for k, v in env.items() if k != warm.ENV_SOCKET}
    for name, job_env in (("warm", {**env, "OMP_NUM_THREADS": "1"}), ("cold", {**cold, "OMP_NUM_THREADS": "1"})):
        root = tmp_path / name
        root.mkdir()
        before = _forks(log)
        for args in (["fetch", "--stage-config", fetch], ["embed", "--threads", "1", "--stage-config", embed]):
            proc = _stage([*args, "--root", str(root)], root, job_env)
            assert proc.returncode == 0, proc.stderr
        runs[name] = root
        assert _forks(log) - before == (2 if name == "warm" else 0)
    files = sorted(p.relative_to(runs["cold"]) for p in runs["cold"].rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(runs["warm"]) for p in runs["warm"].rglob("*") if p.is_file())
    for f in files:
        assert (runs["cold"] / f).read_bytes() == (runs["warm"] / f).read_bytes(), f


def test_the_jobs_exit_status_and_error_message_reach_the_job(server, tmp_path):
    sock, log, env = server
    bad = '{"dataset": "digits", "datasets": {"digits": {"source": "demo-digits", "n_per_class": -1}}, "seed": 0}'
    before = log.read_text().count(": fetch in")
    warm_run = _stage(["fetch", "--root", str(tmp_path), "--stage-config", bad], tmp_path, env)
    assert log.read_text().count(": fetch in") == before + 1
    cold = {k: v for k, v in env.items() if k != warm.ENV_SOCKET}
    cold_run = _stage(["fetch", "--root", str(tmp_path), "--stage-config", bad], tmp_path, cold)
    assert warm_run.returncode == cold_run.returncode != 0
    assert warm_run.stderr.splitlines()[-1] == cold_run.stderr.splitlines()[-1]


def test_a_job_in_another_environment_is_refused_and_runs_in_its_own_process(server, tmp_path, tiny_config):
    sock, log, env = server
    fetch = canonical_json(stage_config(validate(tiny_config), "fetch", "digits"))
    proc = _stage(["fetch", "--root", str(tmp_path), "--stage-config", fetch], tmp_path,
                  {**env, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0 and (tmp_path / "data/datasets/digits/index.csv").is_file()
    assert "refused fetch: another environment (differs in HF_HUB_OFFLINE)" in log.read_text()


def test_no_server_at_the_socket_means_the_job_runs_itself(tmp_path, tiny_config):
    fetch = canonical_json(stage_config(validate(tiny_config), "fetch", "digits"))
    proc = _stage(["fetch", "--root", str(tmp_path), "--stage-config", fetch], tmp_path,
                  _env(**{warm.ENV_SOCKET: str(tmp_path / "none.sock")}))
    assert proc.returncode == 0 and (tmp_path / "data/datasets/digits/index.csv").is_file()


def test_stopping_the_job_stops_its_child(server, tmp_path, tiny_config):
    sock, log, env = server
    # the child blocks in the stage: the index it writes goes through a FIFO that nobody reads
    out = tmp_path / "data/datasets/digits"
    out.mkdir(parents=True)
    os.mkfifo(out / "index.csv.tmp")
    fetch = canonical_json(stage_config(validate(tiny_config), "fetch", "digits"))
    job = subprocess.Popen([sys.executable, "-m", "embedrobust", "fetch", "--root", str(tmp_path), "--stage-config",
                            fetch], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while f"in {tmp_path}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(log.read_text().rsplit("pid ", 1)[1].split(":")[0])
    time.sleep(1.0)
    assert warm._alive(child) and job.poll() is None
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=20) == -signal.SIGTERM  # it ends as a job stopped by that signal would
    deadline = time.monotonic() + 20
    while warm._alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not warm._alive(child)


def test_the_server_stops_when_the_workflow_process_is_gone(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sock, log = str(tmp_path / "s.sock"), tmp_path / "warm.log"
    proc = subprocess.Popen([sys.executable, "-m", "embedrobust", "warm", "--socket", sock, "--log", str(log),
                             "--parent", str(parent.pid)], env=_env())
    deadline = time.monotonic() + 120
    while "listening" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    parent.kill()
    parent.wait()
    assert proc.wait(timeout=20) == 0
    assert "is gone" in log.read_text() and not os.path.exists(sock)


def test_a_changed_source_file_changes_the_code_stamp(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    before = warm.code_stamp(pkg)
    os.utime(pkg / "a.py", ns=(0, 10**9))
    assert warm.code_stamp(pkg) != before
