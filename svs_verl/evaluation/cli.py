"""The ``eval`` and ``plot`` subcommands of ``svs-verl`` (wired in by ``svs_verl.cli`` through ``add_parsers``).

    svs-verl eval --model MODEL --data FILE.parquet [FILE ...] --n 32 --k 1,8,32 --out DIR
    svs-verl plot passk --runs DIR [DIR ...] [--labels A B ...] --out passk.png
    svs-verl plot training --metrics metrics.jsonl --out training.png
    svs-verl plot compare --metrics svs.jsonl dapo.jsonl --labels SvS DAPO --title "MODEL, DATA, 40 steps, seed 0" --out figs/

See ``svs_verl.evaluation.run`` (eval outputs, resuming) and ``svs_verl.evaluation.plot`` (inputs read).
Heavy imports (torch, transformers, vllm, matplotlib) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..argtypes import float_in, int_at_least

_positive_int = int_at_least(1)
_temperature = float_in(0.0, what="a temperature")
_share = float_in(0.0, 1.0, low_open=True, what="a share")
_seconds = float_in(0.0, low_open=True, what="a number of seconds")


def cmd_eval(args: argparse.Namespace) -> int:
    from .run import EvalConfig, parse_extract, parse_ks, run_eval

    gen_kw = {"batch_size": args.batch_size, "tensor_parallel_size": args.tensor_parallel_size,
              "gpu_memory_utilization": args.gpu_memory_utilization, "entropy": args.vllm_entropy,
              "trust_remote_code": args.trust_remote_code}
    if args.max_model_len:
        gen_kw["max_model_len"] = args.max_model_len
    if args.device:
        gen_kw["device"] = args.device
    cfg = EvalConfig(model=args.model, data=list(args.data), out=args.out, n=args.n, ks=parse_ks(args.k),
                     temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed,
                     backend=args.backend, extract=parse_extract(args.extract), limit=args.limit,
                     overwrite=args.overwrite, verify_timeout_s=args.verify_timeout, chunk=args.chunk,
                     generator_kwargs=gen_kw)
    report = run_eval(cfg, log=sys.stderr)
    sys.stdout.write((Path(args.out) / "results.md").read_text(encoding="utf-8"))
    return 0 if report.results["benchmarks"] else 1


def cmd_plot_passk(args: argparse.Namespace) -> int:
    from .plot import plot_passk

    for path in plot_passk(args.runs, args.out, args.labels):
        print(path)
    return 0


def cmd_plot_training(args: argparse.Namespace) -> int:
    from .plot import plot_training

    print(plot_training(args.metrics, args.out))
    return 0


def cmd_plot_compare(args: argparse.Namespace) -> int:
    from .plot import plot_compare, summary_table

    written, summary = plot_compare(args.metrics, args.out, args.labels, args.title, args.smooth)
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    for name, why in summary["not_written"].items():
        print(f"{name}: not written ({why} in any metrics file)", file=sys.stderr)
    for path in written:
        print(path)
    print(summary_table(summary))
    return 0


def add_parsers(subparsers) -> None:
    """Add ``eval`` and ``plot`` (with ``plot passk`` / ``plot training`` / ``plot compare``) to an argparse subparsers object."""
    s = subparsers.add_parser(
        "eval", help="sample a model n times per problem, verify, write pass@k / mean@n / entropy per benchmark",
        description="Evaluate a model on verl-format benchmarks (a benchmark = one data_source of one file). "
                    "Resumable: rerunning with the same --out generates only the missing samples.")
    s.add_argument("--model", required=True, help="model directory or hub id (a verl HF checkpoint works)")
    s.add_argument("--data", required=True, nargs="+", type=Path,
                   help="verl parquet file(s) (data_source, prompt, reward_model.ground_truth); .jsonl also read")
    s.add_argument("--out", required=True, type=Path, help="output directory (samples/, results.json/.csv/.md)")
    s.add_argument("--n", type=_positive_int, default=32, help="samples per problem (default 32)")
    s.add_argument("--k", default="1,8,32", help="comma-separated k for pass@k, each <= --n (default 1,8,32)")
    s.add_argument("--temperature", type=_temperature, default=1.0,
                   help="sampling temperature (default 1.0, the val_kwargs of configs/paper_common.yaml); 0 = greedy")
    s.add_argument("--top-p", type=_share, default=1.0, help="nucleus sampling mass (default 1.0 = off)")
    s.add_argument("--max-tokens", type=_positive_int, default=8192,
                   help="maximum generated tokens per sample (default 8192 = the paper's max_response_length); "
                        "samples that reach it count as truncated")
    s.add_argument("--seed", type=int, default=0,
                   help="base seed; sample j of problem p uses a seed derived from (seed, p, j) (default 0)")
    s.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                   help="auto: vLLM with a CUDA GPU and vllm installed, else transformers (CPU works, slowly)")
    s.add_argument("--extract", default=None,
                   help="answer extraction: auto, boxed or last_number, or per data source, "
                        "e.g. 'MATH-500=boxed,AIME-2024-30=last_number,default=auto' (default: the "
                        "answer_extraction of the manifest.json next to the data, as `data quickstart` writes it; "
                        "else auto). A mode that differs from the manifest's is warned about")
    s.add_argument("--limit", type=_positive_int, default=None,
                   help="only the first N rows of each file (smoke runs); resuming with a larger N adds problems")
    s.add_argument("--overwrite", action="store_true",
                   help="discard the samples and results already in --out (needed when the generation config changed)")
    s.add_argument("--verify-timeout", type=_seconds, default=5.0, help="seconds per symbolic answer check (default 5)")
    s.add_argument("--chunk", type=_positive_int, default=None,
                   help="samples per generation call, saved to disk after each (default: 8192 vLLM, 4 x batch size transformers)")
    s.add_argument("--batch-size", type=_positive_int, default=32, help="transformers backend: rows per generate call")
    s.add_argument("--device", default=None, help="transformers backend: torch device (default cuda if available, else cpu)")
    s.add_argument("--tensor-parallel-size", type=_positive_int, default=1, help="vLLM backend: GPUs per model")
    s.add_argument("--gpu-memory-utilization", type=_share, default=0.6,
                   help="vLLM backend: share of GPU memory for vLLM (default 0.6; the rest holds the "
                        "transformers copy that computes exact entropy)")
    s.add_argument("--max-model-len", type=_positive_int, default=None, help="vLLM backend: context length limit")
    s.add_argument("--vllm-entropy", choices=["exact", "none"], default="exact",
                   help="vLLM backend: exact token entropy by a teacher-forced transformers pass, or none")
    s.add_argument("--trust-remote-code", action="store_true", help="allow model code from the checkpoint")
    s.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("plot", help="pass@k curves of eval runs, training curves from verl metrics, or runs compared")
    psub = p.add_subparsers(dest="plot_command", required=True, metavar="PLOT")
    s = psub.add_parser("passk", help="pass@k against k (log2) for one or more eval output directories",
                        description="Overlay pass@k curves (k = 1, 2, 4, ... n) of eval runs, per benchmark.")
    s.add_argument("--runs", required=True, nargs="+", type=Path, help="eval output directories (svs-verl eval --out)")
    s.add_argument("--labels", nargs="+", default=None, help="legend labels, one per run (default: directory names)")
    s.add_argument("--out", required=True, type=Path,
                   help="FILE.png / .pdf / .svg ...: one figure in that format, a panel per benchmark; a directory (or a "
                        "path without a suffix): one PNG per benchmark")
    s.set_defaults(func=cmd_plot_passk)
    s = psub.add_parser("training", help="accuracy and entropy per SvS role (and validation) over training steps",
                        description="Training curves from verl's file logger JSONL or a saved console log.")
    s.add_argument("--metrics", required=True, type=Path,
                   help="verl file-logger JSONL (trainer.logger=[console,file]; VERL_FILE_LOGGER_PATH) or a console log")
    s.add_argument("--out", required=True, type=Path, help="image file to write; its suffix names the format (.png, .pdf, .svg, ...)")
    s.set_defaults(func=cmd_plot_training)
    s = psub.add_parser(
        "compare", help="two (or more) runs' training curves on shared figures, held-out pass@k, a summary table",
        description="Compare runs from their verl metric files (file-logger JSONL or console logs), e.g. SvS and "
                    "its DAPO twin. Writes into --out: entropy.png (token entropy per role), accuracy.png "
                    "(accuracy / reward per role), passk.png (held-out pass@k against k: base = the first "
                    "validated step of the first run, each run at its last validated step), synthesis.png "
                    "(synthesis acceptance and reward, runs with SvS only), val.png (held-out mean accuracy) "
                    "and summary.json (the figures' numbers, printed as a table). A figure without data is "
                    "left out (said on stderr).")
    s.add_argument("--metrics", required=True, nargs="+", type=Path,
                   help="one metrics file per run: verl file-logger JSONL (trainer.logger=[console,file]) or a console log")
    s.add_argument("--labels", nargs="+", default=None, help="legend labels, one per run (default: file names)")
    s.add_argument("--title", default=None,
                   help="title of every figure; say model, data, steps and seed, e.g. 'SmolLM2-135M, embedded "
                        "arithmetic, 40 steps, seed 0' (default: the file names and the last step)")
    s.add_argument("--smooth", type=_positive_int, default=1,
                   help="moving average over this many steps for the training curves, raw points drawn faint "
                        "(default 1 = none); summary.json holds the raw values")
    s.add_argument("--out", required=True, type=Path, help="directory to write the PNGs and summary.json into")
    s.set_defaults(func=cmd_plot_compare)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with just these commands (tests, or ``python -m svs_verl.evaluation.cli``)."""
    parser = argparse.ArgumentParser(prog="svs-verl")
    add_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
