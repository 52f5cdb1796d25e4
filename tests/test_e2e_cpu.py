"""SvS trains for real on the CPU: verl 0.9.1's own ``main_ppo`` (V1 trainer, FSDP2 on gloo, vLLM's CPU build,
weight sync every step) on the embedded SmolLM2-135M and data, through svs-verl's CPU platform.

    bash tests/run.sh tests/test_e2e_cpu.py          # ~20 min on 2 cores

Runs (each a separate main_ppo process, figures printed at the end of the test output):
* ``quickstart +backend=cpu +size=cpu`` (svs_dapo semantics) on two logical GPUs (2 FSDP ranks, 2 vLLM
  replicas, 2 agent-loop and reward workers, 2 TQ units), 3 steps, checkpoint at step 2 and 3;
* the paper's algorithmic defaults (``paper`` template, guards off, no seed caps, 8 x 8), 2 steps;
* its ``svs.enable=false`` twin and ``--config-name dapo +embedded=quickstart``, 2 steps each, same seed (the
  twin's vLLM engine is then killed in step 3: the run must end in one line, resumable);
* a resume from the step-2 checkpoint with ``resume_mode=auto`` that continues at step 3;
* bad ``svs.*`` values, which must stop before any worker starts, naming the key.

Skipped (reason printed) only where the machine cannot run them: no Linux /proc, no vLLM CPU build installed
(tests/run.sh installs it), or less than 14 GiB of memory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import e2e_cpu

FIGURES = e2e_cpu.FIGURES   # printed at the end of the test run (conftest.py)


def _cannot_run() -> str | None:
    if not Path("/proc/self/smaps_rollup").exists():
        return "needs Linux (/proc) for the process-tree memory figures"
    from svs_verl.quickstart import cpu_problem

    why = cpu_problem()
    if why:
        return f"the CPU training backend is not installed: {why}"
    with open("/proc/meminfo") as fh:
        total = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal")) * 1024
    if total < 14 * 2**30:
        return f"needs at least 14 GiB of memory for a main_ppo run, this machine has {total / 2**30:.1f}"
    return None


WHY_NOT = _cannot_run()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]
if WHY_NOT:
    print(f"\ntests/test_e2e_cpu.py skipped: {WHY_NOT}")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return e2e_cpu.assets(tmp_path_factory.mktemp("assets"))


def _workers(res: dict) -> dict[str, set[int]]:
    """Ray actor class -> the pids that printed under it in the run's log ("(vLLMHttpServer pid=123) ...")."""
    import re

    found: dict[str, set[int]] = {}
    log = Path(res["out"], "train.log").read_text(encoding="utf-8", errors="replace")
    for name, pid in re.findall(r"\((\w+)(?:\[[^\]]*\])? pid=(\d+)(?:, ip=[^)]*)?\)", log):
        found.setdefault(name, set()).add(int(pid))
    return found


TWO_GPUS = ["trainer.n_gpus_per_node=2", "actor_rollout_ref.rollout.agent.num_workers=2", "reward.num_workers=2",
            "transfer_queue.backend.SimpleStorage.num_data_storage_units=2"]


@pytest.fixture(scope="module")
def svs_run(embedded, tmp_path_factory):
    """The main SvS run, in deployment shape (a): two logical GPUs on one node - 2 FSDP ranks (gloo), 2 vLLM
    replicas, 2 agent-loop workers, 2 reward workers, 2 TransferQueue storage units (the twin, the DAPO run
    and the paper-defaults run keep the one-GPU shape)."""
    model, data = embedded
    out = tmp_path_factory.mktemp("svs")
    res = e2e_cpu.run("quickstart", model, data, out,
                      [*TWO_GPUS, "trainer.save_freq=2", "trainer.total_training_steps=3"])
    FIGURES.append(e2e_cpu.figures(res) + "\n  workers: " + ", ".join(
        f"{name} x{len(pids)}" for name, pids in sorted(_workers(res).items())))
    assert res["rc"] == 0, e2e_cpu.log_tail(res)
    return res


