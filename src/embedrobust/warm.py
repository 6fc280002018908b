"""A warm interpreter for local workflow runs: stage jobs fork from one process that imported everything once.

Every Snakemake job is a fresh ``python -m embedrobust <stage>``, and most of a small job is import time (torch,
torchvision through ``torch._dynamo``, open_clip, timm, pandas, statsmodels, reportlab: 5 to 13 s on 2 cores).
For a local run the Snakefile starts this server (``onstart``); it imports the libraries once and waits on a Unix
socket. A job's ``python -m embedrobust`` connects, hands over its argv, working directory, environment and its
stdin / stdout / stderr file descriptors, and the server forks a child that runs the stage exactly as the job
would have, writing to the job's own log files; the job's process waits and exits with the child's status.
Snakemake still sees one process per job with the job's exit status, so its rerun, log and benchmark rules are
unchanged (a benchmark then measures the child's wall time through its waiting client).

What keeps a forked stage identical to a fresh one:
  - the child runs the same code: a request is refused when any ``embedrobust`` source file changed since the
    server started, when the interpreter differs, or when the job's environment differs from the server's in
    anything but :data:`VOLATILE` (libraries read variables such as ``HF_HUB_OFFLINE`` at import time);
  - the server computes nothing before it forks: no torch op (so no OpenMP thread pool is inherited) and no CUDA
    call (CUDA cannot be initialised in a child of a process that initialised it);
  - the server is single-threaded: one selector loop, children reaped with ``waitpid``;
  - the child resets what the server's imports cached from its own environment (the temp directory).

A refused or failed connection means the job runs in its own process as before, so nothing depends on the server:
remote executors (SLURM jobs run on other nodes and never see the socket), ``EMBEDROBUST_WARM=0``, and any
mismatch fall back silently. The server exits when Snakemake ends (``onsuccess`` / ``onerror``), when the
Snakemake process that started it is gone, or after :data:`IDLE_S` without a request.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

ENV_SOCKET = "EMBEDROBUST_WARM_SOCKET"  # set by the Snakefile for the jobs of a local run
ENV_SWITCH = "EMBEDROBUST_WARM"  # "0": never start a server
# Thread counts Snakemake sets per job (its `threads`). Libraries read them when they load, so the child applies
# the job's values to the loaded thread pools (threadpoolctl, torch) instead, as a fresh process would have them.
THREAD_VARS = frozenset({"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                         "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"})
# Variables that differ between a job and the workflow process without changing what any import computed.
VOLATILE = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "TMPDIR", "TEMP", "TMP", "TEMPDIR"}) | THREAD_VARS
# Imported once by the server; a job imports anything else it needs itself.
PRELOAD = ("numpy", "pandas", "pyarrow.parquet", "scipy.optimize", "sklearn.linear_model", "sklearn.neighbors",
           "statsmodels.api", "statsmodels.formula.api", "zarr", "xarray", "PIL.Image", "torch", "torchvision",
           "open_clip", "timm", "safetensors.torch", "matplotlib.pyplot", "seaborn", "reportlab.platypus",
           "svglib.svglib", "embedrobust.stages", "embedrobust.config", "embedrobust.embed.run",
           "embedrobust.models", "embedrobust.downstream", "embedrobust.metrics", "embedrobust.regression",
           "embedrobust.report")
IDLE_S = 1800.0
READY_S = 120.0  # how long a job waits for a server that is still importing before it runs by itself
_HEADER = struct.Struct("!I")


def code_stamp(package: Path | None = None, files: str = "*.py") -> str:
    """The state of the package's files matching ``files`` (default: embedrobust's sources): path, size and mtime
    of every one, byte code left out."""
    h = hashlib.sha256()
    for p in sorted(Path(package or Path(__file__).resolve().parent).rglob(files)):
        if p.is_file() and "__pycache__" not in p.parts:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def env_stamp(env: dict) -> str:
    """The environment as imports see it: every variable but :data:`VOLATILE`."""
    kept = sorted((k, v) for k, v in env.items() if k not in VOLATILE)
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


def interpreter() -> str:
    """The interpreter and its environment (a venv's python resolves to the system binary: the prefix tells)."""
    return f"{os.path.realpath(sys.executable)}|{sys.prefix}"


def socket_path(project: Path, pid: int) -> str:
    """A short socket path for one workflow process (AF_UNIX paths are limited to ~100 bytes)."""
    tag = hashlib.sha256(f"{Path(project).resolve()}:{pid}".encode()).hexdigest()[:16]
    return os.path.join("/tmp", f"embedrobust-warm-{os.getuid()}-{tag}.sock")


# -- wire format: a length-prefixed JSON message, file descriptors alongside the request ---------------------------
def _send(sock: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(payload)


def _recv(sock: socket.socket, with_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (None where the peer closed first) and up to ``with_fds`` received descriptors."""
    fds: list[int] = []
    buf = b""
    while len(buf) < _HEADER.size:
        if with_fds and not fds:
            chunk, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(with_fds * array.array("i").itemsize))
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[: len(data) - (len(data) % a.itemsize)])
                    fds.extend(a)
        else:
            chunk = sock.recv(4096)
        if not chunk:
            return None, fds
        buf += chunk
    (n,) = _HEADER.unpack(buf[: _HEADER.size])
    body = buf[_HEADER.size:]
    while len(body) < n:
        chunk = sock.recv(max(4096, n - len(body)))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body[:n]), fds


# -- client: the job's process -------------------------------------------------------------------------------------
def run_warm(argv: list[str]) -> int | None:
    """Run ``python -m embedrobust argv`` in a child of the warm server; its exit status, or None where no server
    takes the request (then the caller runs it itself)."""
    path = os.environ.get(ENV_SOCKET)
    if not path or os.environ.get(ENV_SWITCH) == "0":
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5.0)
        sock.connect(path)
        request = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "python": interpreter(),
                   "code": code_stamp()}
        _send(sock, request, [0, 1, 2])
        sock.settimeout(READY_S)  # a server still importing answers once it is ready
        reply, _ = _recv(sock)
    except OSError:
        sock.close()
        return None
    if not reply or not reply.get("ok"):
        sock.close()
        return None
    child = int(reply["pid"])

    def forward(signum, _frame):  # Snakemake stops a job by signalling its process: pass it on to the child
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    sock.settimeout(None)
    try:
        done, _ = _recv(sock)
    finally:
        sock.close()
    if done is None:  # the server went away: wait for the child, whose status is then unknown
        while _alive(child):
            time.sleep(0.2)
        print(f"embedrobust: the warm server stopped while it ran {' '.join(argv[:1])}; its exit status is lost. "
              "Rerun the job (EMBEDROBUST_WARM=0 runs jobs without the server).", file=sys.stderr)
        return 1
    code = int(done["exit"])
    if code < 0:  # the child was killed by a signal: end the same way, as the job's own process would have
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- server ----------------------------------------------------------------------------------------------------------
def _preload(log) -> None:
    import importlib

    t0 = time.monotonic()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional library missing here: the job imports what it needs itself
            log(f"preload {name}: {type(exc).__name__}: {exc}")
    log(f"preloaded {len(PRELOAD)} modules in {time.monotonic() - t0:.1f} s")


def _child(request: dict, fds: list[int], listener: socket.socket, conn: socket.socket, added: dict,
           run: Callable[[list[str]], int]) -> None:
    """In the forked child: become the job's process and run the stage (``run``: the CLI on the job's argv);
    never returns. ``added``: the variables the server's imports set, which the job's own imports would have set
    too."""
    code = 1
    try:
        listener.close()
        conn.close()
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**added, **request["env"]})
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        import tempfile

        tempfile.tempdir = None  # the job's TMPDIR, not the server's
        _apply_threads(request["env"])
        sys.argv = [sys.argv[0], *request["argv"]]
        code = run(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a crash outside main's own handling: the job's stderr shows it, the job fails
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code) & 0xFF)


def _apply_threads(env: dict) -> None:
    """The job's thread count (``OMP_NUM_THREADS``, which Snakemake sets with the others of
    :data:`THREAD_VARS`) on the BLAS / OpenMP pools and torch, which read it at load time in a fresh process."""
    n = env.get("OMP_NUM_THREADS", "")
    if not n.isdigit() or int(n) < 1:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))
    if "numexpr" in sys.modules:
        sys.modules["numexpr"].set_num_threads(int(n))


def serve(path: str, parent: int | None = None, idle: float = IDLE_S, log_file: str | None = None, *,
          run: Callable[[list[str]], int]) -> None:
    """Preload, then fork one child per request on the Unix socket ``path`` until idle, stopped or orphaned; a
    child runs ``run(argv)`` (``embedrobust warm`` passes the CLI, so that this module never imports it)."""
    out = open(log_file, "a", buffering=1) if log_file else sys.stderr  # noqa: SIM115 (lives as long as the server)

    def log(msg: str) -> None:
        out.write(f"[warm {time.strftime('%H:%M:%S')}] {msg}\n")

    before = dict(os.environ)  # the environment a job has: imports add variables of their own (torch, open_clip)
    code, env, python = code_stamp(), env_stamp(before), interpreter()
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)  # only this user's jobs
    # Listen before the preload: the first jobs queue here instead of importing everything beside it themselves.
    listener.listen(64)
    _preload(log)
    added = {k: v for k, v in os.environ.items() if k not in before}
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    last = time.monotonic()
    log(f"listening on {path}")
    try:
        while not stop:
            for _key, _ in sel.select(timeout=0.1):
                conn, _addr = listener.accept()
                conn.setblocking(True)
                conn.settimeout(5.0)
                try:
                    request, fds = _recv(conn, with_fds=3)
                except OSError:
                    conn.close()
                    continue
                last = time.monotonic()
                why = None
                if request is None or len(fds) != 3:
                    why = "incomplete request"
                elif request.get("python") != python:
                    why = f"another interpreter ({request.get('python')})"
                elif request.get("code") != code:  # the client stamped the sources as they are now
                    why = "the embedrobust sources changed since the server started"
                elif env_stamp(request.get("env", {})) != env:
                    theirs = request.get("env", {})
                    diff = sorted(k for k in set(theirs) | set(before) if k not in VOLATILE
                                  and theirs.get(k) != before.get(k))
                    why = f"another environment (differs in {', '.join(diff[:5])})"
                if why:
                    log(f"refused {' '.join((request or {}).get('argv', [])[:1])}: {why}")
                    _send(conn, {"ok": False, "why": why})
                    conn.close()
                    for fd in fds:
                        os.close(fd)
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(request, fds, listener, conn, added, run)
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                _send(conn, {"ok": True, "pid": pid})
                log(f"pid {pid}: {' '.join(request['argv'][:1])} in {request['cwd']}")
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is not None:
                    try:
                        _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                    except OSError:
                        pass
                    conn.close()
                last = time.monotonic()
            if parent is not None and not _alive(parent):
                log(f"the workflow process {parent} is gone")
                break
            if not children and time.monotonic() - last > idle:
                log(f"idle for {idle:.0f} s")
                break
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
        for pid in list(children):  # jobs still running finish on their own; their clients then see no status
            log(f"pid {pid} still running at exit")
        log("stopped")


# -- the workflow's side ---------------------------------------------------------------------------------------------
def start(project: Path, log_file: Path) -> str | None:
    """Start a server for this workflow process and point its jobs at it (``ENV_SOCKET``); its socket path, or
    None where ``EMBEDROBUST_WARM=0``."""
    import subprocess

    if os.environ.get(ENV_SWITCH) == "0":
        return None
    path = socket_path(project, os.getpid())
    os.environ[ENV_SOCKET] = path  # before the server starts: its environment must equal the jobs'
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "embedrobust", "warm", "--socket", path, "--parent",
                                 str(os.getpid()), "--log", str(log_file)], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, start_new_session=True)
    _started[path] = proc
    return path


def stop(path: str | None) -> None:
    """Stop the server :func:`start` started (jobs then run in their own processes)."""
    proc = _started.pop(path, None) if path else None
    os.environ.pop(ENV_SOCKET, None)
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:
        proc.kill()


_started: dict = {}
