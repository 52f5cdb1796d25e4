"""Time of the verifier's rule path against input size, for each adversarial input family.

    python benchmarks/verify_adversarial.py [--sizes 1000,10000,100000] [--family NAME]

Each family builds a (response, reference answer) pair of about N characters that targets one part of the
rule path: nested or unclosed boxes, separators and ``\\text{ }`` groups between boxes (a regular
expression that backtracked for hours before), ``^`` and spaces before ``\\circ``, ``$`` and math
openers, ``Answer:`` lines, digit runs, commas, sets and tuples with many elements, surds, units. For
every family and size it prints the seconds of ``svs_verl.verify.rules_verdict`` (the whole rule path,
in this thread, no deadline) plus each rule run on the uncapped texts (``normalize``, ``reference``,
``read``, ``gold_parts``, ``unwrap`` of both sides), and the ratio to the previous size: linear code shows a ratio near the size
ratio (10), quadratic code about 100. The same families serve ``tests/test_verify_adversarial.py``,
which checks that the largest size finishes, not how fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rep(unit: str, n: int) -> str:
    return unit * max(1, n // max(1, len(unit)))


# name -> builder(n) -> (response, reference answer), each about n characters long on its attacking side
FAMILIES: dict[str, Callable[[int], tuple[str, str]]] = {
    "nested_boxes_response": lambda n: ("\\boxed{" * (n // 8) + "5" + "}" * (n // 8), "5"),
    "nested_boxes_reference": lambda n: ("\\boxed{5}", "\\boxed{" * (n // 8) + "5" + "}" * (n // 8)),
    "unclosed_boxes": lambda n: (_rep("\\boxed{1", n), "1"),
    "many_boxes": lambda n: (_rep("\\boxed{1}, ", n), "1, 2"),
    "text_groups_between_boxes": lambda n: ("\\boxed{2}", "\\boxed{1}" + _rep("\\text{   }", n) + "x\\boxed{2}"),
    "wide_text_groups": lambda n: ("\\boxed{2}", "\\boxed{1}" + ("\\text{" + " " * 24 + "}") * max(1, n // 31)
                                   + "x\\boxed{2}"),
    "separators_between_boxes": lambda n: ("\\boxed{2}", "\\boxed{1}" + _rep(" ,;.$\\quad and or ", n) + "x\\boxed{2}"),
    "degree_spaces": lambda n: ("\\boxed{90^" + " " * n + "x}", "90^" + " " * n + "y"),
    "dollars": lambda n: (_rep("$1", n), "1"),
    "math_openers": lambda n: (_rep("\\( \\[ $$ ", n), "1"),
    "answer_lines": lambda n: (_rep("The answer is\n", n), "1"),
    "answer_words": lambda n: (_rep("final answer ", n) + "answer: 3", "3"),
    "digits_then_letters": lambda n: ("1" * (n // 2) + "a" * (n // 2) + "1", "1"),
    "comma_digits": lambda n: (_rep("1,", n) + "a", "1,1"),
    "sentences": lambda n: ("Answer: " + _rep("x is 1. ", n), "1"),
    "operators": lambda n: (_rep("1 + ", n) + "2", "3"),
    "set_elements": lambda n: ("\\boxed{\\{" + ",".join(str(i) for i in range(n // 6)) + "\\}}",
                               "\\{" + ",".join(str(i) for i in reversed(range(n // 6))) + "\\}"),
    "tuples": lambda n: ("\\boxed{" + _rep("(1,2), ", n)[:-2] + "}", _rep("(2,1), ", n)[:-2]),
    "braces": lambda n: (_rep("{", n) + "\\boxed{1}" + _rep("}", n), "1"),
    "sqrt": lambda n: ("\\boxed{" + _rep("\\sqrt{", n) + "}", "\\sqrt{2}"),
    "unit_tail": lambda n: ("\\boxed{1" + " " * n + "cm}", "1"),
    "text_wrap": lambda n: ("\\boxed{" + _rep("\\text{a", n) + "}", "a"),
    "spaces_only": lambda n: (" " * n, "1"),
    "think_tags": lambda n: (_rep("</think>", n) + "\\boxed{1}", "1"),
    "special_tokens": lambda n: (_rep("<|aaaa", n) + "\\boxed{1}", "1"),
    "assign_chain": lambda n: ("\\boxed{" + _rep("x=", n) + "1}", "1"),
    "many_parts": lambda n: ("".join(f"\\boxed{{\\frac{{{i}}}{{7}}+x}} " for i in range(64)) + "x" * max(0, n - 1500),
                             ", ".join(f"\\frac{{{i}}}{{7}}+x" for i in reversed(range(64)))),
    "matrix": lambda n: ("\\boxed{\\begin{pmatrix}" + _rep("1&", n) + "1\\end{pmatrix}}",
                         "\\begin{pmatrix}" + _rep("1&", n) + "2\\end{pmatrix}"),
}


def run_family(name: str, n: int) -> float:
    """Seconds for the whole rule path on the family's pair, plus each rule on its uncapped input:
    ``normalize`` of both sides, ``reference`` of the answer, ``read`` of the response, ``gold_parts``."""
    from svs_verl.verify import rules, rules_verdict

    response, answer = FAMILIES[name](n)
    t0 = time.perf_counter()
    rules_verdict(response, answer, "auto")
    for text in (response, answer):
        rules.normalize(text)
        rules.reference(text)
        rules.read(text, "auto")
        rules.gold_parts(text)
        rules.unwrap(text)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    names = args.family or list(FAMILIES)
    print(f"{'family':28s} " + " ".join(f"{f'n={n}':>12s}" for n in sizes) + "   ratio per step")
    worst = 0.0
    for name in names:
        times = [run_family(name, n) for n in sizes]
        ratios = [b / a if a > 0 else float("nan") for a, b in zip(times, times[1:])]
        worst = max([worst, *times])
        print(f"{name:28s} " + " ".join(f"{t:12.4f}" for t in times) + "   "
              + " ".join(f"{r:6.1f}" for r in ratios), flush=True)
    print(f"slowest single call: {worst:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
