"""A math-verify worker process: ``python -P -m svs_verl.verify._worker READ_FD WRITE_FD``, started with a
safe working directory (``pool``), so nothing in the user's current directory is ever imported.

math-verify times itself out with ``signal.alarm``, which only works in a main thread, so symbolic
checks run here, in the main thread of a dedicated process. The parent enforces a hard per-item deadline
on top and replaces a worker that misses it. Protocol (multiprocessing ``Connection`` objects over two
pipes): the worker sends ``("ready", None)`` once, then answers every ``(gold, pred, is_full_text,
timeout_s)`` with ``(status, detail)``: status is ``match``, ``mismatch``, ``no_answer`` or ``error``; and
every ``("pair", response, gold, extract, timeout_s)`` (a pair too long to run the rule path inline) with
``(status, detail, extracted, by)``: the rule path, then math-verify when the rules cannot settle it.
"""

from __future__ import annotations

import math
import sys
from multiprocessing.connection import Connection


def check(gold: str, pred: str, is_full_text: bool, timeout_s: float, parse, verify, configs) -> tuple[str, str]:
    latex, expr = configs
    secs = max(1, math.ceil(timeout_s))
    gold_parsed = parse("\\boxed{" + gold + "}", (latex(),), parsing_timeout=secs)
    if not gold_parsed:
        return "error", f"reference answer {gold[:80]!r} could not be parsed"
    pred_text = pred if is_full_text else "\\boxed{" + pred + "}"
    pred_parsed = parse(pred_text, (expr(), latex()), parsing_timeout=secs)
    if not pred_parsed:
        return "no_answer", "math-verify found no answer"
    if verify(gold_parsed, pred_parsed, timeout_seconds=secs) or rounded_match(gold_parsed[0], pred):
        return "match", str(pred_parsed[-1])[:200]
    return "mismatch", str(pred_parsed[-1])[:200]


def check_pair(response: str, gold: str, extract: str, timeout_s: float, parse, verify, configs) -> tuple:
    """One whole pair: the rule path (``rules_verdict``), then math-verify if the rules cannot settle it."""
    from svs_verl.verify import rules_verdict

    settled = rules_verdict(response, gold, extract)
    if not isinstance(settled, tuple):
        return settled.reason, settled.detail, settled.extracted, settled.by
    gold, pred, cand = settled
    status, detail = check(gold, pred, False, timeout_s, parse, verify, configs)
    return status, detail, cand, "math_verify"


def rounded_match(gold_expr, pred: str) -> bool:
    """A decimal prediction of an exact irrational reference (``1.414`` for ``\\sqrt{2}``, ``(-1.73, 1.73)``
    for an interval of surds): each decimal must be the exact value rounded or truncated to its own places
    (``rules.rounds_to``); exact-against-exact is never approximate."""
    from fractions import Fraction

    import sympy

    from svs_verl.verify import rules

    text = rules.normalize(pred)
    if rules.as_number(text) is not None:
        pairs, bracket_ok = [(text, gold_expr)], True
    else:
        shape = rules._structured(text)
        if shape is None or shape[0] != "seq" or not shape[1][0]:
            return False
        opening, elements, closing = shape[1]
        texts = [t for _, t in elements]
        if isinstance(gold_expr, sympy.Interval) and len(texts) == 2:
            bracket_ok = (opening == "(") == bool(gold_expr.left_open) and (closing == ")") == bool(gold_expr.right_open)
            pairs = list(zip(texts, (gold_expr.start, gold_expr.end)))
        elif isinstance(gold_expr, sympy.Tuple) and len(texts) == len(gold_expr) and opening == "(":
            pairs, bracket_ok = list(zip(texts, gold_expr)), True
        else:
            return False
    if not bracket_ok or not any("." in t for t, _ in pairs):
        return False
    for t, g in pairs:
        if not isinstance(g, sympy.Basic) or not g.is_number or g.has(sympy.Float) or g.is_infinite:
            return False
        exact = rules.as_number(t)
        if exact is None:
            return False
        if g.is_Rational:
            if Fraction(int(g.p), int(g.q)) != exact and not rules.rounds_to(t, Fraction(int(g.p), int(g.q))):
                return False
            continue
        if "." not in t or not g.is_real or not rules.rounds_to(t, Fraction(str(sympy.N(g, 40)))):
            return False
    return True


def main() -> None:
    inbox = Connection(int(sys.argv[1]), writable=False)
    outbox = Connection(int(sys.argv[2]), readable=False)
    try:
        from math_verify import parse, verify
        from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig
    except Exception as exc:  # pragma: no cover - reported to the parent
        outbox.send(("failed", f"cannot import math-verify: {exc!r}"))
        return
    outbox.send(("ready", None))
    sys.setrecursionlimit(10000)
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            return  # parent gone
        if msg is None:
            return
        try:
            if msg[0] == "pair":
                reply = check_pair(*msg[1:], parse, verify, (LatexExtractionConfig, ExprExtractionConfig))
            else:
                gold, pred, is_full_text, timeout_s = msg
                reply = check(gold, pred, is_full_text, timeout_s, parse, verify,
                              (LatexExtractionConfig, ExprExtractionConfig))
        except BaseException as exc:  # math-verify's TimeoutException, RecursionError, sympy errors ...
            name = type(exc).__name__
            reply = ("timeout" if "Timeout" in name else "error", f"{name}: {str(exc)[:200]}")
        outbox.send(reply)


if __name__ == "__main__":
    main()
