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
#   BACKEND=fsdp           fsdp | megatron (verl's model_engine=megatron; the setting's SP/OFFLOAD map to Megatron's
#                          context parallel / param+optimizer offload, TRAIN_TP/PP below; needs verl[megatron])
#   TRAIN_TP=$ROLLOUT_TP PP=1   Megatron only: tensor / pipeline parallel of the update
#   ATTN=auto              fsdp only. auto: verl's default (flash_attention_2 + remove-padding) when flash-attn
#                          imports, else sdpa without remove-padding when SP=1 (said on stderr), else a one-line
#                          error; flash: verl's default, unchecked; sdpa: the fallback, always
#   TQ_SIZE=320000         transfer_queue.backend.SimpleStorage.total_storage_size (a cap, not an allocation):
#                          covers the SvS worst case of a step, see recipes/README.md "Paper scale"
#   WORKER_ENV=""          extra NAME=VALUE pairs (space-separated) for every Ray worker, through
#                          ray_kwargs.ray_init.runtime_env.env_vars (the driver's environment does not reach the
#                          workers of a `ray start` cluster)
# Arguments: extra hydra overrides, appended last (they win), e.g. trainer.total_training_steps=10 or --cfg job.
# Multi-node (NNODES>1): recipes/README.md "Several nodes" (svs-verl on every node, shared storage, runtime_env);
# start Ray on every node first (`ray start --head` on one node, `ray start --address=<head>:<port>` on the
# others), then run the recipe on the head node; ray.init() joins that cluster.

export PYTHONSAFEPATH=1   # no Python started here imports from the current directory (a planted module)
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
: "${BACKEND:=fsdp}"
: "${ATTN:=auto}"
: "${TRAIN_TP:=$ROLLOUT_TP}"
: "${PP:=1}"
: "${TQ_SIZE:=320000}"
: "${WORKER_ENV:=}"
: "${VLLM_USE_FLASHINFER_SAMPLER:=0}"
if (( GPUS_PER_NODE % ROLLOUT_TP || NNODES * GPUS_PER_NODE % SP )); then
  echo "ROLLOUT_TP=$ROLLOUT_TP must divide GPUS_PER_NODE=$GPUS_PER_NODE and SP=$SP the $((NNODES * GPUS_PER_NODE)) GPUs" >&2
  exit 2
fi
INSTALL_HINT="pip install -c constraints/gpu-verl-0.9.1.txt"
missing() {   # the Python modules among "$@" that $PYTHON cannot find
  "$PYTHON" -c 'import importlib.util, sys
def has(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
print(" ".join(m for m in sys.argv[1:] if not has(m)))' "$@"
}

q="'"
hq() { printf "'%s'" "${1//$q/\\$q}"; }   # a hydra-quoted string value ({}, backslashes, newlines kept)
svs_args=()
if [ "$VARIANT" = svs ]; then
  svs_args=("svs.solve_template=$(hq "$SOLVE_TEMPLATE")")
fi

# the update's engine: verl's FSDP workers (model_engine=dp) or Megatron (model_engine=megatron), same settings
case "$BACKEND" in
  fsdp)
    engine_args=(
      "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=$SP"
      "actor_rollout_ref.actor.fsdp_config.param_offload=$OFFLOAD"
      "actor_rollout_ref.actor.fsdp_config.optimizer_offload=$OFFLOAD"
    )
    case "$ATTN" in
      flash) ;;
      auto | sdpa)
        if [ "$ATTN" = sdpa ] || [ -n "$(missing flash_attn)" ]; then
          if (( SP > 1 )); then
            echo "[recipe] SP=$SP (Ulysses sequence parallel) needs flash-attn (remove-padding), which $PYTHON cannot import: $INSTALL_HINT 'verl[flash-attn-cu130torch211]==0.9.1' (builds flash-attn 2.8.3 with nvcc), or BACKEND=megatron" >&2
            exit 2
          fi
          echo "[recipe] attention: sdpa without remove-padding (flash-attn is not importable or ATTN=sdpa; same math, slower and more memory): for verl's flash_attention_2, $INSTALL_HINT 'verl[flash-attn-cu130torch211]==0.9.1'" >&2
          engine_args+=("actor_rollout_ref.model.use_remove_padding=false"
                        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa")
        fi ;;
      *) echo "ATTN must be auto, flash or sdpa, got '$ATTN'" >&2; exit 2 ;;
    esac ;;
  megatron)
    if (( NNODES * GPUS_PER_NODE % (TRAIN_TP * PP * SP) )); then
      echo "TRAIN_TP=$TRAIN_TP x PP=$PP x SP=$SP must divide the $((NNODES * GPUS_PER_NODE)) GPUs" >&2
      exit 2
    fi
    if [ "$DRY_RUN" != 1 ]; then
      absent="$(missing megatron.core transformer_engine mbridge flash_attn)"
      if [ -n "$absent" ]; then
        echo "[recipe] BACKEND=megatron needs $absent, which $PYTHON cannot import: $INSTALL_HINT 'verl[megatron]==0.9.1'" >&2
        exit 2
      fi
    fi
    engine_args=(
      "model_engine=megatron"
      "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=$TRAIN_TP"
      "actor_rollout_ref.actor.megatron.pipeline_model_parallel_size=$PP"
      "actor_rollout_ref.actor.megatron.context_parallel_size=$SP"
      "actor_rollout_ref.actor.megatron.param_offload=$OFFLOAD"
      "actor_rollout_ref.actor.megatron.optimizer_offload=$OFFLOAD"
    ) ;;
  *) echo "BACKEND must be fsdp or megatron, got '$BACKEND'" >&2; exit 2 ;;
esac

# environment of every Ray worker on every node (string values: Ray refuses others)
env_args=("+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_ROOT=$(hq "$OUT")"
          "+ray_kwargs.ray_init.runtime_env.env_vars.VLLM_USE_FLASHINFER_SAMPLER=$(hq "$VLLM_USE_FLASHINFER_SAMPLER")")
for kv in $WORKER_ENV; do
  if [[ ! "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
    echo "WORKER_ENV: expected NAME=VALUE pairs, got '$kv'" >&2
    exit 2
  fi
  env_args+=("+ray_kwargs.ray_init.runtime_env.env_vars.${kv%%=*}=$(hq "${kv#*=}")")
done

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
  # training: token-budget micro batches (a whole prompt+response must fit in one x SP), the engine's
  # parallelism and offload (FSDP + Ulysses SP, or Megatron TP/PP/CP)
  "actor_rollout_ref.actor.ppo_mini_batch_size=$MINI_BATCH"
  "actor_rollout_ref.actor.use_dynamic_bsz=true"
  "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$MAX_TOKENS_PER_GPU"
  "${engine_args[@]}"
  # TransferQueue's cap on samples held at once (the SvS worst case of a step fits: recipes/README.md)
  "transfer_queue.backend.SimpleStorage.total_storage_size=$TQ_SIZE"
  # logging, checkpoints, validation (rollout.val_kwargs.n=32 comes from paper_common.yaml)
  "trainer.project_name=$PROJECT"
  "trainer.experiment_name=$EXP"
  "trainer.logger=[console,file]"
  "${env_args[@]}"
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
echo "[recipe] $SETTING, variant $VARIANT, backend $BACKEND -> $RUN_DIR" >&2
exec "${cmd[@]}"
