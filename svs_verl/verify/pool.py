"""A small pool of math-verify worker processes with a hard deadline per item.

* Workers are plain subprocesses (``python -P -m svs_verl.verify._worker``, working directory the one
  svs_verl is imported from), not ``multiprocessing`` children, so starting one is safe from any thread (Ray
  actors run reward code in threads), does not re-import the caller's ``__main__``, and never imports a
  module from the caller's working directory (a planted ``math_verify.py`` or ``sympy.py``).
* A worker that misses an item's deadline is killed and replaced; the item's verdict is ``timeout``.
* ``run`` may be called from many threads at once; workers are checked out per item, so one slow item
  holds one worker and never the others' calls.
* Workers start lazily, on the first item the rule path cannot settle.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path

log = logging.getLogger(__name__)
_PKG_PARENT = str(Path(__file__).resolve().parents[2])


def worker_command(read_fd: int, write_fd: int) -> list[str]:
    """``python -P -m svs_verl.verify._worker``: ``-m`` alone puts the current directory first on
    ``sys.path``, so a ``math_verify.py`` or ``sympy.py`` where the user runs svs-verl would be imported.
    ``-P`` (Python >= 3.11) keeps it off; the worker also starts in ``_PKG_PARENT`` (the directory svs_verl
    itself is imported from), never the caller's working directory, which covers Python 3.10."""
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *safe, "-m", "svs_verl.verify._worker", str(read_fd), str(write_fd)]


def worker_env() -> dict[str, str]:
    """The caller's environment, with svs_verl's own parent directory first on ``PYTHONPATH`` (a source
    checkout works without an install), relative entries made absolute (the worker runs elsewhere), and no
    empty or ``.`` entry (the working directory, usually left by a sloppy ``PYTHONPATH=$PYTHONPATH:...``)."""
    env = dict(os.environ)
    entries = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != "."]
    env["PYTHONPATH"] = os.pathsep.join([_PKG_PARENT, *entries])
    return env


class _Worker:
    def __init__(self) -> None:
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        self.proc = subprocess.Popen(worker_command(p2c_r, c2p_w), pass_fds=(p2c_r, c2p_w), stdin=subprocess.DEVNULL,
                                     env=worker_env(), cwd=_PKG_PARENT, close_fds=True)
        os.close(p2c_r)
        os.close(c2p_w)
        self.out = Connection(p2c_w, readable=False)
        self.inp = Connection(c2p_r, writable=False)
        self.ready = False
        self.started = time.monotonic()

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # already gone
            pass
        for conn in (self.out, self.inp):
            try:
                conn.close()
            except OSError:
                pass


