"""The GPU proof's runs and checks (called by tests/gpu/run_all.sh on the device box; the checks also run on
the CPU, in tests/test_gpu_dryrun.py, against hand-made results).

    python tests/gpu/gpu_proof.py run svs  --work /tmp/gpu_proof --out "$OUT" --timeout 330   # call A
    python tests/gpu/gpu_proof.py run twin --work /tmp/gpu_proof --out "$OUT" --timeout 330   # call B
    python tests/gpu/gpu_proof.py plan                                                         # CPU: compose

``run svs`` trains svs_dapo for 4 steps, ``run twin`` the same config with ``svs.enable=false`` (verl's own
DAPO sampling path inside the SvS trainer). Each checks what tests/test_e2e_cpu.py checks on the CPU, plus
``svs/step_end/inflight == 0`` where the sampler logs it, and writes to --out (the box's $OUT, at most 8 small
files a call): ``<run>.json`` (result and metrics), ``<run>.log.gz`` (the whole log), ``<run>.checks.txt``;
``run twin`` adds ``proof.txt``: both runs' checks and the step-cost table of benchmarks/svs_step_cost.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "benchmarks"))

import svs_gpu_run  # noqa: E402

RUNS = {"svs": ("svs_dapo", []), "twin": ("svs_dapo", ["svs.enable=false"])}
VOCAB = 49152          # SmolLM2's vocabulary: entropies are below log(VOCAB) nats
GROUP = 8              # svs.synthesis_n = svs.solve_n = 8 (svs_method.yaml defaults, kept by svs_gpu_run)
VAL_KS = [1, 2, 4]     # actor_rollout_ref.rollout.val_kwargs.n = 4


def train_steps(result: dict) -> dict[int, dict]:
    return {int(s["step"]): s for s in result["steps"] if "timing_s/step" in s}


def _validation(result: dict) -> dict[str, float]:
    return {k: v for s in result["steps"] for k, v in s.items() if "/acc/pass@" in k}


def check_common(result: dict, steps: int) -> list[tuple[str, bool, str]]:
    train = train_steps(result)
    checks = [("exit code 0", result["rc"] == 0 and not result.get("timed_out"),
               f"rc {result['rc']}{', killed at the timeout' if result.get('timed_out') else ''}"),
              (f"steps 1..{steps} trained", sorted(train) == list(range(1, steps + 1)), f"steps {sorted(train)}")]
    syncs = {s: m.get("svs/perf/weight_syncs") for s, m in train.items()}
    checks.append(("one weight sync per step", bool(train) and all(v == s for s, v in syncs.items()),
                   f"svs/perf/weight_syncs by step {syncs}"))
    inflight = {s: m["svs/step_end/inflight"] for s, m in train.items() if "svs/step_end/inflight" in m}
    checks.append(("nothing in flight at a step's end",
                   all(v == 0 for v in inflight.values()),
                   f"svs/step_end/inflight {inflight}" if inflight else "svs/step_end/inflight not logged"))
    val = _validation(result)
    ks = sorted({int(k.rsplit("@", 1)[1]) for k in val})
    monotone = all(val[f"{k[:k.rindex('/acc/')]}/acc/pass@1"] <= val[f"{k[:k.rindex('/acc/')]}/acc/pass@4"]
                   for k in val) if ks == VAL_KS else False
    checks.append(("validation pass@1,2,4 at the end", ks == VAL_KS and monotone and
                   all(0 <= v <= 1 for v in val.values()), f"{ {k: round(v, 3) for k, v in val.items()} }"))
    checks.append(("generated tokens counted", bool(train) and all(m.get("svs/tokens/oqa", 0) > 0
                                                                   for m in train.values()), ""))
    return checks


def check_svs(result: dict, dump_dir: Path, steps: int = svs_gpu_run.STEPS) -> list[tuple[str, bool, str]]:
    """tests/test_e2e_cpu.py's checks of the SvS run, on the GPU run's metrics and dumps."""
    from svs_verl.verl_plugin.dumps import dump_files, read_dump

    train = train_steps(result)
    checks = check_common(result, steps)
    vps = {s: m.get("svs/update/vps_groups", 0) for s, m in train.items()}
    spa = {s: m.get("svs/update/spa_groups", 0) for s, m in train.items()}
    checks.append(("VPS and SPA groups trained", any(vps.values()) and any(spa.values()),
                   f"vps groups {vps}, spa groups {spa}"))
    sizes = all(m.get("svs/samples/vps") == GROUP * m.get("svs/update/vps_groups", 0) and
                m.get("svs/samples/spa") == GROUP * m.get("svs/update/spa_groups", 0) for m in train.values())
    checks.append(("every sample of a kept group in the update", bool(train) and sizes, f"group size {GROUP}"))
    ent = all(0 < m.get("svs/entropy/oqa", -1) < math.log(VOCAB) for m in train.values()) and \
        all("svs/entropy/vps" in m for m in train.values() if m.get("svs/update/vps_groups", 0) > 0)
    entropies = {s: {r: round(m[f"svs/entropy/{r}"], 3) for r in ("oqa", "vps", "spa") if f"svs/entropy/{r}" in m}
                 for s, m in train.items()}
    checks.append(("per-role entropy logged", bool(train) and ent, f"{entropies}"))
    files = dump_files(dump_dir)
    seeded = {s for s, m in train.items() if m.get("svs/seeds", 0) > 0}
    by_step = {int(p.name[len("syntheses_step"):].split(".")[0]): p for p in files}
    counts = {s: sum(1 for _ in read_dump(p)) for s, p in by_step.items()}
    ok = bool(seeded) and set(by_step) == seeded and all(
        counts[s] == train[s].get("svs/syntheses") for s in seeded if s in counts)
    checks.append(("a synthesis dump per seeded step, one record per synthesis", ok,
                   f"dumps {sorted(by_step)} records {counts}, seeded steps {sorted(seeded)}"))
    return checks


def check_twin(result: dict, steps: int = svs_gpu_run.STEPS) -> list[tuple[str, bool, str]]:
    train = train_steps(result)
    checks = check_common(result, steps)
    checks.append(("no SvS groups in the twin", bool(train) and not any(
        k.startswith("svs/update/") for m in train.values() for k in m), ""))
    return checks


def render(name: str, checks: list[tuple[str, bool, str]]) -> str:
    lines = [f"== {name}: {'PASS' if all(ok for _, ok, _ in checks) else 'FAIL'}"]
    lines += [f"  [{'ok' if ok else 'FAIL'}] {what}{': ' + detail if detail else ''}" for what, ok, detail in checks]
    return "\n".join(lines)


def step_cost(svs: dict, twin: dict) -> str:
    import svs_step_cost

    runs = {"svs": [s for s in svs["steps"] if "timing_s/step" in s],
            "dapo": [s for s in twin["steps"] if "timing_s/step" in s]}
    lines = ["step cost (svs = svs_dapo, dapo = its svs.enable=false twin; step 1 is warm-up, left out):",
             *svs_step_cost.table(runs)]
    if len(runs["svs"]) > 1 and len(runs["dapo"]) > 1:
        lines.append(json.dumps(svs_step_cost.summary(runs), indent=1))
    return "\n".join(lines)


def run_one(which: str, work: Path, out: Path, model: str, timeout: int) -> int:
    config, extra = RUNS[which]
    res = svs_gpu_run.run(config, model, svs_gpu_run.STEPS, work / which, extra, timeout=timeout, name=which)
    checks = check_svs(res, work / which / "ckpt" / "svs") if which == "svs" else check_twin(res)
    text = render(f"{which} ({config} {' '.join(extra)}): rc {res['rc']}, wall {res['wall_s']:.0f} s, first step "
                  f"logged at {res['first_step_s'] or float('nan'):.0f} s", checks)
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / which / f"{which}.json", out / f"{which}.json")
    with open(work / which / f"{which}.log", "rb") as src, gzip.open(out / f"{which}.log.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (out / f"{which}.checks.txt").write_text(text + "\n")
    (work / f"{which}.checks.txt").write_text(text + "\n")
    if which == "twin" and (work / "svs" / "svs.json").is_file():
        svs = json.loads((work / "svs" / "svs.json").read_text())
        proof = "\n".join([(work / "svs.checks.txt").read_text() if (work / "svs.checks.txt").is_file() else "",
                           text, step_cost(svs, res)])
        print(step_cost(svs, res), flush=True)
        (out / "proof.txt").write_text(proof + "\n")
    return 0 if all(ok for _, ok, _ in checks) else 1


def plan(model: str = "/models/smollm2") -> list[tuple[str, list[str]]]:
    """Compose both GPU runs (and the dapo config's) as main_ppo will, with svs-verl's check-config:
    [(name, overrides)]; raises ValueError naming the key."""
    from svs_verl.verl_plugin.checks import compose_run_config

    out, data = Path("/tmp/gpu_proof"), Path("/tmp/gpu_proof/data")
    composed = []
    for name, (config, extra) in [*RUNS.items(), ("dapo", ("dapo", []))]:
        ov = [*svs_gpu_run.overrides(model, data / "train.parquet", data / "val.parquet", svs_gpu_run.STEPS,
                                     out / name, config), *extra]
        compose_run_config(config, ov)
        composed.append((name, [config, *ov]))
    return composed


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("which", choices=list(RUNS))
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu_proof"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--model", default="/tmp/smol")
    r.add_argument("--timeout", type=int, default=330)
    sub.add_parser("plan")
    a = ap.parse_args()
    if a.cmd == "run":
        sys.exit(run_one(a.which, a.work, a.out, a.model, a.timeout))
    for name, argv in plan():
        print(f"composed and checked: {name}: main_ppo --config-name {' '.join(argv)}")
