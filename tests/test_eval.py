"""Evaluation harness (svs_verl.evaluation) on the CPU with a tiny Llama built offline (tests/tiny_lm.py):
the pass@k estimator against enumeration, ``svs-verl eval`` end to end (files, fields, resuming, crash
tolerance, fingerprint, k > n, bad rows, re-verification), the transformers backend (seeds, entropy against
a teacher-forced pass), and both plots (PNG files that open; training curves from verl's own file logger).

    .venv/bin/python -m pytest tests/test_eval.py -q
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from tiny_lm import arithmetic_question, one_torch_thread, tiny_model, tiny_trained_model  # noqa: F401  (fixtures)

from svs_verl.core import pass_at_k
from svs_verl.evaluation.cli import build_parser
from svs_verl.evaluation.run import EvalConfig, Problem, benchmark_metrics, load_benchmarks, run_eval

N = 8
PAIRS = [(1, 2), (3, 4), (2, 2), (5, 1), (0, 3)]
SAMPLE_FIELDS = {"problem_id": str, "data_source": str, "row": int, "sample_index": int, "seed": int,
                 "response": str, "answer": str, "correct": bool, "reason": str, "extract": str,
                 "n_tokens": int, "finished": bool}




# --------------------------------------------------------------------------------------------- estimator
def _enumerated(n: int, c: int, k: int) -> Fraction:
    """Share of all k-subsets of n samples (c of them correct) that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


def test_pass_at_k_equals_exhaustive_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(float(_enumerated(n, c, k)), abs=1e-12), (n, c, k)


def _rows(correct_per_problem: list[list[bool]]) -> tuple[list[dict], list[Problem]]:
    rows, problems = [], []
    for p, flags in enumerate(correct_per_problem):
        problems.append(Problem(f"s/{p}", "s", p, [{"role": "user", "content": "q"}], "1"))
        rows += [{"problem_id": f"s/{p}", "sample_index": j, "correct": f, "reason": "match" if f else "mismatch",
                  "n_tokens": 10 + j, "finished": j % 3 != 0, "entropy": 0.5 + p} for j, f in enumerate(flags)]
    return rows, problems


def test_benchmark_metrics_equal_enumeration_and_handle_k_1024():
    flags = [[True, False, False, True, False, False], [False] * 6, [True] * 6, [False, False, False, False, False, True]]
    rows, problems = _rows(flags)
    m = benchmark_metrics(rows, problems, 6, [1, 2, 3, 6])
    for k in (1, 2, 3, 6):
        expected = sum(_enumerated(6, sum(f), k) for f in flags) / len(flags)
        assert m[f"pass@{k}"] == pytest.approx(float(expected), abs=1e-12)
    assert m["mean@6"] == pytest.approx(sum(map(sum, flags)) / 24) == m["pass@1"]
    # token-weighted entropy: problem p has entropy 0.5 + p on every sample, lengths 10..15
    assert m["mean_entropy"] == pytest.approx(sum(0.5 + p for p in range(4)) / 4)
    assert m["truncated_share"] == pytest.approx(2 / 6)
    assert m["per_problem_correct"] == {"s/0": 2, "s/1": 0, "s/2": 6, "s/3": 1}
    # large n: k up to 1024 (n = 1030), against the closed form computed exactly with rationals
    big = [[j < 3 for j in range(1030)], [j % 500 == 0 for j in range(1030)]]
    rows, problems = _rows(big)
    ks = [1, 2, 64, 512, 1024]
    m = benchmark_metrics(rows, problems, 1030, ks)
    for k in ks:
        exact = sum(1 - Fraction(math.comb(1030 - sum(f), k), math.comb(1030, k)) for f in big) / 2
        assert m[f"pass@{k}"] == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------------------------- data
