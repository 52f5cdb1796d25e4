"""``svs-verl plot``: pass@k curves of evaluation runs, training curves from a run's metrics, runs compared.

    svs-verl plot passk --runs runs/eval_step0 runs/eval_step300 --labels base SvS --out passk.png
    svs-verl plot passk --runs runs/eval_step0 --out figs/          # one PNG per benchmark
    svs-verl plot training --metrics svs_dapo.jsonl --out training.png
    svs-verl plot compare --metrics svs.jsonl dapo.jsonl --labels SvS DAPO --title "MODEL, DATA, 40 steps, seed 0" --out figs/

**pass@k** curves read each run's ``results.json`` (benchmarks, ``n``, the problems evaluated) and its
per-sample JSONL, and compute the unbiased pass@k at every power of two up to ``n`` (and at ``n``), not
only the k the run was asked for (both files checked field by field: a hand-edited value that is missing or of
the wrong type, a number out of range or JSON nested too deeply is one error naming the file, line and field).
x is k on a log2 axis. ``--out FILE.png`` (or .pdf, .svg, ...: the suffix names the
format) draws one figure with a panel per benchmark; ``--out DIR`` (an existing directory, or a path without a
suffix) one PNG per benchmark. Every figure is titled with the runs' model, n and temperature.

**Training** curves come from verl's metrics. verl 0.9.1 writes them to a file with
``trainer.logger=[console,file]``: its ``FileLogger`` (verl/utils/tracking.py) appends one JSON object per
step, ``{"step": N, "data": {"metric": value, ...}}``, to ``$VERL_FILE_LOGGER_PATH`` if set, else to
``$VERL_FILE_LOGGER_ROOT/<trainer.project_name>/<trainer.experiment_name>.jsonl`` (root defaults to the
working directory). A saved console log works too: lines ``step:N - key:value - key:value ...`` as
verl's console logger prints them (a Ray prefix such as ``(TaskRunner pid=1)`` is fine). Panels: accuracy
/ reward per SvS role (``svs/oqa/acc_mean``, ``svs/spa/acc_mean``, ``svs/vps/reward_mean``,
``critic/score/mean``), entropy per role (``svs/entropy/{oqa,vps,spa}``, ``actor/entropy``) and validation
(``val-core/<source>/acc/mean@N`` and ``.../pass@K``); a panel without data is left out.

**Comparing runs** (``plot compare``: SvS and its DAPO twin, any verl runs) reads one metrics file per run as
above and writes into a directory: ``entropy.png`` (token entropy per role, colour = role, line style = run),
``accuracy.png`` (the SvS accuracy / reward keys, ``critic/score/mean`` for a run with none of them),
``passk.png`` (held-out pass@k against k, log2, a panel per data source: base = the first validated step of the
first run, normally verl's ``val_before_train`` at step 0, a warning when another run's differs; each run at its
last validated step; ``acc/mean@N`` stands for pass@1 where no pass@1 is logged, as in plain verl runs),
``synthesis.png`` (``svs/accepted`` / ``svs/syntheses`` and ``svs/vps/reward_mean`` per step, runs with SvS
only), ``val.png`` (held-out ``mean@N`` against step) and ``summary.json`` (first / last / mean of each curve,
pass@k at base and last validation, mean acceptance; raw values even with ``--smooth``).

matplotlib is used through its Agg canvas only (no pyplot state, no display needed).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Iterable

from ..core import k_ladder, mean_pass_at_k_counts
from ..data.schema import loads_json

ACCURACY_KEYS = {"svs/oqa/acc_mean": "OQA accuracy (original problems)",
                 "svs/spa/acc_mean": "SPA accuracy (variational problems)",
                 "svs/vps/reward_mean": "VPS reward (syntheses)",
                 "critic/score/mean": "score, whole batch"}
ENTROPY_KEYS = {"svs/entropy/oqa": "OQA", "svs/entropy/vps": "VPS", "svs/entropy/spa": "SPA",
                "actor/entropy": "actor/entropy (all)"}
VAL_KEY = re.compile(r"^val-core/(?P<source>.+)/acc/(?P<metric>(?:mean|pass)@\d+)$")
STEP_LINE = re.compile(r"(?:^|[\s)])step:(\d{1,18}) - (.*)$")
# console values: 0.5, -1e-3, nan, inf, or a repr such as np.float64(0.5) / np.True_ / tensor(0.5)
_WRAPPED = re.compile(r"^[\w.]+\((.*)\)$")


def _figure(**kw):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SystemExit("plotting needs matplotlib: pip install matplotlib") from None
    return Figure(**kw)


# --------------------------------------------------------------------------------------------- pass@k
def jsonl_lines(path: Path) -> Iterable[tuple[int, dict]]:
    """(line number, object) of each JSON object line of a JSONL file; a line that is not one (cut short by a
    crash, nested too deeply, a number out of range) is skipped. Read only: the file is left as it is."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                row = loads_json(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield lineno, row


