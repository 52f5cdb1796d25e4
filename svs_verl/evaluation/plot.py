"""``svs-verl plot``: pass@k curves of evaluation runs, and training curves from a run's metrics.

    svs-verl plot passk --runs runs/eval_step0 runs/eval_step300 --labels base SvS --out passk.png
    svs-verl plot passk --runs runs/eval_step0 --out figs/          # one PNG per benchmark
    svs-verl plot training --metrics svs_dapo.jsonl --out training.png

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


__all__ = ["plot_passk", "passk_curves", "plot_training", "read_metrics", "parse_metrics_line", "collect_metrics"]
