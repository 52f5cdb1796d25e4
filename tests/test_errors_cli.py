"""Bad inputs of the small commands (passk, verify, template, preview's arguments) and the CLI's one error
boundary: each is one line naming the file / key / value, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from svs_verl.cli import main


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"svs-verl {command}: "), err
    return lines[0]


# --------------------------------------------------------------------------------------------- passk
def test_passk_samples_missing_a_directory_or_bad_utf8(tmp_path):
    with pytest.raises(SystemExit, match=r"--samples .*nosuch.jsonl: no such file"):
        main(["passk", "--samples", str(tmp_path / "nosuch.jsonl")])
    with pytest.raises(SystemExit, match="is a directory"):
        main(["passk", "--samples", str(tmp_path)])
    f = tmp_path / "s.jsonl"
    f.write_bytes(b'{"problem_id": "a", "correct": true}\n{"problem_id": "\xff", "correct": true}\n')
    with pytest.raises(SystemExit, match=r"s.jsonl:2: not valid UTF-8"):
        main(["passk", "--samples", str(f)])


def test_passk_refuses_ids_that_differ_only_in_type_unless_merged(tmp_path, capsys):
    f = tmp_path / "s.jsonl"
    rows = [{"problem_id": 1, "correct": True}, {"problem_id": "1", "correct": False}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(SystemExit, match=r's.jsonl:2: problem_id "1" and 1 \(line 1\) read as the same problem'):
        main(["passk", "--samples", str(f)])
    assert main(["passk", "--samples", str(f), "--merge-ids", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n_problems": 1, "pass@1": 0.5}


def test_passk_warns_when_problems_have_different_n(tmp_path, capsys):
    f = tmp_path / "s.jsonl"
    rows = [{"problem_id": "a", "correct": True}] * 4 + [{"problem_id": "b", "correct": False}] * 2
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["passk", "--samples", str(f), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pass@1"] == 0.5
    assert "different sample counts (2 samples: 1 problem(s), 4 samples: 1 problem(s))" in captured.err
    f.write_text("\n".join(json.dumps(r) for r in rows[:4] + rows[4:] * 2) + "\n")
    assert main(["passk", "--samples", str(f)]) == 0
    assert "different sample counts" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- verify
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_verify_timeout_must_be_positive_seconds(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--answer", "1", "--response", "1", "--timeout", value])
    assert exc.value.code == 2
    assert f"argument --timeout: expected a number of seconds > 0, got {value!r}" in capsys.readouterr().err


def test_verify_response_file_missing_or_bad_utf8(tmp_path):
    with pytest.raises(SystemExit, match=r"--response-file .*nosuch.txt: no such file"):
        main(["verify", "--answer", "1", "--response-file", str(tmp_path / "nosuch.txt")])
    f = tmp_path / "r.txt"
    f.write_bytes(b"the answer is \xff 1")
    with pytest.raises(SystemExit, match=r"--response-file .*r.txt: not valid UTF-8"):
        main(["verify", "--answer", "1", "--response-file", str(f)])


# --------------------------------------------------------------------------------------------- templates
GOOD_USER = "user: 'Solution: {solution}'\nfence_open: '```problem'\nfence_close: '```'\n"
BAD_TEMPLATES = [
    ("no_solution.yaml", "user: 'answer {answer}'\nfence_open: 'Q:'\nfence_close: ''\nclose_required: false\n",
     "placeholder {solution}"),
    ("bad_yaml.yaml", "user: [unclosed\nfence_open: x\n", "bad_yaml.yaml"),
    ("bad_json.json", '{"user": "{solution}", ', "bad_json.json"),
    ("unknown_key.yaml", GOOD_USER + "bogus: 1\n", "unknown keys ['bogus']"),
    ("a_list.yaml", "- user: '{solution}'\n", "expected a mapping at top level"),
    ("empty_fence.yaml", "user: '{solution}'\nfence_open: ''\nfence_close: '```'\n", "'fence_open' must not be empty"),
    ("empty_close.yaml", "user: '{solution}'\nfence_open: 'X'\nfence_close: ''\n", "fence_close"),
    ("shot_no_problem.yaml", GOOD_USER + "few_shot:\n  - solution: '1+1=2'\n    answer: '2'\n", "few_shot[0]"),
    ("shot_not_a_list.yaml", GOOD_USER + "few_shot: 3\n", "few_shot must be a list"),
    ("shot_a_string.yaml", GOOD_USER + "few_shot: [abc]\n", "few_shot[0] must be a mapping"),
    ("other_placeholder.yaml", "user: '{solution} and {other}'\nfence_open: 'Q:'\nclose_required: false\n",
     "unknown placeholder(s) {other}"),
    ("empty.yaml", "\n", "the file is empty"),
]


@pytest.fixture
def bad_template(tmp_path, request):
    name, text, match = request.param
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, match


@pytest.mark.parametrize("bad_template", BAD_TEMPLATES, indirect=True, ids=[b[0] for b in BAD_TEMPLATES])
def test_bad_template_file_is_one_line_in_every_place_it_is_read(bad_template, capsys):
    path, match = bad_template
    assert main(["template", str(path)]) == 1                      # svs-verl template FILE
    line = one_line_error(capsys, "template")
    assert str(path) in line and match in line, line

    from svs_verl.verl_plugin.checks import check_svs_section     # svs.template=FILE (check-config, trainer)
    with pytest.raises(ValueError, match=f"svs.template={path}") as exc:
        check_svs_section({"template": str(path)})
    assert match in str(exc.value) and "\n" not in str(exc.value)

    with pytest.raises(SystemExit) as exc:                         # preview --template FILE, before any model
        main(["preview", "--template", str(path), "--model", str(path.parent / "nomodel")])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_template_bad_utf8_and_missing_file(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_bytes(b"user: '{solution} \xff'\nfence_open: Q\n")
    assert main(["template", str(f)]) == 1
    assert "not valid UTF-8" in one_line_error(capsys, "template")
    assert main(["template", str(tmp_path / "nosuch.yaml")]) == 1
    assert "nosuch.yaml: no such file" in one_line_error(capsys, "template")


def test_latex_braces_are_no_placeholders(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_text("user: 'Solution: {solution}. Put it in \\\\boxed{x} or x^{2}. Answer {answer}'\n"
                 "fence_open: 'Q:'\nclose_required: false\n")
    assert main(["template", str(f)]) == 0
    assert "boxed{x}" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- preview
@pytest.mark.parametrize("flag,value", [("--problems", "-1"), ("--problems", "0"), ("--n", "0"),
                                        ("--synthesis-n", "0"), ("--solve-n", "0"), ("--max-tokens", "0"),
                                        ("--n", "-3")])
def test_preview_counts_must_be_positive(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["preview", flag, value])
    assert exc.value.code == 2
    assert f"argument {flag}: expected an integer >= 1, got {int(value)}" in capsys.readouterr().err


def test_preview_bad_settings_and_paths_fail_before_any_model_loads(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"svs-verl preview: svs.synthesis_n must be .*got 0"):
        main(["preview", "--set", "svs.synthesis_n=0", "--model", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--model .*: not a Hugging Face model directory \(no config.json\)"):
        main(["preview", "--model", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--model .*nosuch: no such directory"):
        main(["preview", "--model", str(tmp_path / "nosuch")])


# --------------------------------------------------------------------------------------------- boundary
def test_error_boundary_one_line_and_debug_keeps_the_traceback(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("- a list\n")
    cmd = [sys.executable, "-m", "svs_verl.cli"]
    out = subprocess.run(cmd + ["template", str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"svs-verl template: synthesis template {bad}: expected a mapping "
                                               f"at top level"]
    out = subprocess.run(cmd + ["--debug", "template", str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" in out.stderr


def test_boundary_turns_os_and_value_errors_into_the_command_line(monkeypatch, capsys):
    import svs_verl.cli as cli

    def boom(args):
        raise PermissionError(13, "Permission denied", "/x/y")

    monkeypatch.setattr(cli, "cmd_configs", boom)
    assert cli.main(["configs"]) == 1
    assert one_line_error(capsys, "configs") == "svs-verl configs: /x/y: Permission denied"


def test_preview_table_explains_seed_ids_and_what_solved_is_judged_against():
    from svs_verl.preview import render

    result = {"originals": [], "records": [], "template": "oneline", "update": {"oqa": [], "vps": [], "spa": []},
              "metrics": {}}
    table = render(result)
    assert "seed pK-synJ: made from sample J (0-based) of original problem pK" in table
    assert "ORIGINAL problem's reference answer" in table


def test_preview_output_is_quiet_and_says_what_it_uses(tmp_path, capsys):
    import pandas as pd
    from tiny_lm import arithmetic_question, make_tiny_model

    model = make_tiny_model(tmp_path / "tiny")
    data = tmp_path / "d.parquet"
    pd.DataFrame([{"data_source": "a", "prompt": [{"role": "user", "content": arithmetic_question(1, 2)}],
                   "reward_model": {"ground_truth": "3"}}]).to_parquet(data)
    capsys.readouterr()
    assert main(["preview", "--model", str(model), "--data", str(data), "--problems", "1", "--n", "2",
                 "--synthesis-n", "1", "--solve-n", "1", "--max-tokens", "3", "--backend", "transformers"]) == 0
    err = capsys.readouterr().err
    assert f"model {model}, 1 problems from {data}" in err
    assert "Loading weights" not in err and "engine is not available" not in err
