"""``svs-verl eval`` / ``plot`` bad inputs: each refused in one line naming the flag / file / value before any
model loads and before anything is written; a failed start does not block its retry; the extraction follows
the data's manifest. Runs on the CPU with the tiny offline Llama of tests/tiny_lm.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_lm import arithmetic_question, one_torch_thread, tiny_model  # noqa: F401  (fixtures)

from svs_verl.cli import main
from svs_verl.evaluation.run import EvalConfig, run_eval




def rows(n=2, source="arith"):
    return [{"data_source": source, "prompt": [{"role": "user", "content": arithmetic_question(a, a + 1)}],
             "reward_model": {"ground_truth": str(2 * a + 1)}, "extra_info": {"index": a}} for a in range(n)]


def parquet(path: Path, data) -> Path:
    pd.DataFrame(data).to_parquet(path)
    return path


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A directory that looks like a model to the up-front check but does not load."""
    d = tmp_path / "fake_model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"not a safetensors file")
    return d


def eval_argv(model, data, out, *extra):
    return ["eval", "--model", str(model), "--data", str(data), "--out", str(out), "--n", "1", "--k", "1",
            "--max-tokens", "2", "--backend", "transformers", *extra]


def test_a_file_whose_rows_are_all_bad_or_none_is_an_error_naming_it(tmp_path, fake_model):
    bad = parquet(tmp_path / "bad.parquet", [{**r, "reward_model": {"ground_truth": None}} for r in rows()])
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"--data .*bad.parquet: no problem to evaluate \(all 2 row\(s\) are bad, "
                                         r"e.g. row 0: no ground truth"):
        main(eval_argv(fake_model, bad, out))
    empty = parquet(tmp_path / "empty.parquet", pd.DataFrame(columns=["data_source", "prompt", "reward_model"]))
    with pytest.raises(SystemExit, match=r"--data .*empty.parquet: no problem to evaluate \(it has no rows\)"):
        main(eval_argv(fake_model, empty, out))
    good = parquet(tmp_path / "good.parquet", rows())
    with pytest.raises(SystemExit, match=r"empty.parquet: no problem"):      # named even next to a good file
        main(eval_argv(fake_model, good, out)[:4] + [str(good), str(empty)] + eval_argv(fake_model, good, out)[5:])
    assert not out.exists()


