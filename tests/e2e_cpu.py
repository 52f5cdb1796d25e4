"""Run verl's real ``main_ppo`` on the CPU backend with the embedded SmolLM2-135M and data (tests and benchmark).

    python tests/e2e_cpu.py --out /tmp/e2e -- svs.enable=false     # one run, figures as JSON

One run = ``python -m verl.trainer.main_ppo --config-path configs --config-name quickstart +backend=cpu
+size=cpu`` (or ``--config-name dapo +embedded=...``: see ``command``), in its own process group with a hard
timeout, its summed PSS sampled every 5 s, verl's metrics read from its file logger.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svs_verl.evaluation.plot import collect_metrics  # noqa: E402
from svs_verl.procmem import PeakMemory, RunLitter  # noqa: E402
from svs_verl.quickstart import CPU_ENV, CPU_OVERRIDES, PYTHON_NO_CWD  # noqa: E402

CONFIGS = ROOT / "configs"
# the quickstart's formats on top of the dapo config, so that the DAPO baseline differs from svs_dapo in SvS only
DAPO_EMBEDDED = ["+embedded=quickstart"]
FIGURES: list[str] = []   # what the tests measured, printed after the run by conftest.py


def assets(cache: Path) -> tuple[Path, Path]:
    """The embedded model and data (built once into ``cache``)."""
    from svs_verl.data.quickstart import write_quickstart
    from svs_verl.model import build_smollm2

    model = build_smollm2(cache / "smollm2")
    data = cache / "data"
    if not (data / "train.parquet").is_file():
        write_quickstart(data, seed=0)
    return model, data


def command(config: str, model: Path, data: Path, out: Path, overrides: list[str]) -> list[str]:
    extra = DAPO_EMBEDDED if config == "dapo" else []
    return [sys.executable, *PYTHON_NO_CWD, "--config-path", str(CONFIGS), "--config-name", config,
            *extra, *CPU_OVERRIDES,
            f"actor_rollout_ref.model.path={model}", f"data.train_files={data / 'train.parquet'}",
            f"data.val_files={data / 'val.parquet'}", f"trainer.default_local_dir={out / 'ckpt'}",
            "trainer.save_freq=-1", *overrides]


def run(config: str, model: Path, data: Path, out: Path, overrides: list[str] = (), timeout_s: int = 900,
        on_poll=None) -> dict:
    """One main_ppo run: rc, wall seconds, seconds to the first logged step, peak summed PSS, metrics by step.
    ``on_poll(proc, metrics_file)`` is called every second while it runs (a test's fault injection)."""
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"
    if metrics_file.exists():
        metrics_file.unlink()
    env = {**os.environ, **CPU_ENV, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
           "VERL_FILE_LOGGER_PATH": str(metrics_file)}
    litter = RunLitter()                 # the run's Ray session, vLLM's sockets and /dev/shm segments: removed after
    env.update(litter.ray_tmpdir(env))
    cmd = command(config, model, data, out, list(overrides))
    t0 = time.time()
    first_step = None
    with open(out / "train.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out, start_new_session=True)
        try:
            with PeakMemory(proc.pid, shm=litter.shm) as memory:
                timed_out = False
                while proc.poll() is None:
                    if first_step is None and metrics_file.exists() and metrics_file.stat().st_size > 0:
                        first_step = time.time() - t0
                    if time.time() - t0 > timeout_s:
                        timed_out = True
                        _kill_group(proc)
                        break
                    if on_poll is not None:
                        on_poll(proc, metrics_file)
                    time.sleep(1)
                rc = proc.wait()
        finally:   # also when the caller is interrupted (a pytest timeout): nothing of the run survives it
            _kill_group(proc)            # Ray workers main_ppo left behind in its process group, if any
            litter.clean()
    steps = {}
    if metrics_file.exists():
        with open(metrics_file, encoding="utf-8") as fh:
            steps = collect_metrics(fh)
    return {"config": config, "overrides": list(overrides), "rc": rc, "timed_out": timed_out,
            "wall_s": time.time() - t0, "first_step_s": first_step, "peak_pss_bytes": memory.peak_bytes,
            "peak_procs": memory.peak_procs, "steps": {int(k): v for k, v in steps.items()}, "out": str(out)}


def _kill_group(proc: subprocess.Popen) -> None:
    """End the run we started (main_ppo and the Ray processes in its process group), by its group id."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(result: dict, n: int = 60) -> str:
    lines = Path(result["out"], "train.log").read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


def figures(result: dict) -> str:
    """One line per step (time by phase, tokens per role, weight syncs) and the run's totals."""
    head = (f"{result['config']} {' '.join(result['overrides'])}: rc {result['rc']}, wall {result['wall_s']:.0f} s, "
            f"first step logged at {result['first_step_s'] or float('nan'):.0f} s, peak PSS "
            f"{(result['peak_pss_bytes'] or 0) / 2**30:.1f} GiB over {result['peak_procs']} processes")
    rows = [head]
    for step, m in sorted(result["steps"].items()):
        if "timing_s/step" not in m:
            continue
        rows.append(f"  step {step}: {m['timing_s/step']:.1f} s (gen {m.get('timing_s/gen', float('nan')):.1f}, "
                    f"old_log_prob {m.get('timing_s/old_log_prob', float('nan')):.1f}, "
                    f"update_actor {m.get('timing_s/update_actor', float('nan')):.1f}, "
                    f"update_weights {m.get('timing_s/update_weights', float('nan')):.1f}) tokens oqa/vps/spa "
                    f"{m.get('svs/tokens/oqa', 0):.0f}/{m.get('svs/tokens/vps', 0):.0f}/{m.get('svs/tokens/spa', 0):.0f}"
                    f" weight_syncs {m.get('svs/perf/weight_syncs', float('nan')):.0f}")
    return "\n".join(rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="quickstart", choices=["quickstart", "dapo"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/svs-e2e-cache"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    m, d = assets(args.cache)
    res = run(args.config, m, d, args.out, args.overrides)
    print(figures(res))
    sys.exit(res["rc"])
