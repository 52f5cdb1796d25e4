"""What SvS costs per training step against its DAPO twin: two real main_ppo runs back to back, one invocation.

    python benchmarks/svs_step_cost.py --steps 3 --out bench_out/step_cost            # CPU backend (default here)
    python benchmarks/svs_step_cost.py --device cuda --model /tmp/smol --steps 6        # one CUDA GPU

Runs the embedded quickstart (SmolLM2-135M on the embedded arithmetic mix) twice with the same seed and sizes:
``svs_dapo`` semantics (``--config-name quickstart``), then its ``svs.enable=false`` twin (verl's own DAPO
sampling path). On the CPU the runs use ``+backend=cpu +size=cpu`` (tests/e2e_cpu.py); on a GPU the settings
of tests/gpu/svs_gpu_run.py. The first step (warm-up) is left out of every figure.

The main figure is a cost model per phase: what one token costs SvS against what it costs the twin, where
"token" is what the phase processes (the metrics come from svs_verl/verl_plugin/trainer.py and sampler.py):

* ``gen``: generated tokens (``svs/tokens/<role>``) and prompt tokens prefilled (``svs/prompt_tokens/<role>``).
  A least-squares fit without intercept over the compared steps of both arms, gen_s ~ a x generated + b x prompt,
  gives a and b; each arm's cost ratio is sum(gen_s) / sum(a x generated + b x prompt), and SvS / twin the
  phase ratio. Also per generated token alone: sum(gen_s) / sum(generated). (SvS's gen also holds the tail,
  ``svs/time/tail_s``: syntheses and solves wait for the originals and the syntheses; that is latency, not tokens.)
* ``old_log_prob`` and ``update_actor``: seconds per real sequence token (prompt + response of the batch's real
  samples, ``svs/batch/seq_tokens``); verl's padding dummies (``svs/batch/dummy_tokens``) and what the
  micro-batches cost (``svs/batch/padded_tokens/{old_log_prob,update}``) are shown apart, with seconds per
  computed (padded) token next to it.
* ``update_weights``: seconds per step (no tokens: SvS must cost the same).

Per-token costs are ratios of sums over the compared steps (sum of seconds / sum of tokens). The goal is SvS / twin
<= 1.05 in every phase. The old figure is kept as a secondary one:

    overhead = (SvS step time) / (DAPO step time x SvS generated tokens / DAPO generated tokens)

which is 1.0 when SvS costs exactly its extra generated tokens and nothing else. Everything goes to
``<out>/summary.json`` (per-step rows of both runs, the cost model, the old ratio) and a table is printed.
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


ROLES = ("oqa", "vps", "spa")
GOAL = 1.05   # SvS / twin per-token cost, every phase


def tokens(step: dict) -> float:
    return sum(step.get(f"svs/tokens/{r}", 0.0) for r in ROLES)


def prompt_tokens(step: dict) -> float:
    return sum(step.get(f"svs/prompt_tokens/{r}", 0.0) for r in ROLES)


def fit_gen(rows: list[dict]) -> tuple[float, float] | None:
    """Least squares without intercept, gen_s ~ a x generated + b x prompt, over the given step rows (normal
    equations of two unknowns). None when the rows cannot tell the two apart (fewer than two, or singular)."""
    sgg = sum(tokens(r) ** 2 for r in rows)
    spp = sum(prompt_tokens(r) ** 2 for r in rows)
    sgp = sum(tokens(r) * prompt_tokens(r) for r in rows)
    sgy = sum(tokens(r) * r["timing_s/gen"] for r in rows)
    spy = sum(prompt_tokens(r) * r["timing_s/gen"] for r in rows)
    det = sgg * spp - sgp * sgp
    if len(rows) < 2 or abs(det) <= 1e-12 * max(sgg * spp, 1.0):
        return None
    return (sgy * spp - spy * sgp) / det, (spy * sgg - sgy * sgp) / det


def _per(rows: list[dict], seconds: str, count) -> float | None:
    total = sum(count(r) for r in rows)
    return sum(r.get(seconds, 0.0) for r in rows) / total if total else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def cost_model(runs: dict[str, list[dict]]) -> dict:
    """Per arm and phase the cost per token (see the module docstring), SvS / twin per phase, and the batch's
    token accounting (real, dummies, padded) per arm. Steps after the first of each run."""
    arms = {name: steps[1:] for name, steps in runs.items()}
    fit = fit_gen([r for rows in arms.values() for r in rows if "timing_s/gen" in r])
    out: dict = {"gen_fit_s_per_token": None if fit is None else {"generated": fit[0], "prompt": fit[1]},
                 "arms": {}, "svs_over_twin": {}}
    for name, rows in arms.items():
        arm = {"steps": [int(r["step"]) for r in rows],
               "gen_s_per_generated_token": _per(rows, "timing_s/gen", tokens),
               "gen_s_per_model_token": None,
               "old_log_prob_s_per_seq_token": _per(rows, "timing_s/old_log_prob",
                                                    lambda r: r.get("svs/batch/seq_tokens", 0.0)),
               "old_log_prob_s_per_padded_token": _per(rows, "timing_s/old_log_prob",
                                                       lambda r: r.get("svs/batch/padded_tokens/old_log_prob", 0.0)),
               "update_actor_s_per_seq_token": _per(rows, "timing_s/update_actor",
                                                    lambda r: r.get("svs/batch/seq_tokens", 0.0)),
               "update_actor_s_per_padded_token": _per(rows, "timing_s/update_actor",
                                                       lambda r: r.get("svs/batch/padded_tokens/update", 0.0)),
               "update_weights_s_per_step": _per(rows, "timing_s/update_weights", lambda r: 1.0)}
        if fit is not None:
            modelled = sum(fit[0] * tokens(r) + fit[1] * prompt_tokens(r) for r in rows)
            arm["gen_s_per_model_token"] = (sum(r.get("timing_s/gen", 0.0) for r in rows) / modelled
                                            if modelled > 0 else None)
        for key in ("svs/batch/seq_tokens", "svs/batch/dummy_samples", "svs/batch/dummy_tokens",
                    "svs/batch/padded_tokens/old_log_prob", "svs/batch/padded_tokens/update",
                    "svs/batch/mini_batches"):
            arm[key.split("/", 2)[2].replace("/", "_")] = (sum(r.get(key, 0.0) for r in rows) / len(rows)
                                                            if rows else None)
        arm["generated_tokens"] = sum(tokens(r) for r in rows) / len(rows) if rows else None
        arm["prompt_tokens"] = sum(prompt_tokens(r) for r in rows) / len(rows) if rows else None
        out["arms"][name] = arm
    svs, twin = out["arms"].get("svs", {}), out["arms"].get("dapo", {})
    for key in ("gen_s_per_model_token", "gen_s_per_generated_token", "old_log_prob_s_per_seq_token",
                "old_log_prob_s_per_padded_token", "update_actor_s_per_seq_token", "update_actor_s_per_padded_token",
                "update_weights_s_per_step"):
        out["svs_over_twin"][key] = _ratio(svs.get(key), twin.get(key))
    main = ("gen_s_per_model_token", "old_log_prob_s_per_seq_token", "update_actor_s_per_seq_token")
    ratios = [out["svs_over_twin"][k] for k in main]
    out["within_goal"] = None if None in ratios else all(r <= GOAL for r in ratios)
    return out


def cost_table(model: dict) -> list[str]:
    """One row per phase: SvS's and the twin's cost per token, and SvS / twin."""
    rows = [f"{'phase (per token of)':<44} {'svs':>11} {'twin':>11} {'svs/twin':>9}"]
    svs, twin = model["arms"].get("svs", {}), model["arms"].get("dapo", {})
    for key, label in (("gen_s_per_model_token", "gen (fitted gen+prompt, s/s)"),
                       ("gen_s_per_generated_token", "gen s / generated token"),
                       ("old_log_prob_s_per_seq_token", "old_log_prob s / real seq token"),
                       ("old_log_prob_s_per_padded_token", "old_log_prob s / computed (padded) token"),
                       ("update_actor_s_per_seq_token", "update_actor s / real seq token"),
                       ("update_actor_s_per_padded_token", "update_actor s / computed (padded) token"),
                       ("update_weights_s_per_step", "update_weights s / step")):
        def f(x):
            return f"{x:>11.3e}" if x is not None else f"{'-':>11}"
        r = model["svs_over_twin"].get(key)
        rows.append(f"{label:<44} {f(svs.get(key))} {f(twin.get(key))} {(f'{r:.3f}' if r is not None else '-'):>9}")
    for key, label in (("seq_tokens", "batch real seq tokens / step"), ("dummy_tokens", "batch dummy tokens / step"),
                       ("padded_tokens_old_log_prob", "old_log_prob computed tokens / step"),
                       ("padded_tokens_update", "update computed tokens / step"),
                       ("generated_tokens", "generated tokens / step"), ("prompt_tokens", "prompt tokens / step")):
        a, b = svs.get(key), twin.get(key)
        rows.append(f"{label:<44} {(f'{a:>11.0f}' if a is not None else f'{chr(45):>11}')} "
                    f"{(f'{b:>11.0f}' if b is not None else f'{chr(45):>11}')}")
    return rows


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
            f" {'tail_s':>7} {'tok_oqa':>8} {'tok_vps':>8} {'tok_spa':>8} {'prompt':>8} {'seq':>7} {'dummy':>6}"
            f" {'pad_olp':>8} {'pad_upd':>8} {'syncs':>6}")
    rows = [head]
    for name, steps in runs.items():
        for s in steps:
            rows.append(f"{int(s['step']):>4} {name:>5} {s['timing_s/step']:>7.1f} " +
                        " ".join(f"{s.get(f'timing_s/{p}', float('nan')):>12.1f}" for p in PHASES) +
                        f" {s.get('svs/time/tail_s', 0.0):>7.1f} {s.get('svs/tokens/oqa', 0):>8.0f} "
                        f"{s.get('svs/tokens/vps', 0):>8.0f} {s.get('svs/tokens/spa', 0):>8.0f} "
                        f"{prompt_tokens(s):>8.0f} {s.get('svs/batch/seq_tokens', float('nan')):>7.0f} "
                        f"{s.get('svs/batch/dummy_tokens', float('nan')):>6.0f} "
                        f"{s.get('svs/batch/padded_tokens/old_log_prob', float('nan')):>8.0f} "
                        f"{s.get('svs/batch/padded_tokens/update', float('nan')):>8.0f} "
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
    model = cost_model(runs)
    print(f"\ncost per token, steps after the first (goal: svs/twin <= {GOAL} in every phase):")
    print("\n".join(cost_table(model)))
    result = summary(runs)
    print("\nsecondary figure (generated tokens only):")
    print(json.dumps(result, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"device": device, "cost_model": model, "summary": result,
                                                       "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
