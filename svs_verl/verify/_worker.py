"""A math-verify worker process: ``python -m svs_verl.verify._worker READ_FD WRITE_FD``.

math-verify times itself out with ``signal.alarm``, which only works in a main thread, so symbolic
checks run here, in the main thread of a dedicated process. The parent enforces a hard per-item deadline
on top and replaces a worker that misses it. Protocol (multiprocessing ``Connection`` objects over two
pipes): the worker sends ``("ready", None)`` once, then answers every ``(gold, pred, is_full_text,
timeout_s)`` with ``(status, detail)``: status is ``match``, ``mismatch``, ``no_answer`` or ``error``.
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
    return ("match" if verify(gold_parsed, pred_parsed, timeout_seconds=secs) else "mismatch"), str(pred_parsed[-1])[:200]


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
        gold, pred, is_full_text, timeout_s = msg
        try:
            reply = check(gold, pred, is_full_text, timeout_s, parse, verify,
                          (LatexExtractionConfig, ExprExtractionConfig))
        except BaseException as exc:  # math-verify's TimeoutException, RecursionError, sympy errors ...
            name = type(exc).__name__
            reply = ("timeout" if "Timeout" in name else "error", f"{name}: {str(exc)[:200]}")
        outbox.send(reply)


if __name__ == "__main__":
    main()
