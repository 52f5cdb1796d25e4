#!/usr/bin/env bash
# Example: SvS with your own synthesis prompt (examples/my_template.yaml) instead of the built-in "paper".
#   bash examples/custom_template.sh                     # render the template for a sample solution (any machine)
#   MODEL=... TRAIN=... VAL=... bash examples/custom_template.sh [hydra overrides]   # train with it (GPU node)
# The line that matters is the override  svs.template=/absolute/path/to/your_template.yaml
# Env (defaults): TEMPLATE=<this folder>/my_template.yaml; MODEL, TRAIN, VAL (unset: only render); NGPU=8;
#   PYTHON=python3; DRY_RUN=0 (1: print the training command instead of running it)
set -euo pipefail
export PYTHONSAFEPATH=1   # no Python started here imports from the current directory (a planted module)
PYTHON="${PYTHON:-python3}"
TEMPLATE="${TEMPLATE:-$(dirname "$0")/my_template.yaml}"
case "$TEMPLATE" in /*) ;; *) TEMPLATE="$PWD/$TEMPLATE" ;; esac   # Ray workers read it from elsewhere

if [ -z "${MODEL:-}" ]; then
  # what the policy is asked for each seed solution; fails with a message if the template is invalid
  exec "$PYTHON" -m svs_verl.cli template "$TEMPLATE" --answer 42 \
    --solution "Each of the 6 boxes holds 7 pens, so there are 6 * 7 = 42 pens. The answer is \\boxed{42}."
fi
: "${TRAIN:?set TRAIN=<train parquet in verl format>}"
: "${VAL:?set VAL=<validation parquet in verl format>}"
case "$TRAIN" in /*) ;; *) TRAIN="$PWD/$TRAIN" ;; esac
case "$VAL" in /*) ;; *) VAL="$PWD/$VAL" ;; esac
if [ -e "$MODEL" ]; then MODEL="$(cd "$MODEL" && pwd)"; fi   # a local directory, else a hub id
"$PYTHON" -m svs_verl.cli template "$TEMPLATE" > /dev/null   # stop here, not in the trainer, on a bad file
cmd=("$PYTHON" -m verl.trainer.main_ppo --config-path "$("$PYTHON" -m svs_verl.cli configs)" --config-name svs_dapo
     "svs.template=$TEMPLATE"
     "actor_rollout_ref.model.path=$MODEL" "data.train_files=$TRAIN" "data.val_files=$VAL"
     actor_rollout_ref.rollout.name=vllm trainer.nnodes=1 "trainer.n_gpus_per_node=${NGPU:-8}"
     actor_rollout_ref.actor.use_dynamic_bsz=true "trainer.logger=[console]" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
exec "${cmd[@]}"
