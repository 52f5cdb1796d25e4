"""Evaluation of a policy on verl-format benchmarks: sampling, verification, pass@k / mean@n / entropy, plots.

* ``generate``  sampling backends (vLLM on a CUDA GPU, transformers anywhere): ``load_generator``, ``Sample``;
* ``run``       ``svs-verl eval``: resumable per-sample JSONL, results.json / .csv / .md (``run_eval``);
* ``plot``      ``svs-verl plot passk`` (curves of eval runs) and ``svs-verl plot training`` (verl metrics);
* ``cli``       ``add_parsers(subparsers)`` adds both commands to ``svs-verl``.

Nothing heavy is imported here: torch / transformers / vllm / matplotlib load inside the functions that
need them. Tests: ``.venv/bin/python -m pytest tests/test_eval.py -q``.
"""
