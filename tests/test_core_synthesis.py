import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs_verl.core import PARSE_REASONS, SynthesisTemplate, builtin_templates, parse_synthesis

PAPER = SynthesisTemplate.load("paper")
ONELINE = SynthesisTemplate.load("oneline")


def test_builtins_load():
    assert {"paper", "oneline"} <= set(builtin_templates())


def test_prompt_shows_solution_and_answer_and_asks_for_fence():
    solution = r"We have $\frac{a}{b}$ with {braces} and {answer} literally. So \boxed{42}."
    msgs = PAPER.messages(solution, "42")
    assert [m["role"] for m in msgs] == ["user"]
    content = msgs[0]["content"]
    assert solution in content                 # braces in the solution are not format fields
    assert "```problem" in content
    assert "{solution}" not in content


def test_few_shot_template_gives_alternating_chat_messages():
    msgs = ONELINE.messages("5 + 6 = 11.", "11")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[2]["content"] == "Question: What is 2 plus 5?"
    assert msgs[-1]["content"].startswith("5 + 6 = 11.") and "11" in msgs[-1]["content"]
    # a few-shot answer parses back to its problem
    assert parse_synthesis(msgs[2]["content"], ONELINE).problem == "What is 2 plus 5?"


def test_template_from_file_and_errors(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"user": "Solution: {solution}", "fence_open": "<q>", "fence_close": "</q>"}))
    t = SynthesisTemplate.load(f)
    assert t.messages("s", "1") == [{"role": "user", "content": "Solution: s"}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("user: 'no placeholder'\nfence_open: '<q>'\nfence_close: '</q>'\n")
    with pytest.raises(ValueError, match="placeholder"):
        SynthesisTemplate.load(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("user: '{solution}'\nfence_opn: '<q>'\n")
    with pytest.raises(ValueError, match="fence_opn"):
        SynthesisTemplate.load(typo)
    with pytest.raises(FileNotFoundError, match="nosuch"):
        SynthesisTemplate.load("nosuch")


@pytest.mark.parametrize("text,problem,reason", [
    ("```problem\nWhat is 6 times 7?\n```", "What is 6 times 7?", "ok"),
    ("<think>a ```problem\nDraft?\n``` b</think>Final:\n```problem\nHow many legs?\n```", "How many legs?", "ok"),
    ("<think>still thinking ```problem\nX?\n```", None, "unfinished_reasoning"),
    ("Here is a problem: what is 2+2?", None, "no_fence"),
    ("```problem\nWhat is 2+2?", None, "unclosed_fence"),
    ("```problem\n   \n```", None, "empty"),
    ("```problem\nfirst?\n```\n```problem\nsecond?\n```", "second?", "ok"),
    (None, None, "not_text"),
    (b"```problem\nx\n```", None, "not_text"),
])
def test_parser(text, problem, reason):
    result = parse_synthesis(text, PAPER)
    assert (result.problem, result.reason) == (problem, reason)


def test_parse_failure_never_reuses_previous_output():
    """Reference defect: a failed parse fell back on the previous step's problem and could earn reward."""
    assert parse_synthesis("```problem\nWhat is 3+4?\n```", PAPER).problem == "What is 3+4?"
    after = parse_synthesis("no fence at all", PAPER)
    assert after.problem is None and after.reason == "no_fence"


def test_oneline_format_ends_at_newline_or_end():
    assert parse_synthesis("Sure!\nQuestion: What is 4+4?\nThanks", ONELINE).problem == "What is 4+4?"
    assert parse_synthesis("Question: What is 9-1?", ONELINE).problem == "What is 9-1?"


_pieces = st.sampled_from(["```problem", "```", "\n", "<think>", "</think>", "Question:", "?", " ", "x"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=20)), max_size=30).map("".join),
       st.sampled_from([PAPER, ONELINE]))
def test_parser_never_raises_and_returns_only_input_text(text, template):
    result = parse_synthesis(text, template)
    assert result.reason in PARSE_REASONS + ("ok",)
    if result.problem is not None:
        assert result.reason == "ok"
        assert result.problem and result.problem in text
        assert result.problem == result.problem.strip()
    else:
        assert result.reason != "ok"
