"""Run verl's main_ppo with svs_dapo (or its svs.enable=false twin, or dapo) on one CUDA GPU with the embedded
SmolLM2-135M and a one-digit arithmetic task it partly solves (OFFLINE_ASSETS: 18 % accuracy, 72 % of groups in
the underperforming band with a last-number answer), start-up trimmed for the device box, and read the
per-step metrics back from verl's file logger (the console log as a fallback).

    python tests/gpu/svs_gpu_run.py --config svs_dapo --model /tmp/smol --steps 4 --out OUT_DIR [-- OVERRIDES]

The log streams to OUT_DIR/<name>.log while the run goes (a timeout kills the run's process group and keeps
the log); OUT_DIR/<name>.json holds rc, wall time, the time to the first step and the metrics by step.
Used by tests/gpu/run_all.sh (the GPU proof), tests/gpu/test_svs_e2e_gpu.py and benchmarks/svs_step_cost.py.
Needs vllm and verl's GPU stack, except ``overrides``/``command``, which the CPU dry run composes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
INSTRUCTION = "Answer with just the final number."
STEPS = 4
# GPU sizes: 32 originals x 8 samples; SvS bounded to 8 seeds (8 VPS + up to 64 SPA groups of 8) per step
SVS_OVERRIDES = [
    "svs.template=oneline", f"svs.solve_template='{{problem}} {INSTRUCTION}'", "svs.max_seeds_per_step=8",
    "svs.max_seeds_per_problem=1", "svs.guards.leak_min_answer_chars=null",
]


def write_data(out: Path, n_train: int = 512, n_val: int = 32, seed: int = 0) -> tuple[Path, Path]:
    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for i in range(n_train + n_val):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({"data_source": "arith", "ability": "math",
                     "prompt": [{"role": "user", "content": f"What is {a} + {b}? {INSTRUCTION}"}],
                     "reward_model": {"style": "rule", "ground_truth": str(a + b)},
                     "extra_info": {"index": i, "split": "train" if i < n_train else "val",
                                    "problem": f"What is {a} + {b}?"}})
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.parquet", out / "val.parquet"
    pd.DataFrame(rows[:n_train]).to_parquet(train)
    pd.DataFrame(rows[n_train:]).to_parquet(val)
    return train, val


def overrides(model: str, train: Path, val: Path, steps: int, out: Path, config: str = "svs_dapo") -> list[str]:
    """main_ppo overrides of a GPU run; the svs.* ones only for a config with an `svs` section (not dapo)."""
    return [
        f"actor_rollout_ref.model.path={model}", f"data.train_files={train}", f"data.val_files={val}",
        "data.train_batch_size=32", "data.max_prompt_length=512", "data.max_response_length=128",
        "data.dataloader_num_workers=0", "data.filter_overlong_prompts=false",
        # sdpa: no flash-attn on the box (recipes/README.md, "Installing on a GPU node")
        "actor_rollout_ref.model.use_remove_padding=False",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.3", "actor_rollout_ref.rollout.val_kwargs.n=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=32", "actor_rollout_ref.actor.use_dynamic_bsz=true",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=32",
        "reward.reward_kwargs.answer_extraction=last_number",
        # start-up trimmed for the device box: no CUDA-graph capture, 2 agent-loop workers (8 by default),
        # 1 reward worker, 2 TransferQueue storage units (8), no Ray dashboard
        "actor_rollout_ref.rollout.enforce_eager=true", "actor_rollout_ref.rollout.agent.num_workers=2",
        "reward.num_workers=1", "transfer_queue.backend.SimpleStorage.num_data_storage_units=2",
        "+ray_kwargs.ray_init.include_dashboard=false",
        "+ray_kwargs.ray_init.runtime_env.env_vars.VLLM_USE_FLASHINFER_SAMPLER='0'",
        "trainer.n_gpus_per_node=1", "trainer.nnodes=1", "trainer.logger=[console,file]",
        # one validation, after the last step
        f"trainer.total_training_steps={steps}", "trainer.val_before_train=False", f"trainer.test_freq={steps}",
        "trainer.save_freq=-1", f"trainer.default_local_dir={out}/ckpt", "trainer.resume_mode=disable",
        *(SVS_OVERRIDES if config != "dapo" else []),
    ]


def command(config: str, model: str, train: Path, val: Path, steps: int, out: Path, extra=()) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(CONFIGS), "--config-name", config,
            *overrides(model, train, val, steps, out, config), *extra]


def parse_steps(log: str) -> list[dict[str, float]]:
    """verl's console lines ``step:N - key:value - ...`` as one metrics dict per step (with "step")."""
    from svs_verl.evaluation.plot import collect_metrics

    return [{**m, "step": float(step)} for step, m in sorted(collect_metrics(log.splitlines()).items())]


def _read_metrics(metrics_file: Path, log_file: Path) -> list[dict[str, float]]:
    if metrics_file.is_file() and metrics_file.stat().st_size:
        from svs_verl.evaluation.plot import collect_metrics

        with open(metrics_file, encoding="utf-8", errors="replace") as fh:
            return [{**m, "step": float(s)} for s, m in sorted(collect_metrics(fh).items())]
    return parse_steps(log_file.read_text(encoding="utf-8", errors="replace")) if log_file.is_file() else []


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def run(config: str, model: str, steps: int, out: Path, extra=(), timeout: int = 1500,
        name: str | None = None) -> dict:
    """One main_ppo run; the log streams to ``out/<name>.log`` (name defaults to the config)."""
    name = name or config
    out.mkdir(parents=True, exist_ok=True)
    train, val = write_data(out / "data")
    metrics_file, log_file = out / f"{name}.metrics.jsonl", out / f"{name}.log"
    metrics_file.unlink(missing_ok=True)
    cmd = command(config, model, train, val, steps, out, extra)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_USE_FLASHINFER_SAMPLER": "0", "RAY_AUTH_MODE": "disabled",
           "VERL_FILE_LOGGER_PATH": str(metrics_file)}
    t0, first_step, timed_out = time.time(), None, False
    with open(log_file, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out,
                                start_new_session=True)
        while proc.poll() is None:
            if first_step is None and metrics_file.is_file() and metrics_file.stat().st_size:
                first_step = time.time() - t0
            if time.time() - t0 > timeout:
                timed_out = True
                _kill_group(proc)
                break
            time.sleep(1)
        rc = proc.wait()
        if rc == 0:
            _kill_group(proc)   # Ray processes main_ppo left in its session
    result = {"config": config, "name": name, "extra": list(extra), "rc": rc, "timed_out": timed_out,
              "wall_s": time.time() - t0, "first_step_s": first_step, "steps": _read_metrics(metrics_file, log_file)}
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="svs_dapo", choices=["svs_dapo", "dapo"])
    ap.add_argument("--name", default=None, help="name of the log/json files (default: the config)")
    ap.add_argument("--model", default=os.environ.get("SVS_GPU_MODEL", "/tmp/smol"))
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--timeout", type=int, default=1500, help="seconds before the run's process group is killed")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    ap.add_argument("overrides", nargs="*", help="extra hydra overrides (after --)")
    args = ap.parse_args()
    res = run(args.config, args.model, args.steps, args.out, args.overrides, args.timeout, args.name)
    print(json.dumps({k: v for k, v in res.items() if k != "steps"}))
    for s in res["steps"]:
        print({k: v for k, v in s.items() if k.startswith(("svs/", "timing_s/step", "step", "critic/score/mean"))})
    sys.exit(res["rc"])
