"""A small pool of math-verify worker processes with a hard deadline per item.

* Workers are plain subprocesses (``python -m svs_verl.verify._worker``), not ``multiprocessing``
  children, so starting one is safe from any thread (Ray actors run reward code in threads) and does not
  re-import the caller's ``__main__``.
* A worker that misses an item's deadline is killed and replaced; the item's verdict is ``timeout``.
* ``run`` may be called from many threads at once; calls share the workers under one lock.
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


class _Worker:
    def __init__(self) -> None:
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PKG_PARENT, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svs_verl.verify._worker", str(p2c_r), str(c2p_w)],
            pass_fds=(p2c_r, c2p_w), stdin=subprocess.DEVNULL, env=env, close_fds=True,
        )
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
    START_TIMEOUT_S = 120.0

    def __init__(self, size: int | None = None) -> None:
        self.size = size or int(os.environ.get("SVS_VERIFY_WORKERS", min(4, os.cpu_count() or 1)))
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self.replaced = 0  # workers killed for missing a deadline or dying

    def _ensure(self) -> None:
        for dead in [w for w in self._workers if w.proc.poll() is not None]:
            dead.kill()
            self._workers.remove(dead)
        while len(self._workers) < self.size:
            self._workers.append(_Worker())

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.replaced += 1
        self._workers.remove(worker)
        self._workers.append(_Worker())

    def warm_up(self) -> None:
        """Start the workers and wait until each has imported math-verify."""
        with self._lock:
            self._ensure()
            self._wait_ready(deadline=time.monotonic() + self.START_TIMEOUT_S)

    def _wait_ready(self, deadline: float) -> None:
        starting = [w for w in self._workers if not w.ready]
        while starting and time.monotonic() < deadline:
            for conn in wait([w.inp for w in starting], timeout=deadline - time.monotonic()):
                worker = next(w for w in starting if w.inp is conn)
                self._on_start_message(worker)
            starting = [w for w in self._workers if not w.ready]

    def _on_start_message(self, worker: _Worker) -> None:
        try:
            status, detail = worker.inp.recv()
        except (EOFError, OSError):
            status, detail = "failed", f"exit code {worker.proc.poll()}"
        if status == "ready":
            worker.ready = True
            return
        worker.kill()
        self._workers.remove(worker)
        raise RuntimeError(f"svs-verl verifier worker failed to start: {detail}")

    def run(self, items: list[tuple[str, str, bool]], timeout_s: float) -> list[tuple[str, str]]:
        """Check ``(gold, pred, is_full_text)`` items; each gets at most ``timeout_s`` of a worker's time."""
        results: list[tuple[str, str] | None] = [None] * len(items)
        if not items:
            return []
        with self._lock:
            self._ensure()
            pending = deque(range(len(items)))
            busy: dict[Connection, tuple[_Worker, int, float]] = {}
            start_deadline = time.monotonic() + self.START_TIMEOUT_S
            while pending or busy:
                for worker in self._workers:
                    if not pending:
                        break
                    if worker.ready and all(w is not worker for w, _, _ in busy.values()):
                        i = pending.popleft()
                        gold, pred, full = items[i]
                        try:
                            worker.out.send((gold, pred, full, timeout_s))
                        except (OSError, ValueError):
                            pending.appendleft(i)
                            self._replace(worker)
                            break
                        busy[worker.inp] = (worker, i, time.monotonic() + timeout_s)
                starting = [w for w in self._workers if not w.ready]
                if not busy and not starting:
                    self._ensure()
                    continue
                if not busy and time.monotonic() > start_deadline:
                    for i in pending:
                        results[i] = ("error", "verifier workers did not start in time")
                    break
                deadlines = [d for _, _, d in busy.values()]
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.5
                watched = list(busy) + [w.inp for w in starting]
                for conn in wait(watched, timeout=wait_s):
                    if conn in busy:
                        worker, i, _ = busy.pop(conn)
                        try:
                            results[i] = conn.recv()
                        except (EOFError, OSError):
                            results[i] = ("error", "verifier worker died")
                            self._replace(worker)
                    else:
                        worker = next(w for w in starting if w.inp is conn)
                        try:
                            self._on_start_message(worker)
                        except RuntimeError as exc:
                            if not any(w.ready for w in self._workers):
                                for i in pending:
                                    results[i] = ("error", str(exc))
                                pending.clear()
                            log.error("%s", exc)
                now = time.monotonic()
                for conn, (worker, i, deadline) in list(busy.items()):
                    if now >= deadline:
                        busy.pop(conn)
                        results[i] = ("timeout", f"no verdict within {timeout_s:g} s")
                        self._replace(worker)
        return [r if r is not None else ("error", "not checked") for r in results]

    def close(self) -> None:
        with self._lock:
            for worker in self._workers:
                try:
                    worker.out.send(None)
                except (OSError, ValueError):
                    pass
                worker.kill()
            self._workers.clear()


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool() -> VerifierPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = VerifierPool()
            atexit.register(_POOL.close)
        return _POOL
