"""The reading and comparison rules of ``svs_verl.verify`` (issue 11), one test per rule.

Every case here is hand-written for the rule it names; expected verdicts come from arithmetic done by hand
(e.g. 5/7 = 0.714285..., 2 3/8 = 19/8), never from the verifier's own helpers.
"""

import random
import time

import pytest

from svs_verl.verify import REASONS, verify_batch, warm_up
from svs_verl.verify import rules


@pytest.fixture(scope="module", autouse=True)
def _workers():
    warm_up()


def verdict(response, answer, **kw):
    return verify_batch([response], [answer], **kw)[0]


def correct(response, answer, **kw):
    return verdict(response, answer, **kw).correct


# -- false accepts: an expression merely mentioned, an answer never finished -------------------------
@pytest.mark.parametrize("response,answer", [
    ("I cannot work out 37 + 48", "85"),                           # the question's sum, not computed
    ("Hmm, what is 12 \\times 7? I am unsure about 12 \\times 7.", "84"),
    ("We need $23 + 19$.", "42"),                                 # restated inside math
    ("9 * 6", "54"),                                              # a bare line that is only the question
    ("The difference 100 - 58", "42"),
])
def test_a_restated_expression_is_not_credited(response, answer):
    v = verdict(response, answer)
    assert not v.correct and v.reason == "no_answer", v


@pytest.mark.parametrize("response,answer", [
    ("37 + 48 = 85", "85"),                   # the result is stated after "="
    ("So the total is 85.", "85"),
    ("We get $37 + 48 = 85$.", "85"),
])
def test_a_stated_result_is_still_read(response, answer):
    assert correct(response, answer)


@pytest.mark.parametrize("response", [
    "so the result is \\boxed{42",                     # cut off inside the box
    "first \\boxed{41}, then finally \\boxed{\\frac{84}{2",  # complete box, then an unfinished one
    "Answer: \\boxed{42",
])
def test_an_unclosed_box_is_an_unfinished_answer(response):
    v = verdict(response, "42")
    assert not v.correct and v.reason == "no_answer"


def test_an_unclosed_box_before_a_complete_one_does_not_matter():
    assert correct("a stray \\boxed{ here, and the result \\boxed{42}", "42")


def test_bare_math_line_with_a_surd_is_read_whole_not_its_last_number():
    v = verdict("\\frac{3}{4} - \\sqrt{5}", "\\frac{3}{4}")
    assert not v.correct and v.extracted == "\\frac{3}{4} - \\sqrt{5}"


# -- several boxes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("response,answer,expected", [
    ("roots: \\boxed{-4}, \\boxed{5} and \\boxed{7}", "\\{-4, 5, 7\\}", True),
    ("roots: \\boxed{7}, \\boxed{-4}, \\boxed{5}", "-4, 5, 7", True),          # boxes are separate answers
    ("\\boxed{(0, 1)} or \\boxed{(2, -3)}", "(2,-3), (0,1)", True),
    ("\\boxed{a = 6} and \\boxed{b = -1}", "a = 6, b = -1", True),
    ("\\boxed{-4}, \\boxed{5}", "-4, 5, 7", False),                          # one solution missing
    ("\\boxed{-4}, \\boxed{5}, \\boxed{8}", "-4, 5, 7", False),              # one wrong
    ("\\boxed{(0, 1)} or \\boxed{(3, -2)}", "(2,-3), (0,1)", False),          # a tuple is ordered
    ("first try \\boxed{9}, corrected: \\boxed{10}", "10", True),            # one-part reference: last box
    ("first try \\boxed{10}, corrected: \\boxed{9}", "10", False),
])
def test_several_boxes_against_a_reference_with_several_parts(response, answer, expected):
    assert correct(response, answer) is expected


def test_reference_written_with_boxes():
    # boxes joined only by separators are one set; boxes with prose between them are successive answers
    assert correct("\\boxed{\\{3, 8\\}}", "\\boxed{8} and \\boxed{3}")
    assert not correct("\\boxed{3, 8}", "\\boxed{3} was wrong, the answer is \\boxed{8}")
    assert correct("\\boxed{8}", "\\boxed{3} was wrong, the answer is \\boxed{8}")


