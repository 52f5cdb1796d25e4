"""SvS replay buffer: verl's V1 ``ReplayBuffer`` with variational problem synthesis in the same rollout phase.

verl's sync sampler polls TransferQueue (TQ) while the rollout replicas are awake. This subclass hooks the
poll (``_sync_metadata_from_transfer_queue``): every original group that has just finished is scored by the
core ``SvsRound``; if it is underperforming, its synthesis prompts are submitted to the running rollout at
once; a finished synthesis group is parsed and its problems are submitted as solve groups; a finished
solve group fixes its synthesis rewards. verl's own loop (DAPO dynamic sampling with refill included)
still selects the original groups, unchanged, because SvS groups are hidden from it. When it returns,
``sample`` keeps only the families of originals that are in verl's batch (the rest are dropped, counted
and their late writes cleared; with verl's DAPO filter off, originals without reward variance are left out
as the reference does), waits for the kept SvS work still in flight, writes the synthesis rewards into the
synthesis trajectories' ``rm_scores``, and appends the VPS / SPA groups the update rules keep.

Batch size: ``data.train_batch_size`` counts original prompts, as in verl's DAPO. The VPS and SPA groups
come on top; their number is bounded by ``svs.max_seeds_per_step`` (each seed adds at most one synthesis
group of ``svs.synthesis_n`` and ``svs.synthesis_n`` solve groups of ``svs.solve_n``; only seeds of kept
parents count). Groups are never split: verl pads the batch to its divisors and runs extra mini-batches.

The sampler needs a *host* (the ``SvsTrainer``) for three things verl keeps in the trainer: submitting
prompt rows to the rollout, decoding token ids, and the current step. Validation sampling is verl's own.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import transfer_queue as tq
from transfer_queue import KVBatchMeta

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from ..core import SvsRound, SynthesisTemplate
from ..core.config import SAMPLER_KEYS, validate_svs_section
from ..core.round import SolveTask, SynthesisTask

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("SVS_LOGGING_LEVEL", "INFO"))

ROLES = ("oqa", "vps", "spa")
# dataset columns the agent loop pops before storing a trajectory (so they are not in TransferQueue)
CONSUMED_BY_AGENT_LOOP = {"agent_name", "__rollout_n__", "__do_sample__", "validate", "uid", "global_steps"}
ROLE_OF_TASK = {"synthesis": "vps", "solve": "spa"}


def _final_outputs(group_keys: list[str]) -> list[str]:
    """The final output of each session of one group, ordered by session."""
    last: dict[int, tuple[int, str]] = {}
    for key in group_keys:
        session, index = _session_of(key)
        if session not in last or index > last[session][0]:
            last[session] = (index, key)
    return [last[s][1] for s in sorted(last)]


class SvsHost(Protocol):
    """What the sampler needs from the trainer (``SvsTrainer`` implements it)."""

    global_steps: int

    def svs_submit(self, rows: list[dict[str, Any]]) -> None: ...

    def svs_decode(self, token_ids: list[int]) -> str: ...

    def svs_prompt_columns(self) -> list[str]: ...


def _session_of(key: str) -> tuple[int, int]:
    _, session, index = key.split("_")
    return int(session), int(index)


class SvsReplayBuffer(ReplayBuffer):
    PLUGIN_KEYS = SAMPLER_KEYS  # keys of the `svs:` section that belong to this sampler, not to the algorithm

    def __init__(self, trainer_mode, trainer_config, max_off_policy_threshold, max_off_policy_strategy,
                 sampler_kwargs, refill_fn=None, *, svs: dict | None = None, **replay_buffer_kwargs):
        self.settings, plugin = validate_svs_section(svs)   # every svs.* value checked, the key named on error
        super().__init__(trainer_mode, trainer_config, max_off_policy_threshold, max_off_policy_strategy,
                         sampler_kwargs, poll_interval=plugin["poll_interval_s"], refill_fn=refill_fn,
                         **replay_buffer_kwargs)
        self.template = SynthesisTemplate.load(self.settings.template)
        self.dump_dir = Path(plugin["dump_dir"]) if plugin["dump_dir"] else None
        self.tail_timeout_s = plugin["tail_timeout_s"]
        self.host: SvsHost | None = None
        self.round: SvsRound | None = None
        self.roles: dict[str, str] = {}          # uid -> role, for the last batch handed out
        self._seen: set[str] = set()             # originals already fed to the round this step
        self._task_columns: dict[str, dict] = {}  # task uid -> parent's prompt columns
        self._parent_columns: dict[str, dict] = {}  # seeded original uid -> its prompt columns
        self._gen_tokens: Counter[str] = Counter()  # generated tokens per role in the current step
        self._counted: set[str] | None = None     # groups already counted (None outside sample())
        self._orphans: set[str] = set()           # abandoned task uids whose late writes get cleared
        self.totals: Counter[str] = Counter()    # cumulative over the run (checkpointed)
        self.problem_stats: dict[str, list[int]] = {}  # original index -> [times underperforming, seeds]

    def attach(self, host: SvsHost, default_dump_dir: str | None = None) -> None:
        """Called by the trainer once it exists (the buffer is built inside the trainer's constructor)."""
        self.host = host
        if self.dump_dir is None and default_dump_dir:
            self.dump_dir = Path(default_dump_dir)

    # -- the sample ----------------------------------------------------------------------------------
    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[KVBatchMeta, dict]:
        if partition_id == "val":
            return super().sample(global_steps, partition_id, batch_size)
        self._gen_tokens = Counter()
        self._counted = set()
        if not self.settings.enable:  # verl's own sampling; only the generated-token count is added
            batch, metrics = super().sample(global_steps, partition_id, batch_size)
            metrics["svs/tokens/oqa"] = float(self._gen_tokens["oqa"])
            self._counted = None
            return batch, metrics
        if self.host is None:
            raise RuntimeError("SvsReplayBuffer has no host: run it with trainer.v1.trainer_mode=svs")
        t0 = time.monotonic()
        self.round = SvsRound(self.settings, self.template)
        self._seen.clear()
        self._task_columns.clear()
        self._parent_columns.clear()
        try:
            batch, metrics = super().sample(global_steps, partition_id, batch_size)
            t_originals = time.monotonic() - t0
            batch = self._restrict_to_batch(partition_id, batch)
            self._finish_tail(partition_id)
            plan = self.round.plan()
            batch, svs_metrics = self._append_svs_groups(partition_id, batch, plan)
        finally:
            self.round = None
        metrics.update(svs_metrics)
        metrics["svs/time/originals_s"] = t_originals
        metrics["svs/time/tail_s"] = time.monotonic() - t0 - t_originals
        self._dump(global_steps, plan.records)
        self._counted = None
        return batch, metrics

    # -- hooks into verl's poll loop -----------------------------------------------------------------
    def _sync_metadata_from_transfer_queue(self):
        super()._sync_metadata_from_transfer_queue()
        pid = "train"
        if self._orphans:
            self._clear_orphans(pid)
        if self._counted is not None:
            self._count_generated_tokens(pid)
        if self.round is None:
            return
        self._advance(pid)
        svs_uids = self._svs_uids()
        for status_keys in (self.pending_keys, self.running_keys, self.finished_keys, self.failure_keys):
            status_keys[pid].difference_update(svs_uids)
        for uid in svs_uids:
            self.prompt_global_steps[pid].pop(uid, None)

    def _clear_orphans(self, pid: str) -> None:
        """Remove what abandoned SvS tasks (tail timeout) write after their step: their rollouts are not
        aborted, so their trajectories and status may still arrive; they are never trained on."""
        late = [k for k in self.partitions[pid] if k.split("_")[0] in self._orphans]
        late += [u for u in self._orphans if u in self.prompt_global_steps[pid]]
        if late:
            tq.kv_clear(partition_id=pid, keys=late)
            for key in late:
                self.partitions[pid].pop(key, None)
            for status_keys in (self.pending_keys, self.running_keys, self.finished_keys, self.failure_keys):
                status_keys[pid].difference_update(self._orphans)

    def _count_generated_tokens(self, pid: str) -> None:
        """Tokens generated this step per role, every finished group counted once (evicted ones too)."""
        done = (self.finished_keys[pid] | self.failure_keys[pid]) - self._counted
        if not done:
            return
        for key, tag in self.partitions[pid].items():
            uid = key.split("_")[0]
            if uid in done:
                role = "oqa"
                if self.round is not None:
                    role = "vps" if uid in self.round.syntheses else "spa" if uid in self.round.solves else "oqa"
                self._gen_tokens[role] += int(tag.get("response_len", 0))
        self._counted |= done

    def _svs_uids(self) -> set[str]:
        return set(self.round.syntheses) | set(self.round.solves) if self.round else set()

    def _keys_by_uid(self, pid: str, uids: set[str]) -> dict[str, list[str]]:
        """Trajectory keys of the given groups, from one pass over the partition snapshot."""
        index: dict[str, list[str]] = defaultdict(list)
        for key in self.partitions[pid]:
            uid = key.split("_")[0]
            if uid in uids:
                index[uid].append(key)
        return index

    def _advance(self, pid: str) -> None:
        """Feed newly finished groups to the round and submit the work they unlock."""
        rnd = self.round
        finished, failed = self.finished_keys[pid], self.failure_keys[pid]
        outstanding = set(rnd.outstanding())
        for uid in failed & outstanding:
            rnd.fail(uid)
            logger.warning("SvS task %s failed in the rollout; its family is left out of this update", uid)
        new_syn = [u for u in finished if u in rnd.syntheses and u in outstanding]
        new_solve = [u for u in finished if u in rnd.solves and u in outstanding]
        new_orig = [u for u in finished if u not in self._seen and u not in rnd.syntheses and u not in rnd.solves]
        self._seen.update(new_orig)
        for uid in failed - self._seen - self._svs_uids():
            self._seen.add(uid)
            rnd.counts["oqa_failed"] += 1

        index = self._keys_by_uid(pid, {*new_orig, *new_syn, *new_solve})
        keys = {u: _final_outputs(index.get(u, [])) for u in new_orig + new_syn + new_solve}
        # no early return when nothing has trajectories: an empty finished SvS group must fail now, not
        # wait for the tail timeout
        acc = self._correctness(pid, [u for u in new_orig + new_solve], keys)
        for uid in new_solve:
            if acc[uid]:
                rnd.add_solves(uid, acc[uid])
            else:  # finished without a single trajectory: cannot be scored
                rnd.fail(uid)

        band = self.settings.underperforming()
        seeded = [u for u in new_orig if acc[u] and band.contains(sum(acc[u]), len(acc[u]))]
        for uid in new_orig:
            if uid not in seeded and acc[uid]:
                rnd.add_original(uid, "", "", [""] * len(acc[uid]), acc[uid])  # statistics only
        texts = self._responses(pid, seeded + new_syn, keys)
        columns = self._prompt_columns(pid, seeded, keys)
        synth_tasks: list[SynthesisTask] = []
        for uid in seeded:
            cols = columns[uid]
            problem = cols.get("extra_info", {}).get("problem") or _last_user_text(cols.get("raw_prompt"))
            gt = str(cols.get("reward_model", {}).get("ground_truth", ""))
            self._parent_columns[uid] = cols
            tasks = rnd.add_original(uid, problem, gt, texts[uid], acc[uid])
            for t in tasks:
                self._task_columns[t.uid] = cols
            synth_tasks += tasks
            self._note_problem(cols, len(tasks))
        solve_tasks: list[SolveTask] = []
        for uid in new_syn:
            if not texts[uid]:
                rnd.fail(uid)
                continue
            tasks = rnd.add_syntheses(uid, texts[uid])
            for t in tasks:
                self._task_columns[t.uid] = self._task_columns[uid]
            solve_tasks += tasks
        self._submit_tasks(synth_tasks, solve_tasks)

    def _submit_tasks(self, synth_tasks: Sequence[SynthesisTask], solve_tasks: Sequence[SolveTask]) -> None:
        """Send synthesis and solve prompts to the running rollout. A prompt over the budget is never
        truncated: a synthesis prompt fails its family; a solve prompt gives that one synthesis reward 0
        (its group stays, as in the reference). A submission that raises costs its tasks, not the run."""
        rnd = self.round
        rows = [self._synthesis_row(t) for t in synth_tasks] + [self._solve_row(t) for t in solve_tasks]
        fits = getattr(self.host, "svs_prompt_fits", None)
        if fits is not None and rows:
            too_long = [r for r in rows if not fits(r["raw_prompt"])]
            for row in too_long:  # verl would silently left-truncate it
                if row["uid"] in rnd.solves:
                    rnd.reject_solve(row["uid"], "prompt_too_long")
                else:
                    rnd.fail(row["uid"])
            rnd.counts["prompt_too_long"] += len(too_long)
            rows = [r for r in rows if r not in too_long]
        if rows:
            try:
                self.host.svs_submit(rows)
            except Exception as exc:  # noqa: BLE001 - a lost submission costs its family, not the run
                logger.error("SvS: submitting %d prompt(s) to the rollout failed: %s", len(rows), exc)
                for row in rows:
                    rnd.fail(row["uid"])
                rnd.counts["submit_failed"] += len(rows)
                # prompt markers may already be in TQ and some sessions may still start: clear what they write
                self._orphans.update(row["uid"] for row in rows)

    def _restrict_to_batch(self, pid: str, batch: KVBatchMeta) -> KVBatchMeta:
        """After verl's selection: only families of originals in the returned batch are trained.

        With verl's DAPO filter off, originals without reward variance are left out too (the reference's
        filter), unless none would remain. Families of discarded parents are dropped and counted; their
        seeds free their ``max_seeds_per_step`` slots for waiting seeds of kept parents."""
        rnd = self.round
        parents = {key.split("_")[0] for key in batch.keys}
        if self.filter_groups_metric is None:
            flat = {u for u in parents if u in rnd.originals and not rnd.keeps_original(u)}
            if flat and parents - flat:
                drop_keys = [k for k in batch.keys if k.split("_")[0] in flat]
                tq.kv_clear(partition_id=pid, keys=drop_keys)
                pairs = [(k, t) for k, t in zip(batch.keys, batch.tags) if k.split("_")[0] not in flat]
                batch = KVBatchMeta(partition_id=pid, keys=[k for k, _ in pairs], tags=[t for _, t in pairs])
                parents -= flat
                rnd.counts["dropped/oqa_no_variance"] += len(flat)
        abandoned, admitted = rnd.restrict_to_parents(parents)
        self._orphans.update(abandoned)
        for t in admitted:
            self._task_columns[t.uid] = self._parent_columns[t.parent_uid]
        if admitted:
            self._submit_tasks(admitted, [])
        return batch

    def _correctness(self, pid: str, uids: Sequence[str], keys: dict[str, list[str]]) -> dict[str, list[bool]]:
        flat = [k for u in uids for k in keys[u]]
        out: dict[str, list[bool]] = {u: [] for u in uids}
        if not flat:
            return out
        data = tq.kv_batch_get(keys=flat, partition_id=pid, select_fields=["extra_fields", "rm_scores"])
        for key, extra, rm in zip(flat, list(data["extra_fields"]), list(data["rm_scores"])):
            info = _reward_extra_info(extra)
            if "acc" in info:
                ok = float(info["acc"]) > 0
            else:  # a reward manager other than `svs`: fall back to a positive reward, counted
                self.round.counts["acc_missing"] += 1
                ok = float(rm.sum().item()) > 0
            out[key.split("_")[0]].append(ok)
        return out

    def _responses(self, pid: str, uids: Sequence[str], keys: dict[str, list[str]]) -> dict[str, list[str]]:
        flat = [k for u in uids for k in keys[u]]
        out: dict[str, list[str]] = {u: [] for u in uids}
        if not flat:
            return out
        data = tq.kv_batch_get(keys=flat, partition_id=pid, select_fields=["responses"])
        for key, ids in zip(flat, data["responses"].unbind(0) if data["responses"].is_nested else data["responses"]):
            out[key.split("_")[0]].append(self.host.svs_decode(ids.tolist()))
        return out

    def _prompt_columns(self, pid: str, uids: Sequence[str], keys: dict[str, list[str]]) -> dict[str, dict]:
        if not uids:
            return {}
        needed = {"raw_prompt", "reward_model", "extra_info", "data_source", "index"}
        fields = sorted((set(self.host.svs_prompt_columns()) - CONSUMED_BY_AGENT_LOOP) | needed)
        first = [keys[u][0] for u in uids]
        data = tq.kv_batch_get(keys=first, partition_id=pid, select_fields=fields)
        cols: dict[str, dict] = {u: {} for u in uids}
        for name in [f for f in fields if f in data.keys()]:  # a column the rollout did not store is skipped
            values = data[name]
            values = values.unbind(0) if isinstance(values, torch.Tensor) else list(values)
            for uid, value in zip(uids, values):
                cols[uid][name] = getattr(value, "data", value)
        return cols

    def _note_problem(self, cols: dict, seeds: int) -> None:
        key = str(cols.get("index", cols.get("extra_info", {}).get("index", "?")))
        stats = self.problem_stats.setdefault(key, [0, 0])
        stats[0] += 1
        stats[1] += seeds

    # -- rows for the rollout ------------------------------------------------------------------------
    def _row(self, uid: str, parent_cols: dict, messages: list[dict], n: int, role: str, extra: dict) -> dict:
        row = dict(parent_cols)
        info = dict(parent_cols.get("extra_info") or {})
        info.update({"svs_role": role, **extra})
        row.update(uid=uid, raw_prompt=messages, extra_info=info, __rollout_n__=n)
        if "prompt" in row:
            row["prompt"] = messages
        return row

    def _synthesis_row(self, t: SynthesisTask) -> dict:
        return self._row(t.uid, self._task_columns[t.uid], t.messages, t.n, "synthesis",
                         {"svs_parent_uid": t.parent_uid, "svs_seed_index": t.seed_index})

    def _solve_row(self, t: SolveTask) -> dict:
        cols = self._task_columns[t.uid]
        original = cols.get("raw_prompt") or []
        system = [m for m in original if isinstance(m, dict) and m.get("role") == "system"]
        user = {"role": "user", "content": self.settings.solve_template.replace("{problem}", t.problem)}
        return self._row(t.uid, cols, system + [user], t.n, "solve",
                         {"svs_parent_uid": t.parent_uid, "svs_synthesis_uid": t.synthesis_uid,
                          "svs_problem": t.problem})

    # -- after verl's loop ---------------------------------------------------------------------------
    def _finish_tail(self, pid: str) -> None:
        """Wait for SvS work still in flight (replicas are still awake: we are inside ``sample``)."""
        deadline = time.monotonic() + self.tail_timeout_s
        while True:
            self._sync_metadata_from_transfer_queue()
            outstanding = self.round.outstanding()
            if not outstanding:
                return
            if time.monotonic() > deadline:
                logger.warning("SvS: %d task(s) still running after %.0f s; leaving them out of this update",
                               len(outstanding), self.tail_timeout_s)
                for uid in outstanding:
                    self.round.fail(uid)
                self.round.counts["tail_timeout"] += len(outstanding)
                self._orphans.update(outstanding)
                return
            time.sleep(self.poll_interval)

    def _append_svs_groups(self, pid: str, batch: KVBatchMeta, plan) -> tuple[KVBatchMeta, dict]:
        rnd = self.round
        kept = [*plan.syntheses, *plan.solves]
        all_svs = self._svs_uids()
        snapshot = dict(self.partitions[pid])
        by_uid = self._keys_by_uid(pid, all_svs)

        # synthesis rewards -> rm_scores of the synthesis trajectories (the reward manager wrote 0 there);
        # rewards[j] belongs to the j-th session present, and every output of a session gets it
        keys, fields = [], []
        for uid, rewards in plan.syntheses.items():
            position = {_session_of(k)[0]: j for j, k in enumerate(_final_outputs(by_uid[uid]))}
            for key in by_uid[uid]:
                length = int(snapshot[key].get("response_len", 0))
                scores = torch.zeros(max(length, 1), dtype=torch.float32)
                scores[-1] = float(rewards[position[_session_of(key)[0]]])
                keys.append(key)
                fields.append({"rm_scores": scores})
        if keys:
            tq.kv_batch_put(keys=keys, partition_id=pid, fields=list_of_dict_to_tensordict(fields))

        # drop what the update does not use (prompt markers of all SvS groups, trajectories of unkept ones)
        kept_set = set(kept)
        drop = [u for u in all_svs] + [k for u in all_svs - kept_set for k in by_uid.get(u, [])]
        if drop:
            tq.kv_clear(partition_id=pid, keys=drop)

        new_keys, new_tags = list(batch.keys), list(batch.tags)
        self.roles = {key.split("_")[0]: "oqa" for key in batch.keys}
        for uid in kept:
            self.roles[uid] = "vps" if uid in rnd.syntheses else "spa"
            for key in sorted(by_uid[uid], key=_session_of):
                new_keys.append(key)
                new_tags.append(snapshot[key])

        metrics = dict(plan.metrics)
        # counted from the batch itself (verl's selection decides which originals are in it)
        metrics["svs/update/oqa_groups"] = float(sum(1 for u, r in self.roles.items() if r == "oqa"))
        for role in ROLES:
            metrics[f"svs/tokens/{role}"] = float(self._gen_tokens[role])
            metrics[f"svs/samples/{role}"] = float(sum(1 for k in new_keys if self.roles[k.split("_")[0]] == role))
        for name, value in rnd.counts.items():
            self.totals[name] += value
        metrics["svs/total/seeds"] = float(self.totals["seeds"])
        metrics["svs/total/accepted"] = float(self.totals["accepted"])
        self.totals["steps"] += 1
        return KVBatchMeta(partition_id=pid, keys=new_keys, tags=new_tags), metrics

    def _dump(self, step: int, records: list[dict]) -> None:
        if not self.dump_dir or not records:
            return
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        path = self.dump_dir / f"syntheses_step{step:06d}.jsonl"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps({"step": step, **rec}, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)  # a resumed run rewrites a step's file instead of appending twice

    # -- checkpointing -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"version": 1, "totals": dict(self.totals), "problem_stats": self.problem_stats,
                "round": self.round.state_dict() if self.round else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"unsupported SvS sampler state version {state.get('version')!r}")
        self.totals = Counter(state["totals"])
        self.problem_stats = {k: list(v) for k, v in state["problem_stats"].items()}
        if state.get("round"):
            # A checkpoint is only written between steps, so a round in flight means the save happened
            # mid-sample (not possible with verl's sync schedule); its rollouts are gone with the process.
            logger.warning("SvS: checkpoint holds an unfinished round; its pending tasks are not resumed")


def _reward_extra_info(extra_fields: Any) -> dict:
    value = getattr(extra_fields, "data", extra_fields)
    info = value.get("reward_extra_info") if isinstance(value, dict) else None
    return info if isinstance(info, dict) else {}


def _last_user_text(messages: Any) -> str:
    for msg in reversed(list(messages or [])):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""
