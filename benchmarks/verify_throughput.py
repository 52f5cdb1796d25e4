"""Throughput of svs-verl's hybrid verifier against verl's own math-verify scorer, on the same pairs.

    python benchmarks/verify_throughput.py [--n 10000] [--seed 0] [--out bench_out/verify.json]

Generates N labelled (response, reference answer) pairs: equivalent and non-equivalent answers in many
surface forms (fractions, decimals, LaTeX, units, percents, intervals, sets, complex numbers, "Answer:"
lines, no answer, long reasoning), then scores all of them with

* ``svs_verl.verify.verify_batch`` (one call, rules first, math-verify workers for the rest), and
* ``verl.utils.reward_score.math_verify.compute_score`` (one call per pair, as verl's reward managers do),

in this one process, and prints both throughputs, their ratio, and every pair on which they disagree,
with the pair's kind and its true label (the generator knows whether the answers are equivalent), so each
difference says which side is right.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path


def _filler(rng: random.Random) -> str:
    words = "we compute the value step by step using the given conditions and simplify carefully".split()
    return " ".join(rng.choice(words) for _ in range(rng.randint(40, 300))) + ".\n"


def make_pairs(n: int, seed: int) -> list[dict]:
    """Labelled pairs: kind, response, answer, equivalent (the truth)."""
    rng = random.Random(seed)
    pairs = []
    kinds = ["int", "int_wrong", "frac", "frac_decimal", "dfrac", "neg_frac", "sqrt", "pi", "interval",
             "interval_wrong", "set", "complex", "complex_wrong", "units", "degrees", "percent", "thousands",
             "answer_line", "no_answer", "assignment", "think", "tuple_order"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        a, b = rng.randint(1, 999), rng.randint(2, 97)
        box, equiv = None, True
        if kind == "int":
            gold, box = str(a), str(a)
        elif kind == "int_wrong":
            gold, box, equiv = str(a), str(a + rng.randint(1, 9)), False
        elif kind == "frac":
            gold, box = f"{a}/{b}", f"\\frac{{{a}}}{{{b}}}"
        elif kind == "frac_decimal":
            q = rng.choice([2, 4, 5, 8])
            gold, box = f"\\frac{{{a}}}{{{q}}}", f"{a / q:g}"
        elif kind == "dfrac":
            gold, box = f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}"
        elif kind == "neg_frac":
            gold, box = f"-\\frac{{{a}}}{{{b}}}", f"\\frac{{-{a}}}{{{b}}}"
        elif kind == "sqrt":
            gold, box = f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{b}}}\\cdot {a}"
        elif kind == "pi":
            gold, box = f"{a}\\pi", f"{a}\\pi"
        elif kind == "interval":
            gold, box = f"[{a}, {a + b})", f"[{a},{a + b})"
        elif kind == "interval_wrong":
            gold, box, equiv = f"[{a}, {a + b})", f"[{a},{a + b}]", False
        elif kind == "set":
            gold, box = f"\\{{{a}, {b}\\}}", f"\\{{{b},{a}\\}}"
        elif kind == "complex":
            gold, box = f"{a}+{b}i", f"{b}i+{a}"
        elif kind == "complex_wrong":
            gold, box, equiv = f"{a}+{b}i", f"{a}-{b}i", False
        elif kind == "units":
            gold, box = str(a), f"{a}\\text{{ cm}}"
        elif kind == "degrees":
            gold, box = str(a), f"{a}^\\circ"
        elif kind == "percent":
            gold, box = str(a), f"{a}\\%"
        elif kind == "thousands":
            big = a * 1000 + b
            gold, box = str(big), f"{big:,}"
        elif kind == "assignment":
            gold, box = str(a), f"x = {a}"
        elif kind == "tuple_order":
            gold, box, equiv = f"({a}, {b})", f"({b}, {a})", a == b
        if kind == "answer_line":
            gold = str(a)
            response = _filler(rng) + f"Answer: {a}"
        elif kind == "no_answer":
            gold, equiv = str(a), False
            response = _filler(rng) + "I am not sure how to finish this."
        elif kind == "think":
            gold = str(a)
            response = f"<think>{_filler(rng)}maybe \\boxed{{{a + 1}}}</think>\n{_filler(rng)}So \\boxed{{{a}}}."
        else:
            response = _filler(rng) + f"Therefore the answer is $\\boxed{{{box}}}$."
        pairs.append({"kind": kind, "response": response, "answer": gold, "equivalent": equiv})
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0, help="per-pair timeout for both verifiers (s)")
    ap.add_argument("--out", type=Path, default=None, help="write figures and differences as JSON here")
    args = ap.parse_args()

    from verl.utils.reward_score.math_verify import compute_score

    from svs_verl.verify import verify_batch, warm_up

    pairs = make_pairs(args.n, args.seed)
    responses, answers = [p["response"] for p in pairs], [p["answer"] for p in pairs]

    # Start both process pools before timing (neither side is charged for interpreter start-up).
    warm_up()
    compute_score("\\boxed{1}", "1")

    t0 = time.perf_counter()
    ours = verify_batch(responses, answers, timeout_s=args.timeout)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    theirs = []
    for i, (r, a) in enumerate(zip(responses, answers)):
        theirs.append(compute_score(r, a, timeout=args.timeout) > 0)
        if (i + 1) % 2000 == 0:
            print(f"  verl compute_score: {i + 1}/{len(pairs)} pairs, {time.perf_counter() - t0:.1f} s", flush=True)
    t_verl = time.perf_counter() - t0

    diffs = []
    for p, o, v in zip(pairs, ours, theirs):
        if o.correct != v:
            diffs.append({"kind": p["kind"], "truth": p["equivalent"], "svs_verl": o.correct, "verl": v,
                          "right": "svs-verl" if o.correct == p["equivalent"] else "verl",
                          "svs_reason": o.reason, "svs_by": o.by, "answer": p["answer"],
                          "extracted": o.extracted, "response_tail": p["response"][-80:]})
    ours_acc = sum(o.correct == p["equivalent"] for p, o in zip(pairs, ours)) / len(pairs)
    verl_acc = sum(v == p["equivalent"] for p, v in zip(pairs, theirs)) / len(pairs)
    by = Counter(o.by for o in ours)

    print(f"pairs: {len(pairs)}  (kinds: {len({p['kind'] for p in pairs})})")
    print(f"svs-verl verify_batch : {len(pairs) / t_ours:10.1f} pairs/s  ({t_ours:.2f} s; "
          f"rules settled {by['rules']}, math-verify {by['math_verify']})")
    print(f"verl compute_score    : {len(pairs) / t_verl:10.1f} pairs/s  ({t_verl:.2f} s)")
    print(f"throughput ratio      : {t_verl / t_ours:.1f}x")
    print(f"agreement with truth  : svs-verl {ours_acc:.4f}, verl {verl_acc:.4f}")
    print(f"verdicts that differ  : {len(diffs)}")
    groups = Counter((d["kind"], d["truth"], d["svs_verl"], d["verl"], d["right"]) for d in diffs)
    for (kind, truth, o, v, right), count in sorted(groups.items(), key=lambda x: -x[1]):
        ex = next(d for d in diffs if (d["kind"], d["truth"], d["svs_verl"], d["verl"]) == (kind, truth, o, v))
        print(f"  {count:5d} x {kind:15s} truth={truth!s:5s} svs-verl={o!s:5s} verl={v!s:5s} -> {right} right;"
              f" e.g. answer {ex['answer']!r}, extracted {ex['extracted']!r}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"pairs": len(pairs), "svs_verl_s": t_ours, "verl_s": t_verl,
                                        "ratio": t_verl / t_ours, "svs_accuracy": ours_acc, "verl_accuracy": verl_acc,
                                        "differences": diffs}, indent=1))


if __name__ == "__main__":
    main()
