"""What SvS costs per training step against its DAPO twin: two real main_ppo runs back to back, one invocation.

    python benchmarks/svs_step_cost.py --steps 3 --out bench_out/step_cost            # CPU backend (default here)
    python benchmarks/svs_step_cost.py --device cuda --model /tmp/smol --steps 6        # one CUDA GPU

Runs the embedded quickstart (SmolLM2-135M on the embedded arithmetic mix) twice with the same seed and sizes:
``svs_dapo`` semantics (``--config-name quickstart``), then its ``svs.enable=false`` twin (verl's own DAPO
sampling path). On the CPU the runs use ``+backend=cpu +size=cpu`` (tests/e2e_cpu.py); on a GPU the settings
of tests/gpu/svs_gpu_run.py. Prints per step and run: step time by phase (generation - with the part spent
after the originals finished, ``svs/time/tail_s`` - old log-probs, actor update, weight sync), generated
tokens per role, weight syncs, and

    overhead = (SvS step time) / (DAPO step time x SvS tokens / DAPO tokens)

which is 1.0 when SvS costs exactly its extra tokens and nothing else (no extra weight sync, no extra rollout
phase). The first step (warm-up) is left out of the mean. "tokens" are generated tokens (all roles).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "gpu"))

PHASES = ("gen", "old_log_prob", "update_actor", "update_weights")


def tokens(step: dict) -> float:
    return sum(step.get(f"svs/tokens/{r}", 0.0) for r in ("oqa", "vps", "spa"))


def run_pair(device: str, steps: int, out: Path, model: str | None) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    if device == "cpu":
        import e2e_cpu

        embedded_model, data = e2e_cpu.assets(out / "assets")   # built once, for both runs
        model_dir = Path(model) if model else embedded_model
    for name, extra in (("svs", []), ("dapo", ["svs.enable=false"])):
        if device == "cpu":
            res = e2e_cpu.run("quickstart", model_dir, data, out / name,
                              [f"trainer.total_training_steps={steps}", "trainer.test_freq=-1", *extra],
                              timeout_s=600 + 300 * steps)
            ok, log = res["rc"] == 0, Path(res["out"]) / "train.log"
            step_rows = [{**m, "step": float(s)} for s, m in sorted(res["steps"].items()) if "timing_s/step" in m]
        else:
            import svs_gpu_run

            res = svs_gpu_run.run("svs_dapo", model or "/tmp/smol", steps, out / name, extra=extra)
            ok, log = res["rc"] == 0, out / name / "svs_dapo.log"
            step_rows = [s for s in res["steps"] if "timing_s/step" in s]
        if not ok:
            sys.exit(f"{name} run failed (rc {res['rc']}); log: {log}")
        runs[name] = step_rows
    return runs


def table(runs: dict[str, list[dict]]) -> list[str]:
    head = (f"{'step':>4} {'run':>5} {'step_s':>7} " + " ".join(f"{p:>12}" for p in PHASES) +
            f" {'tail_s':>7} {'tok_oqa':>8} {'tok_vps':>8} {'tok_spa':>8} {'syncs':>6}")
    rows = [head]
    for name, steps in runs.items():
        for s in steps:
            rows.append(f"{int(s['step']):>4} {name:>5} {s['timing_s/step']:>7.1f} " +
                        " ".join(f"{s.get(f'timing_s/{p}', float('nan')):>12.1f}" for p in PHASES) +
                        f" {s.get('svs/time/tail_s', 0.0):>7.1f} {s.get('svs/tokens/oqa', 0):>8.0f} "
                        f"{s.get('svs/tokens/vps', 0):>8.0f} {s.get('svs/tokens/spa', 0):>8.0f} "
                        f"{s.get('svs/perf/weight_syncs', float('nan')):>6.0f}")
    return rows


def summary(runs: dict[str, list[dict]]) -> dict:
    pairs = [(a, b) for a, b in zip(runs["svs"][1:], runs["dapo"][1:]) if tokens(b)]
    ratios = [a["timing_s/step"] / (b["timing_s/step"] * tokens(a) / tokens(b)) for a, b in pairs]

    def mean(xs):
        xs = list(xs)
        return sum(xs) / len(xs) if xs else None

    syncs_equal = all(a.get("svs/perf/weight_syncs") == b.get("svs/perf/weight_syncs")
                      for a, b in zip(runs["svs"], runs["dapo"]))
    return {"steps_compared": [int(a["step"]) for a, _ in pairs],
            "svs_step_s": mean(a["timing_s/step"] for a, _ in pairs),
            "dapo_step_s": mean(b["timing_s/step"] for _, b in pairs),
            "svs_tokens": mean(tokens(a) for a, _ in pairs), "dapo_tokens": mean(tokens(b) for _, b in pairs),
            "overhead_ratio_per_step": [round(r, 3) for r in ratios], "overhead_ratio_mean": mean(ratios),
            "weight_syncs_equal_per_step": syncs_equal,
            "phase_share_svs": {p: mean(a.get(f"timing_s/{p}", 0) / a["timing_s/step"] for a, _ in pairs)
                                for p in PHASES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--model", default=None, help="model directory (default: the embedded SmolLM2-135M)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench_out/step_cost"))
    args = ap.parse_args()
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.steps < 2:
        sys.exit("--steps must be >= 2 (step 1 is warm-up and left out of the ratio)")
    runs = run_pair(device, args.steps, args.out, args.model)
    print(f"device: {device}; svs = quickstart (svs_dapo semantics), dapo = the same with svs.enable=false")
    print("\n".join(table(runs)))
    result = summary(runs)
    print(json.dumps(result, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"device": device, "summary": result, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
