#!/usr/bin/env bash
# svs-verl main job. Installs svs-verl into .venv (reusing the test environment), then shows the SvS
# pieces working on this machine: the synthesis prompt for a seed solution and the verifier on it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SVS_VENV:-.venv}"
if [ ! -x "$VENV/bin/svs-verl" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -e .
fi
. "$VENV/bin/activate"
svs-verl template paper --solution "12 cows plus 30 more cows make 12 + 30 = 42 cows. The answer is \\boxed{42}." --answer 42
svs-verl verify --answer 42 --response "12 + 30 = 42, so \\boxed{42}."
