"""Throughput of svs-verl's hybrid verifier against verl's own math-verify scorer, on the same pairs, and a
three-way differential (svs-verl, math-verify, verl's ``compute_score``).

    python benchmarks/verify_throughput.py [--n 10000] [--seed 0] [--out bench_out/verify.json]
        [--samples RUN/samples/*.jsonl] [--corpus CASES.jsonl]

Generates N labelled (response, reference answer) pairs: equivalent and non-equivalent answers in many
surface forms (fractions, decimals, LaTeX, units, percents, intervals, sets, complex numbers, "Answer:"
lines, no answer, long reasoning), then scores all of them with

* ``svs_verl.verify.verify_batch`` (one call, rules first, math-verify workers for the rest), and
* ``verl.utils.reward_score.math_verify.compute_score`` (one call per pair, as verl's reward managers do),

in this one process, and prints both throughputs, their ratio, and every pair on which they disagree,
with the pair's kind and its true label (the generator knows whether the answers are equivalent), so each
difference says which side is right.

The differential part adds math-verify itself (``verify(parse(gold), parse(response))``, defaults) and
prints, grouped by kind with counts and one example each, every pair on which the three disagree:

* on the generated pairs (kind = generator kind, with the truth);
* on real model responses: ``--samples`` takes the ``samples/<benchmark>.jsonl`` files ``svs-verl eval``
  writes (``response`` and ``answer`` per line; no truth, kind = what the response looks like); skipped,
  with the reason printed, when none is given;
* on a labelled corpus: ``--corpus`` takes JSONL lines ``{"gold", "response", "expected"}`` (e.g. built by
  ``benchmarks/verify_corpus.py`` from public grader test suites) and prints each grader's agreement.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path


def read_corpus(path: str) -> list[dict]:
    """``{"gold", "response", "expected"}`` lines as pairs; a line that is not one stops with its number."""
    from svs_verl.data.schema import loads_json

    pairs = []
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                c = loads_json(line)
            except ValueError as exc:
                raise SystemExit(f"{path}:{lineno}: {exc}") from None
            if not isinstance(c, dict) or not isinstance(c.get("gold"), str) or not isinstance(c.get("response"), str) \
                    or not isinstance(c.get("expected"), bool):
                raise SystemExit(f"{path}:{lineno}: expected {{\"gold\": str, \"response\": str, \"expected\": bool}}")
            pairs.append({"response": c["response"], "answer": c["gold"], "expected": c["expected"]})
    return pairs


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


def feature_kind(response: str, answer: str) -> str:
    """What a pair looks like, for grouping disagreements where no generator kind exists."""
    from svs_verl.verify import rules

    status, found = rules.read(response)
    text = rules.final_segment(response)
    if status == "truncated":
        return "unclosed box"
    boxes = rules.all_boxed(text)
    if len(boxes) > 1:
        return "several boxes"
    if not boxes:
        if status != "ok":
            return "no answer read"
        return "answer line" if rules.answer_line(text) is not None else "no box, no answer line"
    cand = found[-1] if found else ""
    both = cand + " " + answer
    if "%" in both or "percent" in both:
        return "percent"
    if "matrix" in both:
        return "matrix"
    if any(op in both for op in ("<", ">", "\\le", "\\ge", "\\neq")):
        return "relation"
    norm = rules.normalize(cand)
    if "." in norm and rules.as_number(norm) is not None and "." not in rules.normalize(answer):
        return "decimal vs exact"
    if "," in norm:
        return "list / tuple / interval"
    if "=" in cand:
        return "equation / assignment"
    if "\\text" in both or any(c.isalpha() for c in rules.normalize(answer).replace("\\", "")):
        return "symbolic / text"
    return "number"


def math_verify_scores(responses: list[str], answers: list[str]) -> tuple[list[bool], float]:
    """math-verify itself, defaults, one call per pair (``parse`` the reference and the response, ``verify``)."""
    from math_verify import parse, verify

    out, t0 = [], time.perf_counter()
    for r, a in zip(responses, answers):
        gold = a if ("$" in a or "\\boxed" in a) else f"${a}$"
        try:
            out.append(bool(verify(parse(gold), parse(r))))
        except Exception:  # noqa: BLE001 - a crash scores 0, as in verl
            out.append(False)
    return out, time.perf_counter() - t0


def verl_scores(responses: list[str], answers: list[str], timeout: float) -> tuple[list[bool], float]:
    from verl.utils.reward_score.math_verify import compute_score

    out, t0 = [], time.perf_counter()
    for i, (r, a) in enumerate(zip(responses, answers)):
        try:
            out.append(compute_score(r, a, timeout=timeout) > 0)
        except Exception:  # noqa: BLE001
            out.append(False)
        if (i + 1) % 2000 == 0:
            print(f"  verl compute_score: {i + 1}/{len(responses)} pairs, {time.perf_counter() - t0:.1f} s", flush=True)
    return out, time.perf_counter() - t0


def differential(title: str, pairs: list[dict], ours: list, mv: list[bool], verl: list[bool],
                 kind_of, truth_key: str | None) -> list[dict]:
    """Print every pair on which the three graders disagree, grouped by kind, and return them."""
    diffs = []
    for p, o, m, v in zip(pairs, ours, mv, verl):
        if not (o.correct == m == v):
            d = {"kind": kind_of(p), "svs_verl": o.correct, "math_verify": m, "verl": v, "svs_reason": o.reason,
                 "answer": p["answer"], "extracted": o.extracted, "response_tail": p["response"][-100:]}
            if truth_key is not None:
                d["truth"] = p[truth_key]
                d["right"] = ",".join(n for n, x in (("svs-verl", o.correct), ("math-verify", m), ("verl", v))
                                      if x == p[truth_key]) or "none"
            diffs.append(d)
    print(f"\n== differential: {title}: {len(pairs)} pairs, the three graders disagree on {len(diffs)}")
    if truth_key is not None:
        for name, got in (("svs-verl", [o.correct for o in ours]), ("math-verify", mv), ("verl", verl)):
            agree = sum(g == p[truth_key] for g, p in zip(got, pairs)) / max(1, len(pairs))
            print(f"  agreement with the expected verdicts: {name:12s} {agree:.4f}")
    key = ("kind", "truth", "svs_verl", "math_verify", "verl", "right") if truth_key else \
        ("kind", "svs_verl", "math_verify", "verl")
    groups = Counter(tuple(d.get(k) for k in key) for d in diffs)
    for g, count in sorted(groups.items(), key=lambda x: (-x[1], str(x[0]))):
        ex = next(d for d in diffs if tuple(d.get(k) for k in key) == g)
        fields = dict(zip(key, g))
        label = " ".join(f"{k}={fields[k]!s}" for k in key[1:])
        print(f"  {count:5d} x {fields['kind']:24s} {label}\n"
              f"          e.g. answer {ex['answer'][:60]!r}, svs-verl read {str(ex['extracted'])[:60]!r}, "
              f"response ...{ex['response_tail'][-70:]!r}")
    return diffs


def load_samples(paths: list[Path]) -> list[dict]:
    from svs_verl.evaluation.plot import jsonl_objects

    return [{"response": row["response"], "answer": row["answer"]} for path in paths for row in jsonl_objects(path)
            if isinstance(row.get("response"), str) and isinstance(row.get("answer"), str)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0, help="per-pair timeout for both verifiers (s)")
    ap.add_argument("--out", type=Path, default=None, help="write figures and differences as JSON here")
    ap.add_argument("--samples", type=Path, nargs="*", default=[],
                    help="svs-verl eval samples/<benchmark>.jsonl files (real model responses)")
    ap.add_argument("--corpus", type=Path, default=None,
                    help='labelled JSONL cases {"gold", "response", "expected"} (e.g. from benchmarks/verify_corpus.py)')
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
    slowest = _slowest_pair(verify_batch, pairs, ours, args.timeout)

    theirs, t_verl = verl_scores(responses, answers, args.timeout)

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
    print(f"slowest svs-verl pair : {slowest[0]:.3f} s ({slowest[1]})")
    print(f"agreement with truth  : svs-verl {ours_acc:.4f}, verl {verl_acc:.4f}")
    print(f"verdicts that differ  : {len(diffs)}")
    groups = Counter((d["kind"], d["truth"], d["svs_verl"], d["verl"], d["right"]) for d in diffs)
    for (kind, truth, o, v, right), count in sorted(groups.items(), key=lambda x: -x[1]):
        ex = next(d for d in diffs if (d["kind"], d["truth"], d["svs_verl"], d["verl"]) == (kind, truth, o, v))
        print(f"  {count:5d} x {kind:15s} truth={truth!s:5s} svs-verl={o!s:5s} verl={v!s:5s} -> {right} right;"
              f" e.g. answer {ex['answer']!r}, extracted {ex['extracted']!r}")

    # -- differential: math-verify itself as the third grader ------------------------------------------
    mv, t_mv = math_verify_scores(responses, answers)
    print(f"\nmath-verify (parse+verify, defaults): {len(pairs) / t_mv:10.1f} pairs/s  ({t_mv:.2f} s); "
          f"svs-verl is {t_mv / t_ours:.1f}x faster")
    report = {"pairs": len(pairs), "svs_verl_s": t_ours, "verl_s": t_verl, "math_verify_s": t_mv,
              "ratio": t_verl / t_ours, "slowest_s": slowest[0], "svs_accuracy": ours_acc, "verl_accuracy": verl_acc,
              "differences": diffs}
    report["differential_generated"] = differential(
        "generated pairs", pairs, ours, mv, theirs, lambda p: p["kind"], "equivalent")

    if args.samples:
        real = load_samples(args.samples)
        if real:
            r_resp, r_ans = [p["response"] for p in real], [p["answer"] for p in real]
            r_ours = verify_batch(r_resp, r_ans, timeout_s=args.timeout)
            r_mv, _ = math_verify_scores(r_resp, r_ans)
            r_verl, _ = verl_scores(r_resp, r_ans, args.timeout)
            report["differential_samples"] = differential(
                f"model responses from {len(args.samples)} samples file(s)", real, r_ours, r_mv, r_verl,
                lambda p: feature_kind(p["response"], p["answer"]), None)
        else:
            print("\n== differential: model responses: skipped (the --samples files hold no response/answer lines)")
    else:
        print("\n== differential: model responses: skipped (no --samples given; pass the samples/<benchmark>.jsonl "
              "files that `svs-verl eval` writes)")

    if args.corpus:
        cpairs = read_corpus(args.corpus)
        c_resp, c_ans = [p["response"] for p in cpairs], [p["answer"] for p in cpairs]
        c_ours, c_slow = [], (0.0, "")
        for r, a in zip(c_resp, c_ans):  # one at a time: each case's own latency
            t0 = time.perf_counter()
            c_ours.extend(verify_batch([r], [a], timeout_s=args.timeout))
            took = time.perf_counter() - t0
            if took > c_slow[0]:
                c_slow = (took, r[-60:])
        c_mv, _ = math_verify_scores(c_resp, c_ans)
        c_verl, _ = verl_scores(c_resp, c_ans, args.timeout)
        report["differential_corpus"] = differential(
            f"corpus {args.corpus.name}", cpairs, c_ours, c_mv, c_verl,
            lambda p: feature_kind(p["response"], p["answer"]), "expected")
        print(f"  slowest svs-verl case: {c_slow[0]:.3f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


def _slowest_pair(verify_batch, pairs: list[dict], ours: list, timeout: float) -> tuple[float, str]:
    """The longest single-pair latency: every pair verified again on its own (rule-path pairs take
    microseconds, so this costs about what the batch did)."""
    worst = (0.0, "")
    for p in pairs:
        t0 = time.perf_counter()
        verify_batch([p["response"]], [p["answer"]], timeout_s=timeout)
        took = time.perf_counter() - t0
        if took > worst[0]:
            worst = (took, p["kind"])
    return worst


if __name__ == "__main__":
    main()
