"""Hand-edited or hostile files that ``eval`` (resume), ``plot`` and ``passk`` read back: deep nesting, huge
and infinite numbers, missing fields and wrong types are each one error naming the file, line and field
(``KeyError``, ``TypeError``, ``AttributeError``, ``RecursionError``, ``OverflowError`` tracebacks before);
a ground truth that cannot be verified is a counted bad row in eval too. Real eval runs on the CPU with the
tiny offline Llama of tests/tiny_lm.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_lm import arithmetic_question, one_torch_thread, tiny_model  # noqa: F401  (fixtures)

from svs_verl.cli import main

DEEP = "[" * 100_000 + "]" * 100_000


def rows(n=2):
    return [{"data_source": "arith", "prompt": [{"role": "user", "content": arithmetic_question(a, a + 1)}],
             "reward_model": {"ground_truth": str(2 * a + 1)}, "extra_info": {"index": a}} for a in range(n)]


def eval_argv(model, data, out, *extra):
    return ["eval", "--model", str(model), "--data", str(data), "--out", str(out), "--n", "2", "--k", "1",
            "--max-tokens", "2", "--backend", "transformers", *extra]


@pytest.fixture
def finished_run(tmp_path, tiny_model):  # noqa: F811
    data = tmp_path / "d.parquet"
    pd.DataFrame(rows()).to_parquet(data)
    out = tmp_path / "out"
    assert main(eval_argv(tiny_model, data, out)) == 0
    return tiny_model, data, out


def _edit_line(path: Path, index: int, change) -> None:
    lines = path.read_text().splitlines()
    row = json.loads(lines[index])
    change(row)
    lines[index] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("change, match", [
    (lambda r: r.pop("n_tokens"), r"arith.jsonl:2: field 'n_tokens' is missing"),
    (lambda r: r.update(n_tokens="12"), r"arith.jsonl:2: field 'n_tokens' must be a non-negative integer, got \"12\""),
    (lambda r: r.update(sample_index=1.5), r"arith.jsonl:2: field 'sample_index' must be a non-negative integer"),
    (lambda r: r.update(finished=None), r"arith.jsonl:2: field 'finished' must be true or false"),
    (lambda r: r.update(entropy="high"), r"arith.jsonl:2: field 'entropy' must be a finite number or null"),
    (lambda r: r.update(problem_id=7), r"arith.jsonl:2: field 'problem_id' must be a string"),
    (lambda r: r.update(reason=["x"]), r"arith.jsonl:2: field 'reason' must be a string"),
])
def test_eval_resume_names_the_line_and_field_of_a_hand_edited_sample(finished_run, change, match):
    model, data, out = finished_run
    samples = out / "samples" / "arith.jsonl"
    _edit_line(samples, 1, change)
    before = samples.read_bytes()
    with pytest.raises(SystemExit, match=match):
        main(eval_argv(model, data, out))
    assert samples.read_bytes() == before            # what the user wrote is never dropped or rewritten


def test_eval_resume_drops_lines_it_cannot_read_at_all_and_regenerates_them(finished_run, capsys):
    model, data, out = finished_run
    samples = out / "samples" / "arith.jsonl"
    lines = samples.read_text().splitlines()
    lines[1] = DEEP                                           # RecursionError before
    lines[2] = lines[2].replace('"n_tokens": ', '"n_tokens": 1e999, "x": ')   # OverflowError before
    samples.write_text("\n".join(lines) + "\n")
    assert main(eval_argv(model, data, out)) == 0
    assert "dropped unreadable or duplicate line(s) [2, 3]" in capsys.readouterr().err
    assert all(json.loads(line)["n_tokens"] >= 0 for line in samples.read_text().splitlines())


@pytest.mark.parametrize("content", ['{"fingerprint": [1, 2]}', DEEP, '{"fingerprint": {"seed": 1e999}}'])
def test_a_hand_edited_eval_config_is_one_error_naming_it(finished_run, content):
    model, data, out = finished_run
    (out / "eval_config.json").write_text(content)
    with pytest.raises(SystemExit, match=r"eval_config.json: unreadable"):
        main(eval_argv(model, data, out))


def test_eval_counts_ground_truths_that_cannot_be_verified(tmp_path, tiny_model):  # noqa: F811
    bad = [{**r, "reward_model": {"ground_truth": gt}} for r, gt in zip(rows(4), ["None", "\\boxed{}", "  ", "7"])]
    data = tmp_path / "d.parquet"
    pd.DataFrame(rows(2) + bad).to_parquet(data)
    out = tmp_path / "out"
    assert main(eval_argv(tiny_model, data, out)) == 0
    bench = json.loads((out / "results.json").read_text())["benchmarks"][0]
    assert bench["n_problems"] == 3 and bench["n_bad_rows"] == 3 and bench["n_bad_ground_truth"] == 3
    samples = [json.loads(line) for line in (out / "samples" / "arith.jsonl").read_text().splitlines()]
    assert "None" not in {s["answer"] for s in samples}


# --------------------------------------------------------------------------------------------- plot
def _fake_run(d: Path, n=2) -> Path:
    (d / "samples").mkdir(parents=True)
    rows_ = [{"problem_id": "p", "sample_index": j, "correct": j == 0} for j in range(n)]
    (d / "samples" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_))
    (d / "results.json").write_text(json.dumps({
        "config": {"model": "m", "n": n, "temperature": 1.0},
        "benchmarks": [{"benchmark": "b", "samples_file": "samples/b.jsonl", "per_problem_correct": {"p": 1}}]}))
    return d


@pytest.mark.parametrize("results, match", [
    ('{"config": {"n": 1e999}, "benchmarks": []}', r"results.json: unreadable results \(number 1e999 is out of range\)"),
    ('{"config": {"n": "2"}, "benchmarks": []}', r"results.json: field 'config.n' must be a positive integer, got \"2\""),
    ('{"config": [], "benchmarks": []}', r"results.json: field 'config.n' must be a positive integer"),
    ('{"config": {"n": 2}, "benchmarks": [5]}', r"results.json: benchmarks\[0\] must be an object"),
    ('{"config": {"n": 2}, "benchmarks": {}}', r"results.json: field 'benchmarks' must be a list"),
    ('{"config": {"n": 2}, "benchmarks": [{"benchmark": "b"}]}', r"'benchmarks\[0\].samples_file' must be a non-empty"),
    ('{"config": {"n": 2}, "benchmarks": [{"benchmark": "b", "samples_file": "s", "per_problem_correct": [1]}]}',
     r"'benchmarks\[0\].per_problem_correct' must be an object"),
    ("[1, 2]", r"results.json: expected a JSON object"),
    (DEEP, r"results.json: unreadable results \(nested too deeply to read\)"),
])
def test_plot_names_the_field_of_a_hand_edited_results_file(tmp_path, results, match):
    run = _fake_run(tmp_path / "run")
    (run / "results.json").write_text(results)
    with pytest.raises(SystemExit, match=match):
        main(["plot", "passk", "--runs", str(run), "--out", str(tmp_path / "p.png")])


@pytest.mark.parametrize("line, match", [
    ('{"problem_id": "p", "sample_index": "x", "correct": true}', r"b.jsonl:2: field 'sample_index' must be a non-negative"),
    ('{"problem_id": "p", "sample_index": 1e300, "correct": true}', r"b.jsonl:2: field 'sample_index'"),
    ('{"problem_id": ["p"], "sample_index": 1, "correct": true}', r"b.jsonl:2: field 'problem_id' must be a string"),
    ('{"problem_id": "p", "sample_index": 1}', r"b.jsonl:2: field 'correct' must be true or false, got nothing"),
])
def test_plot_names_the_line_and_field_of_a_hand_edited_sample(tmp_path, line, match):
    run = _fake_run(tmp_path / "run")
    samples = run / "samples" / "b.jsonl"
    samples.write_text(samples.read_text().splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(SystemExit, match=match):
        main(["plot", "passk", "--runs", str(run), "--out", str(tmp_path / "p.png")])


def test_plot_training_skips_lines_it_cannot_read(tmp_path):
    metrics = tmp_path / "m.jsonl"
    metrics.write_text("\n".join([DEEP, '{"step": 1e999, "data": {"a": 1}}', "step:" + "9" * 5000 + " - a:1",
                                  '{"step": 1, "data": {"critic/score/mean": 0.5, "x": ' + "9" * 400 + "}}",
                                  '{"step": 2, "data": {"critic/score/mean": NaN}}']) + "\n")
    from svs_verl.evaluation.plot import read_metrics

    assert sorted(read_metrics(metrics)) == [2]
    assert main(["plot", "training", "--metrics", str(metrics), "--out", str(tmp_path / "t.png")]) == 0


# --------------------------------------------------------------------------------------------- passk
@pytest.mark.parametrize("line, match", [
    (DEEP, r"s.jsonl:2: nested too deeply to read"),
    ('{"problem_id": 1e999, "correct": true}', r"s.jsonl:2: number 1e999 is out of range"),
    ('{"problem_id": NaN, "correct": true}', r"s.jsonl:2: NaN is not a finite number"),
    ('{"problem_id": ["a"], "correct": true}', r"s.jsonl:2: 'problem_id' must be a string or number"),
    ('{"problem_id": "a", "correct": "' + "x" * 10_000 + '"}', r"s.jsonl:2: 'correct' must be true or false, got \"x{39}\.\.\.$"),
])
def test_passk_names_the_line_of_a_hostile_sample(tmp_path, line, match):
    f = tmp_path / "s.jsonl"
    f.write_text('{"problem_id": "a", "correct": true}\n' + line + "\n")
    with pytest.raises(SystemExit, match=match):
        main(["passk", "--samples", str(f)])


@pytest.mark.parametrize("content", [DEEP, '{"answer_extraction": "auto", "n": 1e999}', "{not json"])
def test_an_unreadable_data_manifest_is_named_not_ignored(tmp_path, content):
    from svs_verl.evaluation.run import manifest_extraction

    data = tmp_path / "val.parquet"
    pd.DataFrame(rows()).to_parquet(data)
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(SystemExit, match=r"manifest.json: unreadable .*pass --extract"):
        manifest_extraction(data)
