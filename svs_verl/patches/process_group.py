"""verl 0.9.1, ``verl.utils.distributed.initialize_global_process_group_ray``.

It builds the torch backend string ``f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"``, which on the
CPU platform is ``cpu:gloo,cpu:gloo``; torch refuses it: "Duplicate device type cpu in backend string".
verl offers no hook for that string (its caller, ``verl.workers.engine_workers``, passes no backend), so on
the CPU platform the function is wrapped to pass ``backend="cpu:gloo"`` when none is given. A backend given
by the caller (verl's checkpoint engine passes ``"cpu:gloo"`` itself) is left alone.
"""

from __future__ import annotations

import functools
import sys

from . import APPLIED

NAME = "process_group"
CPU_BACKEND = "cpu:gloo"


def apply() -> None:
    module = sys.modules["verl.utils.distributed"]
    original = module.initialize_global_process_group_ray
    if getattr(original, "__svs_patched__", False):
        return

    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or CPU_BACKEND)

    initialize_global_process_group_ray.__svs_patched__ = True
    module.initialize_global_process_group_ray = initialize_global_process_group_ray
    # a module that imported the function by name before this ran keeps the original: rebind it there too
    for mod in list(sys.modules.values()):
        if vars(mod).get("initialize_global_process_group_ray") is original if hasattr(mod, "__dict__") else False:
            mod.initialize_global_process_group_ray = initialize_global_process_group_ray
    APPLIED[NAME] = "verl.utils.distributed.initialize_global_process_group_ray"
