"""A vLLM engine killed mid-step ends the run within a bounded time, in one line, resumable (issue 20, 4b).

    bash tests/run.sh tests/test_e2e_engine_kill_cpu.py          # ~4 min on 2 cores

A real ``main_ppo`` run of the embedded quickstart (one logical GPU); once step 1 is logged, ``kill -9`` of
vLLM's ``EngineCore`` process. Before svs-verl's liveness check the run logged ``EngineDeadError`` and then
waited for ever in verl's poll loop (7+ minutes, no output). Now the sampler's next wait asks the replica's
``/health`` (503 once its engine is dead) and ends the step with one line naming the replica and saying how
to resume; the run exits (e2e_cpu.run then ends what is left of its process group).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import e2e_cpu
from svs_verl.procmem import descendants
from test_e2e_cpu import FIGURES, WHY_NOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


def _engine_core(root: int) -> int | None:
    for pid in descendants(root):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"VLLM::EngineCore"):
                return pid
        except OSError:
            continue
    return None


@pytest.mark.timeout(1200)
def test_a_killed_engine_ends_the_run_in_one_line(tmp_path):
    model, data = e2e_cpu.assets(tmp_path / "assets")
    killed: dict[str, float] = {}

    def kill_engine_after_step_1(proc, metrics_file):
        if killed or not metrics_file.exists() or "timing_s/step" not in metrics_file.read_text():
            return
        pid = _engine_core(proc.pid)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, at=time.time())

    res = e2e_cpu.run("quickstart", model, data, tmp_path / "run",
                      ["trainer.total_training_steps=20", "trainer.test_freq=-1", "trainer.save_freq=-1"],
                      timeout_s=900, on_poll=kill_engine_after_step_1)
    ended_after = time.time() - killed["at"] if killed else float("nan")   # includes the run's clean-up
    assert killed, "the engine was never found to kill: " + e2e_cpu.log_tail(res)
    log = Path(res["out"], "train.log").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in log.splitlines() if "rollout replica 0 at" in line]
    FIGURES.append(f"engine kill: rc {res['rc']}, run ended {ended_after:.0f} s after kill -9 of EngineCore "
                   f"(pid {killed['pid']}); {lines[-1].strip()[-300:] if lines else 'no liveness line'}")
    assert not res["timed_out"] and res["rc"] != 0
    assert lines and "trainer.resume_mode=auto" in lines[-1], e2e_cpu.log_tail(res)
    assert ended_after < 300, ended_after
