"""What SvS costs per training step, against DAPO, on one GPU (needs CUDA, vllm and a model).

    python benchmarks/svs_step_cost.py --model /tmp/smol --steps 6 --out bench_out/step_cost

Runs verl's main_ppo twice with the same settings (tests/gpu/svs_gpu_run.py: SmolLM2-135M, one-digit
addition): svs_dapo, then svs_dapo with svs.enable=false (verl's own DAPO sampling path; tested equal to
verl's ReplayBuffer). Prints per step: wall time, generated tokens per role, weight syncs, and

    overhead = (SvS step time) / (DAPO step time x SvS tokens / DAPO tokens)

which is 1.0 when SvS costs exactly its extra tokens and nothing else (no extra weight sync, no extra
rollout phase). The first step (warm-up) is excluded from the means.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gpu"))
import svs_gpu_run  # noqa: E402


def tokens(step: dict) -> float:
    return sum(step.get(f"svs/tokens/{r}", 0.0) for r in ("oqa", "vps", "spa"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="/tmp/smol")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("bench_out/step_cost"))
    args = ap.parse_args()

    runs = {}
    for name, extra in (("svs", []), ("dapo", ["svs.enable=false"])):
        runs[name] = svs_gpu_run.run("svs_dapo", args.model, args.steps, args.out / name, extra=extra)
        if runs[name]["rc"] != 0:
            sys.exit(f"{name} run failed (rc {runs[name]['rc']}); log: {args.out / name / 'svs_dapo.log'}")

    print(f"{'step':>4} {'run':>5} {'time_s':>8} {'tok_oqa':>9} {'tok_vps':>9} {'tok_spa':>9} {'syncs':>6}")
    for name, res in runs.items():
        for s in res["steps"]:
            print(f"{int(s['step']):>4} {name:>5} {s.get('timing_s/step', float('nan')):>8.2f} "
                  f"{s.get('svs/tokens/oqa', 0):>9.0f} {s.get('svs/tokens/vps', 0):>9.0f} "
                  f"{s.get('svs/tokens/spa', 0):>9.0f} {s.get('svs/perf/weight_syncs', float('nan')):>6.0f}")
    pairs = list(zip(runs["svs"]["steps"][1:], runs["dapo"]["steps"][1:]))
    ratios = [(a["timing_s/step"] / (b["timing_s/step"] * tokens(a) / tokens(b)))
              for a, b in pairs if tokens(b) and "timing_s/step" in a and "timing_s/step" in b]
    t_svs = sum(a["timing_s/step"] for a, _ in pairs) / max(len(pairs), 1)
    t_dapo = sum(b["timing_s/step"] for _, b in pairs) / max(len(pairs), 1)
    summary = {"svs_step_s": t_svs, "dapo_step_s": t_dapo,
               "svs_tokens": sum(tokens(a) for a, _ in pairs) / max(len(pairs), 1),
               "dapo_tokens": sum(tokens(b) for _, b in pairs) / max(len(pairs), 1),
               "overhead_ratio_mean": sum(ratios) / len(ratios) if ratios else None}
    print(json.dumps(summary, indent=1))
    (args.out / "summary.json").write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
