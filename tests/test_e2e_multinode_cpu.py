"""Two Ray nodes on this one machine, for real: ``ray start --head`` plus ``ray start --address``, each with its
own resources (one logical GPU), token authentication on, and ``svs-verl quickstart --ray-address`` joining
them with ``trainer.nnodes=2 trainer.n_gpus_per_node=1`` (the CPU backend's ``backend/cpu_cluster``): verl's
FSDP ranks and vLLM replicas are placed on both nodes, SvS groups train, and the quickstart's progress,
metrics and memory figures are right (issue 16, item 4b; docs/clusters.md).

    bash tests/run.sh tests/test_e2e_multinode_cpu.py          # ~6 min on 2 cores

The nodes are started without ``VERL_PLATFORM`` in their environment (the backend passes it to the workers
through ``ray_init.runtime_env``) and with a token file of their own (``RAY_AUTH_TOKEN_PATH``), and
``VLLM_API_KEY`` is set for the run: the vLLM HTTP servers must refuse a request without it. Both nodes are
stopped by PID (every process of the cluster found on this machine, and their descendants) and their temp
directories removed, whatever happens; ``ray stop`` is never used (it would end every Ray on the machine).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import e2e_cpu
from svs_verl.procmem import descendants, listening_sockets, ray_cluster_processes
from test_e2e_cpu import WHY_NOT
from test_e2e_loopback_cpu import _tmp_sockets

pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class TwoNodes:
    """A head and a second node started with ``ray start``, stopped by PID in ``stop()``."""

    def __init__(self, base: Path):
        self.base = base
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = {"head": Path(tempfile.mkdtemp(prefix="svs-h-")), "node2": Path(tempfile.mkdtemp(prefix="svs-n-"))}
        self.token = base / "ray_auth_token"
        self.token.write_text(secrets.token_hex(32))
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("VERL_PLATFORM", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS", "RAY_TMPDIR")}
        self.env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token),
                         "RAY_DISABLE_IMPORT_WARNING": "1", "RAY_USAGE_STATS_ENABLED": "0"})
        self.log = base / "ray_start.log"

    def _ray(self, node: str, *args: str) -> None:
        # vLLM's ZMQ IPC sockets go to VLLM_RPC_BASE_PATH (else /tmp/<uuid>, never removed): the node's temp dir
        (self.temp[node] / "vllm").mkdir(exist_ok=True)
        env = {**self.env, "VLLM_RPC_BASE_PATH": str(self.temp[node] / "vllm")}
        with open(self.log, "a") as log:
            subprocess.run([RAY, "start", *args, f"--temp-dir={self.temp[node]}", "--disable-usage-stats",
                            "--num-cpus=16", "--num-gpus=1", "--object-store-memory=500000000"],
                           env=env, stdout=log, stderr=subprocess.STDOUT, timeout=180, check=True)

    def start(self) -> None:
        self._ray("head", "--head", f"--port={self.port}", "--include-dashboard=false")
        self._ray("node2", f"--address={self.address}")

    def raylets(self) -> dict[str, int]:
        """{"head"|"node2": raylet pid}, told apart by their temp directories."""
        out = {}
        for pid in ray_cluster_processes(self.port):
            cmd = _cmdline(pid)
            if "/raylet " in cmd or cmd.split(" ", 1)[0].endswith("/raylet"):
                for node, tmp in self.temp.items():
                    if str(tmp) in cmd:
                        out[node] = pid
        return out

    def processes(self) -> set[int]:
        pids = set()
        roots = set(ray_cluster_processes(self.port))
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and any(str(t) in _cmdline(int(entry.name)) for t in self.temp.values()):
                roots.add(int(entry.name))
        for root in roots:
            pids.update(descendants(root))
        pids.discard(os.getpid())
        return pids

    def actors_in_logs(self) -> dict[str, set[str]]:
        """{node: actor class names} from each node's own session logs: Ray starts the log of every actor
        process with a line ``:actor_name:<Class>``."""
        out = {}
        for node, tmp in self.temp.items():
            names = set()
            # `ray start --temp-dir=T` keeps its session in T/session_<date>_... (session_latest links to it)
            for log in tmp.glob("session_2*/logs/worker-*.out"):
                with open(log, errors="replace") as fh:
                    for line in fh:
                        if line.startswith(":actor_name:"):
                            names.add(line[len(":actor_name:"):].strip())
            out[node] = names
        return out

    def stop(self) -> list[int]:
        """End every process of the cluster by PID (TERM, then KILL), remove the temp dirs; the PIDs ended."""
        ended = sorted(self.processes())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 15
            while time.time() < deadline and self.processes():
                time.sleep(0.5)
        for tmp in self.temp.values():
            shutil.rmtree(tmp, ignore_errors=True)
        return ended


class Placement:
    """Samples, every 2 s, which Ray actors run below each node's raylet, and probes the vLLM HTTP servers."""

    def __init__(self, nodes: TwoNodes):
        self.nodes = nodes
        self.actors: dict[str, set[str]] = {"head": set(), "node2": set()}
        self.http: dict[str, int] = {}          # "addr:port" of a vLLM server -> HTTP status without a key
        self.errors: list[str] = []
        self._tried: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self):
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception as exc:  # noqa: BLE001 - a process that ended mid-sample; recorded, sampling goes on
                self.errors.append(f"sample: {type(exc).__name__}: {exc}")
            self._stop.wait(2.0)

    def _sample(self):
        for node, raylet in self.nodes.raylets().items():
            for pid in descendants(raylet):
                title = _cmdline(pid).strip()
                if title.startswith("ray::"):
                    name = title[5:].split(" ", 1)[0].split(".", 1)[0]
                    self.actors[node].add(name)
                    if "vLLM" in name and "Http" in name:
                        self._probe(pid)

    def _probe(self, pid: int) -> None:
        import http.client

        for addr, port, _, _ in listening_sockets([pid]):
            key = f"{addr}:{port}"
            if key in self._tried or ":" in addr:
                continue
            self._tried.add(key)       # each port once: a ZMQ or gRPC port would time out on every sample
            conn = http.client.HTTPConnection(addr, port, timeout=10)
            try:
                conn.request("GET", "/v1/models")
                self.http[key] = conn.getresponse().status
            except Exception as exc:  # noqa: BLE001 - a gRPC or ZMQ port of the same process answers no HTTP
                self.errors.append(f"{key}: {type(exc).__name__}")
            finally:
                conn.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model, data = e2e_cpu.assets(tmp_path_factory.mktemp("assets"))
    base = tmp_path_factory.mktemp("multinode")
    out = base / "out"
    nodes = TwoNodes(base)
    sockets_before = _tmp_sockets()
    try:
        t0 = time.time()
        nodes.start()
        started_s = time.time() - t0
        env = {**nodes.env, "VLLM_API_KEY": secrets.token_hex(16)}
        cmd = [sys.executable, "-P", "-m", "svs_verl.cli", "quickstart", "--device", "cpu", "--steps", "2",
               "--ray-address", nodes.address, "--model", str(model), "--data", str(data), "--out", str(out),
               "--", "trainer.nnodes=2", "trainer.n_gpus_per_node=1", "trainer.test_freq=-1",
               "trainer.val_before_train=false"]
        proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        with Placement(nodes) as placement:
            try:
                stdout, _ = proc.communicate(timeout=1500)
            except subprocess.TimeoutExpired:
                e2e_cpu._kill_group(proc)
                stdout, _ = proc.communicate()
        wall = time.time() - t0
        unauthenticated = subprocess.run(
            [RAY, "status", f"--address={nodes.address}"], capture_output=True, text=True, timeout=120,
            env={**nodes.env, "RAY_AUTH_MODE": "disabled"})
        authenticated = subprocess.run([RAY, "status", f"--address={nodes.address}"], capture_output=True,
                                       text=True, timeout=120, env=nodes.env)
        logged = nodes.actors_in_logs()
    finally:
        ended = nodes.stop()
    left = nodes.processes()
    new_sockets = sorted(_tmp_sockets() - sockets_before)
    res = {"rc": proc.returncode, "stdout": stdout, "out": out, "placement": placement, "ended": ended,
           "logged": logged, "new_sockets": new_sockets,
           "left": left, "temp": nodes.temp, "unauthenticated": unauthenticated, "authenticated": authenticated}
    e2e_cpu.FIGURES.append(
        f"2 Ray nodes (ray start, 1 logical GPU each, token auth) + quickstart --steps 2 --ray-address: "
        f"rc {proc.returncode}, nodes up in {started_s:.0f} s, wall {wall:.0f} s\n"
        f"  actors on the head (its logs): {sorted(logged['head'])}\n"
        f"  actors on node 2 (its logs):   {sorted(logged['node2'])}\n"
        f"  actor processes seen under each raylet: head {sorted(placement.actors['head'])}, "
        f"node 2 {sorted(placement.actors['node2'])}\n"
        f"  vLLM HTTP GET /v1/models without the API key: {placement.http} (probe errors: {placement.errors[:6]})\n"
        f"  ray status without the token: rc {unauthenticated.returncode}; with it: rc {authenticated.returncode}\n"
        f"  stopped {len(ended)} processes by PID, {len(left)} left\n"
        "  quickstart's output:\n    " + "\n    ".join(l for l in stdout.splitlines() if not l.startswith("  ")))
    return res


