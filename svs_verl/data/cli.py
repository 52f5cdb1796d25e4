"""The ``svs-verl data`` command: ``quickstart`` and ``prepare`` (argparse).

``svs_verl/cli.py`` calls ``add_parser(subparsers)``; each subcommand sets ``func`` to a handler that takes
the parsed ``args`` and returns an exit code. Run ``svs-verl data quickstart --help`` or
``svs-verl data prepare --help``; without the main CLI: ``python -m svs_verl.data.cli data quickstart --out DIR``.
"""

from __future__ import annotations

import argparse
import sys

from ..argtypes import int_at_least
from .schema import BOXED_INSTRUCTION

_count = int_at_least(0)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from . import quickstart

    return quickstart.run(args)


def cmd_prepare(args: argparse.Namespace) -> int:
    from . import prepare

    return prepare.run(args)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` (with ``quickstart`` and ``prepare``) to the main CLI's subparsers."""
    from .prepare import SPECS
    from .quickstart import DEFAULT_MIX, DEFAULT_N_TRAIN, DEFAULT_N_VAL, FAMILIES

    data = subparsers.add_parser("data", help="build datasets in verl's parquet format (quickstart, prepare)",
                                 description="Datasets in verl's parquet format.")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    q = sub.add_parser(
        "quickstart", help="train/val/test parquet for the embedded SmolLM2-135M, no hub needed",
        description="Procedural arithmetic, GSM-symbolic template instances and CHAMP problems (from PyPI wheels) "
                    "as train.parquet, val.parquet, test.parquet and manifest.json. Splits share no problem; the "
                    "same arguments give the same files. Families: "
                    + "; ".join(f"{k}: {v[0]}" for k, v in FAMILIES.items()) + ".")
    q.add_argument("--out", required=True, help="output directory (created if missing)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--n-train", type=_count, default=DEFAULT_N_TRAIN,
                   help=f"train rows (default {DEFAULT_N_TRAIN}); small families repeat when asked for more "
                        "rows than they have problems")
    q.add_argument("--n-val", type=_count, default=DEFAULT_N_VAL,
                   help=f"val rows asked for (default {DEFAULT_N_VAL}); same mix as train, each problem once, so a "
                        "small family may give fewer")
    q.add_argument("--n-test", type=_count, default=None,
                   help="CHAMP problems in test.parquet (default: all usable; 0: no test split)")
    q.add_argument("--mix", default=None,
                   help="family weights for train and val, e.g. 'arith-l1=0.7,gsm-symbolic=0.3' (normalised; "
                        "default " + ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()) + ")")
    q.set_defaults(func=cmd_quickstart)

    names = "; ".join(f"{s.name}: {s.data_source}, {s.split}" + (f", hub {s.hub}" if s.hub else "")
                      + (f" ({s.note})" if s.note else "") for s in SPECS.values())
    p = sub.add_parser(
        "prepare", help="a paper dataset (MATH-12k, DAPO-17k, MATH-500, AIME, ...) from a file or the hub",
        description="Convert a dataset to verl parquet: validate every row (bad rows go to DIR/NAME.rejected.jsonl "
                    "by row number, 0-based, with the field at fault), drop exact duplicates and problems found in "
                    f"--dedup-against files, write DIR/NAME.parquet and DIR/NAME.report.json. Datasets: {names}.")
    p.add_argument("name", choices=list(SPECS), metavar="NAME", help="dataset: " + ", ".join(SPECS))
    p.add_argument("--src", default=None,
                   help="local .parquet/.jsonl/.json/.csv file, or a Hugging Face hub id (needs internet; default: "
                        "the dataset's usual hub id)")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--instruction", default=BOXED_INSTRUCTION,
                   help="appended to each problem on a new line (a text containing {problem} is used as the whole "
                        "template; '' for none). Default: %(default)r")
    p.add_argument("--rewrap", action="store_true",
                   help="for rows already in verl format: replace the prompt by the problem + --instruction "
                        "(default: keep their prompt)")
    p.add_argument("--dedup-against", nargs="+", metavar="FILE", default=[],
                   help="eval file(s) (parquet/jsonl/json/csv, verl or raw rows): drop problems that appear in them")
    p.add_argument("--split", default=None,
                   help="split name for extra_info.split; also names the output DIR/SPLIT.parquet, e.g. --split "
                        "train -> DIR/train.parquet (default: the dataset's own split, output DIR/NAME.parquet)")
    p.add_argument("--hub-split", default=None,
                   help="comma-separated hub split(s) to load when --src is a hub id (default: the dataset's usual "
                        "ones, e.g. train,test for math-12k)")
    p.add_argument("--split-by-source", action="store_true",
                   help="write one DIR/<data_source>.parquet per data_source (e.g. MATH-500, AIME-2024-30, "
                        "AIME-2025-30 of one eval file)")
    p.add_argument("--data-source", default=None, help="override data_source of every row")
    p.add_argument("--problem-key", default=None, help="column holding the problem (overrides the dataset's mapping)")
    p.add_argument("--answer-key", default=None, help="column holding the answer (overrides the dataset's mapping)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 and write no parquet when any row is invalid (duplicates and overlaps are not "
                        "errors)")
    p.set_defaults(func=cmd_prepare)
    return data


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m svs_verl.data.cli data quickstart --out DIR``."""
    parser = argparse.ArgumentParser(prog="svs-verl")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
