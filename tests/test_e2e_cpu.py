"""SvS trains for real on the CPU: verl 0.9.1's own ``main_ppo`` (V1 trainer, FSDP2 on gloo, vLLM's CPU build,
weight sync every step) on the embedded SmolLM2-135M and data, through svs-verl's CPU platform.

    bash tests/run.sh tests/test_e2e_cpu.py          # ~25 min on 2 cores

Runs (each a separate main_ppo process, figures printed at the end of the test output):
* ``quickstart +backend=cpu +size=cpu`` (svs_dapo semantics) on two logical GPUs (2 FSDP ranks, 2 vLLM
  replicas, 2 agent-loop and reward workers, 2 TQ units), 3 steps, checkpoint at step 2 and 3;
* the comparison harness (benchmarks/svs_vs_dapo.py), 2 steps per arm on two logical GPUs with the paper's
  algorithmic defaults (``paper`` template, guards off, no seed caps, 8 x 8): the SvS arm, then its
  ``svs.enable=false`` twin, validated (pass@1..16) before training and after step 2. The SvS arm's vLLM
  engine is killed in step 2: the attempt must end in one line, and the harness resumes the arm from its
  step-1 checkpoint (``resume_mode=auto``) with the SvS totals carried over;
* ``--config-name dapo +embedded=quickstart`` (verl's own sampler), 2 steps;
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

ROOT = Path(__file__).resolve().parents[1]

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


def _kill_engine_after_step_1(out: Path, stop, killed: dict) -> None:
    """``kill -9`` of one vLLM EngineCore of the comparison's SvS arm once its step 1 is logged and
    checkpointed (step 2 then generates with a dead replica)."""
    import os
    import signal
    import time

    metrics = out / "svs" / "attempt1" / "metrics.jsonl"
    marker = out / "svs" / "ckpt" / "latest_checkpointed_iteration.txt"
    while not stop.wait(1):
        try:
            logged = metrics.is_file() and "timing_s/step" in metrics.read_text()
            checkpointed = marker.is_file() and marker.read_text().strip() == "1"
        except OSError:
            continue
        if logged and checkpointed:
            pid = _engine_core(os.getpid())
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, at=time.time())
                return


@pytest.fixture(scope="module")
def comparison(embedded, tmp_path_factory):
    """The SvS-against-DAPO comparison harness (benchmarks/svs_vs_dapo.py), 2 steps per arm on two logical GPUs
    with the paper's algorithmic defaults (PAPER_DEFAULTS), validation (n=16) before training and after step 2.
    In the SvS arm's step 2 one vLLM EngineCore is killed (kill -9): that attempt must end in one line naming
    the dead replica (before svs-verl's liveness check it logged EngineDeadError and waited for ever in verl's
    poll loop), and the harness must resume the arm from its step-1 checkpoint (trainer.resume_mode=auto)."""
    import importlib.util
    import threading
    import time

    model, _ = embedded
    out = tmp_path_factory.mktemp("compare")
    spec = importlib.util.spec_from_file_location("svs_vs_dapo", ROOT / "benchmarks" / "svs_vs_dapo.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    killed: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_engine_after_step_1, args=(out, stop, killed), daemon=True)
    watcher.start()
    t0 = time.time()
    try:
        rc = harness.main(["--out", str(out), "--cache", str(model.parent), "--steps", "2", "--val-every", "2",
                           "--save-every", "1", "--val-n", "16", "--val-problems", "4", "--lr", "1e-6",
                           "--", *TWO_GPUS, *PAPER_DEFAULTS])
    finally:
        stop.set()
        watcher.join(timeout=5)
    report = json.loads((out / "comparison.json").read_text())
    soak = {arm: json.loads((out / arm / "soak.json").read_text()) for arm in ("svs", "dapo")}
    steps = {arm: _train_steps({"steps": harness.merged_metrics(out / arm)}) for arm in ("svs", "dapo")}
    vals = {arm: harness.merged_metrics(out / arm) for arm in ("svs", "dapo")}
    lines = [f"comparison harness, 2 steps per arm, 2 logical GPUs, paper defaults: rc {rc}, "
             f"wall {time.time() - t0:.0f} s"]
    for arm in ("svs", "dapo"):
        lines.append(f"  {arm}: attempts " + "; ".join(
            f"{a['attempt']} from step {a['from_step']} rc {a['rc']} wall {a['wall_s']:.0f} s"
            for a in soak[arm]["attempts"]))
        lines.extend("  " + line for line in report["arms"][arm]["invariants"])
    if killed:
        attempt1 = next(a for a in soak["svs"]["attempts"] if a["attempt"] == 1)
        lines.append(f"  kill -9 of EngineCore (pid {killed['pid']}) in the SvS arm's step 2: attempt 1 ended with rc "
                     f"{attempt1['rc']}, then the arm resumed from its step-1 checkpoint")
    FIGURES.append("\n".join(lines))
    return {"rc": rc, "out": out, "report": report, "soak": soak, "steps": steps, "metrics": vals,
            "killed": killed}


@pytest.mark.timeout(60)
def test_a_killed_engine_ends_the_attempt_in_one_line_and_the_harness_resumes_the_arm(comparison):
    assert comparison["killed"], "the engine was never killed"
    attempts = comparison["soak"]["svs"]["attempts"]
    assert [(a["attempt"], a["from_step"]) for a in attempts] == [(1, 0), (2, 1)], attempts
    assert attempts[0]["rc"] != 0 and not attempts[0]["timed_out"] and attempts[1]["rc"] == 0
    log = Path(comparison["out"], "svs", "attempt1", "train.log").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in log.splitlines() if "rollout replica" in line and "is dead" in line]
    FIGURES.append("  " + (lines[-1].strip()[-300:] if lines else "no liveness line"))
    assert lines and "trainer.resume_mode=auto" in lines[-1], log[-3000:]
    # the arm ended well within the liveness check's reach (10 s probes), not after a run timeout
    assert attempts[0]["wall_s"] < 900


@pytest.mark.timeout(60)
def test_the_resumed_arm_continues_at_step_2_with_totals_carried_over(comparison):
    first = _train_steps({"steps": _attempt_metrics(comparison, "svs", 1)})
    second = _train_steps({"steps": _attempt_metrics(comparison, "svs", 2)})
    assert sorted(first) == [1] and sorted(second) == [2]        # nothing redone, nothing skipped
    s1, s2 = first[1], second[2]
    assert s2["svs/total/seeds"] == s1["svs/total/seeds"] + s2.get("svs/seeds", 0)
    assert s2["svs/total/accepted"] == s1["svs/total/accepted"] + s2.get("svs/accepted", 0)


def _attempt_metrics(comparison: dict, arm: str, attempt: int) -> dict[int, dict]:
    from svs_verl.evaluation.plot import read_metrics

    return read_metrics(Path(comparison["out"], arm, f"attempt{attempt}", "metrics.jsonl"))


@pytest.mark.timeout(60)
def test_the_comparison_validates_both_arms_at_step_0_and_2_up_to_pass_at_16(comparison):
    assert comparison["rc"] == 0
    for arm in ("svs", "dapo"):
        metrics = comparison["metrics"][arm]
        for step in (0, 2):
            ks = sorted(int(k.rsplit("@", 1)[1]) for k in metrics[step] if "/acc/pass@" in k)
            assert ks == [1, 2, 4, 8, 16], (arm, step, sorted(metrics[step]))
        assert "val-core" not in " ".join(metrics[1])             # --val-every 2: no validation at step 1
    # the same base model, data and seed at step 0 in both arms
    svs0, dapo0 = comparison["metrics"]["svs"][0], comparison["metrics"]["dapo"][0]
    assert {k for k in svs0 if "/acc/pass@" in k} == {k for k in dapo0 if "/acc/pass@" in k}


@pytest.mark.timeout(60)
def test_the_comparison_writes_its_soak_invariants(comparison):
    report = comparison["report"]
    for arm in ("svs", "dapo"):
        text = "\n".join(report["arms"][arm]["invariants"])
        assert "svs/step_end/inflight: 0 at every step end" in text, text
        assert "svs/tq/keys: 0 at every step end" in text, text
        assert "checkpoint size: step 1" in text and "step 2" in text, text
        assert Path(report["arms"][arm]["metrics"]).is_file()
        pss = comparison["soak"][arm]["pss_peak"]
        assert {"1", "2"} <= set(pss) and all(v > 2**30 for v in pss.values()), pss


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


@pytest.mark.timeout(1800)
def test_the_papers_defaults_run_end_to_end_with_consistent_counts(comparison):
    """What is guaranteed, step by step (the comparison's SvS arm: the paper's algorithmic defaults): seeds ->
    8 syntheses each -> parsed or rejected -> one solve group of 8 per accepted problem -> rewards -> groups;
    the rest (how many parse, how many train) is printed."""
    steps = comparison["steps"]["svs"]
    FIGURES.append("\n".join(f"  svs arm step {step}: " + ", ".join(
        f"{k.removeprefix('svs/')} {m.get(k, 0):.0f}" for k in (
            "svs/underperforming", "svs/seeds", "svs/syntheses", "svs/accepted", "svs/update/vps_groups",
            "svs/update/spa_groups", "svs/samples/spa", "svs/step_end/inflight")) + "; rejects " + ", ".join(
        f"{k.removeprefix('svs/reject/')} {v:.0f}" for k, v in sorted(m.items()) if k.startswith("svs/reject/"))
        for step, m in sorted(steps.items())))
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


@pytest.mark.timeout(60)
def test_dapo_twin_has_no_svs_groups(comparison):
    steps = comparison["steps"]["dapo"]
    assert sorted(steps) == [1, 2]
    for m in steps.values():
        assert not any(k.startswith("svs/update/") for k in m)
        assert m["svs/tokens/oqa"] > 0 and m["svs/perf/weight_syncs"] >= 1


@pytest.mark.timeout(1200)
def test_the_dapo_config_trains_with_verls_own_sampler(embedded, tmp_path):
    model, data = embedded
    res = e2e_cpu.run("dapo", model, data, tmp_path / "dapo", ["trainer.total_training_steps=2", "trainer.test_freq=-1"])
    FIGURES.append(e2e_cpu.figures(res))
    assert res["rc"] == 0, e2e_cpu.log_tail(res)
    steps = _train_steps(res)
    assert sorted(steps) == [1, 2]
    for m in steps.values():
        assert not any(k.startswith("svs/") for k in m)            # verl's own trainer and sampler
        assert m["critic/score/mean"] >= 0 and m["response_length/mean"] > 0


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



@pytest.mark.timeout(300)
def test_plot_compare_draws_the_comparison(comparison, tmp_path):
    import subprocess
    import sys

    out = comparison["out"]
    proc = subprocess.run([sys.executable, "-m", "svs_verl.cli", "plot", "compare", "--metrics",
                           str(out / "svs" / "metrics.jsonl"), str(out / "dapo" / "metrics.jsonl"),
                           "--labels", "SvS", "DAPO", "--out", str(tmp_path / "figs"),
                           "--title", "SmolLM2-135M, embedded arithmetic, 2 steps, seed 0"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("entropy", "accuracy", "passk", "synthesis"):
        assert (tmp_path / "figs" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = json.loads((tmp_path / "figs" / "summary.json").read_text())
    assert "SvS" in json.dumps(summary) and "DAPO" in json.dumps(summary)