@pytest.mark.timeout(1800)
def test_two_nodes_train_svs_groups_and_the_summary_is_right(run):
    assert run["rc"] == 0, run["stdout"][-5000:]
    from svs_verl.evaluation.plot import read_metrics

    steps = {s: m for s, m in read_metrics(run["out"] / "metrics.jsonl").items() if "timing_s/step" in m}
    assert sorted(steps) == [1, 2]                                  # the metrics file reached the trainer
    assert any(m.get("svs/update/vps_groups", 0) + m.get("svs/update/spa_groups", 0) > 0 for m in steps.values())
    lines = run["stdout"].splitlines()
    progress = [l.split(" | ")[0] for l in lines if re.match(r"step \d+/\d+ \|", l)]
    assert progress == ["step 1/2", "step 2/2"]                     # one line per step, not one per node
    assert any(l.startswith("steps         2 in") for l in lines)
    memory = next(l for l in lines if l.startswith("peak memory"))
    procs = int(memory.split(" over ")[1].split()[0])
    assert procs >= 20, memory            # the workers under both raylets, not the driver alone


@pytest.mark.timeout(60)
def test_workers_were_placed_on_both_nodes(run):
    logged = run["logged"]
    for node in ("head", "node2"):
        # one vLLM replica and one FSDP rank (verl's fused worker) per logical GPU, so one of each per node
        assert any("vLLMHttpServer" in a for a in logged[node]), logged
        assert any("WorkerDict" in a for a in logged[node]), logged
    seen = run["placement"].actors
    assert all(any("vLLM" in a for a in seen[node]) for node in ("head", "node2")), seen


@pytest.mark.timeout(60)
def test_the_cluster_needs_its_token_and_vllm_its_api_key(run):
    assert run["authenticated"].returncode == 0, run["authenticated"].stdout + run["authenticated"].stderr
    assert run["unauthenticated"].returncode != 0
    statuses = set(run["placement"].http.values())
    assert statuses and statuses <= {401}, run["placement"].http


@pytest.mark.timeout(60)
def test_both_nodes_were_stopped_by_pid_and_their_temp_dirs_removed(run):
    assert run["ended"] and not run["left"]
    assert not any(p.exists() for p in run["temp"].values())
    assert run["new_sockets"] == []          # vLLM's IPC sockets were in the nodes' temp dirs (VLLM_RPC_BASE_PATH)
