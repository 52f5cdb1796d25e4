"""Untrusted files: a synthesis template that is an alias bomb, deeply nested, oversized or badly typed, and
JSON/JSONL inputs with deep nesting or huge numbers, each stop with one line naming the file (and line and
field), never a traceback, a hang or gigabytes of memory; messages never carry a whole user value."""

from __future__ import annotations

import json

import pytest

from svs_verl.cli import main
from svs_verl.core.synthesis import MAX_TEMPLATE_BYTES, SynthesisTemplate

# the 9 x 9 x ... list-of-lists bomb: a few hundred bytes that expand to 9**7 strings (safe_load took 5.8 GB)
BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdef", "bcdefg")]
    + ['user: "{solution}"', 'fence_open: "Q:"', 'close: lenient']) + "\n"


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"svs-verl {command}: "), err
    assert len(lines[0]) < 700, lines[0]
    return lines[0]


@pytest.mark.timeout(30)
def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 500
    with pytest.raises(ValueError, match=r"bomb.yaml: line 2: YAML aliases \(\*a\) are not allowed"):
        SynthesisTemplate.load(path)
    assert main(["template", str(path)]) == 1
    assert "aliases" in one_line_error(capsys, "template")


def test_an_anchor_without_alias_and_plain_yaml_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text('user: &u "Rewrite {solution}"\nfence_open: "Q:"\nclose: lenient\n')
    assert SynthesisTemplate.load(path).user == "Rewrite {solution}"


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "user: " + "[" * 5000 + "]" * 5000 + "\n"),
    (".json", '{"user": ' + "[" * 100_000 + "]" * 100_000 + "}"),
])
def test_a_deeply_nested_template_is_one_error(tmp_path, capsys, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(ValueError, match="nested too deeply"):
        SynthesisTemplate.load(path)
    assert main(["template", str(path)]) == 1
    assert "nested too deeply" in one_line_error(capsys, "template")


def test_an_oversized_template_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text('user: "{solution}"\nfence_open: "Q:"\nsystem: "' + "x" * MAX_TEMPLATE_BYTES + '"\n')
    with pytest.raises(ValueError, match=r"big.yaml: \d+ bytes, over the"):
        SynthesisTemplate.load(path)


@pytest.mark.parametrize("few_shot, match", [
    ('[{solution: "s", answer: 42, problem: "p"}]', r"few_shot\[0\].answer must be a string .*got int"),
    ('[{solution: "s", problem: 3.5}]', r"few_shot\[0\].problem must be a string .*got float"),
    ('[{solution: "s", problem: "p", hint: "h"}]', r"few_shot\[0\] has unknown key"),
    ('["just text"]', r"few_shot\[0\] must be a mapping"),
    ('"one string"', r"few_shot must be a list"),
])
def test_a_badly_typed_few_shot_entry_is_refused_by_the_loader_itself(tmp_path, capsys, few_shot, match):
    # SynthesisTemplate.load serves check-config and training too: they must refuse what `template` refuses
    path = tmp_path / "shots.yaml"
    path.write_text(f'user: "Rewrite {{solution}}"\nfence_open: "Q:"\nclose: lenient\nfew_shot: {few_shot}\n')
    with pytest.raises(ValueError, match=match):
        SynthesisTemplate.load(path)
    assert main(["template", str(path)]) == 1
    assert "shots.yaml" in one_line_error(capsys, "template")


@pytest.mark.parametrize("extra", ["system: 5", "fence_close: [1, 2]", "block: 7", "fallbacks: 3",
                                   "fallbacks: [[1, 2]]", "name: [a]"])
def test_other_badly_typed_keys_are_value_errors(tmp_path, extra):
    path = tmp_path / "t.yaml"
    path.write_text(f'user: "Rewrite {{solution}}"\nfence_open: "Q:"\nclose: lenient\n{extra}\n')
    with pytest.raises(ValueError, match="t.yaml"):
        SynthesisTemplate.load(path)


def test_a_message_never_holds_a_whole_user_value(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(f'user: "{{solution}}"\nfence_open: "Q:"\nclose: lenient\nblock: "{"z" * 100_000}"\n')
    with pytest.raises(ValueError) as info:
        SynthesisTemplate.load(path)
    assert len(str(info.value)) < 400 and "100002 chars" in str(info.value)
    assert main(["template", str(path)]) == 1
    one_line_error(capsys, "template")


def test_json_template_constants_are_refused(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"user": "{solution}", "fence_open": "Q:"})[:-1] + ', "close_required": NaN}')
    with pytest.raises(ValueError, match="NaN is not a JSON value"):
        SynthesisTemplate.load(path)


@pytest.mark.parametrize("argv", [
    ["template", "x" * 100_000],
    ["preview", "--set", "svs.template=" + "x" * 100_000],
    ["preview", "--set", "svs.no_such_key=" + "x" * 100_000],
    ["eval", "--model", "m", "--data", "d.parquet", "--out", "o", "--k", "1," + "x" * 100_000],
])
def test_no_message_quotes_a_whole_user_value(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:       # argparse (exit 2) or a SystemExit(message) that Python prints itself
        code = exc.code
    err = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert code not in (0, None) and "Traceback" not in err
    assert 0 < len(err) < 1500, len(err)