# -- punctuation inside math --------------------------------------------------------------------------
@pytest.mark.parametrize("response,answer,expected", [
    ("so $\\frac{2}{5}.$", "2/5", True),
    ("so $(3,4),$", "(3,4)", True),
    ("Answer: $\\frac{7}{9};$", "7/9", True),
    ("giving $3^{2}.$", "3", False),      # 3^2 = 9: the period must not turn "3^{2}" into "3"
    ("giving $3^{2}.$", "9", True),
])
def test_trailing_punctuation_inside_math(response, answer, expected):
    assert correct(response, answer) is expected


# -- decimal predictions against exact references --------------------------------------------------
@pytest.mark.parametrize("cand,gold,expected", [
    ("0.714285", "\\frac{5}{7}", True),       # 5/7 = 0.7142857..., truncated to 6 places
    ("0.714286", "\\frac{5}{7}", True),       # ... rounded to 6 places
    ("0.714287", "\\frac{5}{7}", False),      # neither
    ("0.67", "2/3", True),
    ("0.66", "2/3", True),                    # truncated
    ("0.65", "2/3", False),
    ("0.7", "2/3", False),                    # one decimal place is not a claim of precision
    ("-1.33", "-\\frac{4}{3}", True),
    ("-1.34", "-\\frac{4}{3}", False),
    ("\\frac{2}{3}", "0.67", False),          # exact prediction, decimal reference: no tolerance
    ("67/100", "2/3", False),                 # exact against exact: no tolerance
    ("2.999", "3", False),
])
def test_decimal_prediction_against_exact_reference(cand, gold, expected):
    assert correct(f"\\boxed{{{cand}}}", gold) is expected


@pytest.mark.parametrize("cand,gold,expected", [
    ("[0.14, 2.33)", "[\\frac{1}{7}, \\frac{7}{3})", True),
    ("[0.14, 2.33]", "[\\frac{1}{7}, \\frac{7}{3})", False),       # bracket differs
    ("(0.29, 1.5)", "(\\frac{2}{7}, \\frac{3}{2})", True),         # 2/7 = 0.2857... rounds to 0.29; 3/2 = 1.5
    ("(0.28, 1.5)", "(\\frac{2}{7}, \\frac{3}{2})", True),         # ... truncates to 0.28
    ("(0.27, 1.5)", "(\\frac{2}{7}, \\frac{3}{2})", False),
    ("\\begin{pmatrix} 0.25 \\\\ 0.83 \\end{pmatrix}", "\\begin{pmatrix} \\frac14 \\\\ \\frac56 \\end{pmatrix}", True),
    ("\\begin{pmatrix} 0.25 \\\\ 0.84 \\end{pmatrix}", "\\begin{pmatrix} \\frac14 \\\\ \\frac56 \\end{pmatrix}", False),
    ("\\begin{pmatrix} 1 & 0.5 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{pmatrix} 1 & \\frac12 \\\\ 0 & 1 \\end{pmatrix}", True),
    ("\\begin{pmatrix} 0.5 & 1 \\\\ 0 & 1 \\end{pmatrix}", "\\begin{pmatrix} 1 & \\frac12 \\\\ 0 & 1 \\end{pmatrix}", False),
])
def test_decimal_entries_of_intervals_and_matrices(cand, gold, expected):
    assert correct(f"\\boxed{{{cand}}}", gold) is expected


# -- percent outside the math ----------------------------------------------------------------------
@pytest.mark.parametrize("response,expected", [
    ("$45$ %", True), ("$45$ percent", True), ("45 pct", True), ("The price rose by 45%.", True),
    ("$46$ %", False), ("The price rose by 44%.", False),
])
def test_percent_written_outside_the_math(response, expected):
    assert correct(response, "45\\%") is expected


# -- "Final Answer:" lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("response,answer,expected", [
    ("Final Answer: The smallest $k$ is 17.", "17", True),
    ("Final Answer: The smallest $k$ is 17.", "1", False),
    ("Final Answer: The final answer is $\\frac{3}{8}$. I hope it is correct.", "3/8", True),
    ("Final Answer: The final answer is 4,500,010. I hope it is correct.", "4500010", True),
    ("The answer is 2.5.", "2.5", True),              # the decimal point does not end the sentence
    ("The answer is 2.5. Double-checking gives 7 cases.", "2.5", True),
])
def test_answer_line_is_read_to_the_value_it_states(response, answer, expected):
    assert correct(response, answer) is expected


def test_answer_line_after_the_last_box_gives_the_result():
    text = "The first part is \\boxed{12}.\nAdding the rest: 12 + 30.\nFinal Answer: The final answer is 42."
    assert correct(text, "42") and not correct(text, "12")


