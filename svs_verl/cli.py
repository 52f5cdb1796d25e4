"""``svs-verl``: command-line entry point. ``svs-verl --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter, OrderedDict
from pathlib import Path

from .argtypes import short


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be comma-separated integers, got {short(text)}") from None
    if not ks or any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"--k must list positive integers, got {short(text)}")
    return ks


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {short(text)}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {short(text)}")
    return value


def _input_file(path: Path, flag: str) -> Path:
    """``path`` if it is a readable file, else a one-line error naming ``flag`` and the path."""
    if not path.exists():
        raise SystemExit(f"{flag} {path}: no such file")
    if path.is_dir():
        raise SystemExit(f"{flag} {path}: is a directory, not a file")
    return path


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SystemExit(f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start})") from None


def _json_short(value: object, limit: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_samples(path: Path, merge_ids: bool = False) -> "OrderedDict[str, list[bool]]":
    """Per-problem correctness from a JSONL file of ``{"problem_id": ..., "correct": bool}`` lines.

    Problem ids are compared as text; ids that read the same but differ in JSON type (``1`` and ``"1"``) are
    an error naming both lines unless ``merge_ids``."""
    from .data.schema import loads_json

    per_problem: OrderedDict[str, list[bool]] = OrderedDict()
    first: dict[str, tuple[object, int]] = {}     # id as text -> (the id as written, its first line)
    _input_file(Path(path), "--samples")
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = _utf8(raw, f"{path}:{lineno}")
            if not line.strip():
                continue
            try:
                row = loads_json(line)
            except ValueError as exc:  # not JSON, nested too deeply, a number out of range
                raise SystemExit(f"{path}:{lineno}: {exc}") from None
            if not isinstance(row, dict) or "problem_id" not in row or "correct" not in row:
                raise SystemExit(f"{path}:{lineno}: expected an object with 'problem_id' and 'correct'")
            if not isinstance(row["correct"], bool):
                raise SystemExit(f"{path}:{lineno}: 'correct' must be true or false, got {_json_short(row['correct'])}")
            pid = row["problem_id"]
            if isinstance(pid, bool) or not isinstance(pid, (str, int, float)):
                raise SystemExit(f"{path}:{lineno}: 'problem_id' must be a string or number, got {_json_short(pid)}")
            key = str(pid)
            seen, seen_line = first.setdefault(key, (pid, lineno))
            if type(seen) is not type(pid) and not merge_ids:
                raise SystemExit(f"{path}:{lineno}: problem_id {_json_short(pid)} and {_json_short(seen)} (line "
                                 f"{seen_line}) read as the same problem {_json_short(key)}; make the ids consistent, or pass "
                                 f"--merge-ids to count them as one problem")
            per_problem.setdefault(key, []).append(row["correct"])
    return per_problem


def cmd_passk(args: argparse.Namespace) -> int:
    from .core import mean_pass_at_k

    per_problem = read_samples(args.samples, merge_ids=args.merge_ids)
    if not per_problem:
        raise SystemExit(f"{args.samples}: no samples")
    sizes = Counter(len(v) for v in per_problem.values())
    if len(sizes) > 1:
        shown = ", ".join(f"{n} samples: {c} problem(s)" for n, c in sorted(sizes.items()))
        print(f"svs-verl passk: warning: {args.samples}: problems have different sample counts ({shown}); each "
              f"problem's pass@k uses its own n, and the mean weights every problem equally", file=sys.stderr)
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

    if args.response_file:
        path = _input_file(Path(args.response_file), "--response-file")
        response = _utf8(path.read_bytes(), f"--response-file {path}")
    else:
        response = args.response
    if response is None:
        raise SystemExit("give --response TEXT or --response-file FILE")
    v = verify_batch([response], [args.answer], timeout_s=args.timeout, extract=args.extract)[0]
    print(json.dumps({"correct": v.correct, "reason": v.reason, "extracted": v.extracted, "by": v.by,
                      "detail": v.detail}))
    return 0 if v.correct else 1


def cmd_template(args: argparse.Namespace) -> int:
    from .core import builtin_templates

    if not args.name:
        print("\n".join(builtin_templates()))
        return 0
    from .argtypes import load_template

    t = load_template(args.name)
    for msg in t.messages(args.solution, args.answer):
        print(f"--- {msg['role']}\n{msg['content']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import main as doctor_main

    return doctor_main()


def cmd_check_config(args: argparse.Namespace) -> int:
    from .verl_plugin.checks import compose_run_config

    compose_run_config(args.config_name, args.overrides, config_dir=args.config_path)
    print(f"ok: {args.config_name}")
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    from .quickstart import configs_dir

    print(configs_dir())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svs-verl", description="SvS for verl 0.9.1: tools around training.")
    p.add_argument("--debug", action="store_true",
                   help="show the Python traceback of an error instead of the one-line message")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("doctor", help="check verl version, plugin registration, versions and GPUs")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("configs", help="print the directory of the run configs (for --config-path)")
    s.set_defaults(func=cmd_configs)

    s = sub.add_parser("passk", help="pass@k (unbiased estimator) from a JSONL of per-sample verdicts")
    s.add_argument("--samples", type=Path, required=True, help='JSONL lines {"problem_id": ..., "correct": bool}')
    s.add_argument("--k", type=_ks, default=[1], help="comma-separated k values, e.g. 1,4,16")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--merge-ids", action="store_true",
                   help="count problem ids that read the same as text (1 and \"1\") as one problem")
    s.set_defaults(func=cmd_passk)

    s = sub.add_parser("verify", help="check one response against a reference answer (exit 0 iff correct)")
    s.add_argument("--answer", required=True, help="reference answer, e.g. '\\frac{1}{2}'")
    s.add_argument("--response", help="the model's response text")
    s.add_argument("--response-file", help="read the response from this file")
    s.add_argument("--extract", default="auto", choices=["auto", "boxed", "last_number"],
                   help="how the answer is read off the response")
    s.add_argument("--timeout", type=_positive_seconds, default=5.0, help="seconds for the symbolic check (> 0)")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser(
        "check-config", help="compose a run config as main_ppo would and run the SvS start-up checks (CPU, seconds)",
        description="Compose --config-name NAME with OVERRIDES exactly as `python -m verl.trainer.main_ppo "
                    "--config-path $(svs-verl configs) --config-name NAME OVERRIDES` does, then run verl's "
                    "validate_config and every check the SvS trainer runs at start-up (sampler and reward "
                    "wiring, every svs.* key, the synthesis template). No GPU, no Ray. Prints 'ok: NAME'.")
    s.add_argument("--config-name", required=True, help="a config of `svs-verl configs` (svs_dapo, dapo, quickstart, ...)")
    s.add_argument("--config-path", default=None, help="another config directory (default: svs-verl's configs)")
    s.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="hydra overrides, e.g. svs.synthesis_n=4")
    s.set_defaults(func=cmd_check_config)

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


def _command(args: argparse.Namespace) -> str:
    parts = [args.command] + [getattr(args, k) for k in ("data_command", "plot_command") if getattr(args, k, None)]
    return " ".join(parts)


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a bad input raises (not a bug): OSError, ValueError (UnicodeDecodeError, JSONDecodeError),
    YAML errors, hydra/omegaconf errors."""
    errors: list[type[BaseException]] = [OSError, ValueError]
    for module, name in (("yaml", "YAMLError"), ("omegaconf.errors", "OmegaConfBaseException"),
                         ("hydra.errors", "HydraException")):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, name):
            errors.append(getattr(mod, name))
    return tuple(errors)


MAX_MESSAGE_CHARS = 500


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    if len(text) > MAX_MESSAGE_CHARS:  # an exception may quote a whole user value
        text = text[:MAX_MESSAGE_CHARS] + f"... ({len(text)} chars)"
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. A bad input (file, value, YAML/JSON) ends it with ``svs-verl COMMAND: message`` on
    stderr and exit code 1 (``--debug`` or SVS_VERL_DEBUG=1: the traceback instead)."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("SVS_VERL_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"svs-verl {_command(args)}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug or not isinstance(exc, _user_errors()):
            raise
        print(f"svs-verl {_command(args)}: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
