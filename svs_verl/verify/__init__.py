"""Hybrid math verifier: fast rules first, math-verify (in worker processes, hard timeout) for the rest.

    >>> from svs_verl.verify import verify_batch
    >>> [v.correct for v in verify_batch(["... so \\\\boxed{\\\\dfrac{1}{2}}", "x = 3"], ["1/2", "4"])]
    [True, False]

``verify_batch`` is safe to call from any thread, never raises for bad input, and returns one
``Verdict`` per pair with a reason: ``match``, ``mismatch``, ``no_answer``, ``timeout`` or ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.guards import bare_answer
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


def _by_rules(resp: str, gold: str, extract: str) -> Verdict | tuple[str, str, str]:
    """The rule path for one pair: a Verdict, or (gold, candidate, extracted) for math-verify."""
    gold = bare_answer(rules.reference(bare_answer(gold)))
    if not gold:
        return Verdict(False, "error", detail="empty reference answer")
    status, found = rules.read(resp, extract)
    if status != "ok":
        return Verdict(False, "no_answer", detail="unclosed box: unfinished answer" if status == "truncated" else "")
    several = len(found) > 1 and len(rules.gold_parts(gold)) > 1
    cand = ", ".join(found) if several else found[-1]
    cand = bare_answer(cand.strip())
    if len(cand) > rules.MAX_ANSWER_CHARS or not cand:
        return Verdict(False, "mismatch" if cand else "no_answer", cand[:200] or None,
                       detail="extracted answer too long" if cand else "")
    settled = rules.compare_several(found, gold) if several else rules.compare(cand, gold)
    if settled is not None:
        return Verdict(settled, "match" if settled else "mismatch", cand)
    if extract == "last_number":
        return Verdict(False, "mismatch", cand)
    return gold, cand, cand


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
        raise ValueError(f"verify_batch: unknown extract mode {extract!r} (auto, boxed, last_number)")
    if not timeout_s > 0:
        raise ValueError(f"verify_batch: timeout_s must be positive, got {timeout_s!r}")
    verdicts: list[Verdict | None] = [None] * len(responses)
    symbolic: list[tuple[int, str, str, str | None]] = []
    for i, (resp, gold) in enumerate(zip(responses, answers)):
        if not isinstance(resp, str) or not isinstance(gold, str):
            verdicts[i] = Verdict(False, "error", detail=f"expected str, got {type(resp).__name__}/{type(gold).__name__}")
            continue
        try:
            settled = _by_rules(resp, gold, extract)
        except Exception as exc:  # noqa: BLE001
            # a rule bug must cost one verdict, never the batch
            verdicts[i] = Verdict(False, "error", detail=f"rules: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        if isinstance(settled, Verdict):
            verdicts[i] = settled
        else:
            symbolic.append((i, *settled))
    if symbolic:
        # a group's G responses often end in the same answer: check each distinct pair once
        unique = list(dict.fromkeys((g, p, False) for _, g, p, _ in symbolic))
        checked = dict(zip(unique, shared_pool().run(unique, timeout_s)))
        for i, gold, pred, cand in symbolic:
            status, detail = checked[(gold, pred, False)]
            if status not in REASONS:
                status, detail = "error", f"unexpected worker status {status!r}"
            verdicts[i] = Verdict(status == "match", status, cand, "math_verify", detail)
    return verdicts  # type: ignore[return-value]


def warm_up() -> None:
    """Start the math-verify workers now (otherwise the first symbolic check pays their start-up)."""
    shared_pool().warm_up()


__all__ = ["Verdict", "verify_batch", "warm_up", "REASONS"]
