"""Memory of a whole run: the sum of PSS over a process and all its descendants, sampled in the background.

A verl run is ~35 processes (Ray's GCS and raylet, TaskRunner, TransferQueue, FSDP workers, the vLLM server
and its engine core, agent-loop and reward workers), all descendants of the ``main_ppo`` process - unless
it joined a running Ray cluster: then they descend from the cluster's raylets (``ray_cluster_processes``). RSS counts
shared pages (torch's libraries, shared-memory weight buffers) once per process; PSS splits each shared page
among the processes that map it, so the sum of PSS is the machine memory the run really holds. Linux only
(``/proc/<pid>/smaps_rollup``); elsewhere the figures are ``None``.

Also here, from the same /proc tables: the listening sockets of a set of processes (``listening_sockets``),
with which the tests check that a run on one machine listens on loopback only.
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


def tree_pss_bytes(pid: int, extra_roots=()) -> tuple[int, int]:
    """(sum of PSS over the process tree in bytes, number of processes); ``extra_roots``: more trees."""
    pids = set(descendants(pid))
    for root in extra_roots:
        pids.update(descendants(root))
    return sum(pss_bytes(p) for p in pids), len(pids)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def ray_cluster_processes(gcs_port: int) -> list[int]:
    """The processes on this machine of the Ray cluster whose GCS listens on ``gcs_port``: its GCS server and,
    on every node this machine runs, the raylet and Ray's per-node processes (each names the GCS address in
    its command line). Their descendants (the workers) come with ``descendants``. A run that joins a cluster
    (``ray start``) is not the parent of its workers: this is how its memory is found."""
    port = str(gcs_port)
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for arg in _cmdline(int(entry.name)):
            key, _, value = arg.partition("=")
            if ((key in ("--gcs-address", "--gcs_address") and value.rpartition(":")[2] == port)
                    or (key == "--gcs_server_port" and value == port)):
                out.append(int(entry.name))
                break
    return sorted(out)


class PeakMemory:
    """Samples the tree's summed PSS every ``interval_s`` until ``stop()``; ``peak_bytes`` / ``peak_procs``."""

    def __init__(self, pid: int, interval_s: float = 5.0, extra_roots=None, shm: set[str] | None = None):
        self.pid = pid
        self.extra_roots = extra_roots   # None, or a function giving more root pids at each sample
        self.shm = shm                   # None, or a set that collects the /dev/shm files the processes use
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
        roots = self.extra_roots() if self.extra_roots else ()
        total, procs = tree_pss_bytes(self.pid, roots)
        if self.shm is not None:
            pids = set(descendants(self.pid))
            for root in roots:
                pids.update(descendants(root))
            for pid in pids:
                self.shm |= shm_paths(pid)
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


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _hex_addr(text: str, v6: bool) -> tuple[str, int]:
    import ipaddress

    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if v6:  # four 32-bit words, each in host (little-endian) byte order
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        addr = ipaddress.IPv6Address(raw)
        return (str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)), int(port, 16)
    return str(ipaddress.IPv4Address(raw[::-1])), int(port, 16)


def listening_sockets(pids: list[int]) -> list[tuple[str, int, int, str]]:
    """Every TCP socket in LISTEN state and every bound UDP socket held by ``pids``:
    (address, port, pid, process name), sorted. Read from /proc/net/{tcp,tcp6,udp,udp6} and the processes'
    fd tables, so it needs no privileges for the user's own processes. Linux only ([] elsewhere)."""
    owner = {}
    for pid in pids:
        for inode in _socket_inodes(pid):
            owner.setdefault(inode, pid)
    found = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            state, inode = cols[3], int(cols[9])
            if inode not in owner or (table.startswith("tcp") and state != "0A"):   # 0A: TCP_LISTEN
                continue
            addr, port = _hex_addr(cols[1], table.endswith("6"))
            if table.startswith("udp") and port == 0:
                continue
            pid = owner[inode]
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                name = "?"
            found.add((addr, port, pid, name))
    return sorted(found)


def is_loopback(address: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address).is_loopback


def shm_paths(pid: int) -> set[str]:
    """The /dev/shm files a process has mapped or open."""
    found = set()
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/dev/shm/"):
                found.add(parts[5].removesuffix(" (deleted)"))
    except OSError:
        pass
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/shm/"):
            found.add(target.removesuffix(" (deleted)"))
    return found


def shm_in_use() -> set[str]:
    """Every /dev/shm file some readable process has mapped or open."""
    used: set[str] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            used |= shm_paths(int(entry.name))
    return used


class RunLitter:
    """What a finished run leaves outside its --out, removed by ``clean()``: only what this run made.

    * its Ray session and vLLM's IPC sockets: the run's Ray writes under ``RAY_TMPDIR`` and vLLM under
      ``VLLM_RPC_BASE_PATH``, both in a new directory of its own (``ray_tmpdir``); what the user set is kept;
    * /dev/shm segments that the run's processes had mapped or open (collected while it runs, see
      ``PeakMemory(shm=...)``) and that no process uses any more.
    """

    def __init__(self) -> None:
        self.tmpdir: Path | None = None
        self.shm: set[str] = set()

    def ray_tmpdir(self, env: dict[str, str]) -> dict[str, str]:
        """Environment entries that give the run's Ray a temporary root of its own (none if the user set one)."""
        import tempfile

        if env.get("RAY_TMPDIR"):
            return {}
        # short on purpose: Ray's Unix sockets live below it (a socket path has at most 107 bytes)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="svs-ray-"))
        out = {"RAY_TMPDIR": str(self.tmpdir)}
        if not env.get("VLLM_RPC_BASE_PATH"):   # vLLM's ZMQ IPC sockets (else /tmp/<uuid>, never removed)
            (self.tmpdir / "vllm").mkdir()
            out["VLLM_RPC_BASE_PATH"] = str(self.tmpdir / "vllm")
        return out

    def clean(self) -> str:
        """Remove the run's leftovers; one line saying what went (empty when nothing did)."""
        import shutil
        import time

        done = []
        if self.shm:
            gone = 0
            for _ in range(10):           # Ray's reaper ends the workers shortly after main_ppo exits
                in_use = shm_in_use()
                stale = [p for p in self.shm if os.path.exists(p) and p not in in_use]
                for path in stale:
                    try:
                        os.unlink(path)
                        gone += 1
                    except OSError:
                        pass
                if not any(os.path.exists(p) for p in self.shm):
                    break
                time.sleep(1)
            if gone:
                done.append(f"{gone} /dev/shm segments")
        if self.tmpdir is not None and self.tmpdir.is_dir():
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            done.append(f"the run's Ray session ({self.tmpdir})")
        return ", ".join(done)