def _write_data(path: Path) -> Path:
    rows = [{"data_source": "arith", "ability": "math",
             "prompt": [{"role": "user", "content": arithmetic_question(a, b)}],
             "reward_model": {"ground_truth": str(a + b), "style": "rule"},
             "extra_info": {"index": 100 + i, "split": "test"}} for i, (a, b) in enumerate(PAIRS)]
    # row 5: no ground truth -> a bad row, reported by number, never generated
    rows.append({"data_source": "arith", "ability": "math", "prompt": [{"role": "user", "content": "What is 1 + 1?"}],
                 "reward_model": {"ground_truth": None, "style": "rule"}, "extra_info": {"index": 999, "split": "test"}})
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_bad_rows_are_reported_by_row_number(tmp_path):
    good = {"data_source": "x", "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
            "reward_model": {"ground_truth": "4"}, "extra_info": {"index": 7}}
    rows = [good,
            {**good, "prompt": None},
            {**good, "prompt": []},
            {**good, "reward_model": {"style": "rule"}},
            {**good, "reward_model": {"ground_truth": "  "}},
            {**good, "prompt": [{"role": "user", "content": "   "}], "reward_model": None},
            {**good, "data_source": "y", "extra_info": {"index": 7}},
            {**good, "extra_info": {"index": 7}}]   # duplicate index within "x": falls back to the row number
    path = tmp_path / "mixed.parquet"
    pd.DataFrame(rows).to_parquet(path)
    benches = {b.name: b for b in load_benchmarks([path])}
    assert [p.problem_id for p in benches["x"].problems] == ["x/7", "x/row7"]
    assert [p.problem_id for p in benches["y"].problems] == ["y/7"]
    bad = {r["row"]: r["reason"] for r in benches["x"].bad_rows}
    assert sorted(bad) == [1, 2, 3, 4, 5]
    assert "no prompt" in bad[1] and "no prompt" in bad[2] and "ground truth" in bad[3]
    assert "empty ground truth" in bad[4] and "empty prompt" in bad[5] and "ground truth" in bad[5]
    assert benches["x"].problems[0].answer == "4" and benches["x"].problems[0].messages[0]["content"] == "What is 2 + 2?"
    # the same data_source in two files: one benchmark per file, named after the file
    other = tmp_path / "other.parquet"
    pd.DataFrame([good]).to_parquet(other)
    assert [b.name for b in load_benchmarks([path, other])] == ["mixed:x", "y", "other:x"]


# --------------------------------------------------------------------------------------------- eval end to end
def _cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


def _eval_args(model: Path, data: Path, out: Path, *extra: str, **flags: str) -> list[str]:
    """``svs-verl eval`` arguments; ``flags`` (max_tokens="14") replace the defaults, ``extra`` are appended."""
    opts = {"n": str(N), "k": "1,2,8", "max_tokens": "13", "backend": "transformers", "extract": "last_number",
            "batch_size": "16", **flags}
    argv = ["eval", "--model", str(model), "--data", str(data), "--out", str(out)]
    for key, value in opts.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return argv + list(extra)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _last_run(out: Path) -> dict:
    return _lines(out / "runs.jsonl")[-1]


