"""``svs-verl``: command-line entry point. ``svs-verl --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from pathlib import Path


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"--k must list positive integers, got {text!r}")
    return ks


def read_samples(path: Path) -> "OrderedDict[str, list[bool]]":
    """Per-problem correctness from a JSONL file of ``{"problem_id": ..., "correct": bool}`` lines."""
    per_problem: OrderedDict[str, list[bool]] = OrderedDict()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "problem_id" not in row or "correct" not in row:
                raise SystemExit(f"{path}:{lineno}: expected an object with 'problem_id' and 'correct'")
            if not isinstance(row["correct"], bool):
                raise SystemExit(f"{path}:{lineno}: 'correct' must be true or false, got {row['correct']!r}")
            per_problem.setdefault(str(row["problem_id"]), []).append(row["correct"])
    return per_problem


def cmd_passk(args: argparse.Namespace) -> int:
    from .core import mean_pass_at_k

    per_problem = read_samples(args.samples)
    if not per_problem:
        raise SystemExit(f"{args.samples}: no samples")
    result: dict[str, float | int] = {"n_problems": len(per_problem)}
    for k in args.k:
        try:
            result[f"pass@{k}"] = mean_pass_at_k(per_problem, k)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['n_problems']} problems")
        for k in args.k:
            print(f"pass@{k:<5d} {result[f'pass@{k}']:.4f}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify_batch

    response = Path(args.response_file).read_text(encoding="utf-8") if args.response_file else args.response
    if response is None:
        raise SystemExit("give --response TEXT or --response-file FILE")
    v = verify_batch([response], [args.answer], timeout_s=args.timeout, extract=args.extract)[0]
    print(json.dumps({"correct": v.correct, "reason": v.reason, "extracted": v.extracted, "by": v.by,
                      "detail": v.detail}))
    return 0 if v.correct else 1


def cmd_template(args: argparse.Namespace) -> int:
    from .core import SynthesisTemplate, builtin_templates

    if not args.name:
        print("\n".join(builtin_templates()))
        return 0
    t = SynthesisTemplate.load(args.name)
    for msg in t.messages(args.solution, args.answer):
        print(f"--- {msg['role']}\n{msg['content']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import main as doctor_main

    return doctor_main()


def cmd_configs(args: argparse.Namespace) -> int:
    from .quickstart import configs_dir

    print(configs_dir())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svs-verl", description="SvS for verl 0.9.1: tools around training.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("doctor", help="check verl version, plugin registration, versions and GPUs")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("configs", help="print the directory of the run configs (for --config-path)")
    s.set_defaults(func=cmd_configs)

    s = sub.add_parser("passk", help="pass@k (unbiased estimator) from a JSONL of per-sample verdicts")
    s.add_argument("--samples", type=Path, required=True, help='JSONL lines {"problem_id": ..., "correct": bool}')
    s.add_argument("--k", type=_ks, default=[1], help="comma-separated k values, e.g. 1,4,16")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_passk)

    s = sub.add_parser("verify", help="check one response against a reference answer (exit 0 iff correct)")
    s.add_argument("--answer", required=True, help="reference answer, e.g. '\\frac{1}{2}'")
    s.add_argument("--response", help="the model's response text")
    s.add_argument("--response-file", help="read the response from this file")
    s.add_argument("--extract", default="auto", choices=["auto", "boxed", "last_number"],
                   help="how the answer is read off the response")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds for the symbolic check")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("template", help="list synthesis templates, or render one for a solution")
    s.add_argument("name", nargs="?", help="built-in name or YAML/JSON file; omit to list built-ins")
    s.add_argument("--solution", default="3 + 4 = 7. The answer is \\boxed{7}.", help="seed solution to show")
    s.add_argument("--answer", default="7", help="its final answer")
    s.set_defaults(func=cmd_template)

    from .data.cli import add_parser as add_data_parser
    from .evaluation.cli import add_parsers as add_eval_parsers
    from .model import add_parser as add_model_parser
    from .preview import add_parser as add_preview_parser
    from .quickstart import add_parser as add_quickstart_parser

    add_model_parser(sub)
    add_data_parser(sub)
    add_quickstart_parser(sub)
    add_preview_parser(sub)
    add_eval_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
