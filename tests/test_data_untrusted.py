"""``svs-verl data`` on inputs that used to give a quietly different dataset or a traceback: non-finite and
overflowing numbers as answers, the text of a missing value, deeply nested JSON, colliding source names with
``--split-by-source``, a string prompt, overflowing ``--mix`` weights and a row count that would run for hours."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from svs_verl.data import quickstart
from svs_verl.data.cli import add_parser


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="svs-verl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def rejected(out: Path, stem: str) -> dict[int, dict]:
    return {r["row"]: r for r in map(json.loads, (out / f"{stem}.rejected.jsonl").read_text().splitlines())}


def ground_truths(path: Path) -> list[str]:
    return [r["reward_model"]["ground_truth"] for r in pq.read_table(path).to_pylist()]


def test_non_finite_huge_and_missing_answers_are_rejected_rows_never_ground_truths(tmp_path):
    deep = "[" * 5000 + "1" + "]" * 5000
    lines = ['{"problem": "What is 1/0?", "answer": Infinity}',      # json.loads gave inf -> ground truth 'inf'
             '{"problem": "Overflow?", "answer": 1e999}',
             '{"problem": "Not a number?", "answer": NaN}',
             '{"problem": "Missing?", "answer": "None"}',
             '{"problem": "Empty box?", "answer": "\\\\boxed{}"}',
             '{"problem": "Long int?", "answer": ' + "9" * 400 + "}",
             '{"problem": "Deep?", "answer": ' + deep + "}",
             '{"problem": "What is 3?", "answer": 3}']
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 0
    assert ground_truths(out / "math-500.parquet") == ["3"]
    bad = rejected(out, "math-500")
    assert sorted(bad) == [0, 1, 2, 3, 4, 5, 6]
    assert "Infinity is not a finite number" in bad[0]["reason"] and bad[0]["line"] == 1
    assert "1e999 is out of range" in bad[1]["reason"]
    assert "NaN is not a finite number" in bad[2]["reason"]
    assert "missing value" in bad[3]["reason"] and bad[3]["field"] == "answer"
    assert "empty" in bad[4]["reason"]
    assert "400-digit integer" in bad[5]["reason"] and "nested too deeply" in bad[6]["reason"]


def test_an_infinite_float_in_a_parquet_answer_column_is_rejected(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"problem": ["A?", "B?", "C?"], "answer": [float("inf"), float("-inf"), 2.5]}), src)
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 0
    assert ground_truths(out / "math-500.parquet") == ["2.5"]
    assert "not a finite number" in rejected(out, "math-500")[0]["reason"]


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('[{"problem": "A?", "answer": 1e999}]', "1e999 is out of range"),
])
def test_a_json_file_that_cannot_be_read_is_one_line_naming_it(tmp_path, text, message):
    src = tmp_path / "in.json"
    src.write_text(text)
    with pytest.raises(SystemExit, match=rf"in.json: .*{message}"):
        run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(tmp_path / "out")])


def test_split_by_source_never_merges_two_sources_into_one_file(tmp_path):
    rows = [{"data_source": src, "prompt": [{"role": "user", "content": f"Problem {i} of {src}?"}],
             "reward_model": {"ground_truth": str(i)}, "extra_info": {"index": i}}
            for i, src in enumerate(["a/b", "a_b", "a/b", "AIME", "aime", "MATH-500"])]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out), "--split-by-source"]) == 0
    files = {p.name: {r["data_source"] for r in pq.read_table(p).to_pylist()} for p in out.glob("*.parquet")}
    assert sorted(map(sorted, files.values())) == [["AIME"], ["MATH-500"], ["a/b"], ["a_b"], ["aime"]]
    assert "MATH-500.parquet" in files                      # no clash: the plain name
    assert len({n.casefold() for n in files}) == len(files)  # distinct on a case-insensitive disk too
    by_source = json.loads((out / "math-500.report.json").read_text())["output_by_source"]
    assert set(by_source) == {"a/b", "a_b", "AIME", "aime", "MATH-500"}


@pytest.mark.parametrize("row", [
    {"prompt": "What is 2+2?", "reward_model": {"ground_truth": "4"}},
    {"prompt": "What is 2+2?", "answer": "4"},
])
def test_a_string_prompt_is_named_not_a_missing_problem(tmp_path, row):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 1
    bad = rejected(out, "math-500")[0]
    assert bad["field"] == "prompt" and "'prompt' is a string" in bad["reason"] and "--problem-key prompt" in bad["reason"]
    assert "missing field 'problem'" not in bad["reason"]
    if "answer" in row:   # the flag the message names reads it
        out2 = tmp_path / "out2"
        assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out2),
                        "--problem-key", "prompt"]) == 0
        assert pq.read_table(out2 / "math-500.parquet").to_pylist()[0]["extra_info"]["problem"] == "What is 2+2?"


def test_overflowing_mix_weights_still_give_every_row_asked_for():
    mix = quickstart.parse_mix("arith-l1=1e308,arith-l2=1e308")   # summing them overflowed to inf: 2 rows, exit 0
    assert mix == {"arith-l1": 0.5, "arith-l2": 0.5}
    assert quickstart.allocate(512, mix) == {"arith-l1": 256, "arith-l2": 256}
    assert sum(quickstart.allocate(512, quickstart.parse_mix("arith-l1=5e-324,arith-l3=1e-320")).values()) == 512
    with pytest.raises(SystemExit, match="finite weight"):
        quickstart.parse_mix("arith-l1=1e400")


def test_overflowing_mix_weights_on_the_cli(tmp_path):
    out = tmp_path / "q"
    assert run_cli(["data", "quickstart", "--out", str(out), "--mix", "arith-l1=1e308,arith-l2=1e308",
                    "--n-test", "0"]) == 0
    assert pq.read_table(out / "train.parquet").num_rows == 512


@pytest.mark.timeout(20)
def test_a_row_count_that_would_run_for_hours_is_refused_up_front(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"--n-train 20000000 \+ --n-val 64 rows is over the 500000 .* min"):
        run_cli(["data", "quickstart", "--out", str(tmp_path / "q"), "--n-train", "20000000"])
    assert not (tmp_path / "q").exists()


def test_a_large_build_prints_an_estimate_and_progress(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(quickstart, "PROGRESS_ROWS", 100)
    assert run_cli(["data", "quickstart", "--out", str(tmp_path / "q"), "--n-train", "200", "--n-test", "0"]) == 0
    err = capsys.readouterr().err
    assert "building 264 rows, about" in err and "arith-l1:" in err and "rows built" in err


@pytest.mark.timeout(60)
def test_an_answer_wrapped_in_thousands_of_boxes_is_unwrapped_in_linear_time(tmp_path):
    src = tmp_path / "in.jsonl"
    deep = "\\boxed{" * 12_500 + "5" + "}" * 12_500          # core.guards.bare_answer: quadratic, ~30 s a row
    src.write_text("".join(json.dumps({"problem": f"Q{i}?", "answer": deep}) + "\n" for i in range(20)))
    out = tmp_path / "out"
    assert run_cli(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 0
    assert set(ground_truths(out / "math-500.parquet")) == {"5"}
