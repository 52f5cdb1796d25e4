#!/usr/bin/env bash
# svs-verl main job: SvS training with verl's main_ppo (configs/svs_dapo.yaml).
#   bash examples/quickstart.sh                      # installs into .venv, checks the setup
#   MODEL=... TRAIN=... VAL=... bash examples/quickstart.sh [extra hydra overrides]   # trains (CUDA GPU)
# On a machine without a CUDA GPU it stops after the checks (verl's rollout needs vLLM on a GPU) and
# shows the SvS pieces that run anywhere: a synthesis prompt and the verifier.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SVS_VENV:-.venv}"
if [ ! -x "$VENV/bin/svs-verl" ]; then
  python3 -m venv "$VENV"
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q torch==2.13.0   # CPU build; GPU nodes bring their own CUDA torch
  fi
  "$VENV/bin/python" -m pip install -q -e .
fi
. "$VENV/bin/activate"
svs-verl doctor || { echo "fix the problems above first" >&2; exit 1; }

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
   || ! python -c "import vllm" 2>/dev/null; then
  echo
  echo "No CUDA GPU with vLLM here: SvS training needs one (verl's rollout runs on vLLM)."
  echo "What runs here - a synthesis prompt for a seed solution, and the verifier:"
  svs-verl template paper --answer 42 \
    --solution "12 cows plus 30 more cows make 12 + 30 = 42 cows. The answer is \\boxed{42}."
  svs-verl verify --answer 42 --response "12 + 30 = 42, so \\boxed{42}."
  exit 0
fi

: "${MODEL:?set MODEL=<HF model dir or id>}"
: "${TRAIN:?set TRAIN=<train parquet in verl format>}"
: "${VAL:?set VAL=<validation parquet in verl format>}"
NGPU="${NGPU:-$(python -c 'import torch; print(torch.cuda.device_count())')}"
exec python -m verl.trainer.main_ppo --config-path "$(svs-verl configs)" --config-name svs_dapo \
  actor_rollout_ref.model.path="$MODEL" data.train_files="$TRAIN" data.val_files="$VAL" \
  trainer.n_gpus_per_node="$NGPU" trainer.nnodes=1 actor_rollout_ref.rollout.name=vllm \
  trainer.logger='[console]' "$@"
