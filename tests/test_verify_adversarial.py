"""The verifier on hostile input: every rule finishes on 100k-character adversarial pairs (linear rules,
``benchmarks/verify_adversarial.py`` has the timings), long pairs get the math-verify deadline, a reference
answer that cannot be checked is named, and no worker imports from the caller's working directory."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import svs_verl.verify as verify
from svs_verl.core.guards import bare_answer
from svs_verl.verify import INLINE_CHARS, ground_truth_text, rules, rules_verdict, verify_batch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("verify_adversarial", ROOT / "benchmarks" / "verify_adversarial.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.timeout(60)  # the old separator rule took hours on 7 groups; nested boxes were quadratic (27 s at 10k)
@pytest.mark.parametrize("family", sorted(bench.FAMILIES))
def test_every_rule_finishes_on_a_100k_adversarial_pair(family):
    response, answer = bench.FAMILIES[family](100_000)
    assert max(len(response), len(answer)) >= 50_000
    bench.run_family(family, 100_000)   # rules_verdict plus every rule on the uncapped texts


@pytest.mark.timeout(60)
def test_text_groups_between_boxes_are_separators_or_not_in_linear_time():
    joined = r"\boxed{1}" + r"\text{   }" * 3000 + r"\boxed{2}"      # separators only: a set of two
    assert rules.reference(joined) == r"\{1, 2\}"
    not_joined = r"\boxed{1}" + r"\text{      }" * 3000 + r"x\boxed{2}"  # other text between: the last box
    assert rules.reference(not_joined) == "2"
    assert rules.reference(r"\boxed{1}\text{ and }\boxed{2}") == r"\{1, 2\}"


def test_degree_sign_still_dropped_and_spaces_before_it_are_linear():
    assert rules.normalize(r"90^\circ") == rules.normalize(r"90^{\circ}") == rules.normalize("90 ^ { \\circ }") == "90"
    rules.normalize("90^" + " " * 200_000 + "x")   # was quadratic in the spaces


def test_unwrap_is_bare_answer_in_linear_time():
    rng = random.Random(0)
    tokens = ["\\boxed", "\\fbox", "{", "}", "$", " ", "a", "\\boxed{", "1", "\\boxed {"]
    for _ in range(20_000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 14)))
        assert rules.unwrap(text) == bare_answer(text), text
    deep = "\\boxed{" * 50_000 + "7" + "}" * 50_000
    t0 = time.perf_counter()
    assert rules.unwrap(deep) == "7"
    assert time.perf_counter() - t0 < 30   # bare_answer: about an hour at this depth


def test_compare_refuses_to_normalise_an_over_long_answer():
    long = "1" * (rules.MAX_ANSWER_CHARS + 1)
    assert rules.compare(long, long) is None
    assert rules.compare("1" * 10, "1" * 10) is True


@pytest.mark.timeout(120)
def test_a_pair_too_long_for_the_inline_path_is_verified_in_a_worker(monkeypatch):
    filler = "We add the numbers step by step. " * (INLINE_CHARS // 30)
    response = filler + r"so the answer is \boxed{\dfrac{1}{2}}"
    assert len(response) > INLINE_CHARS

    def inline_rules_must_not_run(*_a, **_k):
        raise AssertionError("the rule path ran inline on a long pair")

    monkeypatch.setattr(verify, "rules_verdict", inline_rules_must_not_run)
    right, wrong, deep = verify_batch([response, response, "\\boxed{" * 20_000 + "2" + "}" * 20_000 + filler],
                                      ["0.5", "3", "2"], timeout_s=30)
    assert (right.correct, right.reason, right.extracted) == (True, "match", r"\dfrac{1}{2}")
    assert (wrong.correct, wrong.reason) == (False, "mismatch")
    assert deep.reason in ("match", "mismatch", "no_answer")   # a verdict, not a hang


@pytest.mark.parametrize("value, why", [
    (None, "null"), (float("nan"), "not a finite"), (float("inf"), "not a finite"), (True, "bool"),
    ("", "empty"), ("   ", "empty ground truth"), ("None", "missing value"), ("nan", "missing value"),
    ({"a": 1}, "dict"), ([1, 2], "list of 2"), ([], "list of 0"), (r"\boxed{}", "empty answer"),
    ("\\boxed{" + "1" * (rules.MAX_ANSWER_CHARS + 5) + "}", "characters long"),
])
def test_a_ground_truth_that_cannot_be_verified_is_named(value, why):
    text, reason = ground_truth_text(value)
    assert text is None and why in reason


@pytest.mark.parametrize("value, text", [("42", "42"), (3, "3"), (2.0, "2"), (0.5, "0.5"), (["1/2"], "1/2"),
                                         (r"\boxed{5}", r"\boxed{5}"), (" x = 3 ", "x = 3")])
def test_a_usable_ground_truth_is_kept(value, text):
    assert ground_truth_text(value) == (text, "")


def test_a_null_ground_truth_never_matches_the_word_none():
    # the reward manager used str(None): "The answer is None." earned reward 1
    verdict = verify_batch(["The answer is None."], [None])[0]     # type: ignore[list-item]
    assert (verdict.correct, verdict.reason) == (False, "error")


PLANTED = """
import os
open(os.path.join({marker_dir!r}, "{name}.ran"), "w").write("imported from the working directory")
raise ImportError("planted {name}")
"""


@pytest.mark.timeout(180)
def test_no_verifier_worker_imports_a_module_planted_in_the_working_directory(tmp_path):
    cwd = tmp_path / "untrusted"
    cwd.mkdir()
    for name in ("math_verify", "sympy", "latex2sympy2_extended"):
        (cwd / f"{name}.py").write_text(PLANTED.format(marker_dir=str(tmp_path), name=name))
    probe = textwrap.dedent("""
        import sys
        sys.path = [p for p in sys.path if p not in ("", ".")] # the probe itself must not import the planted files
        from svs_verl.verify import verify_batch
        v = verify_batch([r"so \\boxed{(x+1)^2}"], ["x^2+2x+1"], timeout_s=60)[0]
        print(v.reason, v.by)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + "."}   # even with '.' on PYTHONPATH
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("*.ran")) == []
    assert out.stdout.split() == ["match", "math_verify"]


