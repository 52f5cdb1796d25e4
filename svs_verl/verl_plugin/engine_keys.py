"""Which config keys carry a run's parallelism and offload on each of verl 0.9.1's training engines, and the
start-up check that the engine a run asks for is the one its config schema was composed for.

    from svs_verl.verl_plugin.engine_keys import ENGINE_KEYS, check_engine
    ENGINE_KEYS["sp"]["megatron"]     # 'actor_rollout_ref.actor.megatron.context_parallel_size'
    check_engine(cfg)                 # ValueError naming the key when strategy and model_engine disagree

verl 0.9.1 picks the actor/ref/critic config schema from the top-level ``model_engine`` (``dp`` -> FSDP's
``fsdp_config``, ``megatron`` -> the ``megatron`` section, ``ppo_megatron_trainer.yaml`` is only that default),
and the worker from ``<role>.strategy``. Setting ``actor_rollout_ref.actor.strategy=megatron`` alone composes,
passes ``validate_config`` and the config dataclasses on a CPU, and fails only inside the GPU worker
(``workers/engine_workers.py`` reads ``actor.megatron.router_replay``); ``check_engine`` refuses it before
anything starts. ``recipes/common.sh`` (``BACKEND=fsdp|megatron``) writes the keys of ``ENGINE_KEYS``.
Imports nothing beyond omegaconf.
"""

from __future__ import annotations

from typing import Any

# recipe setting -> the key that carries it on each engine (None: the engine has no such setting)
ENGINE_KEYS: dict[str, dict[str, str | None]] = {
    # sequence split of one sample over GPUs: Ulysses SP (FSDP) / context parallel (Megatron); verl multiplies
    # ppo_max_token_len_per_gpu by it on both (workers/engine/utils.py prepare_micro_batches, sp_size)
    "sp": {"fsdp": "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size",
           "megatron": "actor_rollout_ref.actor.megatron.context_parallel_size"},
    "param_offload": {"fsdp": "actor_rollout_ref.actor.fsdp_config.param_offload",
                      "megatron": "actor_rollout_ref.actor.megatron.param_offload"},
    "optimizer_offload": {"fsdp": "actor_rollout_ref.actor.fsdp_config.optimizer_offload",
                          "megatron": "actor_rollout_ref.actor.megatron.optimizer_offload"},
    # weight sharding of the update: FSDP shards over every GPU; Megatron splits layers (TP) and stages (PP)
    "train_tp": {"fsdp": None, "megatron": "actor_rollout_ref.actor.megatron.tensor_model_parallel_size"},
    "pp": {"fsdp": None, "megatron": "actor_rollout_ref.actor.megatron.pipeline_model_parallel_size"},
}

# strategy values -> the model_engine whose schema they need, and the section that schema has
_SCHEMA = {"fsdp": ("dp", "fsdp_config"), "fsdp2": ("dp", "fsdp_config"), "megatron": ("megatron", "megatron")}
_ROLES = ("actor_rollout_ref.actor", "actor_rollout_ref.ref", "critic")


def _select(cfg: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=None) if OmegaConf.is_config(cfg) else _walk(cfg, key)


def _walk(node: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def check_engine(cfg: Any) -> None:
    """Each role's ``strategy`` against the schema ``model_engine`` composed (FSDP or Megatron); a mismatch
    raises ``ValueError`` naming both keys. The critic is checked only when it is enabled."""
    engine = _select(cfg, "model_engine")
    for role in _ROLES:
        if role == "critic" and _select(cfg, "critic.enable") is not True:
            continue
        strategy = _select(cfg, f"{role}.strategy")
        if strategy not in _SCHEMA:
            continue   # other engines (veomni, torchtitan) are verl's business
        want_engine, section = _SCHEMA[strategy]
        if _select(cfg, f"{role}.{section}") is None:
            raise ValueError(
                f"{role}.strategy={strategy} needs model_engine={want_engine} (got model_engine={engine}): verl "
                f"composes {role} for model_engine, and the {strategy} worker reads {role}.{section}, which this "
                f"config does not have; set model_engine={want_engine} (it sets the strategy too)")


__all__ = ["ENGINE_KEYS", "check_engine"]
