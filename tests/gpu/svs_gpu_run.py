"""Run verl's main_ppo with svs_dapo or dapo on a CUDA GPU with the embedded SmolLM2-135M and a one-digit
arithmetic task it partly solves (OFFLINE_ASSETS: 18 % accuracy, 72 % of groups in the underperforming
band with a last-number answer), and parse the per-step metrics from verl's console logger.

    python tests/gpu/svs_gpu_run.py --config svs_dapo --model /tmp/smol --steps 5 --out OUT_DIR

Used by tests/gpu/test_svs_e2e_gpu.py and benchmarks/svs_step_cost.py. Needs vllm and verl's GPU stack.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
INSTRUCTION = "Answer with just the final number."


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


def overrides(model: str, train: Path, val: Path, steps: int, out: Path) -> list[str]:
    return [
        f"actor_rollout_ref.model.path={model}", f"data.train_files={train}", f"data.val_files={val}",
        "data.train_batch_size=32", "data.max_prompt_length=512", "data.max_response_length=128",
        "data.dataloader_num_workers=0", "data.filter_overlong_prompts=false",
        "actor_rollout_ref.model.use_remove_padding=False",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.3", "actor_rollout_ref.rollout.val_kwargs.n=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=32", "actor_rollout_ref.actor.use_dynamic_bsz=true",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=32",
        "reward.reward_kwargs.answer_extraction=last_number", "reward.num_workers=2",
        "trainer.n_gpus_per_node=1", "trainer.nnodes=1", "trainer.logger=[console]",
        f"trainer.total_training_steps={steps}", "trainer.val_before_train=False", "trainer.test_freq=-1",
        "trainer.save_freq=-1", f"trainer.default_local_dir={out}/ckpt", "trainer.resume_mode=disable",
        # SvS settings the 135M model can meet (OFFLINE_ASSETS: few-shot one-line questions)
        "svs.template=oneline", f"svs.solve_template='{{problem}} {INSTRUCTION}'", "svs.max_seeds_per_step=16",
        "svs.max_seeds_per_problem=1", "svs.guards.leak_min_answer_chars=null",
    ]


def parse_steps(log: str) -> list[dict[str, float]]:
    """verl's console lines ``step:N - key:value - ...`` as one metrics dict per step (with "step")."""
    from svs_verl.evaluation.plot import collect_metrics

    return [{**m, "step": float(step)} for step, m in sorted(collect_metrics(log.splitlines()).items())]


def run(config: str, model: str, steps: int, out: Path, extra: list[str] = (), timeout: int = 1500) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    train, val = write_data(out / "data")
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(CONFIGS), "--config-name", config,
           *overrides(model, train, val, steps, out), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_USE_FLASHINFER_SAMPLER": "0", "RAY_AUTH_MODE": "disabled"}
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    log = proc.stdout + proc.stderr
    (out / f"{config}.log").write_text(log)
    result = {"config": config, "rc": proc.returncode, "wall_s": time.time() - t0, "steps": parse_steps(log)}
    (out / f"{config}.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="svs_dapo", choices=["svs_dapo", "dapo"])
    ap.add_argument("--model", default=os.environ.get("SVS_GPU_MODEL", "/tmp/smol"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    args = ap.parse_args()
    res = run(args.config, args.model, args.steps, args.out)
    print(json.dumps({k: v for k, v in res.items() if k != "steps"}))
    for s in res["steps"]:
        print({k: v for k, v in s.items() if k.startswith(("svs/", "timing_s/step", "step", "critic/score/mean"))})
    sys.exit(res["rc"])
