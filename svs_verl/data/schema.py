"""The verl row format shared by ``svs-verl data quickstart`` and ``svs-verl data prepare``.

One row is what verl 0.9.1's ``RLHFDataset`` reads from a parquet file::

    {"data_source": "quickstart/arith-l1",
     "prompt": [{"role": "user", "content": "What is 3 + 5? Answer with just the final number."}],
     "ability": "math",
     "reward_model": {"style": "rule", "ground_truth": "8"},
     "extra_info": {"index": 0, "split": "train", "problem": "What is 3 + 5?", ...}}

``extra_info.problem`` is the bare problem text (no instruction); the SvS sampler uses it for its duplicate
guards. This module builds rows (``make_row``), checks them (``row_errors``: every problem named by field),
normalises problem text for duplicate and overlap checks (``problem_key``) and writes parquet files whose
bytes depend only on the rows (``write_parquet``). Nothing to run here; see ``svs_verl/data/cli.py``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..argtypes import short

# The paper's (DAPO-style) instruction, appended to every problem by `data prepare` unless told otherwise.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# The one format the embedded SmolLM2-135M answers at all (its accuracy is ~0 when asked for \boxed{} or
# "Answer:"); read with answer_extraction=last_number.
LAST_NUMBER_INSTRUCTION = "Answer with just the final number."
# The wrapper of the original DAPO-Math-17k release (problem in the middle); recognised and stripped so
# its problems compare equal to the same problem without a wrapper.
DAPO_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of the "
               "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.")
DAPO_SUFFIX = 'Remember to put your answer on its own line after "Answer:".'
KNOWN_INSTRUCTIONS = (BOXED_INSTRUCTION, LAST_NUMBER_INSTRUCTION, DAPO_PREFIX, DAPO_SUFFIX)

VERL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")

MAX_JSON_INT_DIGITS = 300  # a JSON integer longer than this is no count, index or answer svs-verl reads


class JsonInputError(ValueError):
    """A JSON text svs-verl refuses to read: not JSON, nested deeper than the parser can go, a number out of
    range (``1e999``, a 301-digit integer) or ``NaN``/``Infinity`` where a finite number is needed."""


def loads_json(text: str | bytes, allow_nonfinite: bool = False) -> Any:
    """``json.loads`` for files a user hands svs-verl, with every failure a ``JsonInputError`` (a ValueError)
    whose message is one short clause: deep nesting (``RecursionError`` in ``json``), numbers that overflow
    (a float that parses to inf, integers over ``MAX_JSON_INT_DIGITS`` digits: ``OverflowError`` later), and
    ``NaN``/``Infinity`` unless ``allow_nonfinite`` (verl's metric logs write them)."""

    def parse_float(token: str) -> float:
        value = float(token)
        if not allow_nonfinite and not math.isfinite(value):
            raise JsonInputError(f"number {token[:30]} is out of range")
        return value

    def parse_int(token: str) -> int:
        if len(token.lstrip("-")) > MAX_JSON_INT_DIGITS:
            raise JsonInputError(f"a {len(token)}-digit integer is out of range")
        return int(token)

    def parse_constant(token: str) -> float:
        if not allow_nonfinite:
            raise JsonInputError(f"{token} is not a finite number")
        return float(token)

    try:
        return json.loads(text, parse_float=parse_float, parse_int=parse_int, parse_constant=parse_constant)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError("nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonInputError(f"not valid JSON ({' '.join(str(exc).split())[:120]})") from None


def wrap(problem: str, instruction: str | None, sep: str = "\n") -> str:
    """The user message for ``problem``: ``instruction`` is appended after ``sep``, or, when it contains
    ``{problem}``, used as the whole template. ``None`` or ``""`` leaves the problem alone."""
    if not instruction:
        return problem
    if "{problem}" in instruction:
        return instruction.replace("{problem}", problem)
    return f"{problem}{sep}{instruction}"


def strip_instruction(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` without any known instruction wrapper (the ones above plus ``extra``), wherever it sits."""
    for instr in (*extra, *KNOWN_INSTRUCTIONS):
        if not instr:
            continue
        if "{problem}" in instr:  # a full template: remove the text around the problem
            head, _, tail = instr.partition("{problem}")
            if head.strip() and text.startswith(head):
                text = text[len(head):]
            if tail.strip() and text.endswith(tail):
                text = text[:-len(tail)]
            continue
        text = text.replace(instr, " ")
    return text.strip()


_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s.?!。？！]+$")


def problem_key(text: str, extra_instructions: Iterable[str] = ()) -> str:
    """Normal form of a problem for duplicate / overlap checks: instruction wrappers removed, lowercase,
    whitespace collapsed, trailing punctuation dropped (the MATH-500 release ends questions with '?.')."""
    text = strip_instruction(text, extra_instructions).lower()
    text = _SPACE.sub(" ", text).strip()
    return _TRAILING.sub("", text)


def make_row(data_source: str, problem: str, answer: str, *, split: str, index: int,
             instruction: str | None, sep: str = "\n", ability: str = "math", extra: dict | None = None) -> dict:
    """A verl row for a problem with its reference answer (``extra`` is merged into ``extra_info``)."""
    info: dict[str, Any] = {"index": int(index), "split": split, "problem": problem}
    info.update(extra or {})
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": wrap(problem, instruction, sep)}],
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": info,
    }


def _nonempty_str(value: Any, field: str) -> str | None:
    if value is None:
        return f"{field} is missing"
    if not isinstance(value, str):
        return f"{field} is {type(value).__name__}, expected a string"
    if not value.strip():
        return f"{field} is empty"
    return None


def row_errors(row: Any) -> list[str]:
    """Everything wrong with a verl row, each message naming its field (empty list: the row is valid)."""
    if not isinstance(row, dict):
        return [f"row is {type(row).__name__}, expected an object"]
    errors = []
    for field in ("data_source", "ability"):
        err = _nonempty_str(row.get(field), field)
        if err:
            errors.append(err)
    prompt = row.get("prompt")
    if prompt is None:
        errors.append("prompt is missing")
    elif not isinstance(prompt, (list, tuple)) or not prompt:
        errors.append(f"prompt is {type(prompt).__name__ if not isinstance(prompt, (list, tuple)) else 'empty'}, "
                      "expected a non-empty list of {role, content} messages")
    else:
        for i, msg in enumerate(prompt):
            if not isinstance(msg, dict):
                errors.append(f"prompt[{i}] is {type(msg).__name__}, expected {{role, content}}")
                continue
            if msg.get("role") not in ("system", "user", "assistant"):
                errors.append(f"prompt[{i}].role is {short(msg.get('role'))}, expected system/user/assistant")
            err = _nonempty_str(msg.get("content"), f"prompt[{i}].content")
            if err:
                errors.append(err)
        if not any(isinstance(m, dict) and m.get("role") == "user" for m in prompt):
            errors.append("prompt has no user message")
    rm = row.get("reward_model")
    if not isinstance(rm, dict):
        errors.append("reward_model is missing" if rm is None else
                      f"reward_model is {type(rm).__name__}, expected {{style, ground_truth}}")
    else:
        err = _nonempty_str(rm.get("ground_truth"), "reward_model.ground_truth")
        if err:
            errors.append(err)
        if rm.get("style", "rule") != "rule":
            errors.append(f"reward_model.style is {short(rm.get('style'))}, expected 'rule'")
    info = row.get("extra_info")
    if info is not None and not isinstance(info, dict):
        errors.append(f"extra_info is {type(info).__name__}, expected an object")
    elif isinstance(info, dict):
        if "index" in info and not (isinstance(info["index"], int) and not isinstance(info["index"], bool)):
            errors.append(f"extra_info.index is {type(info['index']).__name__}, expected an integer")
        if "problem" in info and info["problem"] is not None:
            err = _nonempty_str(info["problem"], "extra_info.problem")
            if err:
                errors.append(err)
    return errors


def user_text(row: dict) -> str:
    """Content of the last user message of a (valid) row."""
    return next(m["content"] for m in reversed(list(row["prompt"])) if m.get("role") == "user")


# -- parquet ------------------------------------------------------------------------------------------
def _column(values: list) -> tuple[Any, list]:
    """An arrow type for one ``extra_info`` key and its values; keys whose values mix kinds (or hold lists or
    objects) are stored as strings (JSON for lists/objects), so any extra_info can be written."""
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if not kinds or kinds == {str}:
        return pa.string(), values
    if kinds == {bool}:
        return pa.bool_(), values
    if kinds <= {int}:
        return pa.int64(), values
    if kinds <= {int, float}:
        return pa.float64(), [None if v is None else float(v) for v in values]
    as_text = [None if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True,
                                                                               default=str) for v in values]
    return pa.string(), as_text


def write_parquet(rows: Sequence[dict], path: str | Path) -> Path:
    """Write verl rows; ``extra_info`` becomes one struct with the union of its keys (missing -> null),
    sorted, so the same rows always give the same file bytes. An empty struct cannot be written to parquet,
    so rows without any extra_info get ``{index: null}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = sorted({k for r in rows for k in (r.get("extra_info") or {})})
    info_cols = {k: _column([(r.get("extra_info") or {}).get(k) for r in rows]) for k in keys}
    if not keys:  # parquet cannot store a struct without fields
        keys, info_cols = ["index"], {"index": (pa.int64(), [None] * len(rows))}
    info_type = pa.struct([(k, info_cols[k][0]) for k in keys])
    msg = pa.struct([("content", pa.string()), ("role", pa.string())])
    schema = pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(msg)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
        ("extra_info", info_type),
    ])
    columns = {
        "data_source": [r["data_source"] for r in rows],
        "prompt": [[{"content": m["content"], "role": m["role"]} for m in r["prompt"]] for r in rows],
        "ability": [r.get("ability", "math") for r in rows],
        "reward_model": [{"ground_truth": r["reward_model"]["ground_truth"],
                          "style": r["reward_model"].get("style", "rule")} for r in rows],
        "extra_info": [{k: info_cols[k][1][i] for k in keys} for i in range(len(rows))],
    }
    table = pa.table(columns, schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def read_parquet_rows(path: str | Path) -> list[dict]:
    """Rows of a parquet file as plain Python objects (lists, dicts, str, int)."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def dump_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    return path