def _engine_core(root: int) -> int | None:
    from svs_verl.procmem import descendants

    for pid in descendants(root):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"VLLM::EngineCore"):
                return pid
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def twin_run(embedded, tmp_path_factory):
    """The svs.enable=false twin, 2 steps; then, while step 3 generates, ``kill -9`` of vLLM's EngineCore: the
    run must end in one line naming the dead replica, resumable (before svs-verl's liveness check it logged
    EngineDeadError and waited for ever in verl's poll loop)."""
    import os
    import signal
    import time

    model, data = embedded
    killed: dict = {}

    def kill_engine_in_step_3(proc, metrics_file):
        if killed or not metrics_file.exists():
            return
        if sum(1 for line in metrics_file.read_text().splitlines() if "timing_s/step" in line) < 2:
            return
        pid = _engine_core(proc.pid)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, at=time.time())

    res = e2e_cpu.run("quickstart", model, data, tmp_path_factory.mktemp("twin"),
                      ["svs.enable=false", "trainer.total_training_steps=3", "trainer.test_freq=-1"],
                      on_poll=kill_engine_in_step_3)
    res["killed"] = killed
    res["ended_after_kill_s"] = time.time() - killed["at"] if killed else None
    FIGURES.append(e2e_cpu.figures(res) + (
        f"\n  kill -9 of EngineCore (pid {killed['pid']}) in step 3: the run ended {res['ended_after_kill_s']:.0f} s "
        f"later, rc {res['rc']}" if killed else "\n  the engine was never killed"))
    assert killed, e2e_cpu.log_tail(res)
    return res


@pytest.mark.timeout(1200)
def test_a_killed_engine_ends_the_run_in_one_line(twin_run):
    log = Path(twin_run["out"], "train.log").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in log.splitlines() if "rollout replica 0 at" in line]
    FIGURES.append("  " + (lines[-1].strip()[-300:] if lines else "no liveness line"))
    assert not twin_run["timed_out"] and twin_run["rc"] != 0
    assert lines and "trainer.resume_mode=auto" in lines[-1], e2e_cpu.log_tail(twin_run)
    assert twin_run["ended_after_kill_s"] < 300


def _train_steps(res: dict) -> dict[int, dict]:
    return {s: m for s, m in res["steps"].items() if "timing_s/step" in m}


@pytest.mark.timeout(1200)
def test_svs_dapo_trains_syntheses_and_variational_problems(svs_run):
    steps = _train_steps(svs_run)
    assert sorted(steps) == [1, 2, 3]
    # SvS groups entered the policy update (VPS: syntheses with a reward-1 sample; SPA: solves in the band)
    assert any(m.get("svs/update/vps_groups", 0) > 0 for m in steps.values()), steps
    assert any(m.get("svs/update/spa_groups", 0) > 0 for m in steps.values()), steps
    for m in steps.values():
        assert m["svs/update/oqa_groups"] >= 1
        # every sample of a kept group is in the update, and the counts agree with the group sizes
        assert m["svs/samples/vps"] == 4 * m["svs/update/vps_groups"]
        assert m["svs/samples/spa"] == 4 * m["svs/update/spa_groups"]
        assert m["svs/tokens/oqa"] > 0
    assert_step_boundary(steps)


def assert_step_boundary(steps: dict[int, dict]) -> None:
    """Nothing of a step outlives it: no SvS group in flight and no SvS key left in TransferQueue beyond the
    batch when sample() returns, no family of an original outside the batch, orphans bounded."""
    for step, m in steps.items():
        assert m["svs/step_end/inflight"] == 0, (step, m)
        assert m["svs/tq/keys"] == 0, (step, m)
        assert m["svs/abandoned/parent_not_in_batch"] == 0 and m["svs/state/orphans"] == 0, (step, m)


@pytest.mark.timeout(60)
def test_two_logical_gpus_with_everything_doubled(svs_run):
    workers = _workers(svs_run)                                # (each printed to the log at start-up)
    for name in ("WorkerDict",              # two FSDP ranks (actor and reference colocated)
                 "vLLMHttpServer",          # two vLLM replicas
                 "AgentLoopWorkerTQ", "RewardLoopWorker", "SimpleStorageUnit"):
        assert len(workers.get(name, ())) == 2, (name, workers)


# svs_dapo's algorithmic settings unchanged: the `paper` template, guards off, no seed caps, 8 syntheses per
# seed and 8 solves per problem. Only sizes (prompt budget for the paper prompt, batch) and formats (the
# embedded data's one-number answers, hence the quickstart's solve instruction) differ.
PAPER_DEFAULTS = ["svs.template=paper", "svs.guards.enable=false", "svs.max_seeds_per_problem=null",
                  "svs.max_seeds_per_step=null", "svs.synthesis_n=8", "svs.solve_n=8",
                  "data.max_prompt_length=512", "data.train_batch_size=2"]


