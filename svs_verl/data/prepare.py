"""``svs-verl data prepare NAME --src PATH_OR_HUB_ID --out DIR``: the paper's datasets in verl format.

NAME picks the column mapping, the ``data_source`` and the default split (``svs-verl data prepare --help``
lists them). ``--src`` is a local file (``.parquet``, ``.jsonl``, ``.json``, ``.csv``) or a Hugging Face hub id
(needs internet and ``datasets``; omitted: the NAME's usual hub id). Rows come in two shapes:

* raw rows, e.g. ``{"problem": ..., "answer": ...}`` (MATH-style ``solution`` -> its last ``\\boxed{}``;
  GSM8K ``answer`` -> the text after ``####``): wrapped into a user message with ``--instruction`` (default:
  the paper's "Please reason step by step, and put your final answer within \\boxed{}.");
* verl rows (``data_source``, ``prompt``, ``ability``, ``reward_model``, ``extra_info``, as in
  ``/work/shared/data/*.parquet``): validated and kept as they are (``--rewrap`` replaces the prompt by the
  problem wrapped in ``--instruction``).

Nothing is dropped silently: a row with a missing, empty or non-string field is written to
``DIR/<name>.rejected.jsonl`` with its row number (0-based position in the source file; JSONL rows also give their
line) and the field at fault, and counted in the report; ``--strict`` makes any such row a failure (exit 1,
no parquet). Exact duplicates inside the file (same normalised problem: instruction wrappers stripped,
lowercase, whitespace collapsed, trailing punctuation dropped) and problems found in ``--dedup-against``
eval files are dropped too, and listed in the same file with the row they repeat.

Output: ``DIR/<name>.parquet`` (``DIR/<split>.parquet`` with ``--split``, e.g. ``data/math-12k/train.parquet``;
one ``DIR/<data_source>.parquet`` per source with ``--split-by-source``: sources whose file names would
collide get a hash suffix, listed in the report's ``output_by_source``), ``DIR/<name>.report.json`` and
``DIR/<name>.rejected.jsonl``. Answers are checked as training checks them (``verify.ground_truth_text``):
``Infinity``/``NaN``/``1e999`` numbers, the text ``None``, an empty box are invalid rows, never ground truths.

    svs-verl data prepare dapo-17k --src ../shared/data/dapo_math_17k.parquet --out data/dapo-17k --split train \\
        --dedup-against ../shared/data/math500_aime24_aime25.parquet
    svs-verl data prepare math-500 --src ../shared/data/math500_aime24_aime25.parquet --out data/eval \\
        --split-by-source
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..argtypes import short
from ..verify.rules import MAX_ANSWER_CHARS, last_boxed
from ..verify.rules import unwrap as bare_answer  # core.guards.bare_answer's result in linear time
from . import schema


@dataclass(frozen=True)
class Spec:
    """How one named dataset maps onto verl rows."""

    name: str
    data_source: str
    split: str                                  # "train" or "test": the split it plays in the paper
    problem_keys: tuple[str, ...] = ("problem", "question", "Problem", "Question")
    answer_keys: tuple[str, ...] = ("answer", "Answer", "final_answer", "ground_truth")
    solution_keys: tuple[str, ...] = ("solution", "Solution")  # last \boxed{} when there is no answer field
    answer_format: str = "plain"                # "plain" | "gsm8k" (text after '####')
    hub: str | None = None                      # usual hub id (``datasets.load_dataset``)
    hub_config: str | None = None
    hub_splits: tuple[str, ...] = ("train",)
    note: str = ""


SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("math-12k", "MATH-12k", "train", hub="DigitalLearningGmbH/MATH-lighteval", hub_splits=("train", "test"),
         note="MATH train+test (12.5k); --dedup-against MATH-500 leaves the paper's 12k"),
    Spec("dapo-17k", "DAPO-17k", "train", hub="BytedTsinghua-SIA/DAPO-Math-17k",
         note="verl rows; the hub copy repeats every problem ~100x (dropped as duplicates)"),
    Spec("math-500", "MATH-500", "test", hub="HuggingFaceH4/MATH-500", hub_splits=("test",)),
    Spec("aime24", "AIME-2024-30", "test", hub="HuggingFaceH4/aime_2024"),
    Spec("aime25", "AIME-2025-30", "test", hub="math-ai/aime25", hub_splits=("test",)),
    Spec("amc23", "AMC-2023", "test", hub="math-ai/amc23", hub_splits=("test",)),
    Spec("gsm8k", "GSM8K", "test", answer_format="gsm8k", hub="openai/gsm8k", hub_config="main",
         hub_splits=("test",), note="answers after '####'"),
    Spec("minerva", "Minerva-Math", "test", hub="math-ai/minervamath", hub_splits=("test",)),
    Spec("olympiadbench", "OlympiadBench", "test", hub="math-ai/olympiadbench", hub_splits=("test",),
         note="rows with several final answers are rejected"),
    Spec("beyond-aime", "BeyondAIME", "test", hub="ByteDance-Seed/BeyondAIME", hub_splits=("test",)),
]}

SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".json", ".csv")


class BadRow(Exception):
    """A row that cannot become a verl row; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass
class Record:
    row: int                    # 0-based position in the source
    value: Any                  # the parsed record (or the raw line of a JSONL line that is not JSON)
    line: int | None = None     # JSONL: 1-based line number
    error: str | None = None    # a record that could not even be parsed


# -- reading ------------------------------------------------------------------------------------------
def _is_hub_id(src: str) -> bool:
    return bool(re.fullmatch(r"[\w.\-]+/[\w.\-]+", src)) and not src.lower().endswith(SUFFIXES)


def read_records(src: str, spec: Spec | None = None, hub_splits: tuple[str, ...] | None = None) -> Iterator[Record]:
    """The records of a local file, or of a hub dataset when ``src`` is a hub id and no such file exists."""
    path = Path(src).expanduser()
    if not path.exists():
        if _is_hub_id(src) and not _looks_like_path(src):
            reachable, why = _hub_reachable()
            if not reachable:
                raise SystemExit(f"--src {src}: no such file, and the Hugging Face hub cannot be asked for it ({why}); "
                                 f"download the dataset where there is internet and pass the file with --src")
            yield from _read_hub(src, spec, hub_splits)
            return
        raise SystemExit(f"--src {src}: no such file" + ("" if _is_hub_id(src) and not _looks_like_path(src) else
                                                         " (and not a hub id like owner/name)"))
    if path.is_dir():
        raise SystemExit(f"--src {src} is a directory; give one file ({', '.join(SUFFIXES)})")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SystemExit(f"{src}: cannot read as parquet ({type(exc).__name__}: {str(exc)[:300]})") from None
        yield from (Record(i, r) for i, r in enumerate(rows))
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, "rb") as fh:   # decoded line by line: a badly encoded line is one rejected row
            row = 0
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield Record(row, raw.rstrip(b"\n")[:500].decode("utf-8", "replace"), lineno,
                                 f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                    row += 1
                    continue
                if not line.strip():
                    continue
                try:
                    value = schema.loads_json(line)
                except ValueError as exc:  # not JSON, nested too deeply, 1e999, NaN, a 301-digit integer
                    yield Record(row, line.rstrip("\n")[:500], lineno, str(exc))
                else:
                    yield Record(row, value, lineno)
                row += 1
    elif suffix == ".json":
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        try:  # undecodable bytes survive as lone surrogates; the rows holding them are rejected below
            data = schema.loads_json(text)
        except ValueError as exc:
            try:  # name the line for a syntax error
                json.loads(text)
            except json.JSONDecodeError as jexc:
                raise SystemExit(f"{src}: not valid JSON (line {jexc.lineno}: {jexc.msg})") from None
            except (ValueError, RecursionError):
                pass
            raise SystemExit(f"{src}: {exc}") from None
        if isinstance(data, dict):
            lists = [k for k, v in data.items() if isinstance(v, list)]
            if len(lists) != 1:
                raise SystemExit(f"{src}: expected a JSON list of rows, or an object holding exactly one list "
                                 f"(found lists under {lists or 'no key'})")
            data = data[lists[0]]
        if not isinstance(data, list):
            raise SystemExit(f"{src}: expected a JSON list of rows, got {type(data).__name__}")
        for i, r in enumerate(data):
            if _has_surrogates(r):
                yield Record(i, _excerpt_text(r), None, "not valid UTF-8 (an undecodable byte in this row)")
            else:
                yield Record(i, r)
    elif suffix == ".csv":
        import pandas as pd

        try:  # every cell as text; an empty cell stays "" (not NaN) so it is reported as empty
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:
            raise SystemExit(f"{src}: cannot read as CSV ({type(exc).__name__}: {exc})") from None
        yield from (Record(i, r) for i, r in enumerate(frame.to_dict("records")))
    else:
        raise SystemExit(f"--src {src}: unknown file type {suffix or '(none)'}; use {', '.join(SUFFIXES)}")


def _has_surrogates(value: Any) -> bool:
    if isinstance(value, str):
        return any("\udc80" <= c <= "\udcff" for c in value)
    if isinstance(value, dict):
        return any(_has_surrogates(k) or _has_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogates(v) for v in value)
    return False


def _excerpt_text(value: Any) -> str:
    """A printable excerpt of a row holding undecodable bytes (shown as U+FFFD)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:500]


def _looks_like_path(src: str) -> bool:
    """A --src that can only be meant as a local path (so a missing one never goes to the hub)."""
    if src.startswith((".", "/", "~")) or "\\" in src or src.count("/") != 1 or src.endswith("/"):
        return True
    first = src.split("/", 1)[0]
    return Path(first).is_dir()     # a file in an existing local directory, e.g. data/nosuch


def _hub_reachable(timeout_s: float = 3.0) -> tuple[bool, str]:
    """Whether the hub answers at all (HF_HUB_OFFLINE, or no route to HF_ENDPOINT), in a few seconds."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
            os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False, "HF_HUB_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True, ""   # through a proxy: a direct connection says nothing, let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return False, f"{host}:{port} is unreachable ({exc.strerror or type(exc).__name__})"
    return True, ""


def _read_hub(hub_id: str, spec: Spec | None, splits: tuple[str, ...] | None) -> Iterator[Record]:
    try:
        import datasets
    except ImportError:
        raise SystemExit(f"--src {hub_id}: loading from the hub needs `pip install datasets`") from None
    config = spec.hub_config if spec and spec.hub == hub_id else None
    splits = splits or (spec.hub_splits if spec else ("train",))
    row = 0
    for split in splits:
        try:
            ds = datasets.load_dataset(hub_id, config, split=split)
        except Exception as exc:  # offline: ConnectionError, HfHubHTTPError, DatasetNotFoundError, ...
            raise SystemExit(
                f"cannot load {hub_id} (config {config}, split {split}) from the Hugging Face hub: "
                f"{type(exc).__name__}: {str(exc)[:300]}\nThe hub may be unreachable from this machine (no "
                "internet). Download the dataset where there is internet and pass the file with --src.") from None
        for r in ds.to_list():
            yield Record(row, r)
            row += 1


# -- one row ------------------------------------------------------------------------------------------
def _field(row: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        if k in row and row[k] is not None:
            return k, row[k]
    return None, None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRow(name, f"field '{name}' is {type(value).__name__}, expected a string")
    if not value.strip():
        raise BadRow(name, f"field '{name}' is empty")
    return value.strip()


def _answer_value(value: Any, name: str) -> str:
    """An answer field as a string (integers and decimals are fine; one-element lists are unwrapped)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        raise BadRow(name, f"field '{name}' holds {len(value)} answers, expected one")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRow(name, f"field '{name}' is {type(value).__name__}, expected a string or number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRow(name, f"field '{name}' is {value}, not a finite number")  # never the ground truth 'inf'

    text = bare_answer(str(value)) if isinstance(value, str) else (str(int(value)) if float(value).is_integer()
                                                                     else repr(value))
    if not text:
        raise BadRow(name, f"field '{name}' is empty")
    return text


def gsm8k_answer(text: str, name: str = "answer") -> str:
    """The final answer of a GSM8K solution: the text after the last '####', thousands commas removed."""
    if not isinstance(text, str):
        raise BadRow(name, f"field '{name}' is {type(text).__name__}, expected a string")
    if "####" not in text:
        raise BadRow(name, f"field '{name}' has no '#### <answer>' line")
    ans = text.rsplit("####", 1)[1].strip()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", ans):
        ans = ans.replace(",", "")
    if not ans:
        raise BadRow(name, f"field '{name}' is empty after '####'")
    return ans


@dataclass
class Options:
    instruction: str | None = schema.BOXED_INSTRUCTION
    rewrap: bool = False
    data_source: str | None = None
    split: str | None = None
    problem_key: str | None = None
    answer_key: str | None = None


def convert(value: Any, spec: Spec, opts: Options) -> tuple[dict, str]:
    """A source record -> (verl row without index/split, bare problem). Raises ``BadRow``."""
    if not isinstance(value, dict):
        raise BadRow("row", f"row is {type(value).__name__}, expected an object")
    if "reward_model" in value and "prompt" in value and not isinstance(value.get("prompt"), str):
        return _convert_verl(value, spec, opts)
    pkeys = (opts.problem_key,) if opts.problem_key else spec.problem_keys
    akeys = (opts.answer_key,) if opts.answer_key else spec.answer_keys
    pk, pv = _field(value, pkeys)
    if pk is None and isinstance(value.get("prompt"), str) and not opts.problem_key:
        raise BadRow("prompt", "field 'prompt' is a string, not chat messages: a verl row's prompt is a list "
                     "[{\"role\": \"user\", \"content\": ...}]; to read the string as the problem, pass "
                     "--problem-key prompt" + ("" if "reward_model" in value else " (and --answer-key if needed)"))
    if pk is None:
        raise BadRow(pkeys[0], f"missing field '{pkeys[0]}'" + (f" (also looked for {', '.join(pkeys[1:])})"
                                                                 if len(pkeys) > 1 else ""))
    problem = schema.strip_instruction(_text(pv, pk), [opts.instruction or ""]) or _text("", pk)
    ak, av = _field(value, akeys)
    if ak is not None and not (isinstance(av, str) and not av.strip() and not opts.answer_key):
        answer = gsm8k_answer(av, ak) if spec.answer_format == "gsm8k" else _answer_value(av, ak)
    else:
        sk, sv = (None, None) if opts.answer_key else _field(value, spec.solution_keys)
        if sk is None:
            if ak is not None:  # an empty answer and no solution to fall back on
                raise BadRow(ak, f"field '{ak}' is empty")
            raise BadRow(akeys[0], f"missing field '{akeys[0]}'" + (
                f" (also looked for {', '.join(akeys[1:] + spec.solution_keys)})" if not opts.answer_key else ""))
        boxed = last_boxed(_text(sv, sk))
        if boxed is None or not bare_answer(boxed):
            raise BadRow(sk, f"no \\boxed{{}} answer in field '{sk}'")
        answer = bare_answer(boxed)
    if len(answer) > MAX_ANSWER_CHARS:
        raise BadRow(ak or "answer", f"answer longer than {MAX_ANSWER_CHARS} characters")
    _verifiable(answer, ak or "answer")
    extra = {"source_row": None}
    _, sol = _field(value, spec.solution_keys)
    if isinstance(sol, str) and sol.strip():
        extra["solution"] = sol
    row = schema.make_row(opts.data_source or spec.data_source, problem, answer, split="", index=0,
                          instruction=opts.instruction, extra=extra)
    return row, problem


def _verifiable(answer: str, name: str) -> None:
    """Refuse an answer the verifier cannot check (training and eval would score every response 0 on it):
    the text of a missing value (``None``, ``nan``), an empty box, ... (``verify.ground_truth_text``)."""
    from ..verify import ground_truth_text

    text, why = ground_truth_text(answer)
    if text is None:
        raise BadRow(name, f"field '{name}': {why}")


def _convert_verl(value: dict, spec: Spec, opts: Options) -> tuple[dict, str]:
    row = dict(value)
    rm = row.get("reward_model")
    if isinstance(rm, dict):
        gt = rm.get("ground_truth")
        if isinstance(gt, (int, float)) and not isinstance(gt, bool):
            rm = {**rm, "ground_truth": _answer_value(gt, "reward_model.ground_truth")}
        row["reward_model"] = {"ground_truth": rm.get("ground_truth"), "style": rm.get("style", "rule")}
        if isinstance(rm.get("ground_truth"), str) and rm["ground_truth"].strip():
            _verifiable(rm["ground_truth"], "reward_model.ground_truth")
    row.setdefault("ability", "math")
    prompt = row.get("prompt")
    if prompt is not None and not isinstance(prompt, list) and hasattr(prompt, "tolist"):
        row["prompt"] = prompt = prompt.tolist()  # numpy arrays from pandas-written files
    errors = schema.row_errors(row)
    if errors:
        field = errors[0].split(" ", 1)[0]
        raise BadRow(field, "; ".join(errors))
    info = dict(row.get("extra_info") or {})
    problem = info.get("problem") if isinstance(info.get("problem"), str) and info["problem"].strip() else None
    if problem is None:
        problem = schema.strip_instruction(schema.user_text(row), [opts.instruction or ""])
        if not problem:
            raise BadRow("prompt", "prompt holds only an instruction, no problem")
    problem = problem.strip()
    if opts.rewrap:
        row["prompt"] = [{"role": "user", "content": schema.wrap(problem, opts.instruction)}]
    else:
        row["prompt"] = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    if opts.data_source:
        row["data_source"] = opts.data_source
    if "index" in info:
        info["source_index"] = info.pop("index")
    info.pop("split", None)
    info["problem"] = problem
    info["source_row"] = None
    row["extra_info"] = info
    return {k: row[k] for k in schema.VERL_COLUMNS}, problem


# -- dedup sources ------------------------------------------------------------------------------------
def _any_problem(value: Any, extra_instructions: list[str]) -> str | None:
    """The problem of a row of any shape (verl or raw), for overlap checks; None when there is none."""
    if not isinstance(value, dict):
        return None
    info = value.get("extra_info")
    if isinstance(info, dict) and isinstance(info.get("problem"), str) and info["problem"].strip():
        return info["problem"]
    prompt = value.get("prompt")
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return schema.strip_instruction(users[-1], extra_instructions)
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    _, text = _field(value, ("problem", "question", "Problem", "Question"))
    return text if isinstance(text, str) else None


def eval_keys(files: list[str], extra_instructions: list[str]) -> tuple[dict[str, tuple[str, int, str]], dict]:
    """normalised problem -> (file, row, data_source) over the eval files, and rows read per file."""
    keys: dict[str, tuple[str, int, str]] = {}
    per_file = {}
    for f in files:
        if not Path(f).is_file():
            raise SystemExit(f"--dedup-against {f}: no such file")
        n = 0
        unreadable = []
        for rec in read_records(f):
            if rec.error:
                unreadable.append(rec.line if rec.line is not None else rec.row)
                continue
            text = _any_problem(rec.value, extra_instructions)
            if text:
                src = rec.value.get("data_source", "") if isinstance(rec.value, dict) else ""
                keys.setdefault(schema.problem_key(text, extra_instructions), (f, rec.row, str(src or "")))
                n += 1
        if unreadable:
            what = "line(s)" if str(f).lower().endswith((".jsonl", ".ndjson")) else "row(s)"
            print(f"--dedup-against {f}: skipped {len(unreadable)} unreadable {what} {unreadable[:10]}"
                  + (" ..." if len(unreadable) > 10 else "") + " (not valid UTF-8 or JSON); their problems are not "
                  "deduplicated against", file=sys.stderr)
        if n == 0:
            raise SystemExit(f"--dedup-against {f}: found no problems in it")
        per_file[f] = n
    return keys, per_file


# -- the command ----------------------------------------------------------------------------------------
@dataclass
class Result:
    report: dict
    outputs: dict[str, list[dict]] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)
    stem: str = ""              # names the report and the rejected rows: NAME
    output: str = ""            # the parquet file: NAME.parquet, SPLIT.parquet with --split
    by_source: bool = False     # one output per data_source instead


def _excerpt(value: Any, limit: int = 300) -> Any:
    """A JSON-safe, shortened copy of a source record for rejected.jsonl."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "..."
    if isinstance(value, dict):
        return {str(k): _excerpt(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_excerpt(v, limit) for v in value[:20]]
    if hasattr(value, "tolist"):
        return _excerpt(value.tolist(), limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)[:limit]


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", text).strip("_") or "unnamed"


def source_file_names(sources: list[str]) -> dict[str, str]:
    """data_source -> its own ``.parquet`` file name for ``--split-by-source``. Names that would collide
    (``a/b`` and ``a_b``, or ``AIME`` and ``aime`` on a case-insensitive disk) each get a short hash of the
    full source, so two sources are never merged into one file."""
    distinct = list(dict.fromkeys(sources))
    safe = {s: _safe_name(s) for s in distinct}
    clash = Counter(v.casefold() for v in safe.values())
    out = {}
    for s in distinct:
        stem = safe[s]
        if clash[stem.casefold()] > 1:
            stem = f"{stem}-{hashlib.sha1(s.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
        out[s] = f"{stem}.parquet"
    return out


def prepare(name: str, src: str | None, *, opts: Options, dedup_against: list[str] = (),
            split_by_source: bool = False, hub_splits: tuple[str, ...] | None = None) -> Result:
    """Convert, validate and deduplicate one dataset (nothing is written here; see ``write``)."""
    spec = SPECS.get(name)
    if spec is None:
        raise SystemExit(f"unknown dataset {short(name)}; known: {', '.join(SPECS)}")
    src = src or spec.hub
    if not src:
        raise SystemExit(f"{name}: give --src FILE_OR_HUB_ID")
    split = opts.split or spec.split
    instr = [opts.instruction or ""]
    t0 = time.perf_counter()
    against, per_file = eval_keys(list(dedup_against), instr) if dedup_against else ({}, {})
    seen: dict[str, tuple[int, str]] = {}
    kept: list[tuple[dict, int]] = []
    rejected: list[dict] = []
    invalid_fields: Counter = Counter()
    n_in = dup = conflicts = overlap = bare_prompts = 0
    overlap_by: Counter = Counter()
    for rec in read_records(src, spec, hub_splits):
        n_in += 1
        where = {"row": rec.row, **({"line": rec.line} if rec.line is not None else {})}
        try:
            if rec.error:
                raise BadRow("row", rec.error)
            row, problem = convert(rec.value, spec, opts)
        except BadRow as bad:
            invalid_fields[bad.field] += 1
            rejected.append({**where, "kind": "invalid", "field": bad.field, "reason": bad.reason,
                             "record": _excerpt(rec.value)})
            continue
        key = schema.problem_key(problem, instr)
        answer = row["reward_model"]["ground_truth"]
        if key in seen:
            first_row, first_answer = seen[key]
            dup += 1
            reason = f"duplicate of row {first_row}"
            if first_answer != answer:
                conflicts += 1
                reason += f" (its answer {short(first_answer)} differs from {short(answer)})"
            rejected.append({**where, "kind": "duplicate", "reason": reason, "problem": _excerpt(problem, 200)})
            continue
        seen[key] = (rec.row, answer)
        if key in against:
            f, erow, esrc = against[key]
            overlap += 1
            overlap_by[f"{f}" + (f" [{esrc}]" if esrc else "")] += 1
            rejected.append({**where, "kind": "overlap", "reason": f"same problem as {f} row {erow}"
                             + (f" ({esrc})" if esrc else ""), "problem": _excerpt(problem, 200)})
            continue
        row["extra_info"]["source_row"] = rec.row
        if opts.instruction and schema.user_text(row).strip() == problem:
            bare_prompts += 1  # a verl row kept as it is, whose prompt asks for no answer format
        kept.append((row, rec.row))
    if n_in == 0:
        raise SystemExit(f"--src {src}: no rows")

    outputs: dict[str, list[dict]] = {}
    output = f"{_safe_name(opts.split)}.parquet" if opts.split else f"{name}.parquet"
    source_files = source_file_names([r["data_source"] for r, _ in kept]) if split_by_source else {}
    for row, _ in kept:
        fname = source_files[row["data_source"]] if split_by_source else output
        bucket = outputs.setdefault(fname, [])
        row["extra_info"]["index"] = len(bucket)
        row["extra_info"]["split"] = split
        bucket.append(row)

    invalid = n_in - len(kept) - dup - overlap
    report = {
        "name": name, "src": str(src), "split": split,
        "instruction": opts.instruction, "rewrap": opts.rewrap,
        "rows_in": n_in, "written": len(kept), "invalid": invalid,
        "invalid_by_field": dict(sorted(invalid_fields.items())),
        "duplicates": dup, "duplicates_with_other_answer": conflicts,
        "overlapping": overlap, "overlap_by_file": dict(sorted(overlap_by.items())),
        "dedup_against": per_file,
        "prompts_without_instruction": bare_prompts,
        "outputs": {f: len(rows) for f, rows in outputs.items()},
        **({"output_by_source": dict(sorted(source_files.items()))} if split_by_source else {}),
        "by_source": dict(sorted(Counter(r["data_source"] for r, _ in kept).items())),
        "first_invalid": [{k: r[k] for k in ("row", "line", "field", "reason") if k in r}
                          for r in rejected if r["kind"] == "invalid"][:10],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return Result(report, outputs, rejected, name, output, split_by_source)


def write(result: Result, out: str | Path, strict: bool) -> dict[str, Path]:
    """Write the parquet file(s) (not when ``strict`` and a row was invalid), the rejected rows and the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    failed = strict and result.report["invalid"] > 0
    if not result.by_source and not result.outputs:  # nothing usable: an earlier run's file must not linger
        (out / result.output).unlink(missing_ok=True)
    for fname, rows in result.outputs.items():
        target = out / fname
        if failed:
            target.unlink(missing_ok=True)  # an earlier run's output would look like this run's
        else:
            paths[fname] = schema.write_parquet(rows, target)
    rej = out / f"{result.stem}.rejected.jsonl"  # per dataset: several datasets may share one DIR
    with open(rej, "w", encoding="utf-8") as fh:
        for r in result.rejected:
            fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    report = dict(result.report, rejected_file=str(rej), strict_failed=failed)
    report.pop("seconds", None)  # keep the report byte-identical across reruns
    paths["report"] = schema.dump_json(report, out / f"{result.stem}.report.json")
    paths["rejected"] = rej
    return paths


def summary(result: Result, paths: dict[str, Path]) -> str:
    r = result.report
    lines = [f"svs-verl data prepare {r['name']}: {r['src']} ({r['seconds']} s)",
             f"  rows in              {r['rows_in']}",
             f"  written              {r['written']}",
             f"  invalid              {r['invalid']}"
             + (f"  by field: {r['invalid_by_field']}" if r['invalid'] else ""),
             f"  duplicates in file   {r['duplicates']}" + (f"  ({r['duplicates_with_other_answer']} with another "
                                                           "answer)" if r['duplicates_with_other_answer'] else ""),
             f"  overlapping eval     {r['overlapping']}" + (f"  {r['overlap_by_file']}" if r['overlapping'] else "")]
    if r["prompts_without_instruction"]:
        lines.append(f"  note: {r['prompts_without_instruction']} prompts are the bare problem (no answer-format "
                     "instruction); --rewrap appends --instruction")
    for bad in r["first_invalid"]:
        where = f"row {bad['row']}" + (f" (line {bad['line']})" if "line" in bad else "")
        lines.append(f"  bad {where}: {bad['reason']}")
    if r["invalid"] > len(r["first_invalid"]):
        lines.append(f"  ... {r['invalid'] - len(r['first_invalid'])} more bad rows")
    for fname, n in r["outputs"].items():
        lines.append(f"  -> {paths.get(fname, fname)}: {n} rows" + ("" if fname in paths else " (not written)"))
    lines.append(f"  report {paths['report']}, rejected rows {paths['rejected']}")
    return "\n".join(lines)


def run(args) -> int:
    """Handler of ``svs-verl data prepare`` (see cli.py for the flags)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a directory")
    opts = Options(instruction=args.instruction or None, rewrap=args.rewrap, data_source=args.data_source,
                   split=args.split, problem_key=args.problem_key, answer_key=args.answer_key)
    hub_splits = tuple(s.strip() for s in args.hub_split.split(",") if s.strip()) if args.hub_split else None
    result = prepare(args.name, args.src, opts=opts, dedup_against=args.dedup_against or [],
                     split_by_source=args.split_by_source, hub_splits=hub_splits)
    paths = write(result, args.out, args.strict)
    print(summary(result, paths))
    sys.stdout.flush()
    if args.strict and result.report["invalid"]:
        print(f"--strict: {result.report['invalid']} bad row(s), see {paths['rejected']}; no parquet written",
              file=sys.stderr)
        return 1
    if not result.report["written"]:
        print(f"no usable rows in {result.report['src']}: check the column mapping (--problem-key, --answer-key) "
              f"against {paths['rejected']}", file=sys.stderr)
        return 1
    return 0