def test_an_inline_rule_path_over_the_deadline_is_a_timeout_verdict(monkeypatch):
    real = verify.rules_verdict

    def slow(*args):
        time.sleep(0.3)
        return real(*args)

    monkeypatch.setattr(verify, "rules_verdict", slow)
    (v,) = verify_batch([r"\boxed{2}"], ["2"], timeout_s=0.1)
    assert (v.correct, v.reason) == (False, "timeout") and "deadline" in v.detail
    (v,) = verify_batch([r"\boxed{2}"], ["2"], timeout_s=5)
    assert v.reason == "match"


def test_the_throughput_benchmark_names_a_corpus_line_it_cannot_read(tmp_path):
    spec = importlib.util.spec_from_file_location("verify_throughput", ROOT / "benchmarks" / "verify_throughput.py")
    throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throughput)
    corpus = tmp_path / "c.jsonl"
    good = '{"gold": "1", "response": "\\\\boxed{1}", "expected": true}\n'
    corpus.write_text(good + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(SystemExit, match=r"c.jsonl:2: nested too deeply"):
        throughput.read_corpus(str(corpus))
    corpus.write_text(good + '{"gold": "1", "response": "x", "expected": "yes"}\n')
    with pytest.raises(SystemExit, match=r"c.jsonl:2: expected"):
        throughput.read_corpus(str(corpus))
    corpus.write_text(good)
    assert throughput.read_corpus(str(corpus)) == [{"response": "\\boxed{1}", "answer": "1", "expected": True}]