@pytest.fixture(scope="module")
def paper_run(embedded, tmp_path_factory):
    model, data = embedded
    res = e2e_cpu.run("quickstart", model, data, tmp_path_factory.mktemp("paper"),
                      [*PAPER_DEFAULTS, "trainer.total_training_steps=2", "trainer.test_freq=-1"], timeout_s=1500)
    lines = [e2e_cpu.figures(res)]
    for step, m in sorted(_train_steps(res).items()):
        lines.append(f"  step {step}: " + ", ".join(f"{k.removeprefix('svs/')} {m.get(k, 0):.0f}" for k in (
            "svs/underperforming", "svs/seeds", "svs/syntheses", "svs/accepted", "svs/update/vps_groups",
            "svs/update/spa_groups", "svs/samples/spa", "svs/step_end/inflight")) + "; rejects " + ", ".join(
            f"{k.removeprefix('svs/reject/')} {v:.0f}" for k, v in sorted(m.items()) if k.startswith("svs/reject/")))
    FIGURES.append("\n".join(lines))
    assert res["rc"] == 0, e2e_cpu.log_tail(res)
    return res


@pytest.mark.timeout(1800)
def test_the_papers_defaults_run_end_to_end_with_consistent_counts(paper_run):
    """What is guaranteed, step by step: seeds -> 8 syntheses each -> parsed or rejected -> one solve group of
    8 per accepted problem -> rewards -> groups; the rest (how many parse, how many train) is printed."""
    steps = _train_steps(paper_run)
    assert sorted(steps) == [1, 2]
    assert_step_boundary(steps)
    for step, m in steps.items():
        seeds, syntheses, accepted = m["svs/seeds"], m.get("svs/syntheses", 0), m.get("svs/accepted", 0)
        if m["svs/abandoned/tail_timeout"] == 0:     # every admitted seed came back with 8 syntheses, or failed
            assert syntheses == 8 * (seeds - m.get("svs/failed/synthesis", 0)), (step, m)
        assert syntheses <= 8 * seeds, (step, m)
        rejected = sum(v for k, v in m.items() if k.startswith("svs/reject/"))
        assert accepted + rejected == syntheses, (step, m)                  # every synthesis judged once
        assert m["svs/update/vps_groups"] <= seeds and m["svs/update/spa_groups"] <= accepted
        assert m["svs/samples/vps"] == 8 * m["svs/update/vps_groups"]
        assert m["svs/samples/spa"] == 8 * m["svs/update/spa_groups"]
        assert m["svs/update/oqa_groups"] <= 2                              # the batch: train_batch_size originals


@pytest.mark.timeout(60)
def test_one_weight_sync_per_step(svs_run):
    # svs/perf/weight_syncs at step k = the sync at start-up + one per finished step = k
    syncs = {s: m["svs/perf/weight_syncs"] for s, m in _train_steps(svs_run).items()}
    assert syncs == {1: 1.0, 2: 2.0, 3: 3.0}


@pytest.mark.timeout(60)
def test_synthesis_dumps_exist_and_parse(svs_run):
    from svs_verl.verl_plugin.dumps import dump_files, read_dump

    dumps = dump_files(Path(svs_run["out"], "ckpt", "svs"))
    assert dumps, "no synthesis dump"
    assert all(p.name.endswith(".jsonl.gz") for p in dumps)    # compressed by default
    step_of = {p: int(p.name.split(".")[0].removeprefix("syntheses_step")) for p in dumps}
    seeded_steps = {s for s, m in _train_steps(svs_run).items() if m.get("svs/seeds", 0) > 0}
    assert set(step_of.values()) == seeded_steps
    for path, step in step_of.items():
        rows = list(read_dump(path))
        assert rows and all(r["step"] == step for r in rows)
        step_metrics = svs_run["steps"][step]
        assert len(rows) == step_metrics["svs/syntheses"] == step_metrics["svs/dump/records"]   # one per sample


@pytest.mark.timeout(60)
def test_per_role_entropy_and_validation_pass_at_k(svs_run):
    steps = _train_steps(svs_run)
    for m in steps.values():
        assert 0 < m["svs/entropy/oqa"] < math.log(49152)          # nats, below the uniform distribution's
    vps_steps = [m for m in steps.values() if m.get("svs/update/vps_groups", 0) > 0]
    assert all("svs/entropy/vps" in m for m in vps_steps)
    val = {k: v for m in svs_run["steps"].values() for k, v in m.items() if "/acc/pass@" in k}
    ks = sorted({int(k.rsplit("@", 1)[1]) for k in val})
    assert ks == [1, 2, 4], val                                    # val_kwargs.n = 4 in size/cpu.yaml
    for key, value in val.items():
        assert 0.0 <= value <= 1.0
        source = key[: key.rindex("/acc/")]
        assert val[f"{source}/acc/pass@1"] <= val[f"{source}/acc/pass@4"]


