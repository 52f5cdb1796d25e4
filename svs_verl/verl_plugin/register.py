"""Entry point of the ``verl.plugins`` group: verl imports this module on every ``import verl``.

It must stay cheap (every Ray worker of every run imports verl, SvS or not), so it imports none of the
heavy role modules. It does three things:

1. registers the CPU platform (``VERL_PLATFORM=cpu``) in verl's ``PlatformRegistry`` - first, before
   anything in this process can call verl's ``get_platform()``;
2. on the CPU platform only, arranges for the CPU patches (``svs_verl.patches``) to apply, and verl's FSDP
   engines to be registered for device ``cpu``, when their modules load;
3. arranges for the SvS trainers and the ``svs`` reward manager to register themselves right after verl's
   trainer package / reward-manager package finishes loading (``hooks.after_import``): whoever can look a
   name up in those registries finds it there, and a process that never loads them pays nothing. The
   replay buffer needs no registration: verl loads it by path (``trainer.v1.sampler.custom_sampler``).

verl swallows exceptions raised while loading a plugin (it logs them at DEBUG), so failures are caught
here, logged at WARNING and recorded in ``ERRORS``; what registered is in ``REGISTERED``.
``svs-verl doctor`` reports both and exits non-zero on any failure.
"""

from __future__ import annotations

import importlib
import logging

from ..patches import cpu_selected
from .hooks import after_import

logger = logging.getLogger("svs_verl")

REGISTERED: dict[str, str] = {}
ERRORS: dict[str, str] = {}

# role -> (module to import, the verl module whose loading triggers it, what registering it means)
ROLES = {
    "trainer": ("svs_verl.verl_plugin.trainer", "verl.trainer.ppo.v1", "trainer.v1.trainer_mode=svs|dapo"),
    "reward_manager": ("svs_verl.verl_plugin.reward", "verl.experimental.reward_loop.reward_manager",
                       "reward.reward_manager.name=svs"),
}


def _guarded(role: str, meaning: str, fn) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
        ERRORS[role] = f"{type(exc).__name__}: {exc}"
        logger.warning("svs-verl: could not register the %s: %s", role, ERRORS[role])
    else:
        REGISTERED[role] = meaning
        ERRORS.pop(role, None)


def _register_platform() -> None:
    from . import platform  # noqa: F401  (the @PlatformRegistry.register decorator runs on import)


def _cpu_backend() -> None:
    from ..patches import apply_verl_patches
    from .platform import register_engines

    apply_verl_patches()
    after_import("verl.workers.engine.fsdp.transformer_impl", register_engines)


def _import_role(role: str) -> None:
    module, _, meaning = ROLES[role]
    _guarded(role, meaning, lambda: importlib.import_module(module))


def register_all() -> None:
    if "platform" not in REGISTERED:
        _guarded("platform", "VERL_PLATFORM=cpu", _register_platform)
    if cpu_selected() and "cpu_backend" not in REGISTERED:
        _guarded("cpu_backend", "CPU patches and FSDP engines for device cpu", _cpu_backend)
    for role, (_, trigger, _) in ROLES.items():
        if role not in REGISTERED:
            after_import(trigger, lambda role=role: _import_role(role))


register_all()
