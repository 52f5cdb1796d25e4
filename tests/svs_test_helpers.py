"""Test helpers: an offline character tokenizer, DataProtos shaped like verl's agent loop builds them, and
a rollout simulator that writes finished groups into a real TransferQueue the way ``AgentLoopWorkerTQ``
does (trajectory fields + tags, then the prompt marker's status), scoring every trajectory with the real
``svs`` reward manager. Only the language model is scripted: CPU machines cannot run vLLM."""

from __future__ import annotations

import asyncio
import string
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tensordict import TensorDict

_tokenizer = None
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def compose(name: str = "svs_dapo", overrides=()):
    """The run config as ``main_ppo`` composes it (hydra compose API, in process)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return hydra_compose(config_name=name, overrides=list(overrides))


def build(overrides=(), name: str = "svs_dapo"):
    """The trainer ``TaskRunnerV1`` would build from that config (its constructor needs no GPU)."""
    import verl  # noqa: F401  (loads the plugin)
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls

    cfg = compose(name, ["data.train_batch_size=4", *overrides])
    return get_trainer_cls(cfg.trainer.v1.trainer_mode)(cfg)


def char_tokenizer():
    """A real ``PreTrainedTokenizerFast`` over printable ASCII, one token per character (no files, no hub)."""
    global _tokenizer
    if _tokenizer is None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        chars = [c for c in string.printable if c not in "\x0b\x0c"]
        vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
        tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
        tk.decoder = decoders.Fuse()
        _tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>",
                                             unk_token="<unk>")
    return _tokenizer


def dataproto(prompt: str, response: str, row: dict):
    """One trajectory as ``AgentLoopWorker._compute_score`` hands it to ``run_single``."""
    from verl import DataProto

    tok = char_tokenizer()
    p = torch.tensor(tok.encode(prompt), dtype=torch.int64)
    r = torch.tensor(tok.encode(response), dtype=torch.int64)
    ids = torch.cat([p, r])
    batch = TensorDict({"prompts": p[None], "responses": r[None], "attention_mask": torch.ones_like(ids)[None],
                        "input_ids": ids[None], "position_ids": torch.arange(len(ids))[None]}, batch_size=1)
    nt = {}
    for k, v in row.items():
        arr = np.empty(1, dtype=object)
        arr[0] = v
        nt[k] = arr
    nt.update(__num_turns__=np.array([2]), prompt_len=np.array([len(p)]), response_len=np.array([len(r)]))
    tool = np.empty(1, dtype=object)
    tool[0] = {}
    nt["tool_extra_fields"] = tool
    return DataProto(batch=batch, non_tensor_batch=nt)


def reward_config(**reward_kwargs):
    from omegaconf import OmegaConf

    return OmegaConf.create({"reward": {
        "custom_reward_function": {"path": None, "name": "compute_score"},
        "reward_manager": {"source": "register", "name": "svs", "module": {"path": None, "name": "x"}},
        "reward_kwargs": reward_kwargs,
    }})


class RolloutSimulator:
    """Plays the rollout + reward loop for ``SvsReplayBuffer`` against a real TransferQueue.

    ``policy(row, n) -> list[str]`` scripts the model's n responses to a prompt row. Every response is
    scored by the real ``SvsRewardManager``; trajectories and tags are written like ``AgentLoopWorkerTQ``.
    Implements the sampler's host interface (``svs_submit``, ``svs_decode``, ``svs_prompt_columns``).
    """

    def __init__(self, policy: Callable[[dict, int], list[str]], partition: str = "train", step: int = 1,
                 reward_kwargs: dict | None = None):
        from svs_verl.verl_plugin.reward import SvsRewardManager

        self.policy = policy
        self.partition = partition
        self.global_steps = step
        self.submitted: list[list[dict]] = []   # every svs_submit call, in order
        self.on_submit: Callable[[list[dict]], None] | None = None
        self.extra_columns: list[str] = []
        self.hold_roles: set[str] = set()       # SvS roles whose groups stay running (trajectories written)
        self.pending_roles: set[str] = set()    # SvS roles whose groups stay pending (nothing generated yet)
        self.held: list[dict] = []              # rows of held/pending groups, for release()
        self.hold: Callable[[dict], str | None] | None = None   # per row: "running", "pending" or None
        self.manager = SvsRewardManager(reward_config(**(reward_kwargs or {})), char_tokenizer(), None)
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    # host interface -----------------------------------------------------------------------------------
    def svs_prompt_columns(self) -> list[str]:
        # as the trainer reports them: "agent_name" is consumed by the agent loop (never stored), and a
        # column the rollout did not store exercises the sampler's fallback
        return ["data_source", "reward_model", "extra_info", "raw_prompt", "index", "ability", "agent_name"] + \
            self.extra_columns

    def svs_decode(self, token_ids: list[int]) -> str:
        return char_tokenizer().decode(token_ids, skip_special_tokens=True)

    def svs_submit(self, rows: list[dict]) -> None:
        import transfer_queue as tq

        self.submitted.append(rows)
        # as PPOTrainer._submit_batch_to_rollout: a pending prompt marker per row, then generation
        tq.kv_batch_put(keys=[r["uid"] for r in rows], partition_id=self.partition,
                        tags=[{"is_prompt": True, "status": "pending", "global_steps": self.global_steps}
                              for _ in rows])
        for row in rows:
            role = row["extra_info"].get("svs_role")
            state = self.hold(row) if self.hold else None
            if role in self.pending_roles or state == "pending":
                self.held.append(row)
                continue
            held = role in self.hold_roles or state == "running"
            if held:
                self.held.append(row)
            self.run(row, status="running" if held else "finished")
        if self.on_submit:
            self.on_submit(rows)

    # the rollout -----------------------------------------------------------------------------------
    def prompt(self, uid: str, problem: str, answer: str, index: int, status: str = "pending",
               data_source: str = "toy", step: int | None = None) -> dict:
        """An original problem row, as the trainer's dataloader gives it."""
        import transfer_queue as tq

        row = {"uid": uid, "data_source": data_source, "ability": "math", "index": index,
               "raw_prompt": [{"role": "user", "content": problem}],
               "reward_model": {"ground_truth": answer, "style": "rule"},
               "extra_info": {"index": index, "split": "train"}}
        tq.kv_put(key=uid, partition_id=self.partition,
                  tag={"is_prompt": True, "status": status, "global_steps": step or self.global_steps})
        return row

    def run(self, row: dict, status: str = "finished", n: int | None = None) -> list[float]:
        """Generate, score and store one group, then mark its prompt ``status`` (``running`` leaves it
        running: ``finish`` ends it later). Returns the rewards."""
        import transfer_queue as tq
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        tok = char_tokenizer()
        uid = row["uid"]
        n = n or int(row.get("__rollout_n__", 8))
        kwargs = {k: v for k, v in row.items() if k != "__rollout_n__"}
        tq.kv_put(key=uid, partition_id=self.partition, tag={"status": "running"})
        prompt_text = "\n".join(m["content"] for m in row["raw_prompt"])
        keys, fields, tags, rewards = [], [], [], []
        for session, text in enumerate(self.policy(row, n)):
            dp = dataproto(prompt_text, text, {**kwargs, "session_id": session, "global_steps": self.global_steps})
            with self._lock:
                out = self._loop.run_until_complete(self.manager.run_single(dp))
            prompts = torch.tensor(tok.encode(prompt_text), dtype=torch.int64)
            responses = torch.tensor(tok.encode(text) or [1], dtype=torch.int64)
            rm = torch.zeros(len(responses), dtype=torch.float32)
            rm[-1] = out["reward_score"]
            field = {"prompts": prompts, "responses": responses, "response_mask": torch.ones_like(responses),
                     "rm_scores": rm, "extra_fields": {"reward_extra_info": out["reward_extra_info"]},
                     "dummy_tensor": torch.zeros(1), **kwargs, "session_id": session,
                     "global_steps": self.global_steps}
            keys.append(f"{uid}_{session}_0")
            fields.append(field)
            tags.append({"status": "success", "prompt_len": len(prompts), "response_len": len(responses),
                         "seq_len": len(prompts) + len(responses), "global_steps": self.global_steps,
                         "min_global_steps": self.global_steps, "max_global_steps": self.global_steps})
            rewards.append(out["reward_score"])
        if keys:   # a group whose sessions all came back empty writes no trajectory
            tq.kv_batch_put(keys=keys, partition_id=self.partition, fields=list_of_dict_to_tensordict(fields), tags=tags)
        if status != "running":
            tq.kv_put(key=uid, partition_id=self.partition, tag={"status": status})
        return rewards

    def release(self) -> list[str]:
        """Let every held or pending group finish (pending ones are generated now). Returns their uids."""
        import transfer_queue as tq

        rows, self.held = self.held, []
        for row in rows:
            tags = (tq.kv_list(self.partition) or {}).get(self.partition, {})
            if tags.get(row["uid"], {}).get("status") == "pending":
                self.run(row)
            else:
                self.finish(row["uid"])
        return [r["uid"] for r in rows]

    def finish(self, uid: str) -> None:
        import transfer_queue as tq

        tq.kv_put(key=uid, partition_id=self.partition, tag={"status": "finished"})
