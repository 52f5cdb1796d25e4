"""``trainer.v1.trainer_mode=svs``: verl's synchronous V1 trainer, extended through its hooks only.

What it adds to ``PPOTrainerSync``:

* builds the ``SvsReplayBuffer`` (named in ``trainer.v1.sampler.custom_sampler``) with the DAPO settings
  that verl gives only its built-in buffer, and attaches itself as the buffer's host: the buffer submits
  synthesis and solve prompts through ``svs_submit`` into the same rollout verl's own prompts go to;
* per-role entropy (``svs/entropy/{oqa,vps,spa}``) from the entropies verl already computes;
* a counter of the weight-sync hooks verl calls (``svs/perf/weight_syncs``; SvS itself calls none);
* SvS sampler state saved with verl's checkpoints (``svs_state.json``) and restored on resume.

The registered name is ``svs``, but verl's base class compares ``trainer_mode`` with ``"sync"`` to pick
sync behaviour (buffer class, checkpointing of TQ, prompt persistence, re-issue on resume); SvS runs the
sync schedule, so ``trainer_mode`` reads as ``"sync"`` inside the trainer.

``trainer.v1.trainer_mode=dapo`` (configs/dapo.yaml) is verl's ``PPOTrainerSync`` unchanged except for the
validation metrics both trainers share: pass@k (unbiased estimator) for k = 1, 2, 4, ... up to the
validation n, per data source, next to verl's mean@n / best@n / maj@n.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import torch
import transfer_queue as tq
from transfer_queue import KVBatchMeta

import verl.utils.tensordict_utils as tu
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.dataset.rl_dataset import collate_fn
from verl.utils.import_utils import load_extern_object
from verl.utils.tensordict_utils import NonTensorData

from ..core import k_ladder, mean_pass_at_k
from .checks import check_run_config, check_run_files

if TYPE_CHECKING:
    from .sampler import SvsReplayBuffer

# The sampler module is imported where it is used, not here: this module is imported when verl's trainer
# package finishes loading (register.py), which can happen while the sampler module itself is being imported.

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("SVS_LOGGING_LEVEL", "INFO"))

STATE_FILE = "svs_state.json"
_NOT_PROMPT_COLUMNS = {"uid", "global_steps"}


class _SyncWithPassAtK(PPOTrainerSync):
    """verl's sync trainer under a registered name of ours, with pass@k in its validation metrics."""

    # verl's base class tests `trainer_mode == "sync"`; our trainers run the sync schedule.
    @property
    def trainer_mode(self) -> str:
        return "sync"

    @trainer_mode.setter
    def trainer_mode(self, value: str) -> None:
        self.registered_mode = value

    def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, sample_turns,
                            expected_acc_counts=None) -> dict[str, float]:
        metrics = super()._val_metrics_update(data_sources, sample_uids, reward_extra_infos_dict, sample_turns,
                                              expected_acc_counts=expected_acc_counts)
        metrics.update(validation_pass_at_k(data_sources, sample_uids, reward_extra_infos_dict.get("acc"),
                                            expected_acc_counts))
        return metrics


@register_trainer("dapo")
class DapoTrainer(_SyncWithPassAtK):
    """The DAPO baseline: verl's ``PPOTrainerSync`` and ``ReplayBuffer`` as they are, plus pass@k validation."""


