# Shared launcher of the recipes in this folder: sourced by each setting's script, never run by itself.
# The setting script sets its defaults (SETTING, MODEL, TRAIN, VAL, STEPS, NNODES, GPUS_PER_NODE, ROLLOUT_TP,
# SP, OFFLOAD, MAX_TOKENS_PER_GPU, GPU_MEM_UTIL); this file turns them into ONE verl main_ppo command.
# The SvS run and its DAPO baseline differ only in: the config name (VARIANT=svs -> svs_dapo, VARIANT=dapo ->
# dapo), the experiment name derived from it, and svs.solve_template (a key only the SvS config has: the
# variational problems are asked in the same format as the training prompts). Everything else is shared.
#
# Env (defaults):
#   VARIANT=svs            svs | dapo
#   PROJECT=svs-verl       trainer.project_name
#   EXP=$SETTING-$VARIANT  trainer.experiment_name
#   OUT=$PWD/outputs       run dir $OUT/$PROJECT/$EXP (checkpoints/, validation/); metrics $OUT/$PROJECT/$EXP.jsonl
#   MINI_BATCH=256         actor.ppo_mini_batch_size in prompts, as in the reference's scripts (one update over
#                          the 256 originals; the VPS/SPA groups on top make verl run extra mini-batches)
#   SAVE_FREQ=50 TEST_FREQ=50 KEEP_CKPTS=2
#   PYTHON=python3         interpreter with verl 0.9.1 + svs-verl installed
#   CONFIG_PATH=$(svs-verl configs)
#   SOLVE_TEMPLATE='{problem}<newline>Please reason step by step, and put your final answer within \boxed{}.'
#                          SvS only: user message of a variational problem; must match the training prompts
#                          (this default is what `svs-verl data prepare` appends to every problem)
#   DRY_RUN=0              1: print the command (shell-quoted) instead of running it
# Arguments: extra hydra overrides, appended last (they win), e.g. trainer.total_training_steps=10 or --cfg job.
# Multi-node (NNODES>1): start Ray on every node first (`ray start --head` on one node, `ray start
# --address=<head>:<port>` on the others), then run the recipe on the head node; ray.init() joins that cluster.

case "${VARIANT:=svs}" in
  svs) CONFIG_NAME=svs_dapo ;;
  dapo) CONFIG_NAME=dapo ;;
  *) echo "VARIANT must be svs or dapo, got '$VARIANT'" >&2; exit 2 ;;
esac

: "${PYTHON:=python3}"
: "${PROJECT:=svs-verl}"
: "${EXP:=$SETTING-$VARIANT}"
: "${OUT:=$PWD/outputs}"
# Ray workers do not run in the caller's working directory: local relative paths become absolute
absolute() { case "$1" in /* | *://*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT="$(absolute "$OUT")"
TRAIN="$(absolute "$TRAIN")"
VAL="$(absolute "$VAL")"
if [ -e "$MODEL" ]; then MODEL="$(absolute "$MODEL")"; fi   # a local directory; otherwise a hub id
: "${MINI_BATCH:=256}"
: "${SAVE_FREQ:=50}"
: "${TEST_FREQ:=50}"
: "${KEEP_CKPTS:=2}"
: "${DRY_RUN:=0}"
if [ -z "${SOLVE_TEMPLATE+set}" ]; then
  SOLVE_TEMPLATE=$'{problem}\nPlease reason step by step, and put your final answer within \\boxed{}.'
fi
if [ -z "${CONFIG_PATH:-}" ]; then
  CONFIG_PATH="$("$PYTHON" -m svs_verl.cli configs)"
fi
RUN_DIR="$OUT/$PROJECT/$EXP"
if (( GPUS_PER_NODE % ROLLOUT_TP || NNODES * GPUS_PER_NODE % SP )); then
  echo "ROLLOUT_TP=$ROLLOUT_TP must divide GPUS_PER_NODE=$GPUS_PER_NODE and SP=$SP the $((NNODES * GPUS_PER_NODE)) GPUs" >&2
  exit 2
fi

q="'"
svs_args=()
if [ "$VARIANT" = svs ]; then   # hydra-quoted ({}, backslashes and newlines kept; a quote escaped)
  svs_args=("svs.solve_template=$q${SOLVE_TEMPLATE//$q/\\$q}$q")
fi

cmd=(
  "$PYTHON" -m verl.trainer.main_ppo --config-path "$CONFIG_PATH" --config-name "$CONFIG_NAME"
  # model and data
  "actor_rollout_ref.model.path=$MODEL"
  "data.train_files=$TRAIN"
  "data.val_files=$VAL"
  # length of the run (paper: 300 steps for 3B/8B on MATH-12k, 600 for 32B on DAPO-17k)
  "trainer.total_training_steps=$STEPS"
  # cluster
  "trainer.nnodes=$NNODES"
  "trainer.n_gpus_per_node=$GPUS_PER_NODE"
  # rollout: vLLM, tensor parallel per model size
  "actor_rollout_ref.rollout.name=vllm"
  "actor_rollout_ref.rollout.tensor_model_parallel_size=$ROLLOUT_TP"
  "actor_rollout_ref.rollout.gpu_memory_utilization=$GPU_MEM_UTIL"
  # training: FSDP, token-budget micro batches (a whole prompt+response must fit in one), Ulysses SP
  "actor_rollout_ref.actor.ppo_mini_batch_size=$MINI_BATCH"
  "actor_rollout_ref.actor.use_dynamic_bsz=true"
  "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$MAX_TOKENS_PER_GPU"
  "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=$SP"
  "actor_rollout_ref.actor.fsdp_config.param_offload=$OFFLOAD"
  "actor_rollout_ref.actor.fsdp_config.optimizer_offload=$OFFLOAD"
  # logging, checkpoints, validation (rollout.val_kwargs.n=32 comes from paper_common.yaml)
  "trainer.project_name=$PROJECT"
  "trainer.experiment_name=$EXP"
  "trainer.logger=[console,file]"
  "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_ROOT=$OUT"
  "trainer.default_local_dir=$RUN_DIR/checkpoints"
  "trainer.validation_data_dir=$RUN_DIR/validation"
  "trainer.save_freq=$SAVE_FREQ"
  "trainer.max_actor_ckpt_to_keep=$KEEP_CKPTS"
  "trainer.test_freq=$TEST_FREQ"
  "${svs_args[@]}"
  "$@"
)

if [ "$DRY_RUN" = 1 ]; then   # POSIX quoting (a newline stays inside its quotes): paste it into a shell as is
  for arg in "${cmd[@]}"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then printf '%s ' "$arg"; else printf "'%s' " "${arg//$q/$q\\$q$q}"; fi
  done
  echo
  exit 0
fi
echo "[recipe] $SETTING, variant $VARIANT -> $RUN_DIR" >&2
exec "${cmd[@]}"