@pytest.mark.timeout(1200)
def test_resume_continues_at_step_3_with_totals_carried_over(svs_run, embedded, tmp_path):
    model, data = embedded
    ckpt = Path(svs_run["out"], "ckpt")
    saved = json.loads((ckpt / "global_step_2" / "svs_state.json").read_text())
    # a run stopped after step 2's checkpoint: only that checkpoint is there
    out = tmp_path / "resumed"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "global_step_2").symlink_to(ckpt / "global_step_2", target_is_directory=True)
    (out / "ckpt" / "latest_checkpointed_iteration.txt").write_text("2")
    res = e2e_cpu.run("quickstart", model, data, out, [*TWO_GPUS, "trainer.resume_mode=auto",
                                                       "trainer.total_training_steps=3", "trainer.test_freq=-1"])
    FIGURES.append(e2e_cpu.figures(res))
    assert res["rc"] == 0, e2e_cpu.log_tail(res)
    steps = _train_steps(res)
    assert sorted(steps) == [3]                                    # continued at step 3, nothing redone
    m = steps[3]
    assert m["svs/total/seeds"] == saved["totals"].get("seeds", 0) + m.get("svs/seeds", 0)
    assert m["svs/total/accepted"] == saved["totals"].get("accepted", 0) + m.get("svs/accepted", 0)


@pytest.mark.timeout(1200)
def test_dapo_twin_has_no_svs_groups(twin_run):
    steps = _train_steps(twin_run)
    assert sorted(steps) == [1, 2]
    for m in steps.values():
        assert not any(k.startswith("svs/update/") for k in m)
        assert m["svs/tokens/oqa"] > 0 and m["svs/perf/weight_syncs"] >= 1


@pytest.mark.timeout(1200)
def test_dapo_config_matches_the_twin(embedded, twin_run, tmp_path):
    model, data = embedded
    res = e2e_cpu.run("dapo", model, data, tmp_path / "dapo", ["trainer.total_training_steps=2", "trainer.test_freq=-1"])
    FIGURES.append(e2e_cpu.figures(res))
    assert res["rc"] == 0, e2e_cpu.log_tail(res)
    steps = _train_steps(res)
    assert sorted(steps) == [1, 2]
    for m in steps.values():
        assert not any(k.startswith("svs/") for k in m)            # verl's own trainer and sampler
        assert m["critic/score/mean"] >= 0
    # same seed, data and sizes: the first step samples the same original problems
    twin = _train_steps(twin_run)
    assert steps[1]["response_length/mean"] > 0 and twin[1]["response_length/mean"] > 0


def _job(config: str, overrides: list[str]) -> dict:
    import subprocess

    import yaml

    cmd = e2e_cpu.command(config, Path("/m"), Path("/d"), Path("/o"), overrides)
    out = subprocess.run([*cmd, "--cfg", "job"], capture_output=True, text=True, timeout=300, cwd="/tmp")
    assert out.returncode == 0, out.stderr[-3000:]
    return yaml.safe_load(out.stdout)


def _differences(a, b, path: str = "") -> list[str]:
    """Dotted keys whose values differ between two composed configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in
                (_differences(a[k], b[k], f"{path}.{k}") if k in a and k in b else [f"{path}.{k}"])]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.timeout(600)
def test_the_three_runs_share_every_hyperparameter_but_svs():
    svs, twin, dapo = (_job("quickstart", []), _job("quickstart", ["svs.enable=false"]), _job("dapo", []))
    for job in (svs, twin, dapo):
        job.pop("svs", None)
        job["trainer"].pop("experiment_name")
        job["trainer"]["v1"].pop("trainer_mode")
        job["trainer"]["v1"]["sampler"].pop("custom_sampler", None)
    assert _differences(svs, twin) == []
    assert _differences(svs, dapo) == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("override, key", [("svs.underperforming_band=[0.6,0.2]", "svs.underperforming_band"),
                                           ("+svs.no_such_key=1", "no_such_key")])
def test_bad_svs_config_fails_before_any_worker_starts(embedded, tmp_path, override, key):
    model, data = embedded
    res = e2e_cpu.run("quickstart", model, data, tmp_path / "bad", [override], timeout_s=240)
    log = Path(res["out"], "train.log").read_text(encoding="utf-8", errors="replace")
    FIGURES.append(f"bad config {override}: rc {res['rc']} after {res['wall_s']:.0f} s")
    assert res["rc"] != 0 and not res["timed_out"]
    assert key in log
    for started in ("WorkerDict", "vLLMHttpServer", "AgentLoopWorker"):
        assert started not in log, f"{started} started before the config was checked"