# -- mixed numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cand,gold,expected", [
    ("2 3/8", "19/8", True), ("2\\frac{3}{8}", "\\frac{19}{8}", True), ("-2 3/8", "-19/8", True),
    ("2 3/8", "23/8", False),       # not the digits run together
    ("2 9/8", "25/8", False),       # an improper fraction after a whole number is not a mixed number
])
def test_mixed_numbers(cand, gold, expected):
    assert correct(f"\\boxed{{{cand}}}", gold) is expected


# -- ordered lists and sets ---------------------------------------------------------------------------
@pytest.mark.parametrize("cand,gold,expected", [
    ("5, -1, 8", "5, -1, 8", True),
    ("-1, 5, 8", "5, -1, 8", False),               # a list is ordered ...
    ("\\{-1, 5, 8\\}", "\\{8, 5, -1\\}", True),    # ... a set is not
    ("-1, 8, 5", "\\{8, 5, -1\\}", True),          # a bare list against a set reference: as a set
    ("(2, 7), (4, 1)", "(4, 1), (2, 7)", True),    # a list of solutions (tuples) is a set of them
    ("(7, 2), (4, 1)", "(4, 1), (2, 7)", False),   # but each tuple is ordered
    ("0.5, 3", "3, 0.5", False),
])
def test_lists_are_ordered_unless_sets(cand, gold, expected):
    assert correct(f"\\boxed{{{cand}}}", gold) is expected


# -- math over several lines --------------------------------------------------------------------------
@pytest.mark.parametrize("response,expected", [
    ("The value is $\n 6 \n$", False),     # inline math may not span lines
    ("The value is \\(\n6\n\\)", False),
    ("The value is\n\\[\n6\n\\]", True),   # display math may
    ("The value is\n$$\n6\n$$", True),
    ("The value is $6$", True),
])
def test_inline_math_does_not_span_lines(response, expected):
    assert correct(response, "6") is expected


# -- decimal comma vs thousands separator ----------------------------------------------------------
@pytest.mark.parametrize("cand,gold,expected", [
    ("0,375", "0.375", True),       # a leading 0 group is never a thousands group: decimal comma
    ("2,5", "2.5", True),           # not groups of three: decimal comma
    ("3,14159", "3.14159", True),
    ("2,500", "2500", True),        # valid thousands grouping: thousands
    ("2,500", "2.5", False),
    ("12,345,678", "12345678", True),
    ("1, 5", "1.5", False),         # a space after the comma: a list
])
def test_decimal_comma_rule(cand, gold, expected):
    assert correct(f"\\boxed{{{cand}}}", gold) is expected


# -- what auto reads without a box or an answer line ------------------------------------------------
@pytest.mark.parametrize("response,answer,expected", [
    ("Each box holds 15 apples, so there are 60 apples", "60", True),
    ("so the probability is 5/12 <|im_start|>user\nwhat is 7?", "5/12", True),  # a chat token ends it
    ("The code is XQ7Z", "7", False),                  # a digit inside a word is not a number
    ("I am not sure.", "3", False),
])
def test_bare_response_reading(response, answer, expected):
    assert correct(response, answer) is expected


def test_boxed_mode_still_requires_a_box():
    assert verdict("so the total is 85", "85", extract="boxed").reason == "no_answer"


# -- robustness: new constructs on hostile inputs ---------------------------------------------------
HOSTILE = [
    "$" * 60_000,
    "\\(" * 30_000,
    "$\\frac{1}{2}\\$" * 10_000,
    "Final Answer: " + "the value is " * 8_000,
    "1," * 50_000,
    "\\boxed{1}, " * 5_000,
    "\\boxed{(1,2)} and " * 3_000,
    "\\begin{pmatrix}" + "1&" * 20_000 + "\\end{pmatrix}",
    "3 " * 40_000 + "1/2",
    "<|" * 30_000,
]


@pytest.mark.parametrize("i", range(len(HOSTILE)))
@pytest.mark.parametrize("answer", ["1", "1, 2, 3", "\\{" + ", ".join(map(str, range(300))) + "\\}"])
def test_hostile_inputs_are_verdicts_within_the_deadline(i, answer):
    t0 = time.monotonic()
    [v] = verify_batch([HOSTILE[i]], [answer], timeout_s=1.0)
    assert v.reason in REASONS
    assert time.monotonic() - t0 < 2.0


