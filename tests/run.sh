#!/usr/bin/env bash
# The test suite from a fresh clone: makes .venv (Python 3.10-3.12), installs the CPU build of torch and
# svs-verl with its test extras, then runs pytest on tests/ (GPU tests skip themselves without CUDA).
# Usage: bash tests/run.sh [pytest args]     Env: SVS_VENV (default .venv), PYTHON (default python3)
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${SVS_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || { echo "cannot create a virtualenv with $PY" >&2; exit 1; }
fi
. "$VENV/bin/activate"
if ! python -c "import svs_verl, verl, pytest, pytest_timeout, hypothesis" 2>/dev/null; then
  echo "== installing torch==2.13.0 (CPU) and svs-verl[test] into $VENV" >&2
  t0=$(date +%s)
  timeout 1800 python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
  timeout 1800 python -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" >&2
  timeout 1800 python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" >&2
  python -c "import svs_verl, verl, torch; print('installed: verl', verl.__version__, 'torch', torch.__version__)" \
    || { echo "installation failed" >&2; exit 1; }
  echo "== install took $(( $(date +%s) - t0 )) s" >&2
fi
timeout 1500 python -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
