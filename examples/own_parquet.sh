#!/usr/bin/env bash
# Example: SvS on your own problems. Checks TRAIN and VAL, then runs verl's main_ppo with svs_dapo.
#   TRAIN=mine/train.parquet VAL=mine/val.parquet MODEL=Qwen/Qwen2.5-3B-Instruct \
#     bash examples/own_parquet.sh [hydra overrides]
# Env (defaults): TRAIN, VAL, MODEL (required); NGPU=8; PYTHON=python3 (with pandas, verl, svs-verl);
#   DRY_RUN=0 (1: check the files and print the command instead of running it)
# Each file: one row per problem, verl's columns
#   data_source   str   dataset name (reward.reward_kwargs.answer_extraction may differ per source)
#   prompt        list  chat messages, e.g. [{"role": "user", "content": "What is 6*7?"}]
#   reward_model  dict  {"ground_truth": "42", "style": "rule"}: the reference answer, non-empty
#   ability       str   optional, e.g. "math"
#   extra_info    dict  optional, e.g. {"index": 0, "split": "train"}; SvS dumps carry the parent's index
# Other layouts: `svs-verl data prepare NAME --src PATH_OR_HUB_ID --out DIR` converts known datasets.
# If your prompts add an instruction to the problem (e.g. "Put the final answer in \boxed{}."), ask the
# variational problems the same way: svs.solve_template='{problem} Put the final answer in \boxed{}.'
set -euo pipefail
export PYTHONSAFEPATH=1   # no Python started here imports from the current directory (a planted module)
PYTHON="${PYTHON:-python3}"
: "${TRAIN:?set TRAIN=<train parquet>}" "${VAL:?set VAL=<validation parquet>}" "${MODEL:?set MODEL=<HF id or dir>}"
case "$TRAIN" in /*) ;; *) TRAIN="$PWD/$TRAIN" ;; esac   # Ray workers do not run in this directory
case "$VAL" in /*) ;; *) VAL="$PWD/$VAL" ;; esac
if [ -e "$MODEL" ]; then MODEL="$(cd "$MODEL" && pwd)"; fi   # a local directory, else a hub id

"$PYTHON" - "$TRAIN" "$VAL" <<'PY'
import sys
import pandas as pd

bad = 0
for path in sys.argv[1:]:
    df = pd.read_parquet(path)
    missing = {"data_source", "prompt", "reward_model"} - set(df.columns)
    errors = [f"missing column(s) {sorted(missing)}"] if missing else []
    errors += [] if len(df) else ["no rows"]
    for i, row in enumerate(df.to_dict("records") if not missing else []):
        msgs = row["prompt"]
        msgs = [] if msgs is None or isinstance(msgs, str) else list(msgs)
        if not (msgs and all(isinstance(m, dict) and m.get("role") and m.get("content") for m in msgs)):
            errors.append(f"row {i}: prompt must be a non-empty list of {{role, content}} messages")
        reward = row["reward_model"]
        if not str((reward.get("ground_truth") if isinstance(reward, dict) else None) or "").strip():
            errors.append(f"row {i}: reward_model.ground_truth is empty")
    for e in errors[:5]:
        print(f"{path}: {e}", file=sys.stderr)
    if len(errors) > 5:
        print(f"{path}: ... {len(errors) - 5} more", file=sys.stderr)
    if not errors:
        print(f"{path}: {len(df)} rows OK, data sources {sorted(df['data_source'].unique())}", file=sys.stderr)
    bad += bool(errors)
sys.exit(1 if bad else 0)
PY

cmd=("$PYTHON" -m verl.trainer.main_ppo --config-path "$("$PYTHON" -m svs_verl.cli configs)" --config-name svs_dapo
     "actor_rollout_ref.model.path=$MODEL" "data.train_files=$TRAIN" "data.val_files=$VAL"
     actor_rollout_ref.rollout.name=vllm trainer.nnodes=1 "trainer.n_gpus_per_node=${NGPU:-8}"
     actor_rollout_ref.actor.use_dynamic_bsz=true "trainer.logger=[console]" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
exec "${cmd[@]}"
