"""Shared test setup. Tests are imported by path (--import-mode=importlib), so verl's own top-level
``tests`` package, which its wheel installs, can never be picked up instead of ours."""

import os

os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/svs_test_helpers.py


def pytest_terminal_summary(terminalreporter):
    """The figures of the real training runs (tests/test_e2e_cpu.py): step times by phase, tokens, memory."""
    e2e = sys.modules.get("e2e_cpu")
    if e2e is not None and e2e.FIGURES:
        terminalreporter.write_sep("=", "e2e figures: verl main_ppo on the CPU (tests/test_e2e_cpu.py)")
        for block in e2e.FIGURES:
            terminalreporter.write_line(block)
