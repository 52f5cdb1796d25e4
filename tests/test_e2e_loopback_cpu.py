"""A real ``svs-verl quickstart`` run on the CPU (2 steps, verl's own main_ppo, Ray, vLLM's CPU build) that
must listen on loopback only, import nothing from the directory it is started in, and leave nothing behind
outside its --out (issue 20, items 1 and 7).

    bash tests/run.sh tests/test_e2e_loopback_cpu.py          # ~6 min on 2 cores

While the run trains, every process below the quickstart is sampled every 2 s: its listening TCP sockets and
bound UDP sockets (/proc/net and the processes' fd tables) and the /dev/shm files it maps. The run is started
from a directory holding an ``omegaconf.py`` that would record its import (main_ppo imports omegaconf).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import e2e_cpu
from svs_verl.procmem import descendants, is_loopback, listening_sockets, shm_paths
from test_e2e_cpu import WHY_NOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]
ROOT = Path(__file__).resolve().parents[1]
PLANTED = "import pathlib, os\npathlib.Path(os.environ['SVS_PLANTED_MARK']).write_text('imported from the cwd')\n"


class Watch:
    """Samples the listening sockets and /dev/shm files of ``roots()``'s process trees until ``stop()``."""

    def __init__(self, roots, interval_s: float = 2.0):
        self.roots, self.interval_s = roots, interval_s
        self.sockets: dict[tuple[str, int], str] = {}    # (address, port) -> process name
        self.shm: set[str] = set()
        self.max_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self):
        while not self._stop.is_set():
            pids = set()
            for root in self.roots():
                pids.update(descendants(root))
            self.max_procs = max(self.max_procs, len(pids))
            for addr, port, _pid, name in listening_sockets(sorted(pids)):
                self.sockets.setdefault((addr, port), name)
            for pid in pids:
                self.shm |= shm_paths(pid)
            self._stop.wait(self.interval_s)

    def socket_lines(self) -> list[str]:
        return [f"{a}:{p} {n}" for (a, p), n in sorted(self.sockets.items())]


def _tmp_sockets() -> set[str]:
    """Unix socket files directly in the temp dir (where vLLM's and verl's ZMQ IPC sockets go by default)."""
    import stat

    out = set()
    for entry in os.scandir(tempfile.gettempdir()):
        try:
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                out.add(entry.name)
        except OSError:
            continue
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model, data = e2e_cpu.assets(tmp_path_factory.mktemp("assets"))
    cwd = tmp_path_factory.mktemp("cwd")
    (cwd / "omegaconf.py").write_text(PLANTED)
    mark = cwd / "planted-module-ran"
    out = tmp_path_factory.mktemp("qs") / "out"
    env = {**os.environ, "SVS_PLANTED_MARK": str(mark)}
    env.pop("RAY_TMPDIR", None)
    cmd = [sys.executable, "-P", "-m", "svs_verl.cli", "quickstart", "--device", "cpu", "--steps", "2",
           "--model", str(model), "--data", str(data), "--out", str(out),
           "--", "trainer.test_freq=-1", "trainer.val_before_train=false"]
    sockets_before = _tmp_sockets()
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    with Watch(lambda: [proc.pid]) as watch:
        try:
            stdout, _ = proc.communicate(timeout=1500)
        except subprocess.TimeoutExpired:
            e2e_cpu._kill_group(proc)
            stdout, _ = proc.communicate()
    res = {"rc": proc.returncode, "stdout": stdout, "wall_s": time.time() - t0, "cwd": cwd, "mark": mark,
           "out": out, "watch": watch, "new_tmp_sockets": sorted(_tmp_sockets() - sockets_before)}
    e2e_cpu.FIGURES.append(
        f"quickstart --steps 2 (loopback check): rc {proc.returncode}, wall {res['wall_s']:.0f} s, "
        f"{len(watch.sockets)} listening sockets over at most {watch.max_procs} processes:\n  "
        + "\n  ".join(watch.socket_lines())
        + "\n  quickstart's summary:\n    " + "\n    ".join(stdout.splitlines()[-14:]))
    return res


@pytest.mark.timeout(1800)
def test_the_run_trains_and_its_summary_counts_both_steps(run):
    assert run["rc"] == 0, run["stdout"][-5000:]
    assert "steps         2 in" in run["stdout"]
    assert [line.split(" | ")[0] for line in run["stdout"].splitlines() if re.match(r"step \d+/\d+ \|", line)] == \
        ["step 1/2", "step 2/2"]                                       # one progress line per step
    from svs_verl.evaluation.plot import read_metrics

    steps = read_metrics(run["out"] / "metrics.jsonl")
    assert sorted(s for s, m in steps.items() if "timing_s/step" in m) == [1, 2]


# torch's c10d TCPStore - the rendezvous store of a torch.distributed process group: one in verl's FSDP worker,
# one in vLLM's worker - listens on all interfaces whatever host it is given (TCPStore("127.0.0.1", ...) listens
# on "::"); torch has no bind address for it (only a pre-bound fd, master_listen_fd). Those two are the only
# sockets a run cannot keep on loopback (docs/clusters.md).
TCPSTORE_OWNERS = ("ray::WorkerDict", "VLLM::Worker")


@pytest.mark.timeout(60)
def test_every_listening_socket_of_the_run_is_on_loopback(run):
    sockets = run["watch"].sockets
    lines = run["watch"].socket_lines()
    # Ray's GCS, raylet, core workers, dashboard agent, runtime-env agent; vLLM's HTTP server, TransferQueue
    names = set(sockets.values())
    assert {"gcs_server", "raylet", "ray::vLLMHttpSe", "ray::TransferQu", "ray::DashboardA"} <= names, lines
    assert sum(is_loopback(a) for a, _ in sockets) >= 20, lines
    # and what does listen needs Ray's token: Ray 2.60 turns token authentication on for the cluster ray.init starts
    assert "Token authentication is enabled for this Ray cluster" in (run["out"] / "train.log").read_text()
    exposed = [f"{a}:{p} {n}" for (a, p), n in sorted(sockets.items()) if not is_loopback(a)]
    assert all(line.split(" ", 1)[1] in TCPSTORE_OWNERS for line in exposed), exposed
    assert len(exposed) <= len(TCPSTORE_OWNERS), exposed


@pytest.mark.timeout(60)
def test_nothing_is_imported_from_the_directory_it_runs_in(run):
    assert not run["mark"].exists(), "main_ppo imported omegaconf.py from the current directory"


@pytest.mark.timeout(60)
def test_files_stay_under_out_and_ray_session_and_shm_segments_are_removed(run):
    assert sorted(p.name for p in run["cwd"].iterdir()) == ["omegaconf.py"]    # no outputs/, no main_ppo.log
    assert (run["out"] / "hydra" / ".hydra" / "config.yaml").is_file()
    cleaned = [line for line in run["stdout"].splitlines() if line.startswith("cleaned up")]
    assert cleaned and "the run's Ray session (" in cleaned[0], run["stdout"][-3000:]
    session_root = cleaned[0].split("the run's Ray session (", 1)[1].split(")", 1)[0]
    assert session_root.startswith("/tmp/svs-ray-") and not Path(session_root).exists()
    left = sorted(p for p in run["watch"].shm if os.path.exists(p))
    assert left == [], left
    assert run["new_tmp_sockets"] == [], run["new_tmp_sockets"]     # vLLM's IPC sockets went with the session