def jsonl_objects(path: Path) -> Iterable[dict]:
    """The JSON objects of a JSONL file, skipping a line cut short by a crash (read only: the file is left as is)."""
    return (row for _, row in jsonl_lines(path))


def _read_rows(path: Path) -> Iterable[tuple[str, int, bool]]:
    """(problem_id, sample_index, correct) of the sample rows of an ``svs-verl eval`` samples file; a row
    with one of them missing or of the wrong type stops with the file, line and field."""
    for lineno, r in jsonl_lines(path):
        if "problem_id" not in r and "sample_index" not in r and "correct" not in r:
            continue  # not a sample row
        for key, ok, want in (("problem_id", isinstance(r.get("problem_id"), str), "a string"),
                              ("sample_index", _count(r.get("sample_index")), "a non-negative integer"),
                              ("correct", isinstance(r.get("correct"), bool), "true or false")):
            if not ok:
                raise SystemExit(f"{path}:{lineno}: field '{key}' must be {want}, got {_shown(r.get(key))}")
        yield r["problem_id"], r["sample_index"], r["correct"]


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shown(value, limit: int = 40) -> str:
    text = json.dumps(value) if value is not None else "nothing"
    return text if len(text) <= limit else text[:limit] + "..."


def _results(res_path: Path) -> dict:
    """``results.json`` of an eval run, checked field by field (a hand-edited file is one error line)."""
    try:
        results = loads_json(res_path.read_bytes())
    except ValueError as exc:
        raise SystemExit(f"{res_path}: unreadable results ({exc})") from None
    if not isinstance(results, dict):
        raise SystemExit(f"{res_path}: expected a JSON object, got {type(results).__name__}")
    cfg = results.get("config")
    if not isinstance(cfg, dict) or not _count(cfg.get("n")) or cfg["n"] < 1:
        raise SystemExit(f"{res_path}: field 'config.n' must be a positive integer, "
                         f"got {_shown(cfg.get('n') if isinstance(cfg, dict) else cfg)}")
    benchmarks = results.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise SystemExit(f"{res_path}: field 'benchmarks' must be a list, got {_shown(benchmarks)}")
    for i, b in enumerate(benchmarks):
        if not isinstance(b, dict):
            raise SystemExit(f"{res_path}: benchmarks[{i}] must be an object, got {_shown(b)}")
        for key in ("benchmark", "samples_file"):
            if not isinstance(b.get(key), str) or not b[key]:
                raise SystemExit(f"{res_path}: field 'benchmarks[{i}].{key}' must be a non-empty string, "
                                 f"got {_shown(b.get(key))}")
        ppc = b.get("per_problem_correct")
        if ppc is not None and not isinstance(ppc, dict):
            raise SystemExit(f"{res_path}: field 'benchmarks[{i}].per_problem_correct' must be an object, "
                             f"got {_shown(ppc)}")
    return results


def passk_curves(run: Path) -> tuple[dict[str, dict[int, float]], dict[str, int]]:
    """{benchmark: {k: pass@k}} at every power of two <= n from an eval directory, and {benchmark: n_problems}."""
    run = Path(run)
    res_path = run / "results.json"
    if not res_path.is_file():
        raise SystemExit(f"{run}: no results.json (not an `svs-verl eval` output directory, or the run has "
                         f"not finished: rerun it to resume)")
    results = _results(res_path)
    n = results["config"]["n"]
    curves: dict[str, dict[int, float]] = {}
    sizes: dict[str, int] = {}
    for b in results["benchmarks"]:
        pids = set(b.get("per_problem_correct") or {})
        if not pids:
            continue
        path = run / b["samples_file"]
        if not path.is_file():
            raise SystemExit(f"{path}: missing (listed in {res_path})")
        correct: dict[str, int] = dict.fromkeys(pids, 0)
        count: dict[str, int] = dict.fromkeys(pids, 0)
        seen: set[tuple[str, int]] = set()
        for pid, index, ok in _read_rows(path):
            key = (pid, index)
            if key[0] in pids and key[1] < n and key not in seen:
                seen.add(key)
                count[key[0]] += 1
                correct[key[0]] += ok
        short = [pid for pid, c in count.items() if c != n]
        if short:
            raise SystemExit(f"{path}: problem {_shown(short[0])} has {count[short[0]]} of {n} samples "
                             f"({len(short)} problem(s) incomplete); rerun the eval to complete it")
        counts = {pid: (n, c) for pid, c in correct.items()}
        curves[b["benchmark"]] = {k: mean_pass_at_k_counts(counts, k) for k in k_ladder(n)}
        sizes[b["benchmark"]] = len(pids)
    return curves, sizes


