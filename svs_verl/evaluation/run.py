"""``svs-verl eval``: sample a model ``n`` times per problem on verl-format benchmarks, verify every sample,
and write pass@k, mean@n and the policy's entropy per benchmark. Resumable.

    svs-verl eval --model Qwen/Qwen2.5-3B-Instruct --data /work/shared/data/math500_aime24_aime25.parquet \\
        --n 32 --k 1,8,32 --out runs/eval_step0
    from svs_verl.evaluation.run import EvalConfig, run_eval      # the same in Python

Input: verl parquet (or JSONL) rows with ``data_source``, ``prompt`` (chat messages), ``reward_model.
ground_truth`` and optionally ``extra_info.index``. A benchmark is one ``data_source`` within one file
(prefixed ``<file stem>:`` when the same source appears in two files). A row without a usable prompt or
ground truth (``svs_verl.verify.ground_truth_text``: null, NaN, inf, empty, the text ``None``, an empty box,
...) is a *bad row*: counted per benchmark (``n_bad_rows``, ``n_bad_ground_truth``), listed by file and 0-based row number in results.json /
results.md and on stderr, never generated, never fatal.

Output directory ``--out DIR``:

* ``eval_config.json``   the generation fingerprint (model, temperature, top_p, max_tokens, seed); a rerun
  with a different one is refused (new ``--out`` or ``--overwrite``), so samples of two configs never mix;
* ``samples/<benchmark>.jsonl``  one line per sample (appended in generation order): ``problem_id``, ``data_source``, ``row``,
  ``sample_index``, ``seed``, ``response``, ``answer`` (reference), ``extracted``, ``correct``, ``reason``,
  ``extract`` (mode used), ``n_tokens``, ``finished``, ``entropy``;
* ``results.json``  ``{"config": ..., "benchmarks": [...], "bad_rows": [...]}``; each benchmark has
  ``benchmark``, ``data_source``, ``file``, ``samples_file``, ``n_problems``, ``samples_per_problem``,
  ``pass@k`` for every requested k, ``mean@n``, ``mean_entropy`` (token-weighted, like verl's
  ``actor/entropy``), ``mean_response_tokens``, ``truncated_share``, ``no_answer_share``, ``n_bad_rows``, ``n_bad_ground_truth``,
  ``per_problem_correct`` ({problem_id: correct samples});
* ``results.csv``  the same per benchmark, one row each, without ``per_problem_correct``;
* ``results.md``   a Markdown table (percentages) plus the config and the bad rows;
* ``runs.jsonl``   one line per invocation: time, backend, samples generated / reused / re-verified.

**Resuming.** Samples are appended to the JSONL after every chunk of generation. A rerun reads them back,
keyed by (problem_id, sample_index), and generates only the missing ones, each with the seed
``sample_seed(seed, problem_id, sample_index)`` (so ``--n 64`` after ``--n 32`` adds samples 32..63).
A line cut short by a crash is dropped (and the file rewritten without it); a line that is JSON but whose
fields are missing or of the wrong type (a hand edit) stops the run naming the file, line and field.
Stored verdicts whose ``extract`` mode or reference answer no longer match are re-verified, not regenerated.
"""

from __future__ import annotations

import csv
import datetime as _dt
import inspect
import json
import math
import os
import re
import sys
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

from ..core import mean_pass_at_k_counts
from ..data.schema import loads_json
from ..argtypes import short

EXTRACT_MODES = ("auto", "boxed", "last_number")
FINGERPRINT_KEYS = ("model", "temperature", "top_p", "max_tokens", "seed")
CONFIG_FILE = "eval_config.json"


# --------------------------------------------------------------------------------------------- config
@dataclass
class EvalConfig:
    model: str
    data: list[Path]
    out: Path
    n: int = 32
    ks: list[int] = field(default_factory=lambda: [1, 8, 32])
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 8192
    seed: int = 0
    backend: str = "auto"
    extract: str | dict[str, str] | None = None  # one mode, {data_source: mode, "default": mode}, or None:
    #                                          the data's manifest.json (answer_extraction), else "auto"
    limit: int | None = None                  # first N rows of each file
    overwrite: bool = False
    verify_timeout_s: float = 5.0
    chunk: int | None = None                  # samples per generate call (saved after each); None: backend's
    generator_kwargs: dict[str, Any] = field(default_factory=dict)   # e.g. batch_size, gpu_memory_utilization

    def fingerprint(self) -> dict[str, Any]:
        model = self.model
        if Path(model).exists():            # a local checkpoint: the same directory however it is spelled
            model = str(Path(model).resolve())
        return {"model": model, "temperature": float(self.temperature), "top_p": float(self.top_p),
                "max_tokens": int(self.max_tokens), "seed": int(self.seed)}


