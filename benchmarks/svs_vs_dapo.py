"""SvS against its DAPO twin for tens of steps: two real main_ppo runs, same seed, data and sizes (CPU backend).

    python benchmarks/svs_vs_dapo.py --out runs/cmp --steps 40 --val-every 10 --lr 2e-5
    python benchmarks/svs_vs_dapo.py --out runs/cmp ...            # again: continues where it stopped
    svs-verl plot compare --metrics runs/cmp/svs/metrics.jsonl runs/cmp/dapo/metrics.jsonl --labels SvS DAPO ...

Arms: ``svs`` is the embedded quickstart (``--config-name quickstart +backend=cpu +size=cpu``, svs_dapo
semantics, tests/e2e_cpu.py); ``dapo`` is the same command with ``svs.enable=false`` (verl's DAPO sampling
through the same trainer). Both get the same overrides: ``--steps``, ``--lr`` (actor.optim.lr), held-out
validation before training and every ``--val-every`` steps with ``--val-n`` samples per problem on
``--val-problems`` problems (pass@1 .. pass@val_n), a checkpoint every ``--save-every`` steps (only the newest
kept), and anything after ``--``.

Resumable, each arm on its own: an arm whose checkpoint reached ``--steps`` is skipped; otherwise it restarts
with ``trainer.resume_mode=auto`` from its newest checkpoint (verl's FileLogger truncates its file, so every
attempt logs to its own ``attempt<K>/metrics.jsonl``; ``<arm>/metrics.jsonl`` is the merge, a later attempt's
step replacing an earlier one's). Written under ``--out``:

* ``<arm>/metrics.jsonl``   verl's metrics, one ``{"step": N, "data": {...}}`` line per step (plots read it);
* ``<arm>/soak.json``       per step: peak summed PSS of the run's process tree, checkpoint sizes, wall times;
* ``comparison.json``       the command, the overrides of each arm, and the soak invariants, also printed:
  peak PSS at the last step within 10 % of step 5; ``svs/tq/keys`` 0 and ``svs/step_end/inflight`` 0 at every
  step end; every ``svs/state/*`` gauge bounded (its maximum over the second half of the run no larger than
  over the first half, plus the batch); the checkpoint size per step.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

ARMS = {"svs": [], "dapo": ["svs.enable=false"]}
PSS_EVERY_S = 5.0


def arm_overrides(args, arm: str, resumed: bool, ckpt: Path) -> list[str]:
    return [*ARMS[arm],
            f"trainer.total_training_steps={args.steps}",
            f"trainer.test_freq={args.val_every}",
            f"trainer.val_before_train={'false' if resumed else 'true'}",   # step 0 is validated once
            f"trainer.save_freq={args.save_every}",
            "trainer.max_actor_ckpt_to_keep=1",
            "trainer.resume_mode=auto",
            f"trainer.default_local_dir={ckpt}",
            f"actor_rollout_ref.actor.optim.lr={args.lr}",
            f"actor_rollout_ref.rollout.val_kwargs.n={args.val_n}",
            f"data.val_max_samples={args.val_problems}",
            f"data.seed={args.seed}",
            f"actor_rollout_ref.rollout.seed={args.seed}",
            *args.overrides]


def latest_checkpoint(ckpt: Path) -> int:
    """verl's newest complete checkpoint step (0: none)."""
    marker = ckpt / "latest_checkpointed_iteration.txt"
    try:
        return int(marker.read_text().strip())
    except (OSError, ValueError):
        return 0


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Soak:
    """Per step, from the harness's side: peak summed PSS of the run's process tree while the step ran, and the
    size of each checkpoint verl completed (sampled from ``on_poll`` once a second)."""

    def __init__(self, path: Path, ckpt: Path):
        self.path, self.ckpt = path, ckpt
        self.data = json.loads(path.read_text()) if path.is_file() else {"pss_peak": {}, "ckpt_bytes": {}}
        self._last_pss = 0.0
        self._ckpt_seen = latest_checkpoint(ckpt)
        self._resumed_from = self._ckpt_seen      # the step the current attempt started after (see start)

    def on_poll(self, proc, metrics_file: Path) -> None:
        from svs_verl.procmem import tree_pss_bytes

        changed = False
        now = time.time()
        if now - self._last_pss >= PSS_EVERY_S:
            self._last_pss = now
            done = [k for k in _metrics(metrics_file) if k > 0]
            step = str((max(done) if done else self._resumed_from) + 1)    # the step now running
            total, _ = tree_pss_bytes(proc.pid)
            peaks = self.data["pss_peak"]
            if total > peaks.get(step, 0):
                peaks[step], changed = total, True
        latest = latest_checkpoint(self.ckpt)
        if latest != self._ckpt_seen:
            self._ckpt_seen = latest
            folder = self.ckpt / f"global_step_{latest}"
            if folder.is_dir():
                self.data["ckpt_bytes"][str(latest)] = dir_bytes(folder)
                changed = True
        if changed:                               # on_poll runs every second: write only what is new
            self.save()

    def start(self, resumed_from: int) -> None:
        self._resumed_from = resumed_from

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def _metrics(path: Path) -> dict[int, dict]:
    from svs_verl.evaluation.plot import collect_metrics

    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        return {k: v for k, v in collect_metrics(fh).items() if "timing_s/step" in v}