def test_eval_end_to_end_resume_and_refusals(tmp_path, tiny_trained_model, capsys):  # noqa: F811
    from svs_verl.verify import verify_batch

    data = _write_data(tmp_path / "five.parquet")
    out = tmp_path / "run"
    assert _cli(*_eval_args(tiny_trained_model, data, out)) == 0
    captured = capsys.readouterr()
    assert "row 5" in captured.err and "ground truth" in captured.err      # bad row on stderr
    assert "ETA" in captured.err                                            # progress line
    assert "| arith |" in captured.out                                      # the table on stdout

    # --- files and fields
    for name in ("eval_config.json", "results.json", "results.csv", "results.md", "runs.jsonl", "samples/arith.jsonl"):
        assert (out / name).is_file(), name
    samples = _lines(out / "samples/arith.jsonl")
    assert len(samples) == len(PAIRS) * N
    for s in samples:
        for key, typ in SAMPLE_FIELDS.items():
            assert isinstance(s[key], typ), (key, s)
        assert s["extracted"] is None or isinstance(s["extracted"], str)
        assert isinstance(s["entropy"], float) and s["entropy"] > 0
        assert 1 <= s["n_tokens"] <= 13 and (s["finished"] or s["n_tokens"] == 13)
    ids = {(s["problem_id"], s["sample_index"]) for s in samples}
    assert ids == {(f"arith/{100 + i}", j) for i in range(len(PAIRS)) for j in range(N)}
    # stored verdicts are the verifier's
    verdicts = verify_batch([s["response"] for s in samples], [s["answer"] for s in samples], extract="last_number")
    assert [v.correct for v in verdicts] == [s["correct"] for s in samples]

    results = json.loads((out / "results.json").read_text())
    (bench,) = results["benchmarks"]
    assert bench["benchmark"] == "arith" and bench["n_problems"] == len(PAIRS) and bench["samples_per_problem"] == N
    assert bench["n_bad_rows"] == 1
    assert results["bad_rows"] == [{"file": str(data), "row": 5, "data_source": "arith",
                                    "reason": "no ground truth (reward_model.ground_truth)", "bad_ground_truth": True}]
    assert bench["n_bad_ground_truth"] == 1
    per = {}
    for s in samples:
        per.setdefault(s["problem_id"], []).append(s["correct"])
    for k in (1, 2, 8):
        assert bench[f"pass@{k}"] == pytest.approx(sum(pass_at_k(N, sum(v), k) for v in per.values()) / len(per))
    assert bench[f"mean@{N}"] == pytest.approx(sum(s["correct"] for s in samples) / len(samples))
    tokens = sum(s["n_tokens"] for s in samples)
    assert bench["mean_entropy"] == pytest.approx(sum(s["entropy"] * s["n_tokens"] for s in samples) / tokens)
    assert bench["mean_response_tokens"] == pytest.approx(tokens / len(samples))
    assert bench["truncated_share"] == pytest.approx(sum(not s["finished"] for s in samples) / len(samples))
    with open(out / "results.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["pass@8"]) == pytest.approx(bench["pass@8"]) and row["n_bad_rows"] == "1"
    assert list(row)[:6] == ["benchmark", "n_problems", "samples_per_problem", "pass@1", "pass@2", "pass@8"]
    md = (out / "results.md").read_text()
    assert "| benchmark | problems | n | pass@1 (%) | pass@2 (%) | pass@8 (%) | mean@8 (%) | entropy |" in md
    assert f"| arith | 5 | {N} | {100 * bench['pass@1']:.1f} |" in md and "row 5" in md
    assert _last_run(out)["generated"] == len(PAIRS) * N

    # --- rerun: every sample reused, nothing generated (no model even loaded), identical results
    before_json = (out / "results.json").read_bytes()
    before_samples = (out / "samples/arith.jsonl").read_bytes()
    assert _cli(*_eval_args(tiny_trained_model, data, out)) == 0
    assert _last_run(out) | {"time": None} == {"time": None, "backend": None, "generated": 0, "reused": 40,
                                                "reverified": 0, "n": N, "limit": None}
    assert (out / "results.json").read_bytes() == before_json
    assert (out / "samples/arith.jsonl").read_bytes() == before_samples

    # --- delete three lines and cut the last one mid-write (a crash): exactly those four are generated again
    lines = before_samples.decode().splitlines(keepends=True)
    gone = [3, 17, 22]
    kept = [line for i, line in enumerate(lines) if i not in gone]
    cut = kept[-1][: len(kept[-1]) // 2]                 # no newline, not valid JSON
    (out / "samples/arith.jsonl").write_text("".join(kept[:-1]) + cut, encoding="utf-8")
    assert _cli(*_eval_args(tiny_trained_model, data, out)) == 0
    assert "truncated last line" in capsys.readouterr().err
    run = _last_run(out)
    assert (run["generated"], run["reused"], run["backend"]) == (4, 36, "transformers")
    after = _lines(out / "samples/arith.jsonl")
    assert len(after) == 40
    regenerated = after[-4:]                             # appended after the 36 kept lines
    original = {(s["problem_id"], s["sample_index"]): s for s in samples}
    assert {(s["problem_id"], s["sample_index"]) for s in regenerated} == \
        {(samples[i]["problem_id"], samples[i]["sample_index"]) for i in gone + [39]}
    for s in regenerated:     # same per-sample seed -> same sample, even in another batch
        o = original[(s["problem_id"], s["sample_index"])]
        assert (s["response"], s["seed"], s["correct"], s["n_tokens"]) == (o["response"], o["seed"], o["correct"], o["n_tokens"])
        assert s["entropy"] == pytest.approx(o["entropy"], rel=1e-5)
    again = json.loads((out / "results.json").read_text())["benchmarks"][0]
    assert {k: v for k, v in again.items() if k != "mean_entropy"} == \
        {k: v for k, v in bench.items() if k != "mean_entropy"}
    assert again["mean_entropy"] == pytest.approx(bench["mean_entropy"], rel=1e-6)

    # --- another extract mode: verdicts redone from the stored text, nothing generated
    assert _cli(*_eval_args(tiny_trained_model, data, out, extract="boxed")) == 0
    run = _last_run(out)
    assert (run["generated"], run["reverified"]) == (0, 40)
    assert {s["extract"] for s in _lines(out / "samples/arith.jsonl")} == {"boxed"}
    assert json.loads((out / "results.json").read_text())["benchmarks"][0]["pass@8"] == 0.0   # it never boxes

    # --- a changed generation config is refused, and nothing on disk changes
    snapshot = (out / "samples/arith.jsonl").read_bytes()
    with pytest.raises(SystemExit, match=r"temperature: 1\.0 on disk, 0\.7 now.*--overwrite"):
        _cli(*_eval_args(tiny_trained_model, data, out, "--temperature", "0.7"))
    with pytest.raises(SystemExit, match=r"max_tokens: 13 on disk, 14 now"):
        _cli(*_eval_args(tiny_trained_model, data, out, max_tokens="14"))
    assert (out / "samples/arith.jsonl").read_bytes() == snapshot

    # --- k > n: refused before anything is read, loaded or written
    fresh = tmp_path / "never"
    with pytest.raises(SystemExit, match=r"--k 16 is larger than --n 8"):
        _cli(*_eval_args(tiny_trained_model, data, fresh, k="1,16"))
    assert not fresh.exists()

    # --- --overwrite starts over with the new config
    assert _cli(*_eval_args(tiny_trained_model, data, out, "--temperature", "0.7", "--overwrite")) == 0
    assert _last_run(out)["generated"] == 40 and len((out / "runs.jsonl").read_text().splitlines()) == 1
    assert json.loads((out / "eval_config.json").read_text())["fingerprint"]["temperature"] == 0.7


def test_more_samples_and_problems_extend_a_run(tmp_path, tiny_trained_model):  # noqa: F811
    from svs_verl.evaluation.generate import load_generator

    data = _write_data(tmp_path / "five.parquet")
    gen = load_generator(str(tiny_trained_model), "transformers", batch_size=16)
    cfg = dict(model=str(tiny_trained_model), data=[data], out=tmp_path / "run", ks=[1, 2], temperature=1.0,
               max_tokens=13, extract="last_number")
    first = run_eval(EvalConfig(n=2, limit=3, **cfg), generator=gen, log=None)
    assert first.generated == 6
    second = run_eval(EvalConfig(n=4, **cfg), generator=gen, log=None)
    assert (second.generated, second.reused) == (5 * 4 - 6, 6)
    rows = _lines(tmp_path / "run/samples/arith.jsonl")
    assert sorted((r["problem_id"], r["sample_index"]) for r in rows) == \
        sorted((f"arith/{100 + i}", j) for i in range(5) for j in range(4))
    # a smaller n later reads the first n samples of each problem and generates nothing
    third = run_eval(EvalConfig(n=2, **cfg), generator=gen, log=None)
    assert third.generated == 0 and third.results["benchmarks"][0]["samples_per_problem"] == 2


# --------------------------------------------------------------------------------------------- backends
def test_transformers_backend_seeds_and_entropy(tiny_model, tiny_trained_model):  # noqa: F811
    from svs_verl.evaluation.generate import (TransformersGenerator, load_generator, render_prompt, sample_seed,
                                              teacher_forced_entropy)

    gen = load_generator(str(tiny_trained_model), "auto", batch_size=4, gpu_memory_utilization=0.5)
    assert isinstance(gen, TransformersGenerator) and gen.name == "transformers"   # no CUDA here
    prompts = [[{"role": "user", "content": arithmetic_question(a, b)}] for a, b in PAIRS[:3]]
    kw = dict(temperature=1.0, top_p=1.0, max_tokens=16, seed=5)
    calls = []
    out = gen.generate(prompts, 3, progress=lambda d, t: calls.append((d, t)), **kw)
    assert [len(r) for r in out] == [3, 3, 3] and calls[-1] == (9, 9)
    assert out == gen.generate(prompts, 3, **kw)                                   # same seed: same samples
    assert out != gen.generate(prompts, 3, **{**kw, "seed": 6})
    # one sample alone, by its seed, equals the one drawn in the batch
    (alone,) = gen.generate(prompts[1:2], 1, sample_seeds=[[sample_seed(5, 1, 2)]], **kw)
    assert alone[0].text == out[1][2].text and alone[0].n_tokens == out[1][2].n_tokens
    # the entropy measured while sampling = a teacher-forced forward pass over the same tokens
    tok = gen.tokenizer
    pairs, measured = [], []
    for prompt, row in zip(prompts, out):
        for s in row:
            ids = tok(s.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if s.finished else [])
            assert len(ids) == s.n_tokens
            pairs.append((render_prompt(tok, prompt), ids))
            measured.append(s.entropy)
    assert teacher_forced_entropy(gen.model, pairs, 1.0, max_batch_tokens=64) == pytest.approx(measured, rel=1e-5)
    # greedy: no entropy, and all samples of a prompt agree; top-p < 1 runs and samples stay reproducible
    greedy = gen.generate(prompts, 2, **{**kw, "temperature": 0.0})
    assert all(s.entropy is None and s.text == r[0].text for r in greedy for s in r)
    assert gen.generate(prompts, 2, **{**kw, "top_p": 0.5}) == gen.generate(prompts, 2, **{**kw, "top_p": 0.5})
    # the random model never stops: samples hit max_tokens
    rnd = load_generator(str(tiny_model), "transformers")
    (row,) = rnd.generate(prompts[:1], 2, **{**kw, "max_tokens": 7})
    assert all(not s.finished and s.n_tokens == 7 and s.entropy > 3 for s in row)
    with pytest.raises(RuntimeError, match="vllm"):
        load_generator(str(tiny_model), "vllm")
    with pytest.raises(ValueError, match="top_p"):
        gen.generate(prompts, 1, **{**kw, "top_p": 0.0})


# --------------------------------------------------------------------------------------------- plots
def _png(path: Path, min_size: tuple[int, int]) -> None:
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_size[0] and im.size[1] >= min_size[1], im.size


def test_plot_passk_from_eval_runs(tmp_path, tiny_trained_model):  # noqa: F811
    from svs_verl.evaluation.generate import load_generator
    from svs_verl.core import k_ladder
    from svs_verl.evaluation.plot import passk_curves

    data = _write_data(tmp_path / "five.parquet")
    gen = load_generator(str(tiny_trained_model), "transformers", batch_size=32)
    runs = []
    for t in (1.0, 0.5):
        out = tmp_path / f"T{t}"
        run_eval(EvalConfig(model=str(tiny_trained_model), data=[data], out=out, n=12, ks=[1, 12], temperature=t,
                            max_tokens=13, extract="last_number"), generator=gen, log=None)
        runs.append(out)
    curves, sizes = passk_curves(runs[0])
    assert sizes == {"arith": 5} and list(curves["arith"]) == k_ladder(12) == [1, 2, 4, 8, 12]
    per = {}
    for s in _lines(runs[0] / "samples/arith.jsonl"):
        per[s["problem_id"]] = per.get(s["problem_id"], 0) + s["correct"]
    for k, v in curves["arith"].items():   # every power of two, not only the k asked for
        assert v == pytest.approx(sum(pass_at_k(12, c, k) for c in per.values()) / 5)

    png = tmp_path / "figs" / "passk.png"
    assert _cli("plot", "passk", "--runs", *map(str, runs), "--labels", "T=1.0", "T=0.5", "--out", str(png)) == 0
    _png(png, (500, 400))
    figdir = tmp_path / "perbench"
    assert _cli("plot", "passk", "--runs", *map(str, runs), "--out", str(figdir)) == 0
    _png(figdir / "passk_arith.png", (500, 400))
    with pytest.raises(SystemExit, match="2 label"):
        _cli("plot", "passk", "--runs", str(runs[0]), "--labels", "a", "b", "--out", str(png))
    with pytest.raises(SystemExit, match="no results.json"):
        _cli("plot", "passk", "--runs", str(tmp_path), "--out", str(png))


def test_plot_training_from_verl_file_logger_and_console(tmp_path, monkeypatch):
    import numpy as np
    from verl.utils.logger.aggregate_logger import concat_dict_to_str
    from verl.utils.tracking import FileLogger

    from svs_verl.evaluation.plot import plot_training, read_metrics

    steps = []
    for step in range(1, 9):
        m = {"svs/oqa/acc_mean": 0.3 + 0.02 * step, "svs/spa/acc_mean": 0.4, "svs/vps/reward_mean": 0.5 - 0.01 * step,
             "svs/entropy/oqa": 0.6 - 0.01 * step, "svs/entropy/vps": np.float64(0.7), "svs/entropy/spa": 0.65,
             "actor/entropy": np.float32(0.62), "critic/score/mean": -0.2 + 0.05 * step, "training/global_step": step}
        if step % 4 == 0:
            m["val-core/MATH-500/acc/mean@4"] = 0.1 * step / 4
            m["val-core/MATH-500/acc/pass@4"] = 0.2 * step / 4
        steps.append(m)
    # verl's own file logger (trainer.logger=[file]) writes the file, at the path its env var names
    jsonl = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(jsonl))
    logger = FileLogger("proj", "exp")
    for i, m in enumerate(steps, 1):
        logger.log(m, step=i)
    logger.finish()
    console = tmp_path / "train.log"
    console.write_text("(TaskRunner pid=42) some other line\n" + "".join(
        f"(TaskRunner pid=42) {concat_dict_to_str(m, step=i)}\n" for i, m in enumerate(steps, 1)))

    from_file, from_console = read_metrics(jsonl), read_metrics(console)
    assert sorted(from_file) == list(range(1, 9))
    assert from_file[3]["svs/oqa/acc_mean"] == pytest.approx(0.36)
    assert from_file[8]["val-core/MATH-500/acc/pass@4"] == pytest.approx(0.4) and "val-core/MATH-500/acc/mean@4" not in from_file[3]
    for step in from_file:
        assert from_console[step] == pytest.approx(from_file[step]), step

    for src in (jsonl, console):
        png = plot_training(src, tmp_path / f"{src.stem}.png")
        _png(png, (1200, 400))            # three panels: accuracy, entropy, validation
    assert _cli("plot", "training", "--metrics", str(jsonl), "--out", str(tmp_path / "cli.png")) == 0
    _png(tmp_path / "cli.png", (1200, 400))
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"step": 1, "data": {"foo/bar": 1.0}}) + "\n")
    with pytest.raises(SystemExit, match="found: foo/bar"):
        plot_training(other, tmp_path / "x.png")
    with pytest.raises(SystemExit, match="no metrics found"):
        read_metrics(_write_data(tmp_path / "not_metrics.parquet"))
