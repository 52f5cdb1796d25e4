#!/usr/bin/env bash
# Paper setting: Qwen2.5-32B-Instruct on DAPO-17k, 600 steps, 4 nodes of 8 GPUs (80 GB).
#   VARIANT=svs  bash recipes/qwen2.5-32b_dapo17k.sh [hydra overrides]    # SvS         (configs/svs_dapo.yaml)
#   VARIANT=dapo bash recipes/qwen2.5-32b_dapo17k.sh [hydra overrides]    # DAPO baseline (configs/dapo.yaml), all else identical
#   DRY_RUN=1 bash recipes/qwen2.5-32b_dapo17k.sh                         # print the command instead of running it
# Env (defaults):
#   MODEL=Qwen/Qwen2.5-32B-Instruct
#   TRAIN=$DATA_DIR/dapo-17k/train.parquet   VAL=$DATA_DIR/eval/test.parquet   DATA_DIR=data
#   STEPS=600   NNODES=4   GPUS_PER_NODE=8
#   ROLLOUT_TP=4 (vLLM tensor parallel)   SP=4 (Ulysses sequence parallel)   OFFLOAD=true (FSDP param+optimizer)
#   MAX_TOKENS_PER_GPU=8192 (dynamic micro batches)   GPU_MEM_UTIL=0.6 (vLLM)
#   VARIANT, PROJECT, EXP, OUT, MINI_BATCH, SAVE_FREQ, TEST_FREQ, KEEP_CKPTS, SOLVE_TEMPLATE, PYTHON, CONFIG_PATH,
#   DRY_RUN: see recipes/common.sh. Data: recipes/README.md.
set -euo pipefail
SETTING=qwen2.5-32b-dapo17k
: "${DATA_DIR:=data}"
: "${MODEL:=Qwen/Qwen2.5-32B-Instruct}"
: "${TRAIN:=$DATA_DIR/dapo-17k/train.parquet}"
: "${VAL:=$DATA_DIR/eval/test.parquet}"
: "${STEPS:=600}"
: "${NNODES:=4}"
: "${GPUS_PER_NODE:=8}"
: "${ROLLOUT_TP:=4}"
: "${SP:=4}"
: "${OFFLOAD:=true}"
: "${MAX_TOKENS_PER_GPU:=8192}"
: "${GPU_MEM_UTIL:=0.6}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