@register_trainer("svs")
class SvsTrainer(_SyncWithPassAtK):
    def __init__(self, config):
        check_run_config(config)  # before verl builds any worker: a bad svs.* value fails here, naming the key
        self.weight_syncs = 0
        self._prompt_builder = None
        self._entropy_unavailable = False
        self._svs_columns: list[str] | None = None
        super().__init__(config)
        self.replay_buffer.attach(self, default_dump_dir=os.path.join(config.trainer.default_local_dir, "svs"))

    def _build_replay_buffer(self) -> "SvsReplayBuffer":
        from .sampler import SvsReplayBuffer

        sampler_config = self.config.trainer.v1.sampler
        custom = sampler_config.custom_sampler
        cls = load_extern_object(custom.path, custom.name)
        if not (isinstance(cls, type) and issubclass(cls, SvsReplayBuffer)):
            raise TypeError(f"trainer.v1.sampler.custom_sampler must name SvsReplayBuffer, got {cls!r}")
        filter_metric = self._resolve_filter_groups_metric()
        refill_failed = bool(sampler_config.get("sync_refill_failed_groups", False))
        filter_groups = self.config.algorithm.get("filter_groups", None)
        train_batch_size = self.config.data.train_batch_size
        return cls(
            trainer_mode="sync",
            trainer_config=self.config.trainer.v1.get("sync", {}),
            max_off_policy_threshold=sampler_config.max_off_policy_threshold,
            max_off_policy_strategy=sampler_config.max_off_policy_strategy,
            sampler_kwargs=sampler_config.sampler_kwargs,
            refill_fn=self._add_prompts_to_generate,
            filter_groups_metric=filter_metric,
            sync_refill_failed_groups=refill_failed,
            train_batch_size=train_batch_size,
            gen_batch_size=1 if filter_metric is not None or refill_failed
            else (self.config.data.get("gen_batch_size", None) or train_batch_size),
            max_inflight_gen_batches=filter_groups.get("max_inflight_gen_batches", 1) if filter_metric else 1,
            svs=_plain(self.config.svs),
        )

    def init(self):
        check_run_files(self.config)   # on the machine the trainer runs on, before any worker starts
        if not self.config.data.get("filter_overlong_prompts", False):
            logger.warning("SvS: data.filter_overlong_prompts=false: original prompts longer than "
                           "actor_rollout_ref.rollout.prompt_length are left-truncated by verl's agent loop (the "
                           "question is cut from the front); set it to true to drop them when the data loads")
        super().init()

    # -- the host interface of SvsReplayBuffer -------------------------------------------------------
    def _next_train_batch(self, num_prompts: int | None = None):
        batch = super()._next_train_batch(num_prompts)
        if self._svs_columns is None:
            self._svs_columns = [k for k in batch.keys() if k not in _NOT_PROMPT_COLUMNS
                                 and not isinstance(batch.get(k), NonTensorData)]
        return batch

    def svs_rollout_addresses(self) -> list[str]:
        """host:port of every vLLM replica's HTTP server (for the sampler's liveness check)."""
        manager = getattr(self, "llm_server_manager", None)
        return list(getattr(manager, "server_addresses", None) or [])

    @property
    def svs_checkpoint_dir(self) -> str:
        return str(self.config.trainer.default_local_dir)

    def svs_prompt_columns(self) -> list[str]:
        return list(self._svs_columns or [])

    def svs_decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def svs_prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The prompt token ids the agent loop will send for these messages: verl's own Continuous Token
        builder, chosen and configured as ``AgentLoopWorker`` does (model type, ``data.apply_chat_template_kwargs``)."""
        if self._prompt_builder is None:
            from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

            model_type = None
            try:
                from transformers import AutoConfig

                path = self.config.actor_rollout_ref.model.path
                model_type = getattr(AutoConfig.from_pretrained(path, trust_remote_code=bool(
                    self.config.actor_rollout_ref.model.get("trust_remote_code", False))), "model_type", None)
            except Exception as exc:  # noqa: BLE001 - the builder falls back to verl's default one
                logger.warning("SvS: model type unknown (%s); measuring prompts with verl's default builder", exc)
            kwargs = _plain(self.config.data.get("apply_chat_template_kwargs", None) or {})
            self._prompt_builder = create_continuous_token_builder(
                self.tokenizer, hf_model_type=model_type if isinstance(model_type, str) else None,
                chat_template_kwargs=kwargs)
        return list(self._prompt_builder.build_initial_tokens(messages))

    def svs_prompt_fits(self, messages: list[dict]) -> bool:
        """Would verl's agent loop take this prompt whole? (It left-truncates longer ones with a warning
        only; a synthesis prompt cut from the front would lose its instructions.)"""
        return len(self.svs_prompt_tokens(messages)) <= self.config.actor_rollout_ref.rollout.prompt_length

    def svs_submit(self, rows: list[dict]) -> None:
        """Send synthesis / solve prompts to the rollout that is running now (no new phase, no sync)."""
        batch = tu.get_tensordict(collate_fn(rows))
        tu.assign_non_tensor_data(batch, "global_steps", self.global_steps)
        self._submit_batch_to_rollout(batch)

    # -- observability -------------------------------------------------------------------------------
    def on_init_end(self):
        self.weight_syncs += 1
        super().on_init_end()

    def on_step_end(self):
        self.weight_syncs += 1
        super().on_step_end()

    def prepare_step(self) -> dict:
        metrics = super().prepare_step()
        metrics["svs/perf/weight_syncs"] = float(self.weight_syncs)
        return metrics

    def _compute_old_log_prob(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        batch = super()._compute_old_log_prob(batch, metrics)
        roles = self.replay_buffer.roles
        if roles and not self._entropy_unavailable:
            try:
                metrics.update(role_entropy(batch, roles))
            except Exception as exc:  # metrics must never stop training (e.g. rollout-correction bypass mode)
                self._entropy_unavailable = True
                logger.warning("SvS: per-role entropy unavailable, not logged for this run: %s", exc)
        return batch

    # -- checkpointing -------------------------------------------------------------------------------
    def _save_checkpoint(self):
        # written first: verl marks the checkpoint complete (latest_checkpointed_iteration.txt) at its end
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.replay_buffer.state_dict(), fh)
        os.replace(tmp, os.path.join(folder, STATE_FILE))
        super()._save_checkpoint()

    def _load_checkpoint(self):
        super()._load_checkpoint()
        if self.global_steps <= 0:
            return
        if self.config.trainer.resume_mode == "resume_path":
            folder = self.config.trainer.resume_from_path
        else:
            folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        path = os.path.join(os.path.abspath(folder), STATE_FILE)
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    self.replay_buffer.load_state_dict(json.load(fh))
            except (OSError, ValueError, RecursionError) as exc:   # json.JSONDecodeError is a ValueError
                raise ValueError(f"{path}: unreadable SvS sampler state ({' '.join(str(exc).split())[:200]}); it "
                                 "only holds SvS's run totals: delete or rename it to resume without them") from None
            logger.info("SvS: restored sampler state from %s", path)
        else:
            logger.warning("SvS: no %s in %s; SvS statistics start from zero", STATE_FILE, folder)


def role_entropy(batch: KVBatchMeta, roles: dict[str, str]) -> dict[str, float]:
    """Mean token entropy per SvS role, from the ``entropy`` verl wrote to TransferQueue."""
    from .sampler import ROLES

    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["entropy"])
    entropies = data["entropy"]
    entropies = entropies.unbind(0) if getattr(entropies, "is_nested", False) else list(entropies)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for key, ent in zip(batch.keys, entropies):
        role = roles.get(key.split("_")[0])
        if role is None:
            continue
        sums[role] += float(torch.as_tensor(ent, dtype=torch.float32).sum())
        counts[role] += int(np.prod(ent.shape))
    return {f"svs/entropy/{r}": sums[r] / counts[r] for r in ROLES if counts.get(r)}


def validation_pass_at_k(data_sources, sample_uids, acc, expected_counts=None) -> dict[str, float]:
    """``val-core/<source>/acc/pass@k`` for k = 1, 2, 4, ... up to the validation n (unbiased estimator).

    ``acc`` holds the 1/0 verdict of each sample (``reward_extra_info["acc"]``); sessions that failed in the
    rollout (verl's ``expected_acc_counts`` says how many each prompt should have had) count as wrong, as
    verl's own ``acc/mean@n`` counts them. A source whose verdicts are not all 0/1 gets no pass@k (logged).
    """
    if acc is None:
        return {}
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    non_binary: set[str] = set()
    for source, uid, value in zip(data_sources, sample_uids, acc, strict=True):
        if value is None:
            continue
        if value not in (0, 1):
            non_binary.add(str(source))
            continue
        groups[str(source)][str(uid)].append(bool(value))
    for (source, uid), expected in (expected_counts or {}).items():
        if source in groups:
            got = groups[source][uid]
            got.extend([False] * max(int(expected) - len(got), 0))
    metrics = {}
    for source, by_uid in groups.items():
        if source in non_binary:
            continue
        for k in k_ladder(min(len(v) for v in by_uid.values())):
            metrics[f"val-core/{source}/acc/pass@{k}"] = mean_pass_at_k(by_uid, k)
    if non_binary:
        logger.warning("validation: acc is not 0/1 for %s: no pass@k for these sources", sorted(non_binary))
    return metrics


def _plain(node) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else dict(node)
