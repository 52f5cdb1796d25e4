import pytest

from svs_verl.core import GUARD_REASONS, GuardConfig, check_problem, guard_all
from svs_verl.core.guards import bare_answer, containment, jaccard

ON = GuardConfig(enable=True)
ORIGINAL = "A farmer has 12 cows and buys 30 more. How many cows does the farmer have now?"
SOLUTION = "The farmer starts with 12 cows and buys 30 more, so 12 + 30 = 42. The answer is \\boxed{42}."


@pytest.mark.parametrize("problem,reason", [
    ("What is 6 times 7, the number of days in six weeks?", None),
    ("Why?", "too_short"),
    ("x" * 5000 + "?", "too_long"),
    ("A bakery sells 6 trays of 7 rolls each.", "not_a_question"),
    ("A shop sells 6 boxes of 7 pens. How many pens are sold? (answer: 42)", "reveals_answer"),
    ("There are 42 pens in 6 boxes. How many pens?", "reveals_answer"),
    ("Compute 6*7 = 42 and then state how many.", "reveals_answer"),
    ("The farmer starts with 12 cows and buys 30 more, so 12 + 30 = 42. How many cows?", "copies_solution"),
    ("A farmer has 12 cows and buys 30 more. How many cows does the farmer have now?", "duplicate_of_original"),
])
def test_guard_reasons(problem, reason):
    got = check_problem(problem, answer="42", solution=SOLUTION, original=ORIGINAL, cfg=ON)
    assert got == reason
    # paper default: no guard at all (only unparsable/empty/over-budget syntheses are unusable)
    assert check_problem(problem, answer="42", solution=SOLUTION, original=ORIGINAL) is None
    assert got is None or got in GUARD_REASONS


def test_short_answers_only_leak_in_explicit_form():
    # "3" appearing as a quantity is fine; "= 3" is a giveaway
    assert check_problem("Tom has 3 bags with 1 apple each. How many apples?", answer="3", cfg=ON) is None
    assert check_problem("What is 1 + 2? Note that 1 + 2 = 3.", answer="3", cfg=ON) == "reveals_answer"
    assert check_problem("How many apples? The answer is $3$.", answer="\\boxed{3}", cfg=ON) == "reveals_answer"
    # a longer number is not a substring hit inside a bigger number
    assert check_problem("What is 1420 divided by 10 minus 100?", answer="42", cfg=ON) is None


def test_sibling_duplicates():
    problems = ["What is the product of six and seven?", "What is the product of six and seven ?",
                "How many legs do 21 birds have in total?"]
    assert guard_all(problems, answer="42", cfg=ON) == [None, "duplicate_of_sibling", None]
    assert guard_all(problems, answer="42") == [None, None, None]


def test_guards_can_be_switched_off():
    cfg = GuardConfig(enable=True, require_question=False, leak_min_answer_chars=None, max_original_similarity=None)
    assert check_problem("There are 42 pens.", answer="42", cfg=cfg) is None
    assert check_problem(ORIGINAL, answer="42", original=ORIGINAL, cfg=cfg) is None
    with pytest.raises(ValueError, match="max_sibling_similarity"):
        GuardConfig(max_sibling_similarity=1.5)


def test_similarity_helpers():
    assert jaccard("a b c", "a b c") == 1.0 and jaccard("a b", "c d") == 0.0
    assert containment("a b c", "x a b c y") == 1.0
    assert bare_answer(" $\\boxed{ 7 }$ ") == "7"
    assert bare_answer("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert bare_answer("\\boxed{a}+\\boxed{b}") == "\\boxed{a}+\\boxed{b}"   # not one wrapper
    assert bare_answer("\\boxed{") == "\\boxed{"                                # unclosed: kept


def test_guards_stay_fast_on_adversarial_text():
    import time

    nasty = ["= " + " " * 3990 + "x?", "answer is" + " \t" * 1990 + "?", "what " * 799 + "?", "=" * 3999 + "?"]
    t0 = time.monotonic()
    for text in nasty:
        check_problem(text, answer="42" * 50, solution=text, original=text, siblings=[text] * 8, cfg=ON)
    assert time.monotonic() - t0 < 2.0
