"""The private surface of verl 0.9.1 (and TransferQueue, vLLM) that svs-verl relies on, checked against what is
installed: every member exists, and the parameters of what we override or call are the ones we use. A verl
upgrade that renames, removes or re-signs one fails here with a message naming the member and the difference.
docs/verl_compat.md says, row by row, where each is used and what breaks; the two must list the same members.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "verl_compat.md"
RB = "verl.trainer.ppo.v1.replay_buffer:ReplayBuffer"
TS = "verl.trainer.ppo.v1.trainer_sync:PPOTrainerSync"
TQ_FIELDS = ["keys", "tags", "partition_id", "fields", "extra_info"]

# (member, kind, expected). kind: "override" = exact parameter names (we override or subclass it);
# "call" = the keyword names we pass are among its parameters; "exists" = the name is there;
# "source" = verl's source of the module holds this text (a behaviour, key format or attribute we read);
# "config" = verl's composed ppo_trainer config has this key.
MEMBERS = [
    # the replay buffer (svs_verl/verl_plugin/sampler.py: SvsReplayBuffer)
    (f"{RB}.__init__", "override", ["self", "trainer_mode", "trainer_config", "max_off_policy_threshold",
                                    "max_off_policy_strategy", "sampler_kwargs", "poll_interval", "refill_fn",
                                    "filter_groups_metric", "train_batch_size", "gen_batch_size",
                                    "max_inflight_gen_batches", "sync_refill_failed_groups"]),
    (f"{RB}.sample", "override", ["self", "global_steps", "partition_id", "batch_size"]),
    (f"{RB}._sync_metadata_from_transfer_queue", "override", ["self"]),
    (f"{RB}._sampleable_terminal_keys", "override", ["self", "partition_id", "eviction_reasons"]),
    (f"{RB}._select_prompt_uids", "override", ["self", "partition_id", "sampleable_keys", "batch_size"]),
    (f"{RB}._wait_for_next_poll", "override", ["self", "partition_id", "last_debug_time"]),
    ("verl.trainer.ppo.v1.replay_buffer:self.partitions", "source", "self.partitions: dict[str, dict[str, dict]]"),
    ("verl.trainer.ppo.v1.replay_buffer:self.pending_keys", "source", "self.pending_keys: dict[str, set]"),
    ("verl.trainer.ppo.v1.replay_buffer:self.running_keys", "source", "self.running_keys"),
    ("verl.trainer.ppo.v1.replay_buffer:self.finished_keys", "source", "self.finished_keys"),
    ("verl.trainer.ppo.v1.replay_buffer:self.failure_keys", "source", "self.failure_keys"),
    ("verl.trainer.ppo.v1.replay_buffer:self.prompt_global_steps", "source", "self.prompt_global_steps"),
    ("verl.trainer.ppo.v1.replay_buffer:self.filter_groups_metric", "source", "self.filter_groups_metric = "),
    ("verl.trainer.ppo.v1.replay_buffer:self.poll_interval", "source", "self.poll_interval = poll_interval"),
    ("verl.trainer.ppo.v1.replay_buffer:is_prompt tag", "source", 'tag.get("is_prompt", False)'),
    ("verl.trainer.ppo.v1.replay_buffer:{uid}_{session_id}_{index} key format", "source",
     "`{uid}_{session_id}_{index}`"),
    ("verl.trainer.ppo.v1.agent_loop_tq:response_len tag", "source", '"response_len": response_len'),
    ("verl.trainer.ppo.v1.agent_loop_tq:reward_extra_info in extra_fields", "source",
     'output.extra_fields["reward_extra_info"]'),
    # the trainer (svs_verl/verl_plugin/trainer.py: SvsTrainer, DapoTrainer)
    (f"{TS}.__init__", "override", ["self", "config"]),
    (f"{TS}._build_replay_buffer", "override", ["self"]),
    (f"{TS}._resolve_filter_groups_metric", "override", ["self"]),
    (f"{TS}._add_prompts_to_generate", "override", ["self", "num_prompts"]),
    (f"{TS}._next_train_batch", "override", ["self", "num_prompts"]),
    (f"{TS}._submit_batch_to_rollout", "override", ["self", "batch"]),
    (f"{TS}._compute_old_log_prob", "override", ["self", "batch", "metrics"]),
    (f"{TS}._save_checkpoint", "override", ["self"]),
    (f"{TS}._load_checkpoint", "override", ["self"]),
    (f"{TS}._val_metrics_update", "override", ["self", "data_sources", "sample_uids", "reward_extra_infos_dict",
                                               "sample_turns", "expected_acc_counts"]),
    (f"{TS}.init", "override", ["self"]),
    (f"{TS}.on_init_end", "override", ["self"]),
    (f"{TS}.on_step_end", "override", ["self"]),
    (f"{TS}.prepare_step", "override", ["self"]),
    ("verl.trainer.ppo.v1.trainer_base:trainer_mode == \"sync\"", "source", 'self.trainer_mode == "sync"'),
    ("verl.trainer.ppo.v1.trainer_base:self.replay_buffer", "source", "self.replay_buffer = self._build_replay_buffer()"),
    ("verl.trainer.ppo.v1.trainer_base:self.tokenizer", "source", "self.tokenizer = "),
    ("verl.trainer.ppo.v1.trainer_base:self.global_steps", "source", "self.global_steps = "),
    ("verl.trainer.ppo.v1.trainer_base:self.llm_server_manager", "source", "self.llm_server_manager = "),
    ("verl.workers.rollout.llm_server:LLMServerManager.server_addresses", "source", "self.server_addresses = "),
    ("verl.trainer.ppo.v1.trainer_base:register_trainer", "call", ["name"]),
    ("verl.trainer.ppo.v1.trainer_base:get_trainer_cls", "call", ["name"]),
    ("verl.trainer.ppo.v1.trainer_base:TRAINER_REGISTRY", "exists", None),
    ("verl.utils.import_utils:load_extern_object", "call", ["module_path", "object_name"]),
    ("verl.utils.dataset.rl_dataset:collate_fn", "call", ["data_list"]),
    ("verl.utils.tensordict_utils:get_tensordict", "call", ["tensor_dict"]),
    ("verl.utils.tensordict_utils:assign_non_tensor_data", "call", ["tensor_dict", "key", "val"]),
    ("verl.utils.tensordict_utils:list_of_dict_to_tensordict", "call", ["list_of_dicts"]),
    ("verl.utils.tensordict_utils:NonTensorData", "exists", None),
    ("verl.utils.tokenizer.continuous_token_wiring:create_continuous_token_builder", "call",
     ["tokenizer", "hf_model_type", "chat_template_kwargs"]),
    # the reward manager (svs_verl/verl_plugin/reward.py: SvsRewardManager)
    ("verl.experimental.reward_loop.reward_manager:register", "call", ["name"]),
    ("verl.experimental.reward_loop.reward_manager.registry:REWARD_MANAGER", "exists", None),
    ("verl.experimental.reward_loop.reward_manager.base:RewardManagerBase.__init__", "override",
     ["self", "config", "tokenizer", "compute_score"]),
    ("verl.experimental.reward_loop.reward_manager.base:RewardManagerBase.run_single", "override", ["self", "data"]),
    ("verl.trainer.ppo.reward:resolve_reward_manager_cls", "call", ["config"]),
    ("verl:DataProto", "exists", None),
    # start-up checks (svs_verl/verl_plugin/checks.py) and doctor
    ("verl.trainer.ppo.utils:need_critic", "call", ["config"]),
    ("verl.trainer.ppo.utils:need_reference_policy", "call", ["config"]),
    ("verl.utils.config:validate_config", "call", ["config", "use_reference_policy", "use_critic"]),
    ("verl.utils.config:omega_conf_to_dataclass", "call", ["config"]),
    # CPU platform and patches (svs_verl/verl_plugin/platform.py, svs_verl/patches/)
    ("verl.plugin.platform:PlatformRegistry.register", "call", ["platform"]),
    ("verl.plugin.platform:PlatformRegistry.get", "call", ["name"]),
    ("verl.plugin.platform:PlatformBase", "exists", None),
    ("verl.workers.engine.base:EngineRegistry.register", "call", ["model_type", "backend", "device"]),
    ("verl.workers.engine.base:EngineRegistry._engines", "exists", None),
    ("verl.workers.engine.fsdp.transformer_impl:FSDPEngineWithLMHead", "exists", None),
    ("verl.workers.engine.fsdp.transformer_impl:FSDPEngineWithValueHead", "exists", None),
    ("verl.utils.distributed:initialize_global_process_group_ray", "override", ["timeout_second", "backend"]),
    ("vllm._custom_ops:_supports_onednn", "exists", None),
    # TransferQueue (sampler.py, trainer.py)
    ("transfer_queue:kv_batch_get", "call", ["keys", "partition_id", "select_fields"]),
    ("transfer_queue:kv_batch_put", "call", ["keys", "partition_id", "fields"]),
    ("transfer_queue:kv_clear", "call", ["keys", "partition_id"]),
    ("transfer_queue:kv_list", "call", ["partition_id"]),
    ("transfer_queue:KVBatchMeta", "call", ["keys", "tags", "partition_id"]),
    # environment variables verl reads that svs-verl sets or checks
    ("verl:VERL_USE_EXTERNAL_PLUGINS", "source", "VERL_USE_EXTERNAL_PLUGINS"),
    ("verl.utils.tracking:VERL_FILE_LOGGER_PATH", "source", "VERL_FILE_LOGGER_PATH"),
    ("verl.plugin.platform.platform_manager:VERL_PLATFORM", "source", "VERL_PLATFORM"),
    # config keys svs-verl sets or reads (configs/, checks.py, trainer.py)
    ("config:trainer.v1.trainer_mode", "config", None),
    ("config:trainer.v1.sampler.custom_sampler.path", "config", None),
    ("config:trainer.v1.sampler.custom_sampler.name", "config", None),
    ("config:trainer.v1.sampler.max_off_policy_threshold", "config", None),
    ("config:trainer.v1.sampler.max_off_policy_strategy", "config", None),
    ("config:trainer.v1.sampler.sampler_kwargs", "config", None),
    ("config:trainer.v1.sync", "config", None),
    ("config:algorithm.filter_groups.enable", "config", None),
    ("config:algorithm.filter_groups.max_inflight_gen_batches", "config", None),
    ("config:reward.reward_manager.source", "config", None),
    ("config:reward.reward_manager.name", "config", None),
    ("config:reward.reward_model.enable_resource_pool", "config", None),
    ("config:transfer_queue.backend.SimpleStorage.total_storage_size", "config", None),
    ("config:skip.rollout_tq.enable", "config", None),
    ("config:actor_rollout_ref.rollout.prompt_length", "config", None),
    ("config:data.prompt_key", "config", None),
    ("config:data.apply_chat_template_kwargs", "config", None),
    ("config:model_engine", "config", None),
]


def _resolve(member: str):
    module, _, name = member.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture(scope="module")
def verl_config():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import verl

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return compose(config_name="ppo_trainer")


@pytest.mark.parametrize("member,kind,expected", MEMBERS, ids=[m[0] for m in MEMBERS])
def test_member(member, kind, expected, request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "config":
            from omegaconf import OmegaConf

            key = member.split(":", 1)[1]
            cfg = request.getfixturevalue("verl_config")
            assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", \
                f"{member}: verl's ppo_trainer config has no key {key}"
            return
        if kind == "source":
            module = importlib.import_module(member.split(":", 1)[0])
            source = Path(module.__file__).read_text(encoding="utf-8")
            assert expected in source, f"{member}: {module.__file__} no longer contains {expected!r}"
            return
        try:
            obj = _resolve(member)
        except (ImportError, AttributeError) as exc:
            pytest.fail(f"{member}: missing ({type(exc).__name__}: {exc})")
    if kind == "exists":
        return
    params = list(inspect.signature(obj).parameters)
    if kind == "override":
        assert params == expected, f"{member}: parameters changed from {expected} to {params}"
    else:
        missing = [p for p in expected if p not in params]
        assert not missing, f"{member}: no parameter(s) {missing} any more (has {params})"


def _doc_members() -> list[str]:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]


def test_doc_and_table_list_the_same_members():
    doc = _doc_members()
    table = [m[0] for m in MEMBERS]
    assert len(set(table)) == len(table), "a member is listed twice in MEMBERS"
    assert not set(table) - set(doc), f"docs/verl_compat.md lacks rows for {sorted(set(table) - set(doc))}"
    assert not set(doc) - set(table), f"tests/test_verl_compat.py's MEMBERS lacks {sorted(set(doc) - set(table))}"


def test_a_changed_signature_is_named():
    """The check fails, naming the member, for an override whose parameters differ (the override rule's own test)."""
    member = f"{RB}._select_prompt_uids"
    with pytest.raises(AssertionError, match=re.escape(member) + r": parameters changed"):
        test_member(member, "override", ["self", "partition_id", "batch_size"], None)
    with pytest.raises(pytest.fail.Exception, match=r"verl\.nosuch:thing: missing"):
        test_member("verl.nosuch:thing", "exists", None, None)
