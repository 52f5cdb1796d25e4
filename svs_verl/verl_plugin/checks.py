"""The start-up checks of an SvS run, without a GPU, Ray or verl's trainer modules.

    from svs_verl.verl_plugin.checks import check_run_config, compose_run_config
    cfg = compose_run_config("svs_dapo", ["svs.synthesis_n=4"])   # composed as main_ppo composes it, checked
    check_run_config(cfg)                                        # what the SvS trainer checks at start-up

``svs-verl check-config --config-name NAME [OVERRIDES ...]`` runs ``compose_run_config`` and prints
``ok: NAME`` or a one-line error naming the key. This module imports only hydra/omegaconf at import time
(no torch, no ray, no verl trainer), so the trainer and the quickstart can call it before anything heavy.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any, Iterable

SVS_SAMPLER = {"path": "pkg://svs_verl.verl_plugin.sampler", "name": "SvsReplayBuffer"}


def _get(node: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if node is None:
            return default
        try:
            node = node.get(part, None)
        except AttributeError:
            return default
    return default if node is None else node


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def check_wiring(config) -> None:
    """Fail, naming the key, when a ``trainer_mode=svs`` run is not wired for SvS (sampler, reward manager)."""
    svs = config.get("svs", None)
    if svs is None:
        raise ValueError("trainer.v1.trainer_mode=svs needs an `svs:` section (use configs/svs_dapo.yaml)")
    custom = _get(config, "trainer.v1.sampler.custom_sampler") or {}
    if custom.get("name") != SVS_SAMPLER["name"]:
        raise ValueError("trainer.v1.trainer_mode=svs needs trainer.v1.sampler.custom_sampler."
                         "{path: pkg://svs_verl.verl_plugin.sampler, name: SvsReplayBuffer}, "
                         f"got {_plain(custom) or None}")
    manager = _get(config, "reward.reward_manager") or {}
    reward_model = _get(config, "reward.reward_model") or {}
    enabled = svs.get("enable", True)
    if enabled and reward_model.get("enable", False) and not reward_model.get("enable_resource_pool", False):
        raise ValueError("SvS needs rewards while the rollout runs: a colocated reward model "
                         "(reward.reward_model.enable=true without enable_resource_pool) scores after sampling "
                         "and would overwrite the synthesis rewards")
    if enabled and manager.get("name") != "svs":
        raise ValueError(f"SvS needs the role-aware reward manager: set reward.reward_manager.name=svs "
                         f"(got {manager.get('name')!r})")


def check_svs_section(svs: Any) -> None:
    """The ``svs:`` section as the sampler reads it: every key known and typed, the template loadable."""
    from ..argtypes import load_template
    from ..core import config as core_config

    mapping = _plain(svs)
    if not isinstance(mapping, dict):
        raise ValueError(f"svs: expected a mapping, got {type(mapping).__name__}")
    validator = getattr(core_config, "validate_svs_section", None)
    if validator is not None:
        result = validator(mapping)   # (SvsSettings, sampler options), raising ValueError naming svs.<key>
        if isinstance(result, tuple):
            result = next((r for r in result if isinstance(r, core_config.SvsSettings)), None)
        settings = result if isinstance(result, core_config.SvsSettings) else None
    else:
        settings = None
    if settings is None:
        settings = core_config.SvsSettings.from_mapping(
            {k: v for k, v in mapping.items() if k not in core_config.SAMPLER_KEYS})
    try:
        load_template(settings.template)
    except ValueError as exc:
        raise ValueError(f"svs.template={settings.template}: {exc}") from None


def check_run_config(config) -> None:
    """Every check the SvS trainer runs at start-up; a no-op unless ``trainer.v1.trainer_mode == "svs"``.

    Raises ``ValueError`` naming the key at fault."""
    if _get(config, "trainer.v1.trainer_mode") != "svs":
        return
    if config.get("svs", None) is not None:
        check_svs_section(config.svs)   # first: the wiring check reads svs.enable, which must be a real bool
    check_wiring(config)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if "full_key:" in text:  # omegaconf appends full_key / object_type lines to its message
        text = text.split("full_key:")[0].strip()
        key = getattr(exc, "full_key", None)
        if key and key not in text:
            text += f" (key {key})"
    return " ".join(text.split()) or type(exc).__name__


def configs_dir() -> Path:
    try:
        from ..quickstart import configs_dir as qs_configs_dir

        return Path(qs_configs_dir())
    except Exception:  # pragma: no cover - a broken install: the repository's configs/
        return Path(__file__).resolve().parents[2] / "configs"


def compose_run_config(config_name: str, overrides: Iterable[str] = (), config_dir: str | Path | None = None):
    """The run config as ``python -m verl.trainer.main_ppo --config-path <configs> --config-name NAME
    OVERRIDES`` composes it, checked as far as a CPU can without workers: hydra composition, interpolation,
    verl's ``validate_config``, verl's rollout/actor config dataclasses, the trainer mode being registered, and
    ``check_run_config``. Returns the composed (unresolved) config; raises ``ValueError`` naming the key."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    directory = Path(config_dir) if config_dir is not None else configs_dir()
    name = str(config_name)
    if name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0]
    if not (directory / f"{name}.yaml").is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ValueError(f"--config-name {config_name}: no such config in {directory} (known: {', '.join(known)})")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory.resolve()), version_base=None):
            cfg = compose(config_name=name, overrides=list(overrides))
    except Exception as exc:  # hydra: ConfigCompositionException, OverrideParseException, MissingConfigException
        cause = exc.__cause__ if exc.__cause__ is not None and str(exc.__cause__) else exc
        raise ValueError(_one_line(cause)) from exc
    try:
        OmegaConf.to_container(cfg, resolve=True)  # main_ppo resolves it before building the trainer
    except OmegaConfBaseException as exc:
        raise ValueError(_one_line(exc)) from exc

    check_run_config(cfg)

    with warnings.catch_warnings():  # verl's optional engines warn when they are not installed
        warnings.simplefilter("ignore")
        import verl  # noqa: F401  (registers svs-verl's trainers and reward manager)
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
        from verl.utils.config import omega_conf_to_dataclass, validate_config

    mode = _get(cfg, "trainer.v1.trainer_mode")
    if _get(cfg, "trainer.use_v1", True) and mode not in TRAINER_REGISTRY:
        raise ValueError(f"trainer.v1.trainer_mode={mode}: not a registered trainer (known: "
                         f"{', '.join(sorted(TRAINER_REGISTRY))})")
    for what, check in (
            ("verl's validate_config", lambda: validate_config(cfg, use_reference_policy=need_reference_policy(cfg),
                                                               use_critic=need_critic(cfg))),
            ("actor_rollout_ref.rollout", lambda: omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)),
            ("actor_rollout_ref.actor", lambda: omega_conf_to_dataclass(cfg.actor_rollout_ref.actor))):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.filterwarnings("ignore", message="Disabled critic")
                check()
        except (AssertionError, ValueError, TypeError, KeyError, AttributeError, OmegaConfBaseException) as exc:
            raise ValueError(f"{what}: {_one_line(exc)}") from exc
    return cfg


__all__ = ["check_run_config", "check_wiring", "check_svs_section", "compose_run_config", "configs_dir"]
