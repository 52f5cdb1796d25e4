"""``svs-verl data prepare``: column mappings, row-by-row validation with exact row numbers, dedup, outputs.

Hand-made json/jsonl/csv/parquet files with bad rows, plus the paper's real files in ``../shared/data`` (beside
the repository; skipped with a reason when absent). Run: ``.venv/bin/python -m pytest tests/test_data_prepare.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from svs_verl.data import prepare, schema
from svs_verl.data.cli import add_parser

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INSTR = schema.BOXED_INSTRUCTION


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="svs-verl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def rejected(out: Path, stem: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{stem}.rejected.jsonl").read_text().splitlines()]


def report(out: Path, stem: str) -> dict:
    return json.loads((out / f"{stem}.report.json").read_text())


JSONL_LINES = [
    '{"problem": "What is 2+2?", "answer": "4"}',                        # row 0, line 1: ok
    '{"problem": "Find x if x+1=3.", "solution": "So x = \\\\boxed{2}."}',  # row 1: answer from the solution
    "",                                                                    # line 3: blank, not a row
    '{"problem": "Name the colour."}',                                     # row 2, line 4: no answer
    '{"problem": "   ", "answer": "1"}',                                   # row 3: empty problem
    '{"problem": 17, "answer": "1"}',                                      # row 4: problem not a string
    '{"problem": "what is  2+2 ?", "answer": "4"}',                        # row 5: duplicate of row 0
    '{not json',                                                           # row 6, line 8: not JSON
    '{"problem": "Compute 6*7.", "answer": 42}',                           # row 7: ok, integer answer
    '{"problem": "Solve for y.", "solution": "no box here"}',              # row 8: no \\boxed in solution
    '["a list"]',                                                          # row 9: not an object
    '{"problem": "What is 3+3?", "answer": ["6", "7"]}',                   # row 10: two answers
    '{"problem": "What is 2+2?", "answer": "5"}',                          # row 11: duplicate, other answer
]


def test_jsonl_bad_rows_are_reported_by_row_line_and_field(tmp_path, capsys):
    src = tmp_path / "mine.jsonl"
    src.write_text("\n".join(JSONL_LINES) + "\n")
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 0
    rej = rejected(out, "math-500")
    invalid = {(r["row"], r["line"], r["field"]) for r in rej if r["kind"] == "invalid"}
    assert invalid == {(2, 4, "answer"), (3, 5, "problem"), (4, 6, "problem"), (6, 8, "row"), (8, 10, "solution"),
                       (9, 11, "row"), (10, 12, "answer")}
    reasons = {r["row"]: r["reason"] for r in rej}
    assert reasons[2].startswith("missing field 'answer'")
    assert reasons[3] == "field 'problem' is empty"
    assert reasons[4] == "field 'problem' is int, expected a string"
    assert reasons[6].startswith("not valid JSON")
    assert "boxed" in reasons[8] and "2 answers" in reasons[10]
    dups = {r["row"]: r["reason"] for r in rej if r["kind"] == "duplicate"}
    assert dups == {5: "duplicate of row 0", 11: "duplicate of row 0 (its answer '4' differs from '5')"}
    rep = report(out, "math-500")
    assert (rep["rows_in"], rep["written"], rep["invalid"], rep["duplicates"]) == (12, 3, 7, 2)
    assert rep["duplicates_with_other_answer"] == 1
    assert rep["invalid_by_field"] == {"answer": 2, "problem": 2, "row": 2, "solution": 1}
    rows = pq.read_table(out / "math-500.parquet").to_pylist()
    assert [(r["extra_info"]["source_row"], r["reward_model"]["ground_truth"]) for r in rows] == \
        [(0, "4"), (1, "2"), (7, "42")]
    assert rows[0]["prompt"] == [{"role": "user", "content": "What is 2+2?\n" + INSTR}]
    assert rows[0]["data_source"] == "MATH-500" and rows[0]["extra_info"]["split"] == "test"
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2]
    assert all(schema.row_errors(r) == [] for r in rows)
    printed = capsys.readouterr().out
    assert "bad row 4 (line 6): field 'problem' is int, expected a string" in printed
    assert "duplicates in file   2" in printed


def test_strict_fails_and_writes_no_parquet(tmp_path, capsys):
    src = tmp_path / "mine.jsonl"
    src.write_text("\n".join(JSONL_LINES) + "\n")
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "aime24", "--src", str(src), "--out", str(out)]) == 0
    assert (out / "aime24.parquet").exists()
    assert run_cli(["data", "prepare", "aime24", "--src", str(src), "--out", str(out), "--strict"]) == 1
    assert not (out / "aime24.parquet").exists()   # the earlier output is gone too
    assert report(out, "aime24")["strict_failed"] is True
    assert "--strict: 7 bad row(s)" in capsys.readouterr().err
    # strict with only duplicates is fine: they are not errors
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"problem": "A?", "answer": "1"}\n{"problem": "a ?", "answer": "1"}\n')
    assert run_cli(["data", "prepare", "aime24", "--src", str(clean), "--out", str(out), "--strict"]) == 0


def test_csv_rows_and_dedup_against_an_eval_parquet(tmp_path):
    src = tmp_path / "train.csv"
    src.write_text('problem,answer\n'
                   'What is 1+1?,2\n'         # row 0
                   'What is 5-3?,\n'          # row 1: empty answer
                   ',7\n'                     # row 2: empty problem
                   '"  What is   1+1? ",2\n'  # row 3: duplicate of row 0
                   '"Two\nlines?",3\n'         # row 4: one row over two lines
                   'What is 9*9?,81\n'        # row 5: in the eval set
                   'What is 8*8?,64\n')       # row 6: in the eval jsonl
    evals = [schema.make_row("EVAL", "WHAT IS 9*9?.", "81", split="test", index=0, instruction=INSTR)]
    eval_file = schema.write_parquet(evals, tmp_path / "eval.parquet")
    eval_jsonl = tmp_path / "eval.jsonl"
    eval_jsonl.write_text('{"question": "what is 8*8", "answer": "64"}\n')
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-12k", "--src", str(src), "--out", str(out),
                    "--dedup-against", str(eval_file), str(eval_jsonl)]) == 0
    rej = rejected(out, "math-12k")
    assert [(r["row"], r["kind"], r.get("field")) for r in rej] == [
        (1, "invalid", "answer"), (2, "invalid", "problem"), (3, "duplicate", None), (5, "overlap", None),
        (6, "overlap", None)]
    assert rej[3]["reason"] == f"same problem as {eval_file} row 0 (EVAL)"
    rep = report(out, "math-12k")
    assert (rep["written"], rep["invalid"], rep["duplicates"], rep["overlapping"]) == (2, 2, 1, 2)
    assert rep["dedup_against"] == {str(eval_file): 1, str(eval_jsonl): 1}
    rows = pq.read_table(out / "math-12k.parquet").to_pylist()
    assert [r["extra_info"]["problem"] for r in rows] == ["What is 1+1?", "Two\nlines?"]
    assert {r["data_source"] for r in rows} == {"MATH-12k"} and rows[0]["extra_info"]["split"] == "train"


def test_gsm8k_answers_after_the_hashes(tmp_path):
    src = tmp_path / "gsm.json"
    src.write_text(json.dumps({"data": [
        {"question": "Tom has 3 apples and buys 2. How many?", "answer": "3+2=<<3+2=5>>5\n#### 5"},
        {"question": "A big sum?", "answer": "lots\n#### 1,234"},
        {"question": "No marker?", "answer": "The answer is 4"},
        {"question": "Nothing after?", "answer": "work\n####  "},
    ]}))
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "gsm8k", "--src", str(src), "--out", str(out), "--split", "train",
                    "--instruction", ""]) == 0
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["5", "1234"]
    assert rows[0]["prompt"][0]["content"] == "Tom has 3 apples and buys 2. How many?"  # --instruction ''
    assert rows[0]["extra_info"]["split"] == "train" and rows[0]["data_source"] == "GSM8K"
    rej = rejected(out, "gsm8k")
    assert [(r["row"], r["field"], r["reason"]) for r in rej] == [
        (2, "answer", "field 'answer' has no '#### <answer>' line"),
        (3, "answer", "field 'answer' is empty after '####'")]


def test_verl_rows_are_kept_revalidated_or_rewrapped(tmp_path):
    good = schema.make_row("A", "What is 1+2?", "3", split="x", index=7, instruction=None)
    other = schema.make_row("B", "What is 2+5?", "7", split="x", index=8, instruction=None)
    int_gt = dict(good, reward_model={"style": "rule", "ground_truth": 12},
                  prompt=[{"role": "user", "content": "What is 3*4?"}], extra_info={"index": 9})
    no_gt = dict(good, reward_model={"style": "rule", "ground_truth": ""},
                 prompt=[{"role": "user", "content": "What is 6/2?"}])
    no_user = dict(good, prompt=[{"role": "system", "content": "be brief"}])
    src = tmp_path / "verl.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in (good, other, int_gt, no_gt, no_user)) + "\n")
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "dapo-17k", "--src", str(src), "--out", str(out)]) == 0
    rows = pq.read_table(out / "dapo-17k.parquet").to_pylist()
    assert [r["prompt"][0]["content"] for r in rows] == ["What is 1+2?", "What is 2+5?", "What is 3*4?"]
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["3", "7", "12"]
    assert [r["data_source"] for r in rows] == ["A", "B", "A"]           # kept as they were
    assert rows[0]["extra_info"]["source_index"] == 7 and rows[0]["extra_info"]["split"] == "train"
    rej = rejected(out, "dapo-17k")
    assert [(r["row"], r["field"]) for r in rej] == [(3, "reward_model.ground_truth"), (4, "prompt")]
    assert report(out, "dapo-17k")["prompts_without_instruction"] == 3
    # --rewrap: the problem plus the instruction; --split-by-source: one file per data_source
    assert run_cli(["data", "prepare", "dapo-17k", "--src", str(src), "--out", str(out / "w"), "--rewrap",
                    "--split-by-source"]) == 0
    a = pq.read_table(out / "w" / "A.parquet").to_pylist()
    b = pq.read_table(out / "w" / "B.parquet").to_pylist()
    assert [r["prompt"][0]["content"] for r in a] == ["What is 1+2?\n" + INSTR, "What is 3*4?\n" + INSTR]
    assert len(b) == 1 and [r["extra_info"]["index"] for r in a] == [0, 1]
    assert report(out / "w", "dapo-17k")["outputs"] == {"A.parquet": 2, "B.parquet": 1}


def test_dapo_wrapper_and_instruction_are_stripped_for_dedup():
    dapo = f"{schema.DAPO_PREFIX}\n\nFind the sum of 1 and 2.\n\n{schema.DAPO_SUFFIX}"
    assert schema.problem_key(dapo) == schema.problem_key("find the sum of  1 and 2") == "find the sum of 1 and 2"
    assert schema.problem_key("What is 2?\n" + INSTR) == schema.problem_key("what is 2")
    custom = "Q: {problem}\nA:"
    assert schema.problem_key(schema.wrap("Hello there?", custom), [custom]) == "hello there"


def test_user_errors_are_clear(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        prepare.prepare("math-500", str(tmp_path / "missing.jsonl"), opts=prepare.Options())
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(SystemExit, match="unknown file type .txt"):
        prepare.prepare("math-500", str(tmp_path / "x.txt"), opts=prepare.Options())
    (tmp_path / "bad.json").write_text('{"a": [1], "b": [2]}')
    with pytest.raises(SystemExit, match="exactly one list"):
        prepare.prepare("math-500", str(tmp_path / "bad.json"), opts=prepare.Options())
    with pytest.raises(SystemExit, match="--dedup-against .*nope.parquet: no such file"):
        prepare.prepare("math-500", str(tmp_path / "bad.json"), opts=prepare.Options(),
                        dedup_against=[str(tmp_path / "nope.parquet")])
    assert prepare._is_hub_id("HuggingFaceH4/MATH-500") and not prepare._is_hub_id("data/x.parquet")


def test_column_overrides(tmp_path):
    src = tmp_path / "odd.jsonl"
    src.write_text('{"q": "What is 4+4?", "gold": "8", "answer": "wrong"}\n{"q": "What is 1+4?"}\n')
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "amc23", "--src", str(src), "--out", str(out), "--problem-key", "q",
                    "--answer-key", "gold", "--data-source", "MyAMC"]) == 0
    rows = pq.read_table(out / "amc23.parquet").to_pylist()
    assert [(r["data_source"], r["reward_model"]["ground_truth"]) for r in rows] == [("MyAMC", "8")]
    assert [(r["row"], r["reason"]) for r in rejected(out, "amc23")] == [(1, "missing field 'gold'")]
    # a mapping that finds nothing at all is a failure, not an empty success
    assert run_cli(["data", "prepare", "amc23", "--src", str(src), "--out", str(out), "--problem-key", "nope"]) == 1
    assert not (out / "amc23.parquet").exists()  # the earlier run's file is not left looking current


# -- the paper's own files ------------------------------------------------------------------------------
def shared_file(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not found: the paper's data lives in ../shared/data beside the repository")
    return path


def test_real_dapo17k_deduplicated_against_the_eval_set(tmp_path):
    dapo, evals = shared_file("dapo_math_17k.parquet"), shared_file("math500_aime24_aime25.parquet")
    out = tmp_path / "dapo-17k"
    t0 = time.perf_counter()  # the recipes' layout: DATA_DIR/dapo-17k/train.parquet
    assert run_cli(["data", "prepare", "dapo-17k", "--src", str(dapo), "--out", str(out), "--split", "train",
                    "--dedup-against", str(evals)]) == 0
    assert time.perf_counter() - t0 < 30
    rep = report(out, "dapo-17k")
    assert rep["rows_in"] == 17917 and rep["invalid"] == 0
    assert rep["written"] + rep["duplicates"] + rep["overlapping"] == 17917
    assert rep["duplicates"] == 761 and rep["overlapping"] == 4
    assert rep["overlap_by_file"] == {f"{evals} [MATH-500]": 4}
    rows = pq.read_table(out / "train.parquet")
    assert rows.num_rows == rep["written"] == 17152
    first = rows.slice(0, 1).to_pylist()[0]
    assert first["data_source"] == "DAPO-17k" and first["extra_info"]["problem"] == first["prompt"][0]["content"]


def test_real_eval_file_split_by_source(tmp_path):
    evals = shared_file("math500_aime24_aime25.parquet")
    out = tmp_path / "eval"
    # one file holding all three benchmarks, each row keeping its data_source
    assert run_cli(["data", "prepare", "math-500", "--src", str(evals), "--out", str(out / "all"),
                    "--split", "test"]) == 0
    both = pq.read_table(out / "all" / "test.parquet").column("data_source").to_pylist()
    assert {s: both.count(s) for s in set(both)} == {"MATH-500": 500, "AIME-2024-30": 30, "AIME-2025-30": 30}
    assert run_cli(["data", "prepare", "math-500", "--src", str(evals), "--out", str(out), "--split-by-source"]) == 0
    counts = {p.name: pq.read_metadata(p).num_rows for p in sorted(out.glob("*.parquet"))}  # not all/
    assert counts == {"AIME-2024-30.parquet": 30, "AIME-2025-30.parquet": 30, "MATH-500.parquet": 500}
    aime = pq.read_table(out / "AIME-2025-30.parquet").to_pylist()
    assert {r["data_source"] for r in aime} == {"AIME-2025-30"} and all(r["extra_info"]["split"] == "test"
                                                                           for r in aime)
