#!/usr/bin/env bash
# The GPU proof of svs-verl on the device box (one H100; Python 3.12 and torch 2.11.0+cu130 preinstalled; no
# vllm, verl or Ray; no internet; <= 64 MiB carried per call): stage verl 0.9.1 + vLLM 0.24.0 as wheels, install
# them and svs-verl itself, then train svs_dapo and its svs.enable=false twin for 4 steps each with start-up
# trimmed (enforce_eager, 2 agent-loop workers, 1 reward worker, 2 TransferQueue units, no dashboard) and one
# validation at the end, check what the CPU e2e checks, and print the step-cost table.
#
#   bash tests/gpu/run_all.sh --dry-run    # here, on the CPU: everything up to the device calls (tested)
#   bash tests/gpu/run_all.sh --box svs    # on the box, call A (after the staging calls)
#   bash tests/gpu/run_all.sh --box twin   # on the box, call B, right after A (same warm machine)
#
# Device budget (15 min of device time per session, all tries; every figure an estimate from GPU_PATH.md's
# measurements - cold start 1-2 min, wheel install ~1 min, untrimmed main_ppo start-up ~4 min, ~15 s per GRPO
# step of the 135M model - none measured with this script yet):
#   cold start                                                      ~1.5 min
#   8 staging calls, back to back (the box goes back after 30 s idle): 60 MiB each        ~2   min
#   call A (timeout_s 540): last part + install (~1) + svs-verl + model (~0.5)
#                           + SvS run, killed at RUN_TIMEOUT_S=300                      <= 6.5 min
#   call B (timeout_s 540): twin run, killed at RUN_TIMEOUT_S=300, checks, table        <= 5.5 min
#   total                                                     typical ~13 min, worst ~15.5 min
# Check `status` before call B: it needs >= 5.5 min left; a rerun of a failed call does not fit.
# What comes back: call A svs.json, svs.log.gz, svs.checks.txt; call B twin.json, twin.log.gz,
# twin.checks.txt, proof.txt (both runs' checks and the step-cost table): 3 + 4 files, none over 16 MiB.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
STAGE="${STAGE:-.gpu}"                 # stage.sh's DEST (ignored by git; travels only through carry)
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-300}"
CALL_LIMIT_S=540                       # timeout_s of calls A and B (the tool allows 600)
CARRY_LIMIT=$((64 * 1024 * 1024))
WORK=/tmp/gpu_proof

stage_parts() { ls -d "$STAGE"/parts/[0-9][0-9] 2>/dev/null || true; }

box_install() {   # on the box: the wheelhouse (once), svs-verl itself, the model
  export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
  t0=$(date +%s)
  if [ ! -d /tmp/site/verl ]; then
    [ -f /tmp/acc/install.sh ] || { echo "run_all: /tmp/acc has no staged parts: make the staging calls first (--dry-run lists them)"; exit 1; }
    bash /tmp/acc/install.sh /tmp/acc /tmp/site > /dev/null
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/acc/extra/gguf-*.whl
  fi
  # svs-verl itself (its verl.plugins entry point is how verl finds the trainer: without it "Unknown trainer")
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target /tmp/site "$ROOT"
  python3 -c "import importlib.metadata as m; assert any(e.value == 'svs_verl.verl_plugin.register' for e in m.entry_points(group='verl.plugins')), 'svs-verl plugin not registered'"
  [ -f /tmp/smol/config.json ] || bash /tmp/acc/extra/model.sh /tmp/acc /tmp/smol > /dev/null
  echo "run_all: install $(( $(date +%s) - t0 )) s; $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n 1)"
}

case "${1:-}" in
  --box)
    which="${2:?--box svs|twin}"
    if [ "$which" = svs ]; then
      box_install
    else
      [ -d /tmp/site/verl ] && [ -f /tmp/smol/config.json ] && [ -f "$WORK/svs/svs.json" ] || {
        echo "run_all: this box has no install or no SvS run from call A (it was given back between the calls): start again from the staging calls"; exit 1; }
      export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
    fi
    exec python3 tests/gpu/gpu_proof.py run "$which" --work "$WORK" --out "${OUT:?the device call sets OUT}" \
      --model /tmp/smol --timeout "$RUN_TIMEOUT_S" ;;
  --dry-run) ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac

# ---- --dry-run: on the CPU, everything up to the device calls ---------------------------------------------
PY="${PYTHON:-python3}"
echo "== 1. the GPU runs' configs, composed and checked as main_ppo will (svs-verl check-config)"
"$PY" tests/gpu/gpu_proof.py plan
echo "== 2. svs-verl built and installed offline as on the box (pip --no-index --no-deps --target)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"   # what travels to the box: tracked files and untracked ones git does not ignore
{ git ls-files -z; git ls-files -z --others --exclude-standard; } | tar --null -T - -cf - | tar -xf - -C "$tmp/src"
if ! "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$tmp/site" "$tmp/src" \
    > "$tmp/pip.log" 2>&1; then
  tail -n 20 "$tmp/pip.log"; echo "run_all: svs-verl does not build offline"; exit 1
fi
"$PY" - "$tmp/site" <<'PY'
import sys
from importlib.metadata import distributions
site = sys.argv[1]
dist = next(d for d in distributions(path=[site]) if d.metadata["Name"] == "svs-verl")
plugins = [e.value for e in dist.entry_points if e.group == "verl.plugins"]
assert plugins == ["svs_verl.verl_plugin.register"], plugins
assert any(str(f).endswith("configs/svs_dapo.yaml") for f in dist.files), "configs not installed"
print(f"svs-verl {dist.version} installs offline; verl.plugins entry point {plugins[0]}")
PY
echo "== 3. staging plan (carried per call <= 64 MiB: the part + the working tree)"
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
echo "working tree that travels with every call: $((tree / 1024)) KiB"
parts=($(stage_parts))
if [ ${#parts[@]} -eq 0 ]; then
  echo "not staged here ($STAGE/parts missing): bash ../shared/gpu/stage.sh $STAGE   (verl 0.9.1 + vLLM 0.24.0 wheels and the model, in parts of <= 60 MiB)"
  parts=("$STAGE/parts/NN")
else
  for p in "${parts[@]}"; do
    size=$(du -sb "$p" | cut -f1)
    echo "  $p  $((size / 1024 / 1024)) MiB"
    if (( size + tree > CARRY_LIMIT )); then echo "run_all: $p with the working tree is over 64 MiB"; exit 1; fi
  done
fi
echo "== 4. device calls (run them back to back; budget in this script's header)"
n=${#parts[@]}
for ((i = 0; i < n - 1; i++)); do
  echo "call $((i + 1)): carry [\"${parts[i]}\"] timeout_s 60  command: mkdir -p /tmp/acc && cp -r ${parts[i]}/. /tmp/acc/"
done
last="${parts[n - 1]}"
echo "call $n (A): carry [\"$last\"] timeout_s $CALL_LIMIT_S  command: mkdir -p /tmp/acc && cp -r $last/. /tmp/acc/ && bash tests/gpu/run_all.sh --box svs"
echo "call $((n + 1)) (B): timeout_s $CALL_LIMIT_S  command: bash tests/gpu/run_all.sh --box twin"
echo "budget: runs killed at RUN_TIMEOUT_S=$RUN_TIMEOUT_S s; typical ~13 min, worst ~15.5 min of the 15 (header)"
echo "dry run ok"