def parse_ks(text: str) -> list[int]:
    """"1,8,32" -> [1, 8, 32] (sorted, unique)."""
    try:
        ks = sorted({int(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--k must be comma-separated integers, got {short(text)}") from None
    if not ks or ks[0] < 1:
        raise SystemExit(f"--k must list positive integers, got {short(text)}")
    return ks


def parse_extract(text: str | None) -> str | dict[str, str] | None:
    """``boxed`` or ``MATH-500=boxed,AIME-2024-30=last_number,default=auto`` (per data source); None: not given."""
    if text is None:
        return None
    text = text.strip()
    if "=" not in text:
        if text not in EXTRACT_MODES:
            raise SystemExit(f"--extract: unknown mode {short(text)} (auto, boxed, last_number)")
        return text
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        source, sep, mode = part.rpartition("=")
        if not sep or not source.strip() or mode.strip() not in EXTRACT_MODES:
            raise SystemExit(f"--extract: expected SOURCE=MODE with MODE in auto/boxed/last_number, got {short(part)}")
        mapping[source.strip()] = mode.strip()
    return mapping


def extract_mode(extract: str | dict[str, str] | None, data_source: str, benchmark: str) -> str:
    if extract is None:
        return "auto"
    if isinstance(extract, str):
        return extract
    return extract.get(benchmark, extract.get(data_source, extract.get("default", "auto")))


# --------------------------------------------------------------------------------------------- data
@dataclass
class Problem:
    problem_id: str
    data_source: str
    row: int                  # 0-based row number in its file
    messages: list[dict]
    answer: str
    problem: str = ""         # the bare problem text: extra_info.problem, else the last user message


@dataclass
class Benchmark:
    name: str
    data_source: str
    file: Path
    problems: list[Problem] = field(default_factory=list)
    bad_rows: list[dict] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """numpy arrays / scalars from parquet -> Python lists / scalars (recursively)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _messages(prompt: Any) -> tuple[list[dict] | None, str]:
    prompt = _plain(prompt)
    if _missing(prompt):
        return None, "no prompt"
    if isinstance(prompt, str):
        return ([{"role": "user", "content": prompt}], "") if prompt.strip() else (None, "empty prompt")
    if not isinstance(prompt, list) or not prompt:
        return None, "no prompt" if not prompt else f"prompt is a {type(prompt).__name__}, not chat messages"
    for m in prompt:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            return None, "prompt messages need string 'role' and 'content'"
    if not any(m["content"].strip() for m in prompt):
        return None, "empty prompt"
    return [{"role": m["role"], "content": m["content"]} for m in prompt], ""


def _ground_truth(reward_model: Any) -> tuple[str | None, str]:
    """The reference answer of a row, or (None, why): the verifier's own rule (``ground_truth_text``), so
    training and eval refuse the same rows (null, NaN, inf, empty, the text ``None``, an empty box ...)."""
    from ..verify import ground_truth_text

    rm = _plain(reward_model)
    if not isinstance(rm, dict) or _missing(rm.get("ground_truth")):
        return None, "no ground truth (reward_model.ground_truth)"
    text, why = ground_truth_text(rm["ground_truth"])
    return (text, "") if text is not None else (None, why)


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise SystemExit(f"--data {path}: no such file")
    try:
        if path.suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=path.suffix == ".jsonl")
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow / json errors: name the file
        raise SystemExit(f"--data {path}: cannot read it as {'JSON' if path.suffix.startswith('.json') else 'parquet'} "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None


def load_benchmarks(files: Iterable[Path], limit: int | None = None) -> list[Benchmark]:
    """Benchmarks (one per data_source per file, in order of first appearance) with their problems."""
    files = [Path(f) for f in files]
    if len({f.resolve() for f in files}) != len(files):
        raise SystemExit(f"--data names the same file twice: {[str(f) for f in files]}")
    tables = [(f, _read_table(f)) for f in files]
    per_file_sources: dict[Path, list[str]] = {}
    for f, df in tables:
        if limit is not None:
            df = df.head(limit)
        col = df["data_source"] if "data_source" in df.columns else [None] * len(df)
        per_file_sources[f] = [str(s) if not _missing(s) and str(s) else f.stem for s in col]
    counts = Counter(s for f in files for s in dict.fromkeys(per_file_sources[f]))
    out: list[Benchmark] = []
    for f, df in tables:
        if limit is not None:
            df = df.head(limit)
        benches: OrderedDict[str, Benchmark] = OrderedDict()
        records = df.to_dict("records")
        seen_ids: set[str] = set()
        for row, (rec, source) in enumerate(zip(records, per_file_sources[f])):
            name = f"{f.stem}:{source}" if counts[source] > 1 else source
            bench = benches.setdefault(source, Benchmark(name, source, f))
            messages, why = _messages(rec.get("prompt"))
            answer, why_gt = _ground_truth(rec.get("reward_model"))
            if messages is None or answer is None:
                bench.bad_rows.append({"file": str(f), "row": row, "data_source": source,
                                       "reason": "; ".join(x for x in (why, why_gt) if x),
                                       "bad_ground_truth": bool(why_gt)})
                continue
            extra = _plain(rec.get("extra_info"))
            index = extra.get("index") if isinstance(extra, dict) else None
            pid = f"{source}/{index}" if not _missing(index) and str(index) != "" else f"{source}/row{row}"
            if pid in seen_ids:     # duplicate extra_info.index: fall back to the row number, still unique
                pid = f"{source}/row{row}"
            seen_ids.add(pid)
            text = extra.get("problem") if isinstance(extra, dict) else None
            if not isinstance(text, str) or not text.strip():
                text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
            bench.problems.append(Problem(pid, source, row, messages, answer, text))
        out.extend(benches.values())
    return out


MANIFEST = "manifest.json"


def manifest_extraction(data_file: Path) -> tuple[dict[str, str], Path] | None:
    """The ``answer_extraction`` that the data was built to be rewarded with, from the ``manifest.json`` next to
    the file (``svs-verl data quickstart`` writes one): ({data_source or "default": mode}, manifest path)."""
    path = Path(data_file).parent / MANIFEST
    if not path.is_file():
        return None
    try:
        data = loads_json(path.read_bytes())
    except (OSError, ValueError) as exc:  # never a quiet fall-back to `auto` when the data says otherwise
        raise SystemExit(f"{path}: unreadable ({str(exc)[:120]}); fix or delete it, or pass --extract") from None
    ex = data.get("answer_extraction") if isinstance(data, dict) else None
    if isinstance(ex, str):
        ex = {"default": ex}
    if not isinstance(ex, dict) or not all(isinstance(v, str) and v in EXTRACT_MODES for v in ex.values()):
        return None
    return {str(k): v for k, v in ex.items()}, path


def resolve_extraction(extract: str | dict[str, str] | None, benchmarks: list["Benchmark"],
                       say=lambda msg: None) -> str | dict[str, str]:
    """The extraction per benchmark: the one given, else the data's manifest (else ``auto``). When a given
    mode differs from the manifest's, say so (the figures would not match the reward the data was built for)."""
    from_manifest: dict[str, tuple[str, Path]] = {}
    for b in benchmarks:
        found = manifest_extraction(b.file)
        if found:
            mapping, path = found
            from_manifest[b.name] = (mapping.get(b.data_source, mapping.get("default", "auto")), path)
    if extract is None:
        if not from_manifest:
            return "auto"
        resolved = {b.name: from_manifest.get(b.name, ("auto", None))[0] for b in benchmarks}
        paths = sorted({str(p) for _, p in from_manifest.values()})
        say(f"answer extraction from {', '.join(paths)}: "
            + ", ".join(f"{k}={v}" for k, v in resolved.items()) + " (--extract overrides)")
        return resolved
    for b in benchmarks:
        if b.name in from_manifest:
            want, path = from_manifest[b.name]
            used = extract_mode(extract, b.data_source, b.name)
            if used != want:
                say(f"warning: {b.name} is verified with --extract {used}, but {path} says its data is rewarded "
                    f"with {want}; pass@k will not match training's reward (drop --extract to follow the manifest)")
    return extract


def check_model(model: str) -> None:
    """A model that cannot exist, refused before anything loads: a missing local path (a hub id is owner/name),
    a file, a directory without config.json or weights; a hub id outside the cache when HF_HUB_OFFLINE is set."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SystemExit(f"--model {model}: is a file, not a model directory")
        if not (path / "config.json").is_file():
            raise SystemExit(f"--model {model}: a directory without a model (no config.json)")
        if not any(next(path.glob(g), None) is not None for g in ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json",
                                          "*.pt", "*.gguf")):
            raise SystemExit(f"--model {model}: a directory without weights (no *.safetensors or *.bin)")
        return
    text = str(model)
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1 or text.endswith("/") or not text:
        raise SystemExit(f"--model {model}: no such directory")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(text, "config.json")
        except Exception:
            cached = None
        if not isinstance(cached, str):
            raise SystemExit(f"--model {model}: no such directory, and not in the Hugging Face cache "
                             f"(HF_HUB_OFFLINE is set)")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "benchmark"


# --------------------------------------------------------------------------------------------- samples file
def load_samples(path: Path, log: TextIO | None = None, keep_text: bool = False) -> dict[tuple[str, int], dict]:
    """(problem_id, sample_index) -> sample row, from a samples JSONL, read line by line.

    Rows come without their ``response`` text unless ``keep_text`` (an n = 1024 run on long answers holds
    gigabytes of text; the metrics need none of it). A last line cut short by a crash, or any other unreadable
    or duplicate line, is dropped and the file rewritten without it, so appending to it stays safe."""
    if not path.exists():
        return {}
    rows: dict[tuple[str, int], dict] = {}
    dropped: list[int] = []
    unterminated = False
    lineno = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            unterminated = not raw.endswith(b"\n")
            if not raw.strip():
                continue
            try:
                row = loads_json(raw)
            except ValueError:
                dropped.append(lineno)
                continue
            bad = sample_field_error(row)
            if bad:  # a hand-edited line: say which field, never drop or rewrite what the user wrote
                raise SystemExit(f"{path}:{lineno}: {bad}; fix the line, or delete it to have that sample "
                                 f"generated again")
            key = (row["problem_id"], row["sample_index"])
            if key in rows:
                dropped.append(lineno)
                continue
            if not keep_text:
                del row["response"]
            rows[key] = row
    if dropped or unterminated:
        if log is not None and dropped:
            what = "a truncated last line" if dropped == [lineno] and unterminated else \
                f"unreadable or duplicate line(s) {dropped[:10]}"
            print(f"[eval] {path}: dropped {what}; those samples are generated again", file=log)
        skip = set(dropped)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for i, raw in enumerate(src, 1):
                if i not in skip and raw.strip():
                    dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
        os.replace(tmp, path)
    return rows


# the fields of a sample line: (name, check, what it must be, required)
def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


SAMPLE_FIELDS = (
    ("problem_id", lambda v: isinstance(v, str), "a string", True),
    ("sample_index", _count, "a non-negative integer", True),
    ("response", lambda v: isinstance(v, str), "a string", True),
    ("correct", lambda v: isinstance(v, bool), "true or false", True),
    ("reason", lambda v: isinstance(v, str), "a string", True),
    ("n_tokens", _count, "a non-negative integer", True),
    ("finished", lambda v: isinstance(v, bool), "true or false", True),
    ("entropy", lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
     "a finite number or null", False),
    ("answer", lambda v: isinstance(v, str), "a string", False),
    ("extract", lambda v: isinstance(v, str), "a string", False),
    ("extracted", lambda v: v is None or isinstance(v, str), "a string or null", False),
)


def sample_field_error(row: Any) -> str | None:
    """What is wrong with one sample line (parsed), naming the field; None when it is a valid sample."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for name, ok, what, required in SAMPLE_FIELDS:
        if name not in row:
            if required:
                return f"field '{name}' is missing"
            continue
        if not ok(row[name]):
            shown = json.dumps(row[name])
            return f"field '{name}' must be {what}, got {shown if len(shown) <= 40 else shown[:40] + '...'}"
    return None


def _reverify(path: Path, stale: dict[tuple[str, int], dict], answers: dict[str, str], mode: str,
              timeout_s: float, batch: int = 4096) -> None:
    """Verify the ``stale`` samples again from their stored text (streaming the file through a copy), and
    update both the file and the given rows."""
    from ..verify import verify_batch

    tmp = path.with_suffix(path.suffix + ".tmp")
    pending: list[tuple[int, dict]] = []      # (position in out_lines, full row)
    out_lines: list[str | None] = []

    def flush(dst) -> None:
        if pending:
            verdicts = verify_batch([r["response"] for _, r in pending], [answers[r["problem_id"]] for _, r in pending],
                                    timeout_s=timeout_s, extract=mode)
            for (pos, r), v in zip(pending, verdicts):
                r.update(answer=answers[r["problem_id"]], extracted=v.extracted, correct=v.correct,
                         reason=v.reason, extract=mode)
                stale[(r["problem_id"], r["sample_index"])].update({k: r[k] for k in
                                                                   ("answer", "extracted", "correct", "reason", "extract")})
                out_lines[pos] = json.dumps(r, ensure_ascii=False) + "\n"
            pending.clear()
        dst.write("".join(out_lines))     # type: ignore[arg-type]
        out_lines.clear()

    with open(path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for line in src:    # load_samples has just cleaned and checked the file: every line is a valid row
            row = loads_json(line)
            if (row["problem_id"], row["sample_index"]) in stale:
                pending.append((len(out_lines), row))
                out_lines.append(None)
                if len(pending) >= batch:
                    flush(dst)
            else:
                out_lines.append(line)
        flush(dst)
    os.replace(tmp, path)


def _append(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------- progress
class ProgressLine:
    """Samples done / total, rate and ETA on stderr: one line rewritten in place on a terminal, otherwise a
    line every ``every_s`` seconds (and at the end), so logs stay readable."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, every_s: float = 15.0,
                 prefix: str = "eval"):
        self.label, self.total, self.stream, self.every_s, self.prefix = label, total, stream, every_s, prefix
        self.t0 = time.monotonic()
        self.last = -1e9
        self.shown = -1          # the count last printed (a forced update never repeats it)
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, done: int, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if done == self.shown or (not force and done < self.total and
                                  now - self.last < (0.5 if self.tty else self.every_s)):
            return
        self.last, self.shown = now, done
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_s = str(_dt.timedelta(seconds=int(eta))) if math.isfinite(eta) else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        msg = (f"[{self.prefix}] {self.label}: {done}/{self.total} samples ({pct:.1f}%) {rate:.2f}/s "
               f"elapsed {_dt.timedelta(seconds=int(elapsed))} ETA {eta_s}")
        if self.tty:
            self.stream.write("\r" + msg + ("\n" if done >= self.total else ""))
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------------------------- metrics
def benchmark_metrics(rows: list[dict], problems: list[Problem], n: int, ks: list[int]) -> dict[str, Any]:
    """pass@k (unbiased), mean@n, token-weighted mean entropy, lengths for ``n`` samples of each problem."""
    by_pid: dict[str, list[dict]] = {p.problem_id: [] for p in problems}
    for r in rows:
        if r["problem_id"] in by_pid and r["sample_index"] < n:
            by_pid[r["problem_id"]].append(r)
    lacking = [pid for pid, rs in by_pid.items() if len(rs) != n]
    if lacking:
        raise RuntimeError(f"{len(lacking)} problem(s) lack samples after generation, e.g. {short(lacking[0])}")
    m: dict[str, Any] = {"n_problems": len(problems), "samples_per_problem": n}
    if not problems:
        m.update({f"pass@{k}": None for k in ks})
        m.update({f"mean@{n}": None, "mean_entropy": None, "mean_response_tokens": None,
                  "truncated_share": None, "no_answer_share": None, "per_problem_correct": {}})
        return m
    correct = {pid: sum(r["correct"] for r in rs) for pid, rs in by_pid.items()}
    for k in ks:
        m[f"pass@{k}"] = mean_pass_at_k_counts({pid: (n, c) for pid, c in correct.items()}, k)
    m[f"mean@{n}"] = sum(correct.values()) / (n * len(correct))
    flat = [r for rs in by_pid.values() for r in rs]
    with_ent = [r for r in flat if r.get("entropy") is not None and r["n_tokens"] > 0]
    tokens = sum(r["n_tokens"] for r in with_ent)
    m["mean_entropy"] = sum(r["entropy"] * r["n_tokens"] for r in with_ent) / tokens if tokens else None
    m["mean_response_tokens"] = sum(r["n_tokens"] for r in flat) / len(flat)
    m["truncated_share"] = sum(not r["finished"] for r in flat) / len(flat)
    m["no_answer_share"] = sum(r["reason"] == "no_answer" for r in flat) / len(flat)
    m["per_problem_correct"] = correct
    return m


# --------------------------------------------------------------------------------------------- run
@dataclass
class EvalReport:
    results: dict
    generated: int      # samples generated by this invocation
    reused: int         # samples read back from DIR/samples
    reverified: int     # stored samples verified again (extract mode / reference changed)
    backend: str | None  # the backend that generated (None: nothing to generate)


def _check_fingerprint(cfg: EvalConfig) -> None:
    out = Path(cfg.out)
    cfg_path = out / CONFIG_FILE
    ours = [cfg_path, out / "results.json", out / "results.csv", out / "results.md", out / "runs.jsonl"]
    samples_dir = out / "samples"
    if cfg.overwrite:
        for p in ours:
            p.unlink(missing_ok=True)
        if samples_dir.is_dir():
            for p in samples_dir.glob("*.jsonl*"):
                p.unlink()
    fp = cfg.fingerprint()
    if cfg_path.exists():
        try:
            old = loads_json(cfg_path.read_bytes())["fingerprint"]
            if not isinstance(old, dict):
                raise TypeError("fingerprint is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{cfg_path}: unreadable ({str(exc)[:100]}); use a new --out, or --overwrite to "
                             f"discard {out}'s samples") from None
        diff = [f"{k}: {short(old.get(k))} on disk, {short(fp[k])} now" for k in FINGERPRINT_KEYS if old.get(k) != fp[k]]
        has_samples = samples_dir.is_dir() and any(p.stat().st_size > 0 for p in samples_dir.glob("*.jsonl"))
        if diff and not has_samples:   # an earlier start that failed before its first sample: nothing to mix
            cfg_path.unlink()
        elif diff:
            raise SystemExit(f"{out} holds samples of a different generation config ({'; '.join(diff)}). "
                             f"Mixing them would be wrong: use a new --out, or --overwrite to discard them.")
    elif samples_dir.is_dir() and any(samples_dir.glob("*.jsonl")):
        raise SystemExit(f"{samples_dir} holds samples but {cfg_path} is missing, so their generation config is "
                         f"unknown: use a new --out, or --overwrite to discard them.")
    out.mkdir(parents=True, exist_ok=True)
    samples_dir.mkdir(exist_ok=True)
    if not cfg_path.exists():
        cfg_path.write_text(json.dumps({"fingerprint": fp, "created": _now()}, indent=1) + "\n", encoding="utf-8")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _chunks(work: list[tuple[Problem, list[int]]], size: int) -> Iterable[list[tuple[Problem, list[int]]]]:
    """Split (problem, missing sample indices) into pieces of about ``size`` samples (a problem may split)."""
    piece: list[tuple[Problem, list[int]]] = []
    count = 0
    for prob, js in work:
        while js:
            take = js[:max(1, size - count)]
            js = js[len(take):]
            piece.append((prob, take))
            count += len(take)
            if count >= size:
                yield piece
                piece, count = [], 0
    if piece:
        yield piece


def run_eval(cfg: EvalConfig, *, generator=None, log: TextIO | None | str = "stderr") -> EvalReport:
    """Run (or resume) an evaluation; see the module docstring for the files written.

    ``generator``: an already loaded ``Generator`` (must accept ``sample_seeds``); by default one is loaded
    with ``load_generator(cfg.model, cfg.backend, **cfg.generator_kwargs)`` only if samples are missing.
    ``log``: where progress and notes go ("stderr": the current ``sys.stderr``; None: nowhere).
    Raises ``SystemExit`` with a message naming the flag / file / row for user errors.
    """
    if log == "stderr":
        log = sys.stderr
    from ..verify import verify_batch
    from .generate import BackendUnavailable, load_generator, sample_seed

    def say(msg: str) -> None:
        if log is not None:
            print(f"[eval] {msg}", file=log, flush=True)

    n = cfg.n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SystemExit(f"--n must be a positive integer, got {short(n)}")
    too_big = [k for k in cfg.ks if k > n]
    if too_big:
        raise SystemExit(f"--k {too_big[0]} is larger than --n {n}: pass@{too_big[0]} needs at least "
                         f"{too_big[0]} samples per problem (raise --n or drop k={too_big})")
    if cfg.limit is not None and cfg.limit < 1:
        raise SystemExit(f"--limit must be a positive integer, got {cfg.limit}")
    for flag, value, low, high, open_low in (("--temperature", cfg.temperature, 0.0, math.inf, False),
                                             ("--top-p", cfg.top_p, 0.0, 1.0, True),
                                             ("--verify-timeout", cfg.verify_timeout_s, 0.0, math.inf, True)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            (value > low if open_low else value >= low) and value <= high
        if not ok:
            raise SystemExit(f"{flag} must be a number {'>' if open_low else '>='} {low:g}"
                             + (f" and <= {high:g}" if high != math.inf else "") + f", got {short(value)}")
    if isinstance(cfg.max_tokens, bool) or not isinstance(cfg.max_tokens, int) or cfg.max_tokens < 1:
        raise SystemExit(f"--max-tokens must be a positive integer, got {short(cfg.max_tokens)}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a directory")
    if cfg.extract is None:
        pass
    elif isinstance(cfg.extract, dict):
        bad = sorted(set(cfg.extract.values()) - set(EXTRACT_MODES))
        if bad:
            raise SystemExit(f"--extract: unknown mode(s) {bad}")
    elif cfg.extract not in EXTRACT_MODES:
        raise SystemExit(f"--extract: unknown mode {short(cfg.extract)} (auto, boxed, last_number)")

    if cfg.backend not in ("auto", "vllm", "transformers"):
        raise SystemExit(f"--backend: unknown backend {short(cfg.backend)} (auto, vllm, transformers)")
    if generator is None and cfg.backend == "vllm":
        from .generate import vllm_unusable_reason

        why = vllm_unusable_reason()
        if why:  # before the model is looked at: the backend, not the model, is the problem
            raise SystemExit(f"--backend vllm: {why}; the vllm backend needs a CUDA GPU and the vllm package: use "
                             f"--backend transformers (or auto)")
    if generator is None:
        check_model(cfg.model)
    benchmarks = load_benchmarks(cfg.data, cfg.limit)
    for f in cfg.data:
        mine = [b for b in benchmarks if b.file == Path(f)]
        if not any(b.problems for b in mine):
            bad = [r for b in mine for r in b.bad_rows]
            why = (f"all {len(bad)} row(s) are bad, e.g. row {bad[0]['row']}: {bad[0]['reason']}" if bad
                   else "it has no rows")
            raise SystemExit(f"--data {f}: no problem to evaluate ({why}"
                             + (f" within --limit {cfg.limit}" if cfg.limit is not None and bad else "") + ")")
    extract = resolve_extraction(cfg.extract, benchmarks, say)
    _check_fingerprint(cfg)
    files: dict[str, str] = {}
    for b in benchmarks:
        name = _safe_name(b.name)
        if name in files.values():
            name = f"{name}-{len(files)}"
        files[b.name] = f"samples/{name}.jsonl"
    for b in benchmarks:
        for bad in b.bad_rows:
            say(f"bad row: {bad['file']} row {bad['row']} ({bad['data_source']}): {bad['reason']}")

    generated = reused = reverified = 0
    backend_used = None
    all_results = []
    for b in benchmarks:
        path = out / files[b.name]
        mode = extract_mode(extract, b.data_source, b.name)
        stored = load_samples(path, log)
        answers = {p.problem_id: p.answer for p in b.problems}
        wanted = {(p.problem_id, j) for p in b.problems for j in range(n)}
        # verdicts made under another extract mode or another reference answer: verify again, keep the text
        stale = {key: r for key, r in stored.items() if key in wanted and
                 (r.get("extract") != mode or r.get("answer") != answers[key[0]])}
        if stale:
            _reverify(path, stale, answers, mode, cfg.verify_timeout_s)
            reverified += len(stale)
        have = wanted & stored.keys()
        reused += len(have)
        work = [(p, [j for j in range(n) if (p.problem_id, j) not in stored]) for p in b.problems]
        work = [(p, js) for p, js in work if js]
        missing = sum(len(js) for _, js in work)
        say(f"{b.name}: {len(b.problems)} problems x {n} samples; {len(have)} on disk, {missing} to generate"
            + (f"; {len(b.bad_rows)} bad row(s)" if b.bad_rows else ""))
        if missing:
            if generator is None:
                say(f"loading {cfg.model} (backend {cfg.backend})")
                try:
                    generator = load_generator(cfg.model, cfg.backend, **cfg.generator_kwargs)
                except BackendUnavailable as exc:
                    raise SystemExit(str(exc)) from None
                except (ImportError, MemoryError):
                    raise
                except Exception as exc:  # transformers / safetensors / vLLM: a model that does not load
                    msg = " ".join(str(exc).split())[:400]
                    raise SystemExit(f"--model {cfg.model}: cannot load it ({type(exc).__name__}: {msg})") from None
            if "sample_seeds" not in inspect.signature(generator.generate).parameters:
                raise TypeError(f"generator {generator!r} does not take sample_seeds: cannot resume reproducibly")
            backend_used = generator.name
            size = cfg.chunk or (8192 if generator.name == "vllm" else 4 * getattr(generator, "batch_size", 16))
            bar = ProgressLine(b.name, missing, log)
            base = 0
            for piece in _chunks(work, size):
                seeds = [[sample_seed(cfg.seed, p.problem_id, j) for j in js] for p, js in piece]
                samples = generator.generate([p.messages for p, _ in piece], 1, temperature=cfg.temperature,
                                             top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=cfg.seed,
                                             progress=lambda d, t, base=base: bar.update(base + d),
                                             sample_seeds=seeds)
                flat = [(p, j, s, sd) for (p, js), ss, sds in zip(piece, samples, seeds)
                        for j, s, sd in zip(js, ss, sds)]
                verdicts = verify_batch([s.text for _, _, s, _ in flat], [p.answer for p, _, _, _ in flat],
                                        timeout_s=cfg.verify_timeout_s, extract=mode)
                rows = [{"problem_id": p.problem_id, "data_source": p.data_source, "row": p.row, "sample_index": j,
                         "seed": sd, "response": s.text, "answer": p.answer, "extracted": v.extracted,
                         "correct": v.correct, "reason": v.reason, "extract": mode, "n_tokens": s.n_tokens,
                         "finished": s.finished, "entropy": s.entropy}
                        for (p, j, s, sd), v in zip(flat, verdicts)]
                _append(path, rows)
                for r in rows:     # kept without the text, like load_samples' rows
                    stored[(r["problem_id"], r["sample_index"])] = {k: v for k, v in r.items() if k != "response"}
                base += len(rows)
                generated += len(rows)
                bar.update(base, force=base >= missing)
        metrics = benchmark_metrics(list(stored.values()), b.problems, n, cfg.ks)
        all_results.append({"benchmark": b.name, "data_source": b.data_source, "file": str(b.file),
                            "samples_file": files[b.name], **metrics, "n_bad_rows": len(b.bad_rows),
                            "n_bad_ground_truth": sum(bool(r.get("bad_ground_truth")) for r in b.bad_rows)})

    config = {**cfg.fingerprint(), "n": n, "k": list(cfg.ks), "extract": extract,
              "data": [str(p) for p in cfg.data], "limit": cfg.limit}
    results = {"config": config, "benchmarks": all_results,
               "bad_rows": [bad for b in benchmarks for bad in b.bad_rows]}
    write_results(out, results)
    with open(out / "runs.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"time": _now(), "backend": backend_used, "generated": generated, "reused": reused,
                             "reverified": reverified, "n": n, "limit": cfg.limit}) + "\n")
    say(f"done: {generated} generated, {reused} reused, {reverified} re-verified -> {out}/results.md")
    return EvalReport(results, generated, reused, reverified, backend_used)


# --------------------------------------------------------------------------------------------- tables
def _columns(results: dict) -> list[str]:
    n = results["config"]["n"]
    return (["benchmark", "n_problems", "samples_per_problem"] + [f"pass@{k}" for k in results["config"]["k"]]
            + [f"mean@{n}", "mean_entropy", "mean_response_tokens", "truncated_share", "no_answer_share",
               "n_bad_rows"])


def write_results(out: Path, results: dict) -> None:
    """results.json, results.csv and results.md from a results dict (as ``run_eval`` builds it)."""
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    cols = _columns(results)
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for b in results["benchmarks"]:
            w.writerow(["" if b.get(c) is None else b.get(c) for c in cols])
    (out / "results.md").write_text(markdown_table(results), encoding="utf-8")


def markdown_table(results: dict) -> str:
    """The results as a Markdown table: pass@k / mean@n / truncated in %, entropy in nats."""
    cfg = results["config"]
    n = cfg["n"]
    pct_cols = [f"pass@{k}" for k in cfg["k"]] + [f"mean@{n}"]
    head = ["benchmark", "problems", "n"] + [f"{c} (%)" for c in pct_cols] + \
        ["entropy", "mean tokens", "truncated (%)", "bad rows"]

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for b in results["benchmarks"]:
        cells = [b["benchmark"], str(b["n_problems"]), str(b["samples_per_problem"])]
        cells += [pct(b.get(c)) for c in pct_cols]
        cells += ["–" if b["mean_entropy"] is None else f"{b['mean_entropy']:.3f}",
                  "–" if b["mean_response_tokens"] is None else f"{b['mean_response_tokens']:.1f}",
                  pct(b["truncated_share"]), str(b["n_bad_rows"])]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    extract = cfg["extract"] if isinstance(cfg["extract"], str) else \
        ",".join(f"{k}={v}" for k, v in cfg["extract"].items())
    lines.append(f"model `{cfg['model']}`, temperature {cfg['temperature']}, top_p {cfg['top_p']}, "
                 f"max_tokens {cfg['max_tokens']}, seed {cfg['seed']}, extract {extract}; pass@k is the "
                 f"unbiased estimator over n = {n} samples per problem; entropy: mean token entropy of the "
                 f"policy at the sampling temperature (token-weighted, nats).")
    bad = results.get("bad_rows") or []
    if bad:
        lines.append("")
        lines.append(f"{len(bad)} bad row(s), not evaluated (0-based row numbers):")
        lines.append("")
        lines += [f"- {r['file']} row {r['row']} ({r['data_source']}): {r['reason']}" for r in bad]
    return "\n".join(lines) + "\n"


__all__ = ["EvalConfig", "EvalReport", "Benchmark", "Problem", "run_eval", "load_benchmarks", "load_samples",
           "benchmark_metrics", "write_results", "markdown_table", "parse_ks", "parse_extract"]
