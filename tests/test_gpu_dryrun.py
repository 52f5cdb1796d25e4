"""The GPU proof (tests/gpu/run_all.sh) up to the device calls, on the CPU: `--dry-run` composes the GPU runs'
configs with svs-verl's check-config, builds and installs svs-verl offline as the box will, checks the staging
plan against the 64 MiB a call carries and prints the device calls with their budget; the runner streams its
log and keeps it when a run is killed at its timeout; the proof's checks pass a run that does what the CPU
e2e checks and fail each way a run can miss it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "tests" / "gpu" / "run_all.sh"
sys.path.insert(0, str(ROOT / "tests" / "gpu"))

import gpu_proof  # noqa: E402
import svs_gpu_run  # noqa: E402


def dry_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RUN_ALL), "--dry-run"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path), **env})


@pytest.fixture(scope="module")
def unstaged(tmp_path_factory):
    return dry_run(tmp_path_factory.mktemp("dry"), STAGE=str(tmp_path_factory.mktemp("nostage")))


def test_dry_run_composes_builds_and_plans_the_calls(unstaged):
    out = unstaged
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    composed = [ln.split(":")[1].strip() for ln in lines if ln.startswith("composed and checked:")]
    assert composed == ["svs", "twin", "dapo"]
    assert "svs-verl 0.1.0 installs offline; verl.plugins entry point svs_verl.verl_plugin.register" in lines
    assert any(ln.startswith("not staged here") for ln in lines)
    assert any("(A):" in ln and "bash tests/gpu/run_all.sh --box svs" in ln and "timeout_s 540" in ln for ln in lines)
    assert any("(B):" in ln and "bash tests/gpu/run_all.sh --box twin" in ln for ln in lines)
    assert lines[-1] == "dry run ok"
    # the budget is written in the script's header, per call, against the 15 minutes
    header = RUN_ALL.read_text().split("set -euo")[0]
    for needle in ("Device budget (15 min", "call A (timeout_s 540)", "call B (timeout_s 540)", "total"):
        assert needle in header


def test_dry_run_plans_one_call_per_part_and_refuses_a_part_too_big(tmp_path):
    stage = tmp_path / "stage"
    for i in range(3):
        (stage / "parts" / f"{i:02d}").mkdir(parents=True)
        (stage / "parts" / f"{i:02d}" / "w.whl").write_bytes(b"x" * 4096)
    out = dry_run(tmp_path, STAGE=str(stage))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    calls = [ln for ln in out.stdout.splitlines() if ln.startswith("call ")]
    assert [c.split(":")[0] for c in calls] == ["call 1", "call 2", "call 3 (A)", "call 4 (B)"]
    assert f'carry ["{stage}/parts/00"] timeout_s 60' in calls[0]
    assert f"cp -r {stage}/parts/02/. /tmp/acc/ &&" in calls[2]
    with open(stage / "parts" / "01" / "big.whl", "wb") as fh:   # 64 MiB (sparse): over the limit with the tree
        fh.truncate(64 * 1024 * 1024)
    out = dry_run(tmp_path, STAGE=str(stage))
    assert out.returncode == 1 and out.stdout.splitlines()[-1] == \
        f"run_all: {stage}/parts/01 with the working tree is over 64 MiB"


def test_box_twin_without_call_a_says_so_in_one_line(tmp_path):
    if Path("/tmp/site/verl").exists():
        pytest.skip("a GPU-box install is present here")
    out = subprocess.run(["bash", str(RUN_ALL), "--box", "twin"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OUT": str(tmp_path)})
    assert out.returncode == 1 and out.stdout.count("\n") == 1 and "given back between the calls" in out.stdout


def test_box_svs_without_the_staged_parts_says_so_in_one_line(tmp_path):
    if Path("/tmp/site/verl").exists() or Path("/tmp/acc").exists():
        pytest.skip("a GPU-box install or staging folder is present here")
    out = subprocess.run(["bash", str(RUN_ALL), "--box", "svs"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OUT": str(tmp_path)})
    assert out.returncode == 1 and out.stdout.count("\n") == 1 and "make the staging calls first" in out.stdout


def test_gpu_configs_are_trimmed_and_dapo_gets_no_svs_keys():
    from svs_verl.verl_plugin.checks import compose_run_config

    composed = dict(gpu_proof.plan())
    assert not [o for o in composed["dapo"] if o.startswith("svs.")]
    assert "svs.enable=false" in composed["twin"] and "svs.enable=false" not in composed["svs"]
    cfg = compose_run_config(composed["svs"][0], composed["svs"][1:])
    assert cfg.actor_rollout_ref.rollout.enforce_eager is True
    assert cfg.actor_rollout_ref.rollout.agent.num_workers == 2 and cfg.reward.num_workers == 1
    assert cfg.transfer_queue.backend.SimpleStorage.num_data_storage_units == 2
    assert cfg.ray_kwargs.ray_init.include_dashboard is False
    assert dict(cfg.ray_kwargs.ray_init.runtime_env.env_vars) == {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    assert (cfg.trainer.total_training_steps, cfg.trainer.test_freq, cfg.trainer.val_before_train) == (4, 4, False)
    assert cfg.svs.max_seeds_per_step == 8 and cfg.actor_rollout_ref.rollout.val_kwargs.n == 4
    assert cfg.trainer.logger == ["console", "file"]


def test_the_runner_streams_its_log_and_keeps_it_at_a_timeout(tmp_path, monkeypatch):
    """A run killed at its timeout: the log written so far is on disk, the result says so."""
    script = ("import time,sys\nfor i in range(100):\n    print(f'step:{i+1} - timing_s/step:0.5', flush=True)\n"
              "    time.sleep(0.5)\n")
    monkeypatch.setattr(svs_gpu_run, "command", lambda *a, **k: [sys.executable, "-c", script])
    monkeypatch.setattr(svs_gpu_run, "write_data", lambda out: (out / "t", out / "v"))
    t0 = time.time()
    res = svs_gpu_run.run("svs_dapo", "/m", 4, tmp_path, timeout=3, name="svs")
    assert res["timed_out"] and res["rc"] != 0 and time.time() - t0 < 30
    log = (tmp_path / "svs.log").read_text()
    assert log.startswith("$ ") and "step:1 - timing_s/step:0.5" in log
    assert 1 <= len(res["steps"]) < 100 and res["steps"][0] == {"timing_s/step": 0.5, "step": 1.0}
    assert json.loads((tmp_path / "svs.json").read_text())["timed_out"] is True


# ---- the proof's checks on hand-made results ---------------------------------------------------------------
def step(s: int, **extra) -> dict:
    m = {"step": float(s), "timing_s/step": 10.0 + s, "timing_s/gen": 5.0, "svs/perf/weight_syncs": float(s),
         "svs/tokens/oqa": 1000.0, "svs/tokens/vps": 300.0, "svs/tokens/spa": 900.0, "svs/entropy/oqa": 0.8,
         "svs/entropy/vps": 0.9, "svs/seeds": 2.0, "svs/syntheses": 16.0, "svs/update/vps_groups": 1.0,
         "svs/samples/vps": 8.0, "svs/update/spa_groups": 3.0, "svs/samples/spa": 24.0,
         "svs/step_end/inflight": 0.0}
    m.update(extra)
    return m


VAL = {"step": 4.0, "val-core/arith/acc/pass@1": 0.2, "val-core/arith/acc/pass@2": 0.3,
       "val-core/arith/acc/pass@4": 0.45}


def svs_result(tmp_path: Path, steps=None, dumps=None, compress=True) -> tuple[dict, Path]:
    from svs_verl.verl_plugin.dumps import DumpWriter

    steps = steps or [step(s) for s in range(1, 5)]
    dump_dir = tmp_path / "svs"
    writer = DumpWriter(dump_dir, compress=compress)
    for s in (dumps if dumps is not None else {int(m["step"]): int(m["svs/syntheses"]) for m in steps}).items():
        writer.write(s[0], [{"synthesis_uid": f"u{s[0]}-{i // 8}", "sample_index": i % 8} for i in range(s[1])])
    # verl logs validation in the last step's line
    steps = [*steps[:-1], {**steps[-1], **{k: v for k, v in VAL.items() if k != "step"}}]
    return {"rc": 0, "timed_out": False, "steps": steps}, dump_dir


def failed(checks) -> list[str]:
    return [what for what, ok, _ in checks if not ok]


@pytest.mark.parametrize("compress", [True, False])
def test_a_run_that_does_everything_passes(tmp_path, compress):
    res, dumps = svs_result(tmp_path, compress=compress)
    assert failed(gpu_proof.check_svs(res, dumps)) == []
    assert gpu_proof.render("svs", gpu_proof.check_svs(res, dumps)).startswith("== svs: PASS")


@pytest.mark.parametrize("change,check", [
    (lambda st: st[2].update({"svs/perf/weight_syncs": 4.0}), "one weight sync per step"),
    (lambda st: st[1].update({"svs/step_end/inflight": 3.0}), "nothing in flight at a step's end"),
    (lambda st: [m.update({"svs/update/spa_groups": 0.0, "svs/samples/spa": 0.0}) for m in st],
     "VPS and SPA groups trained"),
    (lambda st: st[0].update({"svs/samples/vps": 7.0}), "every sample of a kept group in the update"),
    (lambda st: st[3].update({"svs/entropy/oqa": 11.0}), "per-role entropy logged"),
    (lambda st: st.pop(), "steps 1..4 trained"),
])
def test_each_miss_fails_its_check(tmp_path, change, check):
    steps = [step(s) for s in range(1, 5)]
    change(steps)
    res, dumps = svs_result(tmp_path, steps=steps,
                            dumps={int(m["step"]): int(m["svs/syntheses"]) for m in steps})
    assert check in failed(gpu_proof.check_svs(res, dumps))


def test_dumps_must_match_the_seeded_steps_and_syntheses(tmp_path):
    res, dumps = svs_result(tmp_path, dumps={1: 16, 2: 16, 3: 16})          # step 4 seeded, no dump
    assert failed(gpu_proof.check_svs(res, dumps)) == ["a synthesis dump per seeded step, one record per synthesis"]
    res, dumps = svs_result(tmp_path / "b", dumps={1: 16, 2: 8, 3: 16, 4: 16})   # 8 records, 16 syntheses
    assert failed(gpu_proof.check_svs(res, dumps)) == ["a synthesis dump per seeded step, one record per synthesis"]


def test_validation_and_exit_code(tmp_path):
    res, dumps = svs_result(tmp_path)
    res["steps"][-1].pop("val-core/arith/acc/pass@4")
    assert failed(gpu_proof.check_svs(res, dumps)) == ["validation pass@1,2,4 at the end"]
    res, dumps = svs_result(tmp_path / "b")
    res.update(rc=-9, timed_out=True)
    assert failed(gpu_proof.check_svs(res, dumps)) == ["exit code 0"]


def test_the_twin_must_have_no_svs_groups_and_the_table_prints(tmp_path):
    svs, _ = svs_result(tmp_path)
    keep = ("step", "timing_s/step", "timing_s/gen", "svs/perf/weight_syncs", "svs/tokens/oqa")
    twin = {"rc": 0, "steps": [*({k: v for k, v in step(s).items() if k in keep} for s in range(1, 4)),
                               {**{k: v for k, v in step(4).items() if k in keep}, **VAL}]}
    assert failed(gpu_proof.check_twin(twin)) == []
    twin["steps"][0]["svs/update/vps_groups"] = 1.0
    assert failed(gpu_proof.check_twin(twin)) == ["no SvS groups in the twin"]
    table = gpu_proof.step_cost(svs, twin)
    assert "step_s" in table and "overhead_ratio_mean" in table
    assert len([ln for ln in table.splitlines() if ln.split()[:2] in (["1", "svs"], ["4", "dapo"])]) == 2
