#!/usr/bin/env bash
# Paper setting: LLaMA-3.1-8B-Instruct on MATH-12k, 300 steps, one node of 8 GPUs (80 GB).
#   VARIANT=svs  bash recipes/llama3.1-8b_math12k.sh [hydra overrides]    # SvS         (configs/svs_dapo.yaml)
#   VARIANT=dapo bash recipes/llama3.1-8b_math12k.sh [hydra overrides]    # DAPO baseline (configs/dapo.yaml), all else identical
#   DRY_RUN=1 bash recipes/llama3.1-8b_math12k.sh                         # print the command instead of running it
# Env (defaults):
#   MODEL=meta-llama/Llama-3.1-8B-Instruct
#   TRAIN=$DATA_DIR/math-12k/train.parquet   VAL=$DATA_DIR/eval/test.parquet   DATA_DIR=data
#   STEPS=300   NNODES=1   GPUS_PER_NODE=8
#   ROLLOUT_TP=2 (vLLM tensor parallel)   SP=1 (Ulysses sequence parallel)   OFFLOAD=false (FSDP param+optimizer)
#   MAX_TOKENS_PER_GPU=16384 (dynamic micro batches)   GPU_MEM_UTIL=0.7 (vLLM)
#   VARIANT, PROJECT, EXP, OUT, MINI_BATCH, SAVE_FREQ, TEST_FREQ, KEEP_CKPTS, SOLVE_TEMPLATE, PYTHON, CONFIG_PATH,
#   DRY_RUN: see recipes/common.sh. Data: recipes/README.md.
set -euo pipefail
SETTING=llama3.1-8b-math12k
: "${DATA_DIR:=data}"
: "${MODEL:=meta-llama/Llama-3.1-8B-Instruct}"
: "${TRAIN:=$DATA_DIR/math-12k/train.parquet}"
: "${VAL:=$DATA_DIR/eval/test.parquet}"
: "${STEPS:=300}"
: "${NNODES:=1}"
: "${GPUS_PER_NODE:=8}"
: "${ROLLOUT_TP:=2}"
: "${SP:=1}"
: "${OFFLOAD:=false}"
: "${MAX_TOKENS_PER_GPU:=16384}"
: "${GPU_MEM_UTIL:=0.7}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
