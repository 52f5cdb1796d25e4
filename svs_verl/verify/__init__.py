"""Hybrid math verifier: fast rules first, math-verify (in worker processes, hard timeout) for the rest.

    >>> from svs_verl.verify import verify_batch
    >>> [v.correct for v in verify_batch(["... so \\\\boxed{\\\\dfrac{1}{2}}", "x = 3"], ["1/2", "4"])]
    [True, False]

``verify_batch`` is safe to call from any thread, never raises for bad input, and returns one
``Verdict`` per pair with a reason: ``match``, ``mismatch``, ``no_answer``, ``timeout`` or ``error``.
Every pair has the same deadline, ``timeout_s``: the rule path is linear, so a pair up to ``INLINE_CHARS``
runs it inline (at most ~0.15 s at 100k characters on the adversarial families of
``benchmarks/verify_adversarial.py``; a pair whose rules still overrun the deadline is a ``timeout``); a
longer pair goes whole to a worker process, rules and math-verify, and is killed with it at the deadline. ``ground_truth_text``
says whether a reference answer can be checked at all (training and ``eval`` count the ones that cannot).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from . import rules
from .pool import shared_pool

REASONS = ("match", "mismatch", "no_answer", "timeout", "error")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str                  # one of REASONS
    extracted: str | None = None  # the answer the verifier read off the response
    by: str = "rules"            # "rules" or "math_verify"
    detail: str = ""


INLINE_CHARS = 65_536  # pairs up to this long run the (linear) rule path inline; longer ones in a worker
MISSING_TEXTS = frozenset({"none", "null", "nan", "<na>", "nat"})  # str() of a missing value, not an answer


def ground_truth_text(value: Any) -> tuple[str | None, str]:
    """``(text, "")`` for a reference answer the verifier can check, else ``(None, why)``: a null/NaN (never
    the string ``"None"``), an infinite number, a bool, a list of other than one answer, a mapping, an empty
    text, the text of a missing value (``None``, ``nan``, ``null``), a box with nothing in it, or an answer
    longer than ``rules.MAX_ANSWER_CHARS``. Numbers are written out (``3``, ``0.5``)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalars and arrays from parquet
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            return None, f"ground truth is a list of {len(value)} answers"
        value = value[0]
    if value is None:
        return None, "ground truth is null"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, f"ground truth is a {type(value).__name__}, not a string or number"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, f"ground truth is {value} (not a finite number)"
        value = str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    text = str(value).strip()
    if not text:
        return None, "empty ground truth"
    if text.lower() in MISSING_TEXTS:
        return None, f"ground truth is the text {text[:10]!r} of a missing value"
    gold = rules.unwrap(rules.reference(rules.unwrap(text[:MAX_REFERENCE_CHARS])))
    if not gold:
        return None, "ground truth has an empty answer"
    if len(gold) > rules.MAX_ANSWER_CHARS:
        return None, f"ground truth answer is {len(gold)} characters long (over {rules.MAX_ANSWER_CHARS})"
    return text, ""


MAX_REFERENCE_CHARS = 1_000_000  # a reference (a whole worked solution at most) is read up to this length


def rules_verdict(resp: str, gold: str, extract: str) -> Verdict | tuple[str, str, str]:
    """The rule path for one pair: a Verdict, or (gold, candidate, extracted) for math-verify. Linear in the
    input (``benchmarks/verify_adversarial.py``); no deadline of its own (``verify_batch`` gives it one)."""
    gold = rules.unwrap(rules.reference(rules.unwrap(gold[:MAX_REFERENCE_CHARS])))
    if not gold:
        return Verdict(False, "error", detail="empty reference answer")
    if len(gold) > rules.MAX_ANSWER_CHARS:
        return Verdict(False, "error", detail=f"reference answer longer than {rules.MAX_ANSWER_CHARS} characters")
    status, found = rules.read(resp, extract)
    if status != "ok":
        return Verdict(False, "no_answer", detail="unclosed box: unfinished answer" if status == "truncated" else "")
    several = len(found) > 1 and len(rules.gold_parts(gold)) > 1
    cand = (", ".join(found) if several else found[-1]).strip()
    if len(cand) > rules.MAX_ANSWER_CHARS:  # refused before it is unwrapped or normalised
        return Verdict(False, "mismatch", cand[:200], detail="extracted answer too long")
    cand = rules.unwrap(cand)
    if not cand:
        return Verdict(False, "no_answer", None)
    settled = rules.compare_several(found, gold) if several else rules.compare(cand, gold)
    if settled is not None:
        return Verdict(settled, "match" if settled else "mismatch", cand)
    if extract == "last_number":
        return Verdict(False, "mismatch", cand)
    return gold, cand, cand


