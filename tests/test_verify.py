import threading
import time

import pytest

from svs_verl.verify import REASONS, verify_batch, warm_up
from svs_verl.verify import rules
from svs_verl.verify.pool import shared_pool


@pytest.fixture(scope="module", autouse=True)
def _workers():
    warm_up()  # timings below measure verification, not interpreter start-up


EQUIVALENT = [  # (response, reference answer)
    (r"so \boxed{\dfrac{1}{2}}", "1/2"),
    (r"\boxed{0.5}", r"\frac{1}{2}"),
    (r"\boxed{\frac12}", "0.5"),
    (r"\boxed{2+22i}", "22i+2"),
    (r"\boxed{22i+2}", "2+22i"),
    (r"\boxed{[1, 2)}", "[1,2)"),
    (r"\boxed{(-\infty, 3]}", r"(-\infty,3]"),
    (r"\boxed{\{1,2,3\}}", r"\{3,2,1\}"),
    (r"\boxed{5\text{ cm}}", "5"),
    (r"\boxed{90^\circ}", "90"),
    (r"\boxed{1,000}", "1000"),
    (r"\boxed{x = 3}", "3"),
    (r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}"),
    (r"\boxed{2\sqrt{3}}", r"\sqrt{12}"),
    (r"\boxed{50\%}", "50"),
    ("The final answer is 7.", "7"),
    ("Answer: $\\frac{3}{4}$", "0.75"),
    (r"<think>maybe \boxed{3}</think> Hence \boxed{4}", "4"),
    (r"\boxed{\boxed{12}}", "12"),
    (r"\boxed{-\frac{2}{3}}", "-2/3"),
    (r"\boxed{\pi}", r"\pi"),
    (r"\boxed{\left( 1, 2 \right)}", "(1,2)"),
]
DIFFERENT = [
    (r"\boxed{\frac{1}{3}}", "0.33"),
    (r"\boxed{2-22i}", "2+22i"),
    (r"\boxed{[1,2]}", "[1,2)"),
    (r"\boxed{(1,2)}", "(2,1)"),
    (r"\boxed{13}", "12"),
    (r"<think>\boxed{4}</think> so \boxed{3}", "4"),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{12}"),
]


def test_equivalences():
    verdicts = verify_batch([r for r, _ in EQUIVALENT], [a for _, a in EQUIVALENT])
    wrong = [(pair, v) for pair, v in zip(EQUIVALENT, verdicts) if not v.correct]
    assert wrong == []
    assert {v.reason for v in verdicts} == {"match"}


def test_differences():
    verdicts = verify_batch([r for r, _ in DIFFERENT], [a for _, a in DIFFERENT])
    assert [(pair, v.reason) for pair, v in zip(DIFFERENT, verdicts) if v.correct] == []
    assert {v.reason for v in verdicts} == {"mismatch"}


def test_no_answer_and_bad_input_are_verdicts_not_exceptions():
    v = verify_batch(["I do not know.", None, r"\boxed{1}", r"\boxed{1}"], ["5", "5", "", 3])
    assert [x.reason for x in v] == ["no_answer", "error", "error", "error"]
    assert not any(x.correct for x in v)
    with pytest.raises(ValueError, match="2 responses but 1 answers"):
        verify_batch(["a", "b"], ["1"])


def test_last_number_mode_for_small_models():
    v = verify_batch(["3 + 4 = 7", "The sum is 12.", "no digits", "7.0"], ["7", "12", "1", "7"], extract="last_number")
    assert [x.reason for x in v] == ["match", "match", "no_answer", "match"]


ADVERSARIAL = [
    "x" * 100_000,
    "\\boxed{" * 20_000,
    "{" * 50_000 + "}" * 50_000,
    "\\boxed{" + "{" * 5000 + "1" + "}" * 5001,
    "\\boxed{" + "\\frac{" * 3000 + "}",
    "\\boxed{" + "\\sqrt{" * 800 + "2" + "}" * 801,
    "$" + "x^" * 20_000 + "$",
    "\\boxed{" + "(" * 1500 + "1" + ")" * 1500 + "}",
    "".join(chr(i % 256) for i in range(50_000)),
    "\x00\xff\ud7ff" * 10_000,
    "Answer: " + "1+" * 600 + "1",
    "\\boxed{9^{9^{9^{9^{9}}}}}",
    "\\boxed{10^{10^{10}}!}",
    "The answer is " + "\\left(" * 2000,
]