class VerifierPool:
    """Workers are checked out per item, so concurrent callers share them: a slow item ties up one worker,
    never the pool. A background thread per starting worker waits for its ready message."""

    START_TIMEOUT_S = 120.0
    MAX_START_FAILURES = 3  # in a row; then callers get an `error` verdict instead of a respawn loop

    def __init__(self, size: int | None = None) -> None:
        requested = size or int(os.environ.get("SVS_VERIFY_WORKERS", min(4, os.cpu_count() or 1)))
        self.size = max(1, requested)
        self._cond = threading.Condition()
        self._free: list[_Worker] = []
        self._alive = 0             # started or starting, not yet discarded
        self._start_failures = 0
        self.last_start_error = ""
        self.replaced = 0           # workers killed for missing a deadline or dying

    # -- worker lifecycle (all under self._cond) -----------------------------------------------------
    def _spawn(self) -> None:
        self._alive += 1
        threading.Thread(target=self._start_worker, name="svs-verify-start", daemon=True).start()

    def _start_worker(self) -> None:
        worker, error = None, ""
        try:
            worker = _Worker()
            if worker.inp.poll(self.START_TIMEOUT_S):
                status, detail = worker.inp.recv()
                error = "" if status == "ready" else str(detail)
            else:
                error = f"no ready message within {self.START_TIMEOUT_S:g} s"
        except Exception as exc:  # noqa: BLE001 - reported through the verdicts
            error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            if error:
                self._alive -= 1
                self._start_failures += 1
                self.last_start_error = error
                log.error("svs-verl verifier worker failed to start: %s", error)
                if worker is not None:
                    worker.kill()
            else:
                worker.ready = True
                self._start_failures = 0
                self._free.append(worker)
            self._cond.notify_all()

    def _acquire(self, deadline: float) -> _Worker | None:
        """A free worker, or None when none frees up (or starts) before ``deadline``."""
        with self._cond:
            while True:
                while self._free:
                    worker = self._free.pop()
                    if worker.proc.poll() is None:
                        return worker
                    worker.kill()  # died while idle
                    self._alive -= 1
                if self._start_failures >= self.MAX_START_FAILURES:
                    return None
                if self._alive < self.size:
                    self._spawn()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            self._free.append(worker)
            self._cond.notify_all()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._cond:
            self._alive -= 1
            self.replaced += 1
            if self._start_failures < self.MAX_START_FAILURES:
                self._spawn()  # replace it now: a loaded machine needs seconds to import math-verify
            self._cond.notify_all()

    def warm_up(self) -> None:
        """Start the workers and wait until each has imported math-verify."""
        deadline = time.monotonic() + self.START_TIMEOUT_S
        with self._cond:
            while self._alive < self.size:
                self._spawn()
            while len(self._free) < self._alive and self._start_failures < self.MAX_START_FAILURES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    # -- checking ------------------------------------------------------------------------------------
    def run(self, items: list[tuple], timeout_s: float) -> list[tuple]:
        """Check ``(gold, pred, is_full_text)`` or ``("pair", response, gold, extract)`` items (the worker's
        protocol); each gets at most ``timeout_s`` of a worker's time. Replies start ``(status, detail)``."""
        results: list[tuple[str, str] | None] = [None] * len(items)
        pending = deque(range(len(items)))
        busy: dict[Connection, tuple[_Worker, int, float]] = {}
        start_deadline = time.monotonic() + self.START_TIMEOUT_S
        while pending or busy:
            while pending:  # never wait for a worker while this call has items in flight
                worker = self._acquire(time.monotonic() if busy else start_deadline)
                if worker is None:
                    break
                i = pending.popleft()
                try:
                    worker.out.send((*items[i], timeout_s))
                except (OSError, ValueError):
                    pending.appendleft(i)
                    self._discard(worker)
                    continue
                busy[worker.inp] = (worker, i, time.monotonic() + timeout_s)
            if not busy:  # no worker could be had at all
                why = self.last_start_error or "no verifier worker became free in time"
                for i in pending:
                    results[i] = ("error", f"verifier workers unavailable: {why}")
                break
            wait_s = max(0.0, min(d for _, _, d in busy.values()) - time.monotonic())
            for conn in wait(list(busy), timeout=wait_s):
                worker, i, _ = busy.pop(conn)
                try:
                    results[i] = conn.recv()
                except (EOFError, OSError):
                    results[i] = ("error", "verifier worker died")
                    self._discard(worker)
                else:
                    self._release(worker)
            now = time.monotonic()
            for conn, (worker, i, deadline) in list(busy.items()):
                if now >= deadline:
                    busy.pop(conn)
                    results[i] = ("timeout", f"no verdict within {timeout_s:g} s")
                    self._discard(worker)
        return [r if r is not None else ("error", "not checked") for r in results]

    def close(self) -> None:
        with self._cond:
            for worker in self._free:
                try:
                    worker.out.send(None)
                except (OSError, ValueError):
                    pass
                worker.kill()
            self._alive -= len(self._free)
            self._free.clear()


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool() -> VerifierPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = VerifierPool()
            atexit.register(_POOL.close)
        return _POOL
