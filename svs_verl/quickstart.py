"""``svs-verl quickstart``: a short, real SvS run with nothing downloaded from a model or data hub.

    svs-verl quickstart                          # one CUDA GPU: ~20 steps of svs_dapo on SmolLM2-135M
    svs-verl quickstart --steps 5 --out runs/qs  # fewer steps, another output directory
    svs-verl quickstart --dry-run                # print the main_ppo command and stop
    svs-verl quickstart -- svs.enable=false      # anything after -- goes to main_ppo as hydra overrides

What it does:

1. checks for a CUDA GPU and vLLM (verl's rollout needs both). Without them it stops at once and points to
   ``svs-verl preview``, which runs one SvS synthesis round on the CPU;
2. builds the embedded model (``svs-verl model smollm2``) and data (``svs-verl data quickstart``) into the
   cache when they are missing;
3. runs ``python -m verl.trainer.main_ppo`` with ``configs/quickstart.yaml`` (svs_dapo at one-GPU sizes),
   writing verl's console output to ``OUT/train.log`` and its metrics to ``OUT/metrics.jsonl`` (verl's
   file logger), and prints one progress line per step;
4. prints a summary: steps, time, synthesized and accepted problems, accuracy, validation pass@k, and
   where the log, metrics, synthesis dumps and checkpoints went.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from .evaluation.plot import collect_metrics, parse_metrics_line

CONFIG_NAME = "quickstart"
NO_GPU = """svs-verl quickstart: {why}.
SvS training runs verl's rollout on vLLM, which needs a CUDA GPU; nothing was started.
What runs here: one SvS synthesis round on the CPU with the embedded model - seeds, synthesis prompts,
parsed problems, guard verdicts and solve accuracy, as a table:

    svs-verl preview

(it builds the embedded model on first use, ~30 s; the round takes a few minutes on 2 CPU cores)."""


def gpu_problem() -> str | None:
    """Why training cannot run here, or None when a CUDA GPU and vLLM are present."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (on the GPU node: pip install vllm==0.24.0, the version verl 0.9.1 pins)"
    return None


def configs_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("svs_verl.configs")))


def main_ppo_command(model: Path, data: Path, out: Path, steps: int, overrides: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(configs_dir()),
        "--config-name", CONFIG_NAME,
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={data / 'train.parquet'}", f"data.val_files={data / 'val.parquet'}",
        f"trainer.total_training_steps={steps}", f"trainer.default_local_dir={out / 'ckpt'}",
        *overrides,
    ]


def progress_line(step: int, total: int, m: dict[str, float], elapsed_s: float) -> str:
    parts = [f"step {step}/{total}", f"{elapsed_s:.0f} s"]
    if "timing_s/step" in m:
        parts.append(f"{m['timing_s/step']:.1f} s/step")
    if "svs/oqa/acc_mean" in m:
        parts.append(f"acc {m['svs/oqa/acc_mean']:.3f}")
    if "svs/syntheses" in m:
        parts.append(f"syntheses {m['svs/syntheses']:.0f} (accepted {m.get('svs/accepted', 0):.0f})")
    if "svs/update/spa_groups" in m:
        parts.append(f"update groups oqa/vps/spa {m.get('svs/update/oqa_groups', 0):.0f}/"
                     f"{m.get('svs/update/vps_groups', 0):.0f}/{m['svs/update/spa_groups']:.0f}")
    if "actor/entropy" in m:
        parts.append(f"entropy {m['actor/entropy']:.3f}")
    return " | ".join(parts)