@pytest.mark.parametrize("i", range(len(ADVERSARIAL)))
def test_adversarial_inputs_end_within_timeout(i):
    t0 = time.monotonic()
    [v] = verify_batch([ADVERSARIAL[i]], ["1"], timeout_s=1.0)
    elapsed = time.monotonic() - t0
    assert v.reason in REASONS
    assert not v.correct or v.reason == "match"
    assert elapsed <= 1.0 + 1.0, f"took {elapsed:.2f} s"


def test_stuck_worker_is_replaced_and_pool_keeps_working():
    pool = shared_pool()
    before = pool.replaced
    [v] = verify_batch([r"\boxed{10^{10^{10}}!}"], ["1"], timeout_s=1.0)  # sympy grinds on this
    after = verify_batch([r"\boxed{\dfrac{2}{4}}", r"\boxed{2+22i}"], ["1/2", "22i+2"], timeout_s=5.0)
    assert v.reason == "timeout" and v.detail == "no verdict within 1 s"
    assert pool.replaced == before + 1
    assert [x.correct for x in after] == [True, True]


def test_safe_from_many_threads():
    pairs = [(r"\boxed{22i+2}", "2+22i", True), (r"\boxed{\{1,2\}}", r"\{2,1\}", True),
             (r"\boxed{3}", "4", False), (r"\boxed{\frac{6}{8}}", "3/4", True)] * 5
    results, errors = {}, []

    def work(tid):
        try:
            results[tid] = [v.correct for v in verify_batch([p[0] for p in pairs], [p[1] for p in pairs])]
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert all(results[t] == [p[2] for p in pairs] for t in range(6))


def test_rules_helpers():
    assert rules.last_boxed(r"a \boxed{x^{2}} b \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert rules.last_boxed(r"\boxed{1} then \boxed{unclosed") == "1"
    assert rules.last_boxed(r"\boxed 5") == "5"
    assert rules.answer_line("work\nFinal answer: 12.\n") == "12"
    assert rules.normalize(r"\$ 1{,}000 \$") != ""  # never empty for non-empty text
    assert rules.compare("3/6", "0.5") is True and rules.compare("2x", "x*2") is None


def test_a_slow_item_does_not_hold_up_other_threads():
    """Reward managers verify one trajectory per thread: a stuck check must tie up one worker, not the pool."""
    slow, fast = {}, {}

    def run_slow():
        t0 = time.monotonic()
        [v] = verify_batch([r"\boxed{10^{10^{10}}!}"], ["1"], timeout_s=4.0)
        slow["v"], slow["s"] = v.reason, time.monotonic() - t0

    def run_fast(k):
        t0 = time.monotonic()
        [v] = verify_batch([r"\boxed{\sqrt{2}/2}"], [r"\frac{\sqrt{2}}{2}"], timeout_s=4.0)
        fast[k] = (v.reason, time.monotonic() - t0)

    first = threading.Thread(target=run_slow)
    first.start()
    time.sleep(0.3)
    others = [threading.Thread(target=run_fast, args=(k,)) for k in range(4)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(timeout=60)
    assert slow["v"] == "timeout"
    assert all(reason == "match" and took < 2.0 for reason, took in fast.values()) and len(fast) == 4, fast


def test_answer_line_is_linear_on_long_runs_of_spaces():
    t0 = time.monotonic()
    [v] = verify_batch(["The answer is 1" + " " * 64000 + "ok"], ["1"], timeout_s=1.0)
    assert time.monotonic() - t0 < 2.0 and v.reason in REASONS


@pytest.mark.parametrize("cand,gold", [("2 x", "2"), ("3 pi", "3"), ("2 i", "2"), ("2 x^2", "2"), ("4 r", "4")])
def test_variables_are_not_stripped_as_units(cand, gold):
    assert rules.compare(cand, gold) is None  # left to math-verify, never a rule "match"
    assert not verify_batch([f"\\boxed{{{cand}}}"], [gold])[0].correct


def test_zero_workers_setting_still_verifies(monkeypatch):
    from svs_verl.verify.pool import VerifierPool

    monkeypatch.setenv("SVS_VERIFY_WORKERS", "0")
    pool = VerifierPool()
    try:
        assert pool.size == 1
        assert pool.run([("1/2", "\\frac{1}{2}", False)], 5.0)[0][0] == "match"
    finally:
        pool.close()