@pytest.mark.parametrize("model,match", [
    ("{tmp}/nosuch", "no such directory"),
    ("./nosuch-model", "no such directory"),
    ("a/b/c", "no such directory"),
    ("{tmp}/empty_dir", r"a directory without a model \(no config.json\)"),
    ("{tmp}/no_weights", r"a directory without weights"),
    ("{tmp}/a_file.txt", "is a file, not a model directory"),
])
def test_a_model_that_cannot_exist_is_refused_before_anything_loads(tmp_path, model, match):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text("{}")
    (tmp_path / "a_file.txt").write_text("x")
    data = parquet(tmp_path / "d.parquet", rows())
    model = model.format(tmp=tmp_path)
    with pytest.raises(SystemExit, match=f"--model {model}: {match}"):
        main(eval_argv(model, data, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_uncached_hub_id_offline_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    data = parquet(tmp_path / "d.parquet", rows())
    with pytest.raises(SystemExit, match="not in the Hugging Face cache"):
        main(eval_argv("nobody/no-such-model", data, tmp_path / "out"))


@pytest.mark.parametrize("flag,value", [("--temperature", "-1"), ("--temperature", "nan"), ("--top-p", "0"),
                                        ("--top-p", "1.5"), ("--verify-timeout", "0"), ("--verify-timeout", "-2"),
                                        ("--gpu-memory-utilization", "0")])
def test_sampling_values_are_checked_by_the_parser(tmp_path, fake_model, flag, value, capsys):
    data = parquet(tmp_path / "d.parquet", rows())
    with pytest.raises(SystemExit) as exc:
        main(eval_argv(fake_model, data, tmp_path / "out", flag, value))
    assert exc.value.code == 2
    assert f"argument {flag}: expected" in capsys.readouterr().err


def test_run_eval_checks_the_values_itself(tmp_path, fake_model):
    data = parquet(tmp_path / "d.parquet", rows())
    for kw, match in [({"temperature": -1.0}, "--temperature"), ({"top_p": 0.0}, "--top-p"),
                      ({"verify_timeout_s": float("nan")}, "--verify-timeout"), ({"max_tokens": 0}, "--max-tokens")]:
        with pytest.raises(SystemExit, match=match):
            run_eval(EvalConfig(model=str(fake_model), data=[data], out=tmp_path / "o", n=1, ks=[1], **kw), log=None)
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_is_refused(tmp_path, fake_model):
    data = parquet(tmp_path / "d.parquet", rows())
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    with pytest.raises(SystemExit, match=r"--out .*results.txt: exists and is not a directory"):
        main(eval_argv(fake_model, data, out))
    assert out.read_text() == "keep me"


def test_a_failed_start_does_not_block_its_retry(tmp_path, fake_model, tiny_model):  # noqa: F811
    data = parquet(tmp_path / "d.parquet", rows(1))
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"--model .*fake_model: cannot load it"):
        main(eval_argv(fake_model, data, out))
    assert main(eval_argv(tiny_model, data, out)) == 0      # not "holds samples of a different generation config"
    res = json.loads((out / "results.json").read_text())
    assert res["benchmarks"][0]["n_problems"] == 1 and Path(res["config"]["model"]) == Path(tiny_model).resolve()
    with pytest.raises(SystemExit, match="holds samples of a different generation config"):  # samples exist now
        main(eval_argv(tiny_model, data, out, "--temperature", "0.5"))


def test_extraction_follows_the_data_manifest_and_a_different_one_is_warned(tmp_path, tiny_model, capsys):  # noqa: F811
    d = tmp_path / "data"
    d.mkdir()
    data = parquet(d / "val.parquet", rows(1, source="quickstart/arith-l1") + rows(1, source="quickstart/champ"))
    (d / "manifest.json").write_text(json.dumps({"answer_extraction": {"default": "last_number",
                                                                       "quickstart/champ": "auto"}}))
    out = tmp_path / "out"
    assert main(eval_argv(tiny_model, data, out)) == 0
    err = capsys.readouterr().err
    assert "answer extraction from" in err and "manifest.json" in err
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["extract"] == {"quickstart/arith-l1": "last_number", "quickstart/champ": "auto"}
    modes = {json.loads(line)["data_source"]: json.loads(line)["extract"]
             for f in (out / "samples").glob("*.jsonl") for line in f.read_text().splitlines()}
    assert modes == {"quickstart/arith-l1": "last_number", "quickstart/champ": "auto"}
    assert "extract quickstart/arith-l1=last_number,quickstart/champ=auto" in (out / "results.md").read_text()

    assert main(eval_argv(tiny_model, data, out, "--extract", "boxed")) == 0
    err = capsys.readouterr().err
    assert "warning: quickstart/arith-l1 is verified with --extract boxed" in err and "last_number" in err
    assert "warning: quickstart/champ" in err      # auto there, boxed now


def test_no_manifest_means_auto(tmp_path, tiny_model):  # noqa: F811
    data = parquet(tmp_path / "d.parquet", rows(1))
    out = tmp_path / "out"
    assert main(eval_argv(tiny_model, data, out)) == 0
    assert json.loads((out / "results.json").read_text())["config"]["extract"] == "auto"


# --------------------------------------------------------------------------------------------- plots
def _fake_run(d: Path, model="m/SmolLM2", n=2, t=1.0) -> Path:
    (d / "samples").mkdir(parents=True)
    rows_ = [{"problem_id": "p", "sample_index": j, "correct": j == 0} for j in range(n)]
    (d / "samples" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_))
    (d / "results.json").write_text(json.dumps({
        "config": {"model": model, "n": n, "temperature": t},
        "benchmarks": [{"benchmark": "b", "samples_file": "samples/b.jsonl", "per_problem_correct": {"p": 1}}]}))
    return d


@pytest.mark.parametrize("suffix,magic", [(".pdf", b"%PDF"), (".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_plot_passk_writes_the_format_its_suffix_names_with_a_title(tmp_path, suffix, magic):
    run = _fake_run(tmp_path / "run")
    out = tmp_path / f"x{suffix}"
    assert main(["plot", "passk", "--runs", str(run), "--out", str(out)]) == 0
    assert out.is_file() and out.read_bytes().startswith(magic)
    if suffix == ".svg":
        assert "SmolLM2, n = 2, temperature 1.0" in out.read_text()


def test_plot_title_lists_runs_that_differ(tmp_path):
    from svs_verl.evaluation.plot import run_title

    a, b = _fake_run(tmp_path / "a", t=1.0), _fake_run(tmp_path / "b", t=0.6)
    assert run_title([a, b], ["A", "B"]) == ("pass@k: A: SmolLM2, n = 2, temperature 1.0; "
                                              "B: SmolLM2, n = 2, temperature 0.6")


def test_plot_unknown_format_or_out_that_is_a_file(tmp_path):
    run = _fake_run(tmp_path / "run")
    with pytest.raises(SystemExit, match=r"--out .*x.xyz: unknown image format '.xyz'"):
        main(["plot", "passk", "--runs", str(run), "--out", str(tmp_path / "x.xyz")])
    assert not (tmp_path / "x.xyz").exists()
    f = tmp_path / "plainfile"
    f.write_text("x")
    with pytest.raises(SystemExit, match="exists and is not a directory"):
        main(["plot", "passk", "--runs", str(run), "--out", str(f)])
    with pytest.raises(SystemExit, match="unknown image format"):
        main(["plot", "training", "--metrics", str(f), "--out", str(tmp_path / "t.xyz")])
