"""``svs-verl doctor``: is this environment ready to train with SvS inside verl?

Checks that verl is exactly 0.9.1, that importing verl really registered svs-verl's trainer, sampler and
reward manager (verl hides plugin import errors), and reports versions, GPUs and the CPU backend (vLLM's CPU
build importable, the CPU platform registered, which patches apply and the versions they were written for).
Exit code 0 only when nothing is wrong; a CPU backend that is not installed is a problem only when
``VERL_PLATFORM=cpu`` asks for it.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
import os
import warnings

REQUIRED_VERL = "0.9.1"


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def run_checks() -> tuple[list[tuple[str, str]], list[str]]:
    """(report lines, problems)."""
    lines: list[tuple[str, str]] = []
    problems: list[str] = []
    for dist in ("svs-verl", "verl", "torch", "vllm", "transformers", "ray", "transferqueue", "math-verify"):
        lines.append((dist, _version(dist) or "not installed"))
    verl_version = _version("verl")
    if verl_version != REQUIRED_VERL:
        problems.append(f"verl {verl_version or 'is not installed'}: svs-verl needs exactly verl=={REQUIRED_VERL} "
                        f"(pip install 'verl[verl-core]=={REQUIRED_VERL}')")
        return lines, problems

    policy = os.environ.get("VERL_USE_EXTERNAL_PLUGINS", "auto").strip().lower()
    if policy == "none" or (policy != "auto" and "svs" not in {p.strip() for p in policy.split(",")}):
        problems.append(f"VERL_USE_EXTERNAL_PLUGINS={policy!r} keeps verl from loading svs-verl: unset it or add 'svs'")
    eps = [ep for ep in md.entry_points(group="verl.plugins") if ep.name == "svs"]
    lines.append(("entry point", f"verl.plugins: svs = {eps[0].value}" if eps else "missing"))
    if not eps:
        problems.append("the verl.plugins entry point 'svs' is missing: reinstall svs-verl (pip install -e .)")

    with warnings.catch_warnings():  # verl warns about every optional engine it lacks (torchtitan, megatron, ...)
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            importlib.import_module("verl")  # loads the plugins, as every verl process does
            from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
            from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
            from verl.utils.import_utils import load_extern_object
        finally:
            logging.disable(logging.NOTSET)

    from .verl_plugin import hooks, register

    for module, error in hooks.FAILED.items():
        problems.append(f"registering after {module} loaded failed: {error}")

    for role, error in register.ERRORS.items():
        problems.append(f"registering the {role} failed: {error}")
    for mode, cls_name in (("svs", "SvsTrainer"), ("dapo", "DapoTrainer")):
        trainer = TRAINER_REGISTRY.get(mode)
        lines.append(("trainer", f"{mode} -> {trainer.__module__}.{trainer.__name__}" if trainer else
                      f"{mode} NOT registered"))
        if trainer is None or trainer.__name__ != cls_name:
            problems.append(f"trainer {mode!r} is not registered in verl's TRAINER_REGISTRY")
    manager = REWARD_MANAGER.get("svs")
    lines.append(("reward manager", f"svs -> {manager.__module__}.{manager.__name__}" if manager else "NOT registered"))
    if manager is None or manager.__name__ != "SvsRewardManager":
        problems.append("reward manager 'svs' is not registered in verl's reward-loop registry")
    try:
        sampler = load_extern_object("pkg://svs_verl.verl_plugin.sampler", "SvsReplayBuffer")
        lines.append(("sampler", f"pkg://svs_verl.verl_plugin.sampler:{sampler.__name__}"))
    except Exception as exc:  # noqa: BLE001
        lines.append(("sampler", "NOT loadable"))
        problems.append(f"sampler SvsReplayBuffer cannot be loaded the way verl loads it: {exc}")

    _cpu_backend(lines, problems)

    from importlib import resources

    lines.append(("configs", str(resources.files("svs_verl.configs"))))
    try:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            lines.append(("gpu", f"{len(names)} x {names[0]}"))
        else:
            lines.append(("gpu", "none visible (the CPU backend trains without one: VERL_PLATFORM=cpu)"))
    except Exception as exc:  # noqa: BLE001
        lines.append(("gpu", f"unknown ({exc})"))
    return lines, problems


def _cpu_backend(lines: list[tuple[str, str]], problems: list[str]) -> None:
    from verl.plugin.platform import PlatformRegistry

    from . import patches
    from .quickstart import cpu_problem

    wanted = patches.cpu_selected()
    registered = PlatformRegistry.get("cpu") is not None
    lines.append(("cpu platform", ("registered" if registered else "NOT registered") +
                  (", selected (VERL_PLATFORM=cpu)" if wanted else ", not selected (VERL_PLATFORM=cpu selects it)")))
    if not registered:
        problems.append("the CPU platform is not in verl's PlatformRegistry")
    why = cpu_problem()
    lines.append(("cpu backend", "ready: vllm " + str(_version("vllm")) if why is None else f"not usable: {why}"))
    if why and wanted:
        problems.append(f"VERL_PLATFORM=cpu, but the CPU backend cannot run: {why}")
    for name, (dist, version) in patches.WRITTEN_FOR.items():
        where = patches.APPLIED.get(name) or ("applies in vLLM's processes" if name == "vllm_onednn" and wanted
                                              else "applies on first use" if wanted else "not applied (GPU path)")
        lines.append((f"patch {name}", f"for {dist}=={version} (found {_version(dist) or 'none'}): {where}"))


def main() -> int:
    lines, problems = run_checks()
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nok: svs-verl is registered with verl")
    return 0
