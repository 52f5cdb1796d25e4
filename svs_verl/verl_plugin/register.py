"""Entry point of the ``verl.plugins`` group: verl imports this module on every ``import verl``.

verl swallows exceptions raised while loading a plugin (it logs them at DEBUG), so this module catches
its own failures, logs them at WARNING, and records what it registered in ``REGISTERED`` and what failed
in ``ERRORS``; ``svs-verl doctor`` reports both and exits non-zero on any failure.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger("svs_verl")

REGISTERED: dict[str, str] = {}
ERRORS: dict[str, str] = {}

# role -> (module, what registering it means)
ROLES = {
    "trainer": ("svs_verl.verl_plugin.trainer", "trainer.v1.trainer_mode=svs|dapo"),
    "sampler": ("svs_verl.verl_plugin.sampler", "trainer.v1.sampler.custom_sampler=SvsReplayBuffer"),
    "reward_manager": ("svs_verl.verl_plugin.reward", "reward.reward_manager.name=svs"),
}


def register_all() -> None:
    for role, (module, meaning) in ROLES.items():
        if role in REGISTERED:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
            ERRORS[role] = f"{type(exc).__name__}: {exc}"
            logger.warning("svs-verl: could not register the %s (%s): %s", role, module, ERRORS[role])
        else:
            REGISTERED[role] = meaning
            ERRORS.pop(role, None)


register_all()