def summarize(metrics_file: Path, out: Path, wall_s: float, rc: int) -> str:
    """The end-of-run summary from verl's file-logger JSONL (missing or empty: a run that logged nothing)."""
    rows = []
    if metrics_file.is_file():
        with open(metrics_file, encoding="utf-8", errors="replace") as fh:
            rows = sorted(collect_metrics(fh).items())
    train = [(s, d) for s, d in rows if "svs/oqa/acc_mean" in d or "timing_s/step" in d]
    val = [(s, d) for s, d in rows if any(k.startswith("val-core/") for k in d)]

    def total(key: str) -> float:
        return sum(float(d.get(key, 0.0)) for _, d in train)

    lines = [f"== svs-verl quickstart: {'finished' if rc == 0 else f'main_ppo exited with {rc}'}",
             f"steps         {len(train)} in {wall_s / 60:.1f} min"]
    step_times = [float(d["timing_s/step"]) for _, d in train if "timing_s/step" in d]
    if step_times:
        lines.append(f"step time     {sum(step_times) / len(step_times):.1f} s mean")
    if train:
        syn, acc = total("svs/syntheses"), total("svs/accepted")
        lines.append(f"synthesized   {syn:.0f} problems from {total('svs/seeds'):.0f} seeds; accepted {acc:.0f} "
                     f"({acc / syn:.1%} of syntheses)" if syn else "synthesized   0 problems")
        first, last = train[0][1], train[-1][1]
        if "svs/oqa/acc_mean" in first:
            lines.append(f"accuracy      original problems {first['svs/oqa/acc_mean']:.3f} (step {train[0][0]}) -> "
                         f"{last.get('svs/oqa/acc_mean', float('nan')):.3f} (step {train[-1][0]})")
        if "svs/spa/acc_mean" in last:
            lines.append(f"              variational problems {last['svs/spa/acc_mean']:.3f} (last step)")
    if val:
        step, d = val[-1]
        passk = sorted(((k, v) for k, v in d.items() if "/acc/pass@" in k),
                       key=lambda kv: (kv[0].rsplit("/", 1)[0], int(kv[0].rsplit("@", 1)[1])))
        # keys are val-core/<data_source>/acc/pass@k, and data sources may contain "/"
        shown = ", ".join(f"{k[len('val-core/'):k.rindex('/acc/')]} {k.rsplit('/', 1)[1]} {v:.3f}"
                          for k, v in passk[:8])
        lines.append(f"validation    step {step}: {shown or 'no pass@k logged'}")
    lines += [f"log           {out / 'train.log'}", f"metrics       {metrics_file}  (svs-verl plot training)",
              f"syntheses     {out / 'ckpt' / 'svs'}/syntheses_step*.jsonl", f"checkpoints   {out / 'ckpt'}"]
    return "\n".join(lines)


def prepare_assets(model: Path | None, data: Path | None, seed: int) -> tuple[Path, Path]:
    from .assets import cache_dir
    from .data.quickstart import write_quickstart
    from .model import build_smollm2, default_model_dir

    model = build_smollm2(model or default_model_dir())
    data = data or cache_dir() / "data" / f"quickstart-seed{seed}"
    if not all((data / f).is_file() for f in ("train.parquet", "val.parquet")):
        write_quickstart(data, seed=seed)
    return model, data


def run(args) -> int:
    out: Path = args.out.resolve()
    overrides = [o for o in args.overrides if o != "--"]
    if args.dry_run:
        model = (args.model or Path("<embedded model dir>"))
        data = (args.data or Path("<embedded data dir>"))
        print(" ".join(main_ppo_command(model, data, out, args.steps, overrides)))
        return 0
    why = gpu_problem()
    if why:
        print(NO_GPU.format(why=why), file=sys.stderr)
        return 1
    model, data = prepare_assets(args.model, args.data, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"
    cmd = main_ppo_command(model, data, out, args.steps, overrides)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VERL_FILE_LOGGER_PATH": str(metrics_file),
           "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    print(f"svs-verl quickstart: model {model}\n  data {data}\n  output {out}\n  running: {' '.join(cmd)}\n"
          f"  (verl's start-up takes a few minutes; its full output goes to {out / 'train.log'})", flush=True)
    t0 = time.time()
    tail: deque[str] = deque(maxlen=40)
    with open(out / "train.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip("\n"))
                if args.verbose:
                    print(line, end="", flush=True)
                parsed = parse_metrics_line(line)
                if parsed:
                    print(progress_line(parsed[0], args.steps, parsed[1], time.time() - t0), flush=True)
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            rc = proc.wait()
    if rc != 0 and not args.verbose:
        print("\n".join(["-- last lines of train.log --", *tail]), file=sys.stderr)
    print(summarize(metrics_file, out, time.time() - t0, rc), flush=True)
    return rc


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("quickstart", help="short SvS training run of the embedded model on one CUDA GPU")
    s.add_argument("--out", type=Path, default=Path("svs_quickstart"), help="output directory (log, metrics, dumps)")
    s.add_argument("--steps", type=int, default=20, help="training steps (trainer.total_training_steps)")
    s.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded SmolLM2-135M)")
    s.add_argument("--data", type=Path, default=None,
                   help="directory with train.parquet and val.parquet (default: the embedded arithmetic mix)")
    s.add_argument("--seed", type=int, default=0, help="seed of the embedded data")
    s.add_argument("--verbose", action="store_true", help="stream verl's whole output, not only progress lines")
    s.add_argument("--dry-run", action="store_true", help="print the main_ppo command and exit")
    s.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides for main_ppo, after --")
    s.set_defaults(func=run)