# what matplotlib's Agg canvas writes, by suffix
IMAGE_FORMATS = (".png", ".pdf", ".svg", ".svgz", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp", ".pgf")


def _image_file(out: Path, flag: str = "--out") -> Path:
    """``out`` as an image file whose suffix names a format matplotlib writes (else a one-line error)."""
    out = Path(out)
    if out.is_dir():
        raise SystemExit(f"{flag} {out}: is a directory; give a file such as {out / 'plot.png'}")
    if out.suffix.lower() not in IMAGE_FORMATS:
        raise SystemExit(f"{flag} {out}: unknown image format {out.suffix or '(no suffix)'!r}; use one of "
                         f"{', '.join(IMAGE_FORMATS)}")
    return out


def run_title(runs: list[Path], names: list[str]) -> str:
    """An overall title from the runs' results.json: model, n and temperature (one line per differing run)."""
    described = []
    for run, name in zip(runs, names):
        try:
            cfg = _results(Path(run) / "results.json")["config"]
            model = Path(str(cfg.get("model", "?"))[:200]).name or str(cfg.get("model"))[:200]
            described.append((name, f"{model}, n = {cfg.get('n')}, temperature {_shown(cfg.get('temperature'), 12)}"))
        except (OSError, ValueError, KeyError, TypeError, SystemExit):
            described.append((name, "?"))
    if len({d for _, d in described}) == 1:
        return f"pass@k: {described[0][1]}"
    return "pass@k: " + "; ".join(f"{name}: {d}" for name, d in described)


def _labels(runs: list[Path], labels: list[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(runs):
            raise SystemExit(f"--labels: {len(labels)} label(s) for {len(runs)} run(s)")
        return list(labels)
    names = [Path(r).resolve().name for r in runs]
    if len(set(names)) < len(names):   # same leaf names (e.g. .../step100/eval): show two levels
        names = ["/".join(Path(r).resolve().parts[-2:]) for r in runs]
    return names


def _draw_passk(ax, bench: str, series: list[tuple[str, dict[int, float]]], n_problems: int) -> None:
    all_k = sorted({k for _, c in series for k in c})
    for label, curve in series:
        ks = sorted(curve)
        ax.plot(ks, [100 * curve[k] for k in ks], marker="o", markersize=3.5, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_k)
    ax.set_xticklabels([str(k) for k in all_k], fontsize=8)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{bench} ({n_problems} problem{'' if n_problems == 1 else 's'})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def plot_passk(runs: list[Path], out: Path, labels: list[str] | None = None) -> list[Path]:
    """Overlay the runs' pass@k curves; returns the PNG paths written (see the module docstring for ``out``)."""
    if not runs:
        raise SystemExit("--runs: give at least one eval output directory")
    names = _labels(runs, labels)
    per_run = [passk_curves(Path(r)) for r in runs]
    benches: list[str] = []
    sizes: dict[str, int] = {}
    for curves, sz in per_run:
        for b in curves:
            if b not in benches:
                benches.append(b)
            sizes.setdefault(b, sz[b])
    if not benches:
        raise SystemExit(f"no benchmark with evaluated problems in {[str(r) for r in runs]}")
    out = Path(out)
    one_file = bool(out.suffix) and not out.is_dir()
    if one_file:
        _image_file(out)
    elif out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a directory")
    title = run_title(list(runs), names)
    written: list[Path] = []
    if one_file:
        cols = min(3, len(benches))
        rows = math.ceil(len(benches) / cols)
        fig = _figure(figsize=(5 * cols, 4 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, b in zip(axes, benches):
            _draw_passk(ax, b, [(nm, c[b]) for nm, (c, _) in zip(names, per_run) if b in c], sizes[b])
        for ax in axes[len(benches):]:
            ax.set_visible(False)
        fig.suptitle(title, fontsize=10)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        written.append(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for b in benches:
            fig = _figure(figsize=(5.5, 4.2), layout="constrained")
            _draw_passk(fig.subplots(), b, [(nm, c[b]) for nm, (c, _) in zip(names, per_run) if b in c], sizes[b])
            fig.suptitle(title, fontsize=9)
            path = out / f"passk_{re.sub(r'[^A-Za-z0-9._-]+', '_', b)}.png"
            fig.savefig(path, dpi=120)
            written.append(path)
    return written


# --------------------------------------------------------------------------------------------- training
def _number(text: str) -> float | None:
    text = text.strip()
    m = _WRAPPED.match(text)
    if m:
        text = m.group(1).split(",")[0].strip()
    if text in ("True", "np.True_"):
        return 1.0
    if text in ("False", "np.False_"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def parse_metrics_line(line: str) -> tuple[int, dict[str, float]] | None:
    """(step, {metric: value}) from one line of verl's file-logger JSONL (``{"step": N, "data": {...}}``), of
    flat ``{"step": N, metric: value}`` JSONL, or of its console log (``step:N - key:value - ...``); None for
    any other line (a truncated JSON line of a run still in progress included)."""
    line = line.rstrip("\n")
    if line.lstrip().startswith("{"):
        try:
            obj = loads_json(line, allow_nonfinite=True)   # verl logs nan/inf metrics
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "step" in obj:
            data = obj["data"] if isinstance(obj.get("data"), dict) else obj
            try:
                step = int(obj["step"])
            except (TypeError, ValueError, OverflowError):
                return None
            return step, {k: float(v) for k, v in data.items()
                          if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    m = STEP_LINE.search(line)
    if not m:
        return None
    vals = {}
    for item in m.group(2).split(" - "):
        key, sep, value = item.rpartition(":")
        num = _number(value) if sep else None
        if key and num is not None:
            vals[key.strip()] = num
    return int(m.group(1)), vals


def collect_metrics(lines: Iterable[str]) -> dict[int, dict[str, float]]:
    """{step: {metric: value}} from metric lines (see ``parse_metrics_line``); a later line for a step updates it."""
    steps: dict[int, dict[str, float]] = {}
    for line in lines:
        parsed = parse_metrics_line(line)
        if parsed is not None:
            steps.setdefault(parsed[0], {}).update(parsed[1])
    return steps


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    """{step: {metric: value}} from verl's file-logger JSONL, flat JSONL or a console log; an error when the
    file is missing or holds no metrics."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"--metrics {path}: no such file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        steps = collect_metrics(fh)
    if not steps:
        raise SystemExit(f"{path}: no metrics found; expected verl's file-logger JSONL lines "
                         f'{{"step": N, "data": {{...}}}} or console lines "step:N - key:value - ..."')
    return steps


def _series(steps: dict[int, dict[str, float]], key: str) -> tuple[list[int], list[float]]:
    xs = [s for s in sorted(steps) if key in steps[s] and math.isfinite(steps[s][key])]
    return xs, [steps[s][key] for s in xs]


def plot_training(metrics: Path, out: Path) -> Path:
    """Accuracy, entropy and validation panels over training steps; returns ``out``."""
    out = _image_file(Path(out))
    steps = read_metrics(metrics)
    keys = {k for vals in steps.values() for k in vals}
    val_keys = sorted(k for k in keys if VAL_KEY.match(k))
    panels = []
    acc = [(k, lbl) for k, lbl in ACCURACY_KEYS.items() if k in keys]
    ent = [(k, lbl) for k, lbl in ENTROPY_KEYS.items() if k in keys]
    if acc:
        panels.append(("accuracy / reward per role", "mean over the step's groups", acc))
    if ent:
        panels.append(("token entropy per role", "entropy (nats)", ent))
    if val_keys:
        panels.append(("validation", "accuracy", [(k, k[len("val-core/"):]) for k in val_keys]))
    if not panels:
        shown = ", ".join(sorted(keys)[:12])
        raise SystemExit(f"{metrics}: none of the plotted metrics ({', '.join(ACCURACY_KEYS)}, "
                         f"{', '.join(ENTROPY_KEYS)}, val-core/<source>/acc/mean@N) are in it; found: {shown}")
    fig = _figure(figsize=(5.2 * len(panels), 4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, ylabel, series) in zip(axes, panels):
        for key, label in series:
            xs, ys = _series(steps, key)
            ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(Path(metrics).name, fontsize=9)
    out = _image_file(Path(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


# --------------------------------------------------------------------------------------------- compare
# (summary name, metric key, legend label); colour = role, line style = arm
ENTROPY_ROLES = (("oqa", "svs/entropy/oqa", "OQA"), ("vps", "svs/entropy/vps", "VPS"),
                 ("spa", "svs/entropy/spa", "SPA"), ("all", "actor/entropy", "all (actor/entropy)"))
SVS_ACCURACY_ROLES = (("oqa", "svs/oqa/acc_mean", "OQA accuracy"), ("spa", "svs/spa/acc_mean", "SPA accuracy"),
                      ("vps_reward", "svs/vps/reward_mean", "VPS reward"))
BATCH_SCORE = ("batch_score", "critic/score/mean", "batch score (critic/score/mean)")
ROLE_COLOURS = {"oqa": "C0", "vps": "C1", "vps_reward": "C1", "spa": "C2", "all": "C7", "batch_score": "C4"}
ARM_STYLES = ("-", "--", ":", "-.")
ARM_COLOURS = ("C3", "C0", "C2", "C4", "C5", "C6")
SYNTHESES, ACCEPTED, SYNTHESIS_REWARD = "svs/syntheses", "svs/accepted", "svs/vps/reward_mean"


def moving_average(ys: list[float], window: int) -> list[float]:
    """Trailing moving average: point i is the mean of points max(0, i - window + 1) .. i."""
    out = []
    for i in range(len(ys)):
        part = ys[max(0, i - window + 1):i + 1]
        out.append(sum(part) / len(part))
    return out


def validation_passk(steps: dict[int, dict[str, float]]) -> dict[int, dict[str, dict[int, float]]]:
    """{step: {source: {k: pass@k}}} of each validated step, from ``val-core/<source>/acc/pass@K``; where
    pass@1 is absent (plain verl logs no pass@k), ``acc/mean@N`` is pass@1 (the mean of 0/1 verdicts)."""
    out: dict[int, dict[str, dict[int, float]]] = {}
    for step in sorted(steps):
        means: dict[str, tuple[int, float]] = {}
        for key, value in steps[step].items():
            m = VAL_KEY.match(key)
            if not m or not math.isfinite(value):
                continue
            kind, n = m.group("metric").split("@")
            if kind == "pass":
                out.setdefault(step, {}).setdefault(m.group("source"), {})[int(n)] = value
            elif int(n) > means.get(m.group("source"), (0, 0.0))[0]:
                means[m.group("source")] = (int(n), value)
        for source, (_, value) in means.items():
            out.setdefault(step, {}).setdefault(source, {}).setdefault(1, value)
    return out


def validation_means(steps: dict[int, dict[str, float]]) -> dict[str, tuple[int, list[int], list[float]]]:
    """{source: (N, steps, mean@N)} for the largest N each source logs."""
    by_source: dict[str, int] = {}
    for vals in steps.values():
        for key in vals:
            m = VAL_KEY.match(key)
            if m and m.group("metric").startswith("mean@"):
                by_source[m.group("source")] = max(by_source.get(m.group("source"), 0), int(m.group("metric")[5:]))
    return {src: (n, *_series(steps, f"val-core/{src}/acc/mean@{n}")) for src, n in sorted(by_source.items())}


def _accuracy_roles(keys: set[str]) -> tuple[tuple[str, str, str], ...]:
    """The SvS accuracy keys an arm logs; critic/score/mean only for an arm that logs none of them."""
    roles = tuple(r for r in SVS_ACCURACY_ROLES if r[1] in keys)
    return roles or ((BATCH_SCORE,) if BATCH_SCORE[1] in keys else ())


def _acceptance(steps: dict[int, dict[str, float]]) -> tuple[list[int], list[float], float, float]:
    """(steps, accepted / synthesized per step, total accepted, total synthesized); steps without syntheses skipped."""
    xs, ys, acc, syn = [], [], 0.0, 0.0
    for s in sorted(steps):
        n, a = steps[s].get(SYNTHESES), steps[s].get(ACCEPTED)
        if n is not None and a is not None and math.isfinite(n) and math.isfinite(a) and n > 0:
            xs.append(s)
            ys.append(a / n)
            acc += a
            syn += n
    return xs, ys, acc, syn


def _first_last(xs: list[int], ys: list[float], mean: bool = False) -> dict:
    row = {"first_step": xs[0], "first": ys[0], "last_step": xs[-1], "last": ys[-1]}
    if mean:
        row.update(mean=sum(ys) / len(ys), points=len(ys))
    return row


def _arm_summary(path: Path, steps: dict[int, dict[str, float]]) -> dict:
    keys = {k for vals in steps.values() for k in vals}
    entropy = {}
    for name, key, _ in ENTROPY_ROLES:
        xs, ys = _series(steps, key)
        if xs:
            entropy[name] = _first_last(xs, ys, mean=True)
    accuracy = {}
    for name, key, _ in _accuracy_roles(keys):
        xs, ys = _series(steps, key)
        if xs:
            accuracy[name] = _first_last(xs, ys)
    passk = validation_passk(steps)
    val = {}
    if passk:
        first, last = min(passk), max(passk)
        val = {"first_step": first, "first": _str_keys(passk[first]), "last_step": last, "last": _str_keys(passk[last])}
    summary = {"metrics": str(path), "max_step": max(steps), "entropy": entropy, "accuracy": accuracy,
               "validation_passk": val}
    xs, ys, accepted, synthesized = _acceptance(steps)
    if SYNTHESES in keys:
        rx, ry = _series(steps, SYNTHESIS_REWARD)
        summary["synthesis"] = {"acceptance_mean": sum(ys) / len(ys) if ys else None, "steps": len(xs),
                                "accepted": accepted, "synthesized": synthesized,
                                "acceptance_pooled": accepted / synthesized if synthesized else None,
                                "reward_mean": sum(ry) / len(ry) if ry else None}
    return summary


def _str_keys(curves: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
    return {src: {str(k): v for k, v in sorted(c.items())} for src, c in sorted(curves.items())}


def _arm_labels(metrics: list[Path], labels: list[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(metrics):
            raise SystemExit(f"--labels: {len(labels)} label(s) for {len(metrics)} metrics file(s)")
        if len(set(labels)) < len(labels):
            raise SystemExit(f"--labels: each arm needs its own label, got {' '.join(labels)}")
        return list(labels)
    return _labels(metrics, None)


def _proxy_legend(ax, roles: list[tuple[str, str]], arms: list[str]) -> None:
    """One legend: colour = role, line style = arm."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=ROLE_COLOURS[r], lw=2, label=lbl) for r, lbl in roles]
    handles += [Line2D([], [], color="k", ls=ARM_STYLES[i % len(ARM_STYLES)], label=a) for i, a in enumerate(arms)]
    ax.legend(handles=handles, fontsize=7, loc="best", ncol=2)


def _curve(ax, xs: list[int], ys: list[float], smooth: int, **style) -> None:
    """A training curve: with smoothing, the raw points faint and the moving average solid."""
    marker = "o" if len(xs) <= 30 else None
    if smooth > 1:
        ax.plot(xs, ys, color=style.get("color"), ls=style.get("ls", "-"), lw=0.8, alpha=0.3, marker=marker,
                markersize=2)
        ys = moving_average(ys, smooth)
        marker = None
    ax.plot(xs, ys, lw=1.6, marker=marker, markersize=3, **style)


def _role_figure(arms, title: str, subtitle: str, ylabel: str, roles_of, smooth: int):
    """One axes with every arm's per-role curves (colour = role, line style = arm); None when nothing to draw."""
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    seen: list[tuple[str, str]] = []
    for i, (label, _, steps) in enumerate(arms):
        for name, key, legend in roles_of(steps):
            xs, ys = _series(steps, key)
            if not xs:
                continue
            _curve(ax, xs, ys, smooth, color=ROLE_COLOURS[name], ls=ARM_STYLES[i % len(ARM_STYLES)])
            if (name, legend) not in seen:
                seen.append((name, legend))
    if not seen:
        return None
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_title(subtitle + (f" (moving average of {smooth} steps)" if smooth > 1 else ""), fontsize=9)
    _proxy_legend(ax, seen, [a[0] for a in arms])
    fig.suptitle(title, fontsize=10)
    return fig


def _panels(n: int, title: str):
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _figure(figsize=(4.3 * cols, 3.6 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig, axes


def _save_png(fig, path: Path) -> None:
    """A small PNG: 100 dpi, reduced to a 256-colour palette (a few tens of KB; lines look the same)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with Image.open(buf) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, "PNG", optimize=True)


def plot_compare(metrics: list[Path], out: Path, labels: list[str] | None = None, title: str | None = None,
                 smooth: int = 1) -> tuple[list[Path], dict]:
    """Figures comparing the arms' metric files (entropy, accuracy, held-out pass@k, synthesis, validation) and
    their summary; writes PNGs and summary.json into the directory ``out``; returns (paths, summary)."""
    if not metrics:
        raise SystemExit("--metrics: give at least one metrics file")
    if smooth < 1:
        raise SystemExit(f"--smooth: expected an integer >= 1, got {smooth}")
    metrics = [Path(m) for m in metrics]
    names = _arm_labels(metrics, labels)
    arms = [(name, path, read_metrics(path)) for name, path in zip(names, metrics)]
    plotted = ({k for _, k, _ in ENTROPY_ROLES} | {k for _, k, _ in SVS_ACCURACY_ROLES} | {BATCH_SCORE[1], SYNTHESES})
    for _, path, steps in arms:
        keys = {k for vals in steps.values() for k in vals}
        if not keys & plotted and not any(VAL_KEY.match(k) for k in keys):
            raise SystemExit(f"{path}: none of the compared metrics ({', '.join(sorted(plotted))}, "
                             f"val-core/<source>/acc/mean@N or pass@K) are in it; found: {', '.join(sorted(keys)[:12])}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a directory")
    max_step = max(max(steps) for _, _, steps in arms)
    if not title:
        title = " vs ".join(n if n == p.name else f"{n} ({p.name})" for n, p, _ in arms) + f", {max_step} steps"
    summary: dict = {"title": title, "smooth": smooth, "warnings": [],
                     "arms": {name: _arm_summary(path, steps) for name, path, steps in arms}}
    figures: list[tuple[str, object]] = []

    fig = _role_figure(arms, title, "token entropy per role", "mean token entropy (nats)",
                       lambda steps: ENTROPY_ROLES, smooth)
    figures.append(("entropy.png", fig))
    fig = _role_figure(arms, title, "training accuracy / reward per role", "mean over the step's groups",
                       lambda steps: _accuracy_roles({k for v in steps.values() for k in v}), smooth)
    figures.append(("accuracy.png", fig))

    # held-out pass@k: base = the first validated step of the first arm with validation; each arm's last
    passk = [(name, validation_passk(steps)) for name, _, steps in arms]
    with_val = [(name, curves) for name, curves in passk if curves]
    fig = None
    if with_val:
        base_name, base_curves = with_val[0]
        base_step = min(base_curves)
        base = base_curves[base_step]
        summary["base"] = {"arm": base_name, "step": base_step, "passk": _str_keys(base)}
        for name, curves in with_val[1:]:
            if min(curves) != base_step:
                continue
            for src, curve in sorted(curves[base_step].items()):
                for k, v in sorted(curve.items()):
                    if src in base and k in base[src] and abs(base[src][k] - v) > 1e-9:
                        summary["warnings"].append(
                            f"step-{base_step} validation differs between {base_name} and {name}: {src} pass@{k} "
                            f"{base[src][k]:.6g} vs {v:.6g} (the same base model should score the same)")
        sources = sorted({s for _, c in with_val for step in c.values() for s in step})
        fig, axes = _panels(len(sources), title)
        for ax, src in zip(axes, sources):
            series = [(f"base ({base_name}, step {base_step})", base.get(src), "k", ":")]
            series += [(f"{name} (step {max(c)})", c[max(c)].get(src), ARM_COLOURS[i % len(ARM_COLOURS)], "-")
                       for i, (name, c) in enumerate(passk) if c]
            all_k = sorted({k for _, curve, _, _ in series if curve for k in curve})
            for label, curve, colour, ls in series:
                if curve:
                    ks = sorted(curve)
                    ax.plot(ks, [100 * curve[k] for k in ks], color=colour, ls=ls, marker="o", markersize=3.5,
                            label=label)
            ax.set_xscale("log", base=2)
            ax.set_xticks(all_k)
            ax.set_xticklabels([str(k) for k in all_k], fontsize=8)
            ax.set_xlabel("k")
            ax.set_ylabel("held-out pass@k (%)")
            ax.set_title(src, fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    figures.append(("passk.png", fig))

    syn_arms = [(i, name, steps) for i, (name, _, steps) in enumerate(arms)
                if any(SYNTHESES in v for v in steps.values())]
    fig = None
    if syn_arms:
        fig, axes = _panels(2, title)
        ax_acc, ax_rew = axes
        for i, name, steps in syn_arms:
            colour = ARM_COLOURS[i % len(ARM_COLOURS)]
            xs, ys, _, _ = _acceptance(steps)
            if xs:
                _curve(ax_acc, xs, ys, smooth, color=colour, label=name)
            xs, ys = _series(steps, SYNTHESIS_REWARD)
            if xs:
                _curve(ax_rew, xs, ys, smooth, color=colour, label=name)
        for ax, sub, ylabel in ((ax_acc, "synthesis acceptance", "accepted / synthesized problems"),
                                (ax_rew, "synthesis reward (VPS)", "mean synthesis reward")):
            ax.set_title(sub + (f" (moving average of {smooth} steps)" if smooth > 1 else ""), fontsize=9)
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7, loc="best")
    figures.append(("synthesis.png", fig))

    means = [(name, validation_means(steps)) for name, _, steps in arms]
    sources = sorted({s for _, m in means for s in m})
    fig = None
    if sources:
        fig, axes = _panels(len(sources), title)
        for ax, src in zip(axes, sources):
            for i, (name, m) in enumerate(means):
                if src in m:
                    n, xs, ys = m[src]
                    ax.plot(xs, ys, color=ARM_COLOURS[i % len(ARM_COLOURS)], marker="o", markersize=3,
                            label=f"{name} (mean@{n})")
            ax.set_title(f"{src}: held-out mean accuracy", fontsize=9)
            ax.set_xlabel("training step")
            ax.set_ylabel("mean accuracy")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    figures.append(("val.png", fig))

    out.mkdir(parents=True, exist_ok=True)
    written, summary["figures"], summary["not_written"] = [], [], {}
    why = {"entropy.png": "no svs/entropy/* or actor/entropy", "accuracy.png": "no svs/*/acc_mean, "
           "svs/vps/reward_mean or critic/score/mean", "passk.png": "no val-core/<source>/acc/pass@K or mean@N",
           "synthesis.png": "no svs/syntheses (no SvS arm)", "val.png": "no val-core/<source>/acc/mean@N"}
    for name, fig in figures:
        if fig is None:
            summary["not_written"][name] = why[name]
            continue
        _save_png(fig, out / name)
        written.append(out / name)
        summary["figures"].append(name)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    written.append(out / "summary.json")
    return written, summary


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_table(summary: dict) -> str:
    """The summary as a text table: one row per quantity, one column per arm."""
    arms = list(summary["arms"])
    rows: list[tuple[str, list[str]]] = [("last step", [str(summary["arms"][a]["max_step"]) for a in arms])]

    def add(label, cell):
        cells = [cell(summary["arms"][a]) for a in arms]
        if any(c != "-" for c in cells):
            rows.append((label, cells))

    for role, _, _ in ENTROPY_ROLES:
        add(f"entropy {role} first/last/mean", lambda s: "-" if role not in s["entropy"] else "/".join(
            _fmt(s["entropy"][role][x]) for x in ("first", "last", "mean")))
    for role in [r[0] for r in SVS_ACCURACY_ROLES] + [BATCH_SCORE[0]]:
        add(f"{role} first/last", lambda s: "-" if role not in s["accuracy"] else "/".join(
            _fmt(s["accuracy"][role][x]) for x in ("first", "last")))
    base = summary.get("base")
    sources = sorted({src for a in arms for src in summary["arms"][a]["validation_passk"].get("last", {})})
    for src in sources:
        ks = sorted({int(k) for a in arms for k in summary["arms"][a]["validation_passk"]["last"].get(src, {})}
                    | {int(k) for k in (base or {}).get("passk", {}).get(src, {})})
        for k in ks:
            b = (base or {}).get("passk", {}).get(src, {}).get(str(k))
            add(f"{src} pass@{k} base/last", lambda s: "-" if not s["validation_passk"] else
                f"{_fmt(b)}/{_fmt(s['validation_passk']['last'].get(src, {}).get(str(k)))}")
    add("acceptance mean (pooled)", lambda s: "-" if "synthesis" not in s else
        f"{_fmt(s['synthesis']['acceptance_mean'])} ({_fmt(s['synthesis']['acceptance_pooled'])})")
    add("synthesis reward mean", lambda s: "-" if "synthesis" not in s else _fmt(s["synthesis"]["reward_mean"]))
    width = max(len(r[0]) for r in rows) + 2
    cols = [max([len(a)] + [len(r[1][i]) for r in rows]) + 2 for i, a in enumerate(arms)]
    lines = ["".ljust(width) + "".join(a.ljust(c) for a, c in zip(arms, cols))]
    lines += [label.ljust(width) + "".join(v.ljust(c) for v, c in zip(cells, cols)) for label, cells in rows]
    if base:
        lines.append(f"base = {base['arm']} at step {base['step']}; last = each arm's last validated step")
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["plot_passk", "passk_curves", "plot_training", "read_metrics", "parse_metrics_line", "collect_metrics",
           "plot_compare", "summary_table", "validation_passk", "moving_average"]