def test_random_latex_soup_never_raises():
    rng = random.Random(11)
    alphabet = ["\\boxed{", "{", "}", "$", "$$", "\\(", "\\)", "\\[", "\\]", ",", ".", " ", "\n", "1", "23",
                "/", "+", "=", "\\frac", "\\{", "\\}", "(", ")", "[", "]", "%", "Answer:", "is", "x", "\\!",
                "{,}", "&", "\\\\", "\\begin{pmatrix}", "\\end{pmatrix}", "0,5", "<|im_end|>", "</think>"]
    responses = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(400)]
    golds = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) or "1" for _ in range(400)]
    verdicts = verify_batch(responses, golds, timeout_s=2.0)
    assert len(verdicts) == 400 and all(v.reason in REASONS for v in verdicts)
    assert not any(v.reason == "error" and v.detail.startswith("rules:") for v in verdicts), \
        [v.detail for v in verdicts if v.detail.startswith("rules:")][:3]


def test_helpers_follow_the_rules():
    assert rules.is_computation("55 + 56") and rules.is_computation("3\\times 4")
    assert not rules.is_computation("-7") and not rules.is_computation("5/12") and not rules.is_computation("x+1")
    assert rules.read("see \\boxed{1} and \\boxed{2}") == ("ok", ["1", "2"])
    assert rules.read("cut \\boxed{1") == ("truncated", [])
    assert [r[3] for r in rules.math_regions("$a$ and $\nb\n$ and \\[\nc\n\\]")] == [True, False, True]


@pytest.mark.parametrize("cand,gold,expected", [
    ("1.414", "\\sqrt{2}", True),                 # sqrt 2 = 1.41421...: truncated and rounded agree
    ("1.4143", "\\sqrt{2}", False),
    ("3.1416", "\\pi", True),                     # pi = 3.141592...: rounded
    ("3.1415", "\\pi", True),                     # truncated
    ("3.1417", "\\pi", False),
    ("1.4", "\\sqrt{2}", False),                  # one place: no claim of precision
    ("(-2.236, 2.236)", "(-\\sqrt{5}, \\sqrt{5})", True),   # sqrt 5 = 2.23606...
    ("[-2.236, 2.236)", "(-\\sqrt{5}, \\sqrt{5})", False),  # bracket differs
    ("(-2.237, 2.236)", "(-\\sqrt{5}, \\sqrt{5})", False),  # -2.23606... is neither rounded nor cut to -2.237
])
def test_decimal_prediction_of_an_irrational_reference(cand, gold, expected):
    assert correct(f"\\boxed{{{cand}}}", gold, timeout_s=10.0) is expected


@pytest.mark.parametrize("cand,gold,expected", [
    ("3\\sqrt{2}", "\\sqrt{18}", True),                 # 18 = 9 * 2
    ("\\sqrt{18}", "2\\sqrt{3}", False),                # sqrt 12 would be; sqrt 18 is not
    ("\\sqrt{7}\\cdot 4", "4\\sqrt{7}", True),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True),  # rationalised
    ("\\frac{2}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}", False),
    ("\\sqrt{49}", "7", True),
    ("\\sqrt{50}", "7", False),
    ("-\\sqrt{20}", "-2\\sqrt{5}", True),
    ("\\sqrt{20}", "-2\\sqrt{5}", False),
    ("\\sqrt{0}", "0", True),
])
def test_exact_surds(cand, gold, expected):
    assert rules.compare(cand, gold) is expected   # settled by the rules, no symbolic check
    assert correct(f"\\boxed{{{cand}}}", gold) is expected


@pytest.mark.parametrize("cand,gold,expected", [
    ("\\$25", "25", True),                 # an escaped dollar sign is currency, not part of the number
    ("\\$1,250.75", "1250.75", True),
    ("\u22123", "-3", True),               # a typographic minus sign
    ("\u22123", "3", False),
    ("(B)", "B", True),                    # a choice letter, with or without its parentheses
    ("\\text{(B)}", "B", True),
    ("(B)", "D", False),
])
def test_currency_minus_sign_and_choice_letters(cand, gold, expected):
    assert rules.compare(cand, gold) is expected


@pytest.mark.parametrize("text", [
    "Final Answer: " + "$1. $ " * 20_000,          # sentence ends all inside math
    "Final Answer: " + "$x$ is " * 20_000,         # copulas between many math spans
    "The answer is " + "$a$ = " * 20_000 + "2",
])
def test_answer_line_reading_is_not_quadratic(text):
    t0 = time.monotonic()
    [v] = verify_batch([text], ["2"], timeout_s=1.0)
    assert v.reason in REASONS and time.monotonic() - t0 < 2.0
