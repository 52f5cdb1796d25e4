"""Memory of a whole run: the sum of PSS over a process and all its descendants, sampled in the background.

A verl run is ~35 processes (Ray's GCS and raylet, TaskRunner, TransferQueue, FSDP workers, the vLLM server
and its engine core, agent-loop and reward workers), all descendants of the ``main_ppo`` process. RSS counts
shared pages (torch's libraries, shared-memory weight buffers) once per process; PSS splits each shared page
among the processes that map it, so the sum of PSS is the machine memory the run really holds. Linux only
(``/proc/<pid>/smaps_rollup``); elsewhere the figures are ``None``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = [t.name for t in task_dir.iterdir()]
    except OSError:
        return out
    for tid in tids:
        try:
            out += [int(c) for c in (task_dir / tid / "children").read_text().split()]
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children files of all its threads, recursively)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += _children(p)
    return seen


def pss_bytes(pid: int) -> int:
    """PSS of one process in bytes (0 if it is gone or unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_pss_bytes(pid: int) -> tuple[int, int]:
    """(sum of PSS over the process tree in bytes, number of processes)."""
    pids = descendants(pid)
    return sum(pss_bytes(p) for p in pids), len(pids)


class PeakMemory:
    """Samples the tree's summed PSS every ``interval_s`` until ``stop()``; ``peak_bytes`` / ``peak_procs``."""

    def __init__(self, pid: int, interval_s: float = 5.0):
        self.pid = pid
        self.interval_s = interval_s
        self.peak_bytes: int | None = 0 if os.path.exists("/proc/self/smaps_rollup") else None
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="svs-peak-memory", daemon=True)

    def __enter__(self) -> "PeakMemory":
        if self.peak_bytes is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        total, procs = tree_pss_bytes(self.pid)
        if self.peak_bytes is not None and total > self.peak_bytes:
            self.peak_bytes, self.peak_procs = total, procs

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def describe(self) -> str:
        if self.peak_bytes is None:
            return "peak memory   not measured (needs Linux /proc)"
        return f"peak memory   {self.peak_bytes / 2**30:.1f} GiB (sum of PSS over {self.peak_procs} processes)"
