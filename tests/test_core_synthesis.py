import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs_verl.core import PARSE_REASONS, SynthesisTemplate, builtin_templates, parse_synthesis

PAPER = SynthesisTemplate.load("paper")
FENCED = SynthesisTemplate.load("problem_fence")
ONELINE = SynthesisTemplate.load("oneline")


def test_builtins_load():
    assert {"paper", "oneline", "problem_fence"} <= set(builtin_templates())


def test_paper_prompt_has_the_reference_structure():
    """The seed response in a tagged block, the request for a *variant* with the same final answer (not for
    the original problem back: variants are where SvS's diversity comes from), a ```text fence."""
    solution = r"We have $\frac{a}{b}$ with {braces} and {answer} literally. So \boxed{42}."
    msgs = PAPER.messages(solution, "42")
    assert [m["role"] for m in msgs] == ["user"]
    content = msgs[0]["content"]
    assert f"<response>\n{solution}\n</response>" in content   # braces in the solution are not format fields
    assert "write a variant of that problem" in content and "same final answer" in content
    assert "recover" not in content and "exactly this response" not in content   # the old request for the original
    assert content.rstrip().endswith("```text\n[the problem]\n```")               # the output format comes last
    assert "{solution}" not in content and "```problem" not in content
    assert (PAPER.block, PAPER.close) == ("first", "lenient")
    # the format the prompt asks for parses back to the problem, by the reference's rule
    assert parse_synthesis("Thinking.\n```text\nA new problem?\n```", PAPER).problem == "A new problem?"


def test_problem_fence_prompt_asks_for_its_own_fence():
    content = FENCED.messages("So \\boxed{42}.", "42")[0]["content"]
    assert "So \\boxed{42}." in content and "```problem" in content
    assert (FENCED.block, FENCED.close) == ("last", "strict")


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
def test_parser_problem_fence_last_block_strict(text, problem, reason):
    result = parse_synthesis(text, FENCED)
    assert (result.problem, result.reason) == (problem, reason)


@pytest.mark.parametrize("text,problem,reason", [
    ("```text\nWhat is 6 times 7?\n```", "What is 6 times 7?", "ok"),
    ("```text\nfirst?\n```\n```text\nsecond?\n```", "first?", "ok"),                 # first block
    ("Sure.\n```text\nHow many legs do 3 ducks have?", "How many legs do 3 ducks have?", "ok"),  # unclosed
    ("<think>```text\nDraft?\n```</think>\n```text\nFinal?\n```", "Final?", "ok"),
    ("```\nPlain fence?\n```", "Plain fence?", "ok"),                                  # plain ``` fallback
    ("```text\nA?\n```\n```\nB?\n```", "A?", "ok"),
    ("**Reconstructed Question:**\n\nWhat is 3 + 4?\n\nThat is all.", "What is 3 + 4?", "ok"),
    ("**Reconstructed Question (in natural English):**\n\nWhat is 5 + 4?", "What is 5 + 4?", "ok"),
    ("What is 2+2?", None, "no_fence"),
    ("```text\n \n```", None, "empty"),
])
def test_parser_paper_follows_the_reference_rule(text, problem, reason):
    result = parse_synthesis(text, PAPER)
    assert (result.problem, result.reason) == (problem, reason)


def test_block_and_close_are_options(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("user: '{solution}'\nfence_open: '<q>'\nfence_close: '</q>'\nblock: first\nclose: strict\n")
    first_strict = SynthesisTemplate.load(f)
    assert parse_synthesis("<q>A?</q> <q>B?</q>", first_strict).problem == "A?"
    assert parse_synthesis("<q>A?", first_strict).reason == "unclosed_fence"
    f.write_text("user: '{solution}'\nfence_open: '<q>'\nfence_close: '</q>'\nblock: last\nclose: lenient\n")
    last_lenient = SynthesisTemplate.load(f)
    assert parse_synthesis("<q>A?</q> <q>B?</q>", last_lenient).problem == "B?"
    assert parse_synthesis("<q>A?", last_lenient).problem == "A?"
    for bad, key in (("block: middle", "block"), ("close: loose", "close")):
        f.write_text(f"user: '{{solution}}'\nfence_open: '<q>'\nfence_close: '</q>'\n{bad}\n")
        with pytest.raises(ValueError, match=key):
            SynthesisTemplate.load(f)


def test_a_prompt_file_in_the_reference_format_loads_unchanged(tmp_path):
    """A plain-text prompt with the reference's {REPLACE} placeholder and a ```text answer format (this
    text is ours; the reference's own file has the same shape)."""
    f = tmp_path / "variational_problem_synthesis.txt"
    f.write_text("Read this answer:\n\n<response>\n{REPLACE}\n</response>\n\nWhich problem was it for? "
                 "Reply as\n\n```text\n[problem]\n```")
    t = SynthesisTemplate.load(f)
    assert t.name == "variational_problem_synthesis"
    msgs = t.messages("6 * 7 = 42, so \\boxed{42}. {REPLACE} stays", "42")
    assert msgs == [{"role": "user", "content": "Read this answer:\n\n<response>\n6 * 7 = 42, so \\boxed{42}. "
                     "{REPLACE} stays\n</response>\n\nWhich problem was it for? Reply as\n\n```text\n[problem]\n```"}]
    assert parse_synthesis("```text\nWhat is 6 * 7?\n```\n```text\nOther?\n```", t).problem == "What is 6 * 7?"
    assert parse_synthesis("```text\nWhat is 6 * 7?", t).problem == "What is 6 * 7?"
    assert parse_synthesis("**Reconstructed Question:**\n\nWhat is 6 * 7?\n\nok", t).problem == "What is 6 * 7?"
    (tmp_path / "none.txt").write_text("no placeholder here")
    with pytest.raises(ValueError, match="placeholder"):
        SynthesisTemplate.load(tmp_path / "none.txt")


def test_parse_failure_never_reuses_previous_output():
    """Reference defect: a failed parse fell back on the previous step's problem and could earn reward."""
    assert parse_synthesis("```text\nWhat is 3+4?\n```", PAPER).problem == "What is 3+4?"
    after = parse_synthesis("no fence at all", PAPER)
    assert after.problem is None and after.reason == "no_fence"


def test_oneline_format_ends_at_newline_or_end():
    assert parse_synthesis("Sure!\nQuestion: What is 4+4?\nThanks", ONELINE).problem == "What is 4+4?"
    assert parse_synthesis("Question: What is 9-1?", ONELINE).problem == "What is 9-1?"


_pieces = st.sampled_from(["```problem", "```text", "```", "\n", "<think>", "</think>", "Question:",
                           "**Reconstructed Question:**", "?", " ", "x"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=20)), max_size=30).map("".join),
       st.sampled_from([PAPER, FENCED, ONELINE]))
def test_parser_never_raises_and_returns_only_input_text(text, template):
    result = parse_synthesis(text, template)
    assert result.reason in PARSE_REASONS + ("ok",)
    if result.problem is not None:
        assert result.reason == "ok"
        assert result.problem and result.problem in text
        assert result.problem == result.problem.strip()
    else:
        assert result.reason != "ok"