_by_rules = rules_verdict  # the earlier private name


def verify_batch(responses: Sequence[str], answers: Sequence[str], timeout_s: float = 5.0,
                 extract: str = "auto") -> list[Verdict]:
    """Check each response against its reference answer.

    ``extract`` picks how the answer is read off a response: ``auto`` (the boxes -- all of them when the
    reference has several parts, else the last -- or an ``Answer:`` line after them, else the last value
    the response states, never an expression it only mentions), ``boxed``, or ``last_number``.
    A box opened and never closed after the last complete one is an unfinished answer: ``no_answer``.
    """
    if len(responses) != len(answers):
        raise ValueError(f"verify_batch: {len(responses)} responses but {len(answers)} answers")
    if extract not in ("auto", "boxed", "last_number"):
        raise ValueError(f"verify_batch: unknown extract mode {str(extract)[:40]!r} (auto, boxed, last_number)")
    if not timeout_s > 0:
        raise ValueError(f"verify_batch: timeout_s must be positive, got {str(timeout_s)[:40]}")
    verdicts: list[Verdict | None] = [None] * len(responses)
    symbolic: list[tuple[int, str, str, str | None]] = []
    long_pairs: list[int] = []
    for i, (resp, gold) in enumerate(zip(responses, answers)):
        if not isinstance(resp, str) or not isinstance(gold, str):
            verdicts[i] = Verdict(False, "error", detail=f"expected str, got {type(resp).__name__}/{type(gold).__name__}")
            continue
        if len(resp) + len(gold) > INLINE_CHARS:
            long_pairs.append(i)  # the whole pair, rules included, runs in a worker under the deadline
            continue
        started = time.monotonic()
        try:
            settled = rules_verdict(resp, gold, extract)
        except Exception as exc:  # noqa: BLE001
            # a rule bug must cost one verdict, never the batch
            verdicts[i] = Verdict(False, "error", detail=f"rules: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        spent = time.monotonic() - started
        if spent > timeout_s:  # the same deadline as math-verify's (bounded here by INLINE_CHARS, not enforced)
            verdicts[i] = Verdict(False, "timeout", detail=f"rules took {spent:.3g} s, over the {timeout_s:g} s deadline")
            continue
        if isinstance(settled, Verdict):
            verdicts[i] = settled
        else:
            symbolic.append((i, *settled))
    # a group's G responses often end in the same answer: check each distinct pair once
    unique = list(dict.fromkeys((g, p, False) for _, g, p, _ in symbolic))
    items: list[tuple] = [*unique, *(("pair", responses[i], answers[i], extract) for i in long_pairs)]
    if items:
        replies = shared_pool().run(items, timeout_s)
        checked = dict(zip(unique, replies))
        for i, gold, pred, cand in symbolic:
            status, detail = checked[(gold, pred, False)][:2]
            if status not in REASONS:
                status, detail = "error", f"unexpected worker status {status!r}"
            verdicts[i] = Verdict(status == "match", status, cand, "math_verify", detail)
        for i, reply in zip(long_pairs, replies[len(unique):]):
            status, detail = reply[0], reply[1]
            extracted, by = (reply[2], reply[3]) if len(reply) == 4 else (None, "rules")
            if status not in REASONS:
                status, detail = "error", f"unexpected worker status {status!r}"
            verdicts[i] = Verdict(status == "match", status, extracted, by, detail)
    return verdicts  # type: ignore[return-value]


def warm_up() -> None:
    """Start the math-verify workers now (otherwise the first symbolic check pays their start-up)."""
    shared_pool().warm_up()


__all__ = ["Verdict", "verify_batch", "warm_up", "rules_verdict", "ground_truth_text", "REASONS", "INLINE_CHARS"]
