"""``VERL_PLATFORM=cpu``: verl 0.9.1 on a machine without an accelerator (FSDP2 on gloo, vLLM's CPU build).

verl picks its device backend from ``verl.plugin.platform.PlatformRegistry``; it ships CUDA, ROCm and NPU
platforms only. This one is registered by svs-verl's plugin entry point (``register.py``) before anything can
call verl's ``get_platform()``, and is used only when ``VERL_PLATFORM=cpu`` is set (auto-detection never
picks it: ``is_platform_available`` is False, so GPU machines are untouched).

What each choice removes (measured with verl's own ``main_ppo``; see docs/cpu_backend.md):

* ``ray_resource_name() == "GPU"``: verl's resource pools ask Ray for GPUs; a CPU run declares *logical* GPUs
  (``ray_kwargs.ray_init.num_gpus``), one per FSDP rank / vLLM replica, so verl's placement code runs as is;
* ``communication_backend_name() == "gloo"``: collectives on CPU tensors;
* ``is_ipc_supported() == False``: verl syncs weights to vLLM through its shared-memory + ZMQ path (no CUDA IPC);
* ``current_device()`` returns :class:`CpuDeviceIndex`, see there;
* ``rollout_env_vars()``: vLLM-CPU's thread binding for the rollout server.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Optional

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

NAME = "cpu"


class CpuDeviceIndex(str):
    """The "current device" of a CPU process: torch reads it as the device ``"cpu"``, integers as 0.

    verl uses ``get_device_id()`` in two ways: as a device (``model.to(device=get_device_id())``,
    ``torch.empty(..., device=get_device_id())``) and as an index (``f"{get_device_name()}:{get_device_id()}"``,
    ``int(...)``, comparisons with local ranks). On a CPU-only torch a bare ``0`` means accelerator 0 and
    fails ("Cannot access accelerator device when none is available"); ``"cpu"`` would break the formatted
    ``"cpu:0"``. This value is the string ``"cpu"`` for torch's device parsing and 0 everywhere an index is
    expected (``format``, ``int``, ``index``, ``==``, hashing stays a str's).
    """

    def __new__(cls) -> "CpuDeviceIndex":
        return super().__new__(cls, NAME)

    def __format__(self, spec: str) -> str:
        return format(0, spec)

    def __int__(self) -> int:
        return 0

    def __index__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            return other == 0
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return "CpuDeviceIndex(0)"


class CpuDeviceModule(ModuleType):
    """``torch.cpu`` plus the ``torch.cuda`` functions verl calls on ``get_torch_device()``.

    verl calls memory statistics, cache and RNG functions of the device module (``memory_reserved``,
    ``mem_get_info``, ``empty_cache``, ``get_rng_state``, ...), which ``torch.cpu`` lacks ("module 'torch.cpu'
    has no attribute 'memory_reserved'"). Device memory statistics are 0 (there is no device memory), free /
    total memory is the machine's, RNG state is torch's CPU generator; everything else is ``torch.cpu``'s.
    """

    def __init__(self) -> None:
        super().__init__("svs_verl.cpu_device")

    def __getattr__(self, name: str):
        return getattr(torch.cpu, name)

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device=None) -> None:
        return None

    @staticmethod
    def memory_allocated(device=None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def reset_peak_memory_stats(device=None) -> None:
        return None

    @staticmethod
    def mem_get_info(device=None) -> tuple[int, int]:
        """(available, total) bytes of the machine's memory."""
        info = {}
        try:
            with open("/proc/meminfo", encoding="ascii") as fh:
                for line in fh:
                    key, value = line.split(":", 1)
                    info[key] = int(value.split()[0]) * 1024
        except (OSError, ValueError):
            pass
        total = info.get("MemTotal", 0)
        return info.get("MemAvailable", total), total

    @staticmethod
    def get_device_name(device=None) -> str:
        return NAME

    @staticmethod
    def get_rng_state(device=None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device=None) -> None:
        torch.set_rng_state(state)


_DEVICE_MODULE = CpuDeviceModule()


@PlatformRegistry.register(platform=NAME)
class PlatformCPU(PlatformBase):
    def __init__(self) -> None:
        from ..patches import require_compatible

        require_compatible()  # a clear error when the patches were written for other verl / vLLM versions

    @property
    def device_name(self) -> str:
        return NAME

    @property
    def vendor_name(self) -> str:
        return NAME

    @property
    def device_module(self) -> ModuleType:
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # never auto-detected: only VERL_PLATFORM=cpu selects it

    def current_device(self) -> CpuDeviceIndex:  # type: ignore[override]
        return CpuDeviceIndex()

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"  # what Ray sets for actors holding (logical) GPUs

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        # OpenMP thread pinning fights the trainer's threads on a shared machine. (The KV-cache size comes from
        # rollout.engine_kwargs.vllm.kv_cache_memory_bytes in configs/backend/cpu.yaml; VLLM_CPU_KVCACHE_SPACE,
        # when set, overrides it in whole GiB.)
        return {"VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind")}

    def get_collective_module(self) -> Any:
        return None

    def cudart(self) -> Any:
        return None


def register_engines() -> None:
    """verl's FSDP engines under device ``cpu`` in verl's ``EngineRegistry`` (verl registers them for cuda and
    npu only: "No engine registered for device='cpu' ... backend='fsdp'"). The engine code itself is
    device-agnostic through ``get_device_name()`` / ``get_device_id()``. Runs when verl's FSDP engine module
    has loaded (``hooks.after_import``), on the CPU platform only."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, engine in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        if NAME not in EngineRegistry._engines.get(model_type, {}).get("fsdp2", {}):
            EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device=NAME)(engine)
