"""Shared test setup. Tests are imported by path (--import-mode=importlib), so verl's own top-level
``tests`` package, which its wheel installs, can never be picked up instead of ours."""

import os

os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/svs_test_helpers.py