def _attempt_number(folder: Path) -> int:
    """K of an ``attempt<K>`` folder."""
    return int(folder.name.removeprefix("attempt"))


def merged_metrics(arm_dir: Path) -> dict[int, dict]:
    """Every attempt's steps, a later attempt replacing an earlier one's step."""
    from svs_verl.evaluation.plot import collect_metrics

    steps: dict[int, dict] = {}
    for attempt in sorted(arm_dir.glob("attempt*/metrics.jsonl"), key=lambda p: _attempt_number(p.parent)):
        with open(attempt, encoding="utf-8", errors="replace") as fh:
            for step, vals in collect_metrics(fh).items():
                # a step trained again (after a crash before its checkpoint) replaces the earlier one whole
                steps[step] = vals if "timing_s/step" in vals else {**steps.get(step, {}), **vals}
    return steps


def write_merged(arm_dir: Path) -> dict[int, dict]:
    steps = merged_metrics(arm_dir)
    with open(arm_dir / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for step in sorted(steps):
            fh.write(json.dumps({"step": step, "data": steps[step]}) + "\n")
    return steps


def run_arm(args, arm: str, model: Path, data: Path) -> dict:
    import e2e_cpu

    arm_dir = args.out / arm
    ckpt = arm_dir / "ckpt"
    arm_dir.mkdir(parents=True, exist_ok=True)
    soak = Soak(arm_dir / "soak.json", ckpt)
    for attempt in range(1, args.max_attempts + 1):
        done = latest_checkpoint(ckpt)
        if done >= args.steps:
            break
        number = max((_attempt_number(p) for p in arm_dir.glob("attempt*")), default=0) + 1
        print(f"[{arm}] attempt {number}: {'resuming after step ' + str(done) if done else 'from step 0'} "
              f"to step {args.steps}", flush=True)
        soak.start(done)
        res = e2e_cpu.run("quickstart", model, data, arm_dir / f"attempt{number}",
                          arm_overrides(args, arm, done > 0, ckpt),
                          timeout_s=900 + args.step_timeout_s * (args.steps - done), on_poll=soak.on_poll)
        soak.data.setdefault("attempts", []).append({"attempt": number, "from_step": done, "rc": res["rc"],
                                                     "wall_s": round(res["wall_s"], 1),
                                                     "peak_pss_bytes": res["peak_pss_bytes"],
                                                     "timed_out": res["timed_out"]})
        soak.save()
        reached = latest_checkpoint(ckpt)
        print(f"[{arm}] attempt {number}: rc {res['rc']}, wall {res['wall_s']:.0f} s, checkpoint at step {reached}; "
              f"log {Path(res['out']) / 'train.log'}", flush=True)
        if res["rc"] != 0 and reached <= done:
            sys.exit(f"{arm}: attempt {number} failed (rc {res['rc']}) without a new checkpoint; see "
                     f"{Path(res['out']) / 'train.log'}")
    steps = write_merged(arm_dir)
    if latest_checkpoint(ckpt) < args.steps:
        sys.exit(f"{arm}: stopped at step {latest_checkpoint(ckpt)} of {args.steps} after {args.max_attempts} attempts")
    return {"steps": steps, "soak": soak.data}


def invariants(arm: str, steps: dict[int, dict], soak: dict, batch: int) -> tuple[list[str], bool]:
    """The soak invariants of one arm, as printed lines, and whether all hold."""
    lines, ok = [], True
    train = {s: m for s, m in steps.items() if "timing_s/step" in m}
    peaks = {int(k): v for k, v in soak.get("pss_peak", {}).items()}
    last = max(train)
    if 5 in peaks and last in peaks:
        ratio = peaks[last] / peaks[5]
        good = ratio <= 1.10
        ok &= good
        lines.append(f"peak PSS: step 5 {peaks[5] / 2**30:.2f} GiB, step {last} {peaks[last] / 2**30:.2f} GiB, "
                     f"ratio {ratio:.3f} ({'within' if good else 'NOT within'} 10 %)")
    else:
        lines.append(f"peak PSS: no sample for step 5 or step {last}")
    for key in ("svs/tq/keys", "svs/step_end/inflight"):
        if not any(key in m for m in train.values()):
            lines.append(f"{key}: not logged (svs.enable=false: no SvS request exists)")
            continue
        bad = {s: m.get(key) for s, m in train.items() if m.get(key) != 0}
        ok &= not bad
        lines.append(f"{key}: 0 at every step end" if not bad else f"{key}: NOT 0 at steps {bad}")
    gauges = sorted({k for m in train.values() for k in m if k.startswith("svs/state/")})
    half = sorted(train)[len(train) // 2]
    for key in gauges:
        first = max((m.get(key, 0) for s, m in train.items() if s < half), default=0)
        second = max((m.get(key, 0) for s, m in train.items() if s >= half), default=0)
        good = second <= first + batch
        ok &= good
        lines.append(f"{key}: max {first:.0f} over steps < {half}, {second:.0f} over steps >= {half} "
                     f"({'bounded' if good else 'GROWING'})")
    sizes = {int(k): v for k, v in soak.get("ckpt_bytes", {}).items()}
    if sizes:
        lines.append("checkpoint size: " + ", ".join(f"step {s} {b / 2**20:.0f} MiB" for s, b in sorted(sizes.items())))
    return [f"[{arm}] {line}" for line in lines], ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory (rerun with the same one to resume)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--val-every", type=int, default=10)
    ap.add_argument("--save-every", type=int, default=5)
    ap.add_argument("--val-n", type=int, default=16, help="validation samples per problem (pass@k up to k = n)")
    ap.add_argument("--val-problems", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-5, help="actor learning rate, both arms")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["svs", "dapo"])
    ap.add_argument("--max-attempts", type=int, default=3, help="restarts per arm after a crash")
    ap.add_argument("--step-timeout-s", type=int, default=400, help="per step, for the run's hard timeout")
    ap.add_argument("--cache", type=Path, default=None, help="embedded model and data (default: OUT/assets)")
    ap.add_argument("overrides", nargs="*", help="main_ppo overrides for both arms (after --)")
    args = ap.parse_args(argv)
    for flag in ("steps", "val_every", "save_every", "val_n", "val_problems"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if not math.isfinite(args.lr) or args.lr <= 0:
        ap.error(f"--lr must be a positive number, got {args.lr}")
    import e2e_cpu

    args.out.mkdir(parents=True, exist_ok=True)
    model, data = e2e_cpu.assets(args.cache or args.out / "assets")
    report = {"command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv),
              "arms": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    all_ok = True
    for arm in args.arms:
        t0 = time.time()
        result = run_arm(args, arm, model, data)
        lines, ok = invariants(arm, result["steps"], result["soak"], batch=64)
        all_ok &= ok
        print("\n".join(lines), flush=True)
        report["arms"][arm] = {"overrides": arm_overrides(args, arm, False, args.out / arm / "ckpt"),
                               "steps": len([s for s in result["steps"] if s > 0]), "invariants": lines,
                               "invariants_hold": ok, "wall_s_this_invocation": round(time.time() - t0, 1),
                               "metrics": str(args.out / arm / "metrics.jsonl")}
        (args.out / "comparison.json").write_text(json.dumps(report, indent=1))
    print(f"comparison written to {args.out / 'comparison.json'}; invariants {'hold' if all_ok else 'DO NOT hold'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
