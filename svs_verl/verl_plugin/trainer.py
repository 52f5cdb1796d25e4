"""``trainer.v1.trainer_mode=svs``: verl's synchronous V1 trainer, extended through its hooks only.

What it adds to ``PPOTrainerSync``:

* builds the ``SvsReplayBuffer`` (named in ``trainer.v1.sampler.custom_sampler``) with the DAPO settings
  that verl gives only its built-in buffer, and attaches itself as the buffer's host: the buffer submits
  synthesis and solve prompts through ``svs_submit`` into the same rollout verl's own prompts go to;
* per-role entropy (``svs/entropy/{oqa,vps,spa}``) from the entropies verl already computes;
* a counter of the weight-sync hooks verl calls (``svs/perf/weight_syncs``; SvS itself calls none);
* what the step-cost model needs (benchmarks/svs_step_cost.py), in both arms (``svs.enable=false`` too):
  prompt tokens per role (``svs/prompt_tokens/<role>``, next to the sampler's ``svs/tokens/<role>``), and for
  the batch that old-log-prob and the update process, its real sequence tokens (``svs/batch/seq_tokens``, per
  role too), verl's padding dummies (``svs/batch/dummy_samples`` / ``dummy_tokens``) and the tokens its
  micro-batches cost (``svs/batch/padded_tokens/{old_log_prob,update}``: rows x longest sequence summed over
  micro-batches without remove-padding; replayed with verl's own micro-batch function, see ``batch_cost``);
* verl's padding dummies shortened from 128 tokens to ``DUMMY_SEQ_LEN`` (``shorten_padding_dummies``);
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
# verl 0.9.1 pads a batch to a multiple of ppo_mini_batch_size x rollout.n (and the DP size) with dummy samples of
# SYNTHETIC_PADDING_SEQ_LEN = 128 tokens (verl/trainer/ppo/padding_utils.py). A dummy has response_mask 0: it adds
# nothing to the loss, the gradient, the advantages or the metrics (verl filters `is_padding`), only compute to
# old-log-prob and the update. 2 tokens (1 prompt + 1 response, verl's template needs one of each) is the minimum.
DUMMY_SEQ_LEN = 2
VERL_DUMMY_SEQ_LEN = 128
_NOT_PROMPT_COLUMNS = {"uid", "global_steps"}


def shorten_padding_dummies() -> bool:
    """Make verl's padding dummies ``DUMMY_SEQ_LEN`` tokens long instead of 128 (waste, not work: see
    ``DUMMY_SEQ_LEN``). Version-guarded: only verl 0.9.1 with the constant at verl's value is changed; anything
    else is left alone with a warning. Returns whether the dummies are now short."""
    import verl
    from verl.trainer.ppo import padding_utils

    current = getattr(padding_utils, "SYNTHETIC_PADDING_SEQ_LEN", None)
    if current == DUMMY_SEQ_LEN:
        return True
    if verl.__version__ != "0.9.1" or current != VERL_DUMMY_SEQ_LEN:
        logger.warning("SvS: verl %s pads batches with dummies of %r tokens; left as they are (svs-verl shortens "
                       "verl 0.9.1's 128-token ones)", verl.__version__, current)
        return False
    padding_utils.SYNTHETIC_PADDING_SEQ_LEN = DUMMY_SEQ_LEN   # read by construct_minimal_padding_template per call
    return True


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
        self._cost_unavailable = False
        shorten_padding_dummies()   # in this process: verl pads the batch here (_balance_batch)
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

    def _balance_batch(self, batch: KVBatchMeta, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        """verl's padding and DP balancing; then what the cost model needs, measured on the batch as the workers
        will get it (dummies included, in verl's order)."""
        batch = super()._balance_batch(batch, metrics, logging_prefix=logging_prefix, keep_minibatch=keep_minibatch)
        buffer = self.replay_buffer
        roles = ("oqa", "vps", "spa") if buffer.settings.enable else ("oqa",)
        metrics.update({f"svs/prompt_tokens/{r}": float(buffer.prompt_tokens[r]) for r in roles})
        if not self._cost_unavailable:
            try:
                metrics.update(batch_cost(batch.keys, batch.tags, buffer.roles, **self._cost_settings()))
            except Exception as exc:  # metrics must never stop training
                self._cost_unavailable = True
                logger.warning("SvS: batch cost metrics unavailable, not logged for this run: %s", exc)
        return batch

    def _cost_settings(self) -> dict:
        """How verl's actor worker splits the batch (engine_workers.py: ActorRolloutRefWorker.init_model and
        TrainingWorker.train_mini_batch / infer_batch)."""
        arr = self.config.actor_rollout_ref
        actor, rollout = arr.actor, arr.rollout
        mapping = self.actor_rollout_wg._dispatch_info.get("actor")
        dp_size = max(mapping) + 1 if mapping else 1
        sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
        dynamic = bool(actor.use_dynamic_bsz)
        return {"dp_size": dp_size, "remove_padding": bool(arr.model.get("use_remove_padding", False)),
                "mini_batch_size": int(actor.ppo_mini_batch_size) * int(rollout.n),
                "epochs": int(actor.get("ppo_epochs", 1) or 1), "shuffle": bool(actor.get("shuffle", False)),
                "log_prob": {"max_token_len": int(rollout.log_prob_max_token_len_per_gpu) * sp if dynamic else None,
                             "micro_batch_size": None if dynamic else rollout.log_prob_micro_batch_size_per_gpu},
                "update": {"max_token_len": int(actor.ppo_max_token_len_per_gpu) * sp if dynamic else None,
                           "micro_batch_size": None if dynamic else actor.ppo_micro_batch_size_per_gpu}}

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


def micro_batch_shapes(seq_lens: list[int], *, max_token_len: int | None = None,
                       micro_batch_size: int | None = None, min_num_micro_batch: int | None = None) -> list[tuple[int, int]]:
    """(rows, longest sequence) of each micro-batch verl's engine forms from sequences of these lengths on one
    rank: verl's own ``rearrange_micro_batches`` (token budget ``max_token_len``, ``use_dynamic_bsz``) or its
    fixed-size chunks (``micro_batch_size``), as ``verl.workers.engine.utils.prepare_micro_batches`` calls them.
    Without remove-padding each micro-batch is one (rows, longest) tensor: that is what its forward costs."""
    from tensordict import TensorDict

    from verl.utils.seqlen_balancing import rearrange_micro_batches

    if not seq_lens:
        return []
    if max_token_len is None:
        size = int(micro_batch_size)
        return [(len(chunk), max(chunk)) for chunk in (seq_lens[i:i + size] for i in range(0, len(seq_lens), size))]
    ids = torch.nested.nested_tensor([torch.zeros(n, dtype=torch.int64) for n in seq_lens], layout=torch.jagged)
    data = TensorDict({"input_ids": ids}, batch_size=[len(seq_lens)])
    _, partitions = rearrange_micro_batches(data, max_token_len=max_token_len, min_num_micro_batch=min_num_micro_batch)
    return [(len(p), max(seq_lens[i] for i in p)) for p in partitions]


def _rank_shapes(chunks: list[list[int]], **split) -> list[list[tuple[int, int]]]:
    """Micro-batches of each DP rank's share; verl makes every rank run as many as the one that needs most
    (``same_micro_num_in_dp``), so the others are split again with that count as their minimum."""
    shapes = [micro_batch_shapes(c, **split) for c in chunks]
    most = max((len(s) for s in shapes), default=0)
    if split.get("max_token_len") is not None and any(len(s) != most for s in shapes):
        shapes = [micro_batch_shapes(c, **split, min_num_micro_batch=most) for c in chunks]
    return shapes


def batch_cost(keys: list[str], tags: list[dict], roles: dict[str, str], *, dp_size: int, remove_padding: bool,
               mini_batch_size: int, epochs: int, shuffle: bool, log_prob: dict, update: dict) -> dict[str, float]:
    """What old-log-prob and the update process for this batch (its keys and tags in verl's order, padding
    dummies included), as ``svs/batch/*`` metrics:

    * ``samples``, ``seq_tokens`` (prompt + response, real samples only; ``seq_tokens/<role>`` per role, roles by
      group uid, ``oqa`` for groups the sampler did not name), ``dummy_samples``, ``dummy_tokens``;
    * ``padded_tokens/old_log_prob`` and ``padded_tokens/update``: the tokens the forward passes cost (without
      remove-padding the sum over micro-batches of rows x longest sequence, dummies included; with it, the packed
      tokens), the update's over all mini-batches and epochs; ``micro_batches/*`` and ``mini_batches`` (optimizer
      steps). verl hands rank r the r-th contiguous share; the update splits a share into mini-batches in order
      (with ``actor.shuffle`` the update's figures are left out).
    """
    lens = [int(t["seq_len"]) for t in tags]
    dummy = [bool(t.get("is_padding", False)) for t in tags]
    m: dict[str, float] = {"svs/batch/samples": float(dummy.count(False)),
                           "svs/batch/seq_tokens": float(sum(n for n, d in zip(lens, dummy) if not d)),
                           "svs/batch/dummy_samples": float(dummy.count(True)),
                           "svs/batch/dummy_tokens": float(sum(n for n, d in zip(lens, dummy) if d))}
    by_role: dict[str, int] = defaultdict(int)
    for key, n, d in zip(keys, lens, dummy):
        if not d:
            by_role[roles.get(key.split("_")[0], "oqa")] += n
    m.update({f"svs/batch/seq_tokens/{r}": float(v) for r, v in sorted(by_role.items())})

    share = len(lens) // dp_size
    chunks = [lens[r * share:(r + 1) * share] for r in range(dp_size)]

    def cost(shapes: list[list[tuple[int, int]]], packed: list[list[int]]) -> tuple[float, float]:
        count = float(sum(len(s) for s in shapes))
        if remove_padding:
            return float(sum(sum(c) for c in packed)), count
        return float(sum(rows * longest for s in shapes for rows, longest in s)), count

    m["svs/batch/padded_tokens/old_log_prob"], m["svs/batch/micro_batches/old_log_prob"] = cost(
        _rank_shapes(chunks, **log_prob), chunks)
    per_rank = mini_batch_size // dp_size
    steps = len(lens) // mini_batch_size if per_rank else 0
    m["svs/batch/mini_batches"] = float(steps * epochs)
    if not shuffle and per_rank:
        padded = micro = 0.0
        for i in range(steps):
            minis = [c[i * per_rank:(i + 1) * per_rank] for c in chunks]
            p, n = cost(_rank_shapes(minis, **update), minis)
            padded, micro = padded + p, micro + n
        m["svs/batch/padded_tokens/update"] = padded * epochs
        m["svs/batch/micro_batches/update"] = micro * epochs
    return m


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
