"""Worker processes for CPU-bound work one process cannot spread over both cores.

A worker is a plain `python -m synoforecast.lib.workers [module ...]` child: it imports the
named modules once, then serves jobs (a module-level function by module and name, and its
arguments, pickled) from stdin, answering each on stdout, until stdin closes. Not
multiprocessing: its spawn and forkserver start methods import the caller's main module in
every child (a script without a `__main__` guard cannot survive that), and fork would copy a
Dagster run process's threads and open connections. A worker whose parent dies sees its
stdin close and exits.

`run_split` is what callers use: the first jobs go to shared workers, the last one runs in
the calling process meanwhile, so two cores need one extra process, not two.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import pickle
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any


class WorkerError(RuntimeError):
    """A worker process failed a job or died."""


class WorkerProcess:
    """One child process serving jobs one at a time (see the module docstring)."""

    def __init__(self, preload: Sequence[str] = ()):
        self.preload = tuple(preload)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synoforecast.lib.workers", *self.preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, fn: Callable, *args: Any) -> None:
        try:
            pickle.dump((fn.__module__, fn.__qualname__, args), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"worker process {self.proc.pid} is gone (exit {self.proc.poll()}): {exc}") from None

    def result(self) -> Any:
        try:
            kind, value = pickle.load(self.proc.stdout)
        except EOFError:
            raise WorkerError(
                f"worker process {self.proc.pid} died (exit {self.proc.wait()}); see its error above"
            ) from None
        if kind == "error":
            raise WorkerError(f"worker process {self.proc.pid} failed: {value}")
        return value

    def close(self, kill: bool = False) -> None:
        """End the worker: close its stdin (it exits after the job in hand), or kill it."""
        if kill and self.alive:
            self.proc.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        try:
            self.proc.wait(timeout=None if kill else 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_shared: list[WorkerProcess] = []


def shared_workers(count: int, preload: Sequence[str] = ()) -> list[WorkerProcess]:
    """`count` live workers, started on first use (importing `preload`) and kept for the
    process's life: a run's cohorts, and the landing after them, share them. Starting returns
    at once, the workers import while the caller goes on; any worker runs any job (a module a
    worker has not imported yet is imported by its first job)."""
    _shared[:] = [w for w in _shared if w.alive]
    while len(_shared) < count:
        _shared.append(WorkerProcess(preload))
    return _shared[:count]


def start(n_jobs: int, preload: Sequence[str] = ()) -> None:
    """Start the workers a split over `n_jobs` processes needs (`n_jobs - 1`; none for 1), so
    they import `preload` while the caller prepares the work."""
    if n_jobs > 1:
        shared_workers(n_jobs - 1, preload)


@atexit.register
def close_shared() -> None:
    for worker in _shared:
        worker.close()
    _shared.clear()


def run_split(fn: Callable, jobs: Sequence[tuple], preload: Sequence[str] = ()) -> list:
    """`[fn(*job) for job in jobs]`, the jobs but the last on shared workers, the last here at the
    same time. A failed or dead worker raises WorkerError (its pool is rebuilt next time)."""
    if len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    workers = shared_workers(len(jobs) - 1, preload)
    try:
        for worker, job in zip(workers, jobs):
            worker.send(fn, *job)
        last = fn(*jobs[-1])
        return [worker.result() for worker in workers] + [last]
    except BaseException:
        for worker in workers:  # a half-read answer would be taken for the next job's
            worker.close(kill=True)
        raise


def _serve(preload: Sequence[str]) -> None:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write on the answer pipe
    for name in preload:
        importlib.import_module(name)
    while True:
        try:
            module, name, args = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            fn = importlib.import_module(module)
            for part in name.split("."):
                fn = getattr(fn, part)
            answer = ("ok", fn(*args))
        except Exception:
            answer = ("error", traceback.format_exc(limit=8))
        pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    _serve(sys.argv[1:])
