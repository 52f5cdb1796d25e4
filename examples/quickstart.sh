#!/usr/bin/env bash
# svs-verl main job: a short, real SvS training run with verl's main_ppo on one CUDA GPU, with nothing
# downloaded from a model or data hub (the embedded SmolLM2-135M-Instruct and arithmetic data come from PyPI
# packages). See `svs-verl quickstart --help`; arguments are passed on, e.g.
#   bash examples/quickstart.sh --steps 5 --out runs/qs
#   bash examples/quickstart.sh -- svs.enable=false        # the same run as plain DAPO (ablation)
# Env: SVS_VENV (default .venv), PYTHON (default python3).
# Without a CUDA GPU it stops at once, before installing anything, and points to `svs-verl preview`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  cat >&2 <<'EOF'
svs-verl quickstart: no CUDA GPU here (nvidia-smi finds none), so nothing was installed or started.
SvS training runs verl's rollout on vLLM, which needs a CUDA GPU. What runs on this machine is one SvS
synthesis round with the embedded model on the CPU, shown as a table:

    bash tests/run.sh -q -k preview     # or: pip install torch==2.13.0 -e '.[quickstart]'
    .venv/bin/svs-verl preview
EOF
  exit 1
fi

VENV="${SVS_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/svs-verl" ]; then
  # GPU nodes usually bring their CUDA torch (and often vLLM): let the venv see them
  "$PY" -m venv --system-site-packages "$VENV"
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q torch==2.11.0        # the CUDA torch verl 0.9.1 is built against
  fi
  if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q vllm==0.24.0         # the rollout engine verl 0.9.1 pins
  fi
  "$VENV/bin/python" -m pip install -q -e ".[quickstart]"
fi
exec "$VENV/bin/svs-verl" quickstart "$@"
