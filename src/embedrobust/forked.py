"""Independent pieces of one stage's CPU work in forked children: the report's figure conversions, the
regression's per-(model, task) fits.

Why fork and not a process pool: a child inherits the parent's memory (the drawn figure, the stage's tables), so
nothing is pickled on the way in; only each result comes back, pickled through a file (a pipe would block a child
whose result outgrows the pipe buffer while the parent is still busy drawing). Results are taken in submission
order and each piece computes exactly what it would inline, so the output does not depend on the number of
workers; ``workers <= 1`` runs every piece inline, as a plain call.

The stages that use it compute with numpy, statsmodels, matplotlib and reportlab and never start a thread pool
before forking (they are the ``NO_TORCH`` stages of the CLI).
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import tempfile
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any


class ChildError(RuntimeError):
    """A piece failed in its child; the message holds the child's traceback."""


class _Done:
    def __init__(self, value: Any):
        self.value = value

    def result(self) -> Any:
        return self.value


class _Forked:
    def __init__(self, pool: ForkPool, pid: int, path: str, what: str):
        self.pool, self.pid, self.path, self.what = pool, pid, path, what
        self._value: tuple | None = None

    def wait(self) -> None:
        if self._value is not None:
            return
        _, status = os.waitpid(self.pid, 0)
        self.pool._running.remove(self)
        try:
            with open(self.path, "rb") as f:
                self._value = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            self._value = (False, f"its child (pid {self.pid}) ended with status "
                                  f"{os.waitstatus_to_exitcode(status)} and no result")
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)

    def result(self) -> Any:
        self.wait()
        ok, value = self._value
        if not ok:
            raise ChildError(f"{self.what} failed in a worker process:\n{value}")
        return value


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class ForkPool:
    """At most ``workers`` pieces at once, each in a forked child; use as a context manager.

    ``preload``: modules the pieces import lazily, imported once in the parent before it first forks.
    ``submit(fn, *args)`` returns a handle whose ``result()`` is ``fn(*args)`` (the child's exception, with its
    traceback, is raised as :class:`ChildError`). Leaving the block waits for every child still running.
    """

    def __init__(self, workers: int, preload: tuple[str, ...] = ()):
        # no fork (Windows): every piece inline, as with one worker
        self.workers = max(1, int(workers or 1)) if hasattr(os, "fork") else 1
        # modules the pieces import lazily: imported once before the first fork, not again in every child
        self._preload = preload
        self._running: deque[_Forked] = deque()
        self._dir: str | None = None
        self._n = 0

    def __enter__(self) -> ForkPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, fn: Callable, *args, what: str = "a piece of work"):
        if self.workers <= 1:
            return _Done(fn(*args))
        while len(self._running) >= self.workers:
            self._running[0].wait()
        if self._dir is None:
            for name in self._preload:
                importlib.import_module(name)
            self._dir = tempfile.mkdtemp(prefix="embedrobust-fork-")
        self._n += 1
        path = os.path.join(self._dir, f"{self._n}.pkl")
        pid = os.fork()
        if pid == 0:  # the child: compute, write the result, leave without the parent's exit handlers
            code = 0
            try:
                try:
                    payload = (True, fn(*args))
                except BaseException:  # noqa: BLE001 (reported to the parent, which raises it)
                    payload, code = (False, traceback.format_exc()), 1
                tmp = path + ".tmp"
                with open(tmp, "wb") as f:
                    pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, path)
            except BaseException:  # noqa: BLE001
                code = 2
            finally:
                os._exit(code)
        handle = _Forked(self, pid, path, what)
        self._running.append(handle)
        return handle

    def close(self) -> None:
        while self._running:
            self._running[0].wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
