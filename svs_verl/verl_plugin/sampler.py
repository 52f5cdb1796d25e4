"""SvS replay buffer: verl's V1 ``ReplayBuffer`` with variational problem synthesis in the same rollout phase.

verl's sync sampler polls TransferQueue (TQ) while the rollout replicas are awake. This subclass hooks the
poll (``_sync_metadata_from_transfer_queue``) and gathers what newly finished groups say, in one TQ read
helper (``_fetch``); the core ``SvsRound`` decides everything: which originals are underperforming (their
texts are then read), which seeds start, which syntheses parse, which rewards they earn. Two more hooks
keep the step boundary: ``_sampleable_terminal_keys`` tells the round the order in which verl's originals
become sampleable, and a family starts only for one of the first ``batch_size`` of them;
``_select_prompt_uids`` makes verl's selection take that order (``svs.batch_order=arrival``). verl's own
loop (DAPO dynamic sampling with refill included) is otherwise unchanged, because SvS groups are hidden
from its status sets. When it returns, ``sample`` waits until no SvS request of the step is in flight
(verl cannot cancel one; the tail timeout ends the wait for results, not for the requests), writes the
synthesis rewards into the synthesis trajectories' ``rm_scores``, appends the VPS / SPA groups the update
rules keep, clears the rest, and measures in TQ what is left (``svs/step_end/inflight``, ``svs/tq/keys``:
both must be 0). With verl's DAPO filter off, originals without reward variance are left out as the
reference does.

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
from .dumps import DumpWriter
from .liveness import LivenessProbe, RolloutDeadError

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("SVS_LOGGING_LEVEL", "INFO"))

ROLES = ("oqa", "vps", "spa")
TRAIN = "train"              # the TransferQueue partition of training rollouts (verl's name)
TAIL_TIMEOUT_FLOOR_S = 60.0  # the relative tail timeout is never shorter than this
ORPHAN_POLLS = 200           # an orphan not seen in TransferQueue for this many polls is forgotten
LIVENESS_INTERVAL_S = 10.0   # how often a waiting poll asks the vLLM replicas whether they are alive
# dataset columns the agent loop pops before storing a trajectory (so they are not in TransferQueue)
CONSUMED_BY_AGENT_LOOP = {"agent_name", "__rollout_n__", "__do_sample__", "validate", "uid", "global_steps"}


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
    def __init__(self, trainer_mode, trainer_config, max_off_policy_threshold, max_off_policy_strategy,
                 sampler_kwargs, refill_fn=None, *, svs: dict | None = None, **replay_buffer_kwargs):
        self.settings, plugin = validate_svs_section(svs)   # every svs.* value checked, the key named on error
        super().__init__(trainer_mode, trainer_config, max_off_policy_threshold, max_off_policy_strategy,
                         sampler_kwargs, poll_interval=plugin["poll_interval_s"], refill_fn=refill_fn,
                         **replay_buffer_kwargs)
        self.template = SynthesisTemplate.load(self.settings.template)
        self.dump_dir = Path(plugin["dump_dir"]) if plugin["dump_dir"] else None
        self._dump_options = {"enable": plugin["dump_enable"], "compress": plugin["dump_compress"],
                              "max_records_per_step": plugin["dump_max_records_per_step"],
                              "keep_steps": plugin["dump_keep_steps"]}
        self.dumps: DumpWriter | None = DumpWriter(self.dump_dir, **self._dump_options) if self.dump_dir else None
        self.tail_timeout_s: float | None = plugin["tail_timeout_s"]   # None: relative to the originals phase
        self.tail_timeout_factor: float = plugin["tail_timeout_factor"]
        self.batch_order: str = plugin["batch_order"]
        self.host: SvsHost | None = None
        self.round: SvsRound | None = None
        self.roles: dict[str, str] = {}          # uid -> role, for the last batch handed out
        self._seen: set[str] = set()             # originals already fed to the round this step
        self._parent_columns: dict[str, dict] = {}  # seeded original uid -> its prompt columns
        self._gen_tokens: Counter[str] = Counter()  # generated tokens per role in the current step
        self.prompt_tokens: Counter[str] = Counter()  # prompt tokens per role in the current step (the trainer logs
                                                      # them: svs/prompt_tokens/<role>, in both arms)
        self._counted: set[str] | None = None     # groups already counted (None outside sample())
        self._selecting = False                   # inside verl's selection loop (originals may still arrive)
        self._step_uids: set[str] = set()         # every SvS task uid submitted in the current sample()
        self._status: dict[str, str] = {}         # tracked uid -> its prompt marker's status at the last poll
        self._orphans: dict[str, int] = {}        # uid -> polls since it was orphaned (late writes are cleared)
        self._probe: LivenessProbe | None = None   # are the vLLM replicas alive? (built on first wait)
        self.totals: Counter[str] = Counter()    # cumulative over the run (checkpointed)

    def attach(self, host: SvsHost, default_dump_dir: str | None = None) -> None:
        """Called by the trainer once it exists (the buffer is built inside the trainer's constructor)."""
        self.host = host
        if self.dump_dir is None and default_dump_dir:
            self.dump_dir = Path(default_dump_dir)
            self.dumps = DumpWriter(self.dump_dir, **self._dump_options)

    # -- the sample ----------------------------------------------------------------------------------
    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[KVBatchMeta, dict]:
        if partition_id != TRAIN:
            return super().sample(global_steps, partition_id, batch_size)
        self._gen_tokens = Counter()
        self.prompt_tokens = Counter()
        self._counted = set()
        if not self.settings.enable:  # verl's own sampling; only the generated-token count is added
            batch, metrics = self._verl_sample(global_steps, partition_id, batch_size)
            metrics["svs/tokens/oqa"] = float(self._gen_tokens["oqa"])
            self._counted = None
            return batch, metrics
        if self.host is None:
            raise RuntimeError("SvsReplayBuffer has no host: run it with trainer.v1.trainer_mode=svs")
        t0 = time.monotonic()
        self.round = SvsRound(self.settings, self.template, batch_size=batch_size)
        self._seen.clear()
        self._parent_columns.clear()
        self._step_uids = set()
        self._status = {u: s for u, s in self._status.items() if u in self._orphans}
        try:
            self._selecting = True
            try:
                batch, metrics = self._verl_sample(global_steps, partition_id, batch_size)
            finally:
                self._selecting = False
            t_originals = time.monotonic() - t0
            batch = self._restrict_to_batch(batch)
            self._finish_tail(t_originals)
            plan = self.round.plan()
            batch, svs_metrics = self._append_svs_groups(batch, plan)
        finally:
            self.round = None
            self._counted = None
        metrics.update(svs_metrics)
        metrics["svs/time/originals_s"] = t_originals
        metrics["svs/time/tail_s"] = time.monotonic() - t0 - t_originals
        info = self.dumps.write(global_steps, plan.records) if self.dumps is not None else None
        if info is not None:
            metrics.update(info.metrics())
        return batch, metrics

    def _verl_sample(self, global_steps: int, partition_id: str, batch_size: int):
        """verl's sampling loop; when it fails (e.g. every group of the step failed because a vLLM engine died:
        verl says "no materializable trajectories"), a dead replica is named instead, in one line."""
        try:
            return super().sample(global_steps, partition_id, batch_size)
        except Exception as exc:
            self._probe = None                       # ask now, not at the next interval
            try:
                self._check_rollout_alive()
            except RolloutDeadError as dead:
                raise dead from exc
            raise

    # -- hooks into verl's poll loop -----------------------------------------------------------------
    def _check_rollout_alive(self) -> None:
        """While waiting for groups: a dead vLLM engine never finishes the requests it held, and verl's loop
        would wait for them for ever. Asked at most every ``LIVENESS_INTERVAL_S`` (one /health per replica);
        a dead replica ends the step with ``RolloutDeadError`` (one line: which, and how to resume)."""
        if self._probe is None:
            addresses = getattr(self.host, "svs_rollout_addresses", lambda: [])() if self.host else []
            if not addresses:
                return
            self._probe = LivenessProbe(addresses, resume_hint=getattr(self.host, "svs_checkpoint_dir", None),
                                        interval_s=LIVENESS_INTERVAL_S)
        self._probe()

    def _wait_for_next_poll(self, partition_id, last_debug_time):
        self._check_rollout_alive()
        return super()._wait_for_next_poll(partition_id, last_debug_time)

    def _sync_metadata_from_transfer_queue(self):
        super()._sync_metadata_from_transfer_queue()
        tracked = self._step_uids | set(self._orphans)
        if tracked:
            for status, keys in (("pending", self.pending_keys), ("running", self.running_keys),
                                 ("finished", self.finished_keys), ("failure", self.failure_keys)):
                for uid in keys[TRAIN] & tracked:
                    self._status[uid] = status
            # a marker re-created by a late session after we removed it carries no is_prompt tag: verl lists
            # it as a trajectory key (the agent loop writes {"status": "running"} and later the end status)
            partition = self.partitions[TRAIN]
            for uid in tracked:
                status = partition.get(uid, {}).get("status")
                if status in ("pending", "running", "finished", "failure"):
                    self._status[uid] = status
        if self._orphans:
            self._clear_orphans()
        if self._counted is not None:
            self._count_generated_tokens()
        if self.round is not None:
            self._advance()
        hidden = self._svs_uids() | set(self._orphans)   # verl never sees an SvS group as one of its own
        if hidden:
            for status_keys in (self.pending_keys, self.running_keys, self.finished_keys, self.failure_keys):
                status_keys[TRAIN].difference_update(hidden)
            for uid in hidden:
                self.prompt_global_steps[TRAIN].pop(uid, None)

    def _sampleable_terminal_keys(self, partition_id, eviction_reasons):
        """verl's sampleable originals; those new to the round arrive in it, which starts the families of
        the ones that will be in the batch (``SvsRound.arrived``)."""
        keys = super()._sampleable_terminal_keys(partition_id, eviction_reasons)
        if self.round is not None and self._selecting and partition_id == TRAIN:
            self._submit_tasks(self.round.arrived(sorted(keys)), [])
        return keys

    def _select_prompt_uids(self, partition_id, sampleable_keys, batch_size):
        """verl's selection, in the round's arrival order (``svs.batch_order=arrival``): in the sync trainer
        every original of a step has the same ``global_steps``, so verl's older-first order leaves the choice
        among them to set order; arrival order makes it the originals whose families already run."""
        if self.round is None or partition_id != TRAIN or self.batch_order != "arrival":
            return super()._select_prompt_uids(partition_id, sampleable_keys, batch_size)
        ordered = self.round.batch_order(sampleable_keys)
        return ordered[:batch_size], dict(self.partitions[partition_id]), dict(self.prompt_global_steps[partition_id])

    def _clear_orphans(self) -> None:
        """Orphans are SvS groups no step waits for any more (a submission that raised half-way, a step
        that ended in an error). Once one ends, its marker and trajectories are removed; one never seen
        again is forgotten after ``ORPHAN_POLLS`` polls (the set stays bounded)."""
        partition = self.partitions[TRAIN]
        ended = {u for u in self._orphans if self._status.get(u) in ("finished", "failure")}
        seen = {k.split("_")[0] for k in partition} | set(self.prompt_global_steps[TRAIN])
        late = [k for k in partition if k.split("_")[0] in ended]
        if ended or late:
            tq.kv_clear(partition_id=TRAIN, keys=[*ended, *late])
            for key in late:
                partition.pop(key, None)
        for uid in list(self._orphans):
            if uid in ended:
                del self._orphans[uid]
                self._status.pop(uid, None)
            elif uid not in seen:
                self._orphans[uid] += 1
                if self._orphans[uid] > ORPHAN_POLLS:
                    del self._orphans[uid]
                    self._status.pop(uid, None)

    def _count_generated_tokens(self) -> None:
        """Tokens generated this step per role, and the prompt tokens they were generated from (each sample's
        prompt: what the rollout prefilled), every finished group counted once (evicted ones too)."""
        done = (self.finished_keys[TRAIN] | self.failure_keys[TRAIN]) - self._counted
        if not done:
            return
        for key, tag in self.partitions[TRAIN].items():
            uid = key.split("_")[0]
            if uid in done:
                role = "oqa"
                if self.round is not None:
                    role = "vps" if uid in self.round.syntheses else "spa" if uid in self.round.solves else "oqa"
                self._gen_tokens[role] += int(tag.get("response_len", 0))
                self.prompt_tokens[role] += int(tag.get("prompt_len", 0))
        self._counted |= done

    def _svs_uids(self) -> set[str]:
        return set(self.round.syntheses) | set(self.round.solves) if self.round else set()

    def _keys_by_uid(self, uids: set[str]) -> dict[str, list[str]]:
        """Trajectory keys of the given groups, from one pass over the partition snapshot."""
        index: dict[str, list[str]] = defaultdict(list)
        for key in self.partitions[TRAIN]:
            uid = key.split("_")[0]
            if uid in uids:
                index[uid].append(key)
        return index

    def _advance(self) -> None:
        """Gather what newly finished groups say (verdicts; texts only where the round asks for them), hand
        it to the round, and submit the work it answers with. Every decision is the round's."""
        rnd = self.round
        finished, failed = self.finished_keys[TRAIN], self.failure_keys[TRAIN]
        outstanding = set(rnd.outstanding())
        for uid in failed & outstanding:
            rnd.fail(uid)
            logger.warning("SvS task %s failed in the rollout; its family is left out of this update", uid)
        svs_uids = self._svs_uids()
        new_syn = [u for u in finished if u in outstanding and u in rnd.syntheses]
        new_solve = [u for u in finished if u in outstanding and u in rnd.solves]
        new_orig = [u for u in finished if u not in self._seen and u not in svs_uids]
        self._seen.update(new_orig)
        for uid in failed - self._seen - svs_uids:
            self._seen.add(uid)
            rnd.counts["oqa_failed"] += 1

        index = self._keys_by_uid({*new_orig, *new_syn, *new_solve})
        keys = {u: _final_outputs(index.get(u, [])) for u in new_orig + new_syn + new_solve}
        # no early return when nothing has trajectories: an empty finished SvS group must fail now, not
        # wait for the tail timeout
        acc = self._correctness(new_orig + new_solve, keys)
        for uid in new_solve:
            if acc[uid]:
                rnd.add_solves(uid, acc[uid])
            else:  # finished without a single trajectory: cannot be scored
                rnd.fail(uid)
        # the round scores every original; it asks for the texts of the underperforming ones only
        seeding = [u for u in new_orig if acc[u] and rnd.score_original(u, acc[u])]
        fetched = self._fetch(seeding + new_syn, keys, ["responses"])
        texts = {u: [self.host.svs_decode(row["responses"].tolist()) for row in fetched[u]] for u in seeding + new_syn}
        columns = self._prompt_columns(seeding, keys)
        synth_tasks: list[SynthesisTask] = []
        for uid in seeding:
            cols = columns[uid]
            problem = cols.get("extra_info", {}).get("problem") or _last_user_text(cols.get("raw_prompt"))
            gt = str(cols.get("reward_model", {}).get("ground_truth", ""))
            self._parent_columns[uid] = cols
            synth_tasks += rnd.add_original_texts(uid, problem, gt, texts[uid])
        solve_tasks: list[SolveTask] = []
        for uid in new_syn:
            if not texts[uid]:
                rnd.fail(uid)
                continue
            solve_tasks += rnd.add_syntheses(uid, texts[uid])
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
        if not rows:
            return
        uids = [row["uid"] for row in rows]
        self._step_uids.update(uids)
        try:
            self.host.svs_submit(rows)
        except Exception as exc:  # noqa: BLE001 - a lost submission costs its family, not the run
            logger.error("SvS: submitting %d prompt(s) to the rollout failed: %s", len(rows), exc)
            for uid in uids:
                rnd.fail(uid)
            rnd.counts["abandoned/submit_failed"] += len(rows)
            # markers of prompts never dispatched would stay "pending" for ever: remove them now; a session
            # that did start re-creates its marker, and is waited for and cleared as an orphan
            tq.kv_clear(partition_id=TRAIN, keys=uids)
            self._step_uids.difference_update(uids)
            for uid in uids:
                self._orphans[uid] = 0
                self._status.pop(uid, None)

    def _restrict_to_batch(self, batch: KVBatchMeta) -> KVBatchMeta:
        """After verl's selection: only families of originals in the returned batch are trained.

        With verl's DAPO filter off, originals without reward variance are left out too (the reference's
        filter), unless none would remain. With ``batch_order=arrival`` no started family has a parent
        outside the batch; otherwise such families are dropped, counted, and their rollouts waited out."""
        rnd = self.round
        parents = {key.split("_")[0] for key in batch.keys}
        if self.filter_groups_metric is None:
            flat = {u for u in parents if u in rnd.originals and not rnd.keeps_original(u)}
            if flat and parents - flat:
                drop_keys = [k for k in batch.keys if k.split("_")[0] in flat]
                tq.kv_clear(partition_id=TRAIN, keys=drop_keys)
                pairs = [(k, t) for k, t in zip(batch.keys, batch.tags) if k.split("_")[0] not in flat]
                batch = KVBatchMeta(partition_id=TRAIN, keys=[k for k, _ in pairs], tags=[t for _, t in pairs])
                parents -= flat
                rnd.counts["dropped/oqa_no_variance"] += len(flat)
        abandoned, admitted = rnd.restrict_to_parents(parents)
        if abandoned:
            logger.warning("SvS: %d task(s) of originals outside the batch are still running; waiting for "
                           "them to end before the step ends", len(abandoned))
        if admitted:
            self._submit_tasks(admitted, [])
        return batch

    def _fetch(self, uids: Sequence[str], keys: dict[str, list[str]], fields: list[str]) -> dict[str, list[dict]]:
        """The one TransferQueue read of the poll: ``fields`` of the given groups' final outputs, per uid in
        session order (a field the rollout did not store is left out of the rows)."""
        flat = [k for u in uids for k in keys[u]]
        out: dict[str, list[dict]] = {u: [] for u in uids}
        if not flat:
            return out
        data = tq.kv_batch_get(keys=flat, partition_id=TRAIN, select_fields=fields)
        columns = {}
        for name in fields:
            if name not in data.keys():
                continue
            values = data[name]
            if isinstance(values, torch.Tensor):
                values = values.unbind(0)
            columns[name] = list(values)
        for i, key in enumerate(flat):
            out[key.split("_")[0]].append({name: getattr(col[i], "data", col[i]) for name, col in columns.items()})
        return out

    def _correctness(self, uids: Sequence[str], keys: dict[str, list[str]]) -> dict[str, list[bool]]:
        out: dict[str, list[bool]] = {}
        for uid, rows in self._fetch(uids, keys, ["extra_fields", "rm_scores"]).items():
            out[uid] = []
            for row in rows:
                info = _reward_extra_info(row.get("extra_fields"))
                if float(info.get("bad_ground_truth", 0) or 0) > 0:   # the reward manager could not verify it
                    self.round.counts["bad_ground_truth"] += 1
                if "acc" in info:
                    out[uid].append(float(info["acc"]) > 0)
                else:  # a reward manager other than `svs`: fall back to a positive reward, counted
                    self.round.counts["acc_missing"] += 1
                    out[uid].append(float(row["rm_scores"].sum().item()) > 0)
        return out

    def _prompt_columns(self, uids: Sequence[str], keys: dict[str, list[str]]) -> dict[str, dict]:
        if not uids:
            return {}
        needed = {"raw_prompt", "reward_model", "extra_info", "data_source", "index"}
        fields = sorted((set(self.host.svs_prompt_columns()) - CONSUMED_BY_AGENT_LOOP) | needed)
        first = {u: keys[u][:1] for u in uids}   # the prompt columns are the same in every session
        return {u: (rows[0] if rows else {}) for u, rows in self._fetch(uids, first, fields).items()}

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
        return self._row(t.uid, self._parent_columns[t.parent_uid], t.messages, t.n, "synthesis",
                         {"svs_parent_uid": t.parent_uid, "svs_seed_index": t.seed_index})

    def _solve_row(self, t: SolveTask) -> dict:
        cols = self._parent_columns[t.parent_uid]
        original = cols.get("raw_prompt") or []
        system = [m for m in original if isinstance(m, dict) and m.get("role") == "system"]
        user = {"role": "user", "content": self.settings.solve_template.replace("{problem}", t.problem)}
        return self._row(t.uid, cols, system + [user], t.n, "solve",
                         {"svs_parent_uid": t.parent_uid, "svs_synthesis_uid": t.synthesis_uid,
                          "svs_problem": t.problem})

    # -- after verl's loop ---------------------------------------------------------------------------
    def _tail_timeout(self, t_originals: float) -> float:
        if self.tail_timeout_s is not None:
            return self.tail_timeout_s
        return max(TAIL_TIMEOUT_FLOOR_S, self.tail_timeout_factor * t_originals)

    def _in_flight(self) -> list[str]:
        """Tracked SvS groups (this step's and orphans) whose marker said pending or running at the last poll."""
        return sorted(u for u in self._step_uids | set(self._orphans)
                      if self._status.get(u) in ("pending", "running"))

    def _finish_tail(self, t_originals: float) -> None:
        """Wait for the SvS work still to come (replicas are still awake: we are inside ``sample``), then
        until no SvS request of the step is in flight: verl cannot cancel a request (its client re-submits
        aborted ones), so nothing may be left running when ``sample`` returns and the replicas sleep.

        Past the tail timeout the round stops waiting for results (``abandon_outstanding``: those families
        leave the update and start nothing more) and what still runs is waited out; past a second timeout
        the rollout is taken as stuck and the step ends in a one-line error (the last checkpoint resumes)."""
        timeout = self._tail_timeout(t_originals)
        deadline = time.monotonic() + timeout
        draining_since: float | None = None
        while True:
            self._sync_metadata_from_transfer_queue()
            outstanding = self.round.outstanding()
            in_flight = self._in_flight()
            now = time.monotonic()
            if not outstanding and not in_flight:
                return
            if outstanding and now > deadline:
                logger.warning("SvS: %d task(s) still running %.0f s after the originals; leaving their families "
                               "out of this update and waiting for their rollouts to end", len(outstanding), timeout)
                self.round.abandon_outstanding("tail_timeout")
                outstanding = []
            if not outstanding and draining_since is None:
                draining_since = now
            if draining_since is not None and now - draining_since > timeout:
                shown = ", ".join(in_flight[:3]) + (" ..." if len(in_flight) > 3 else "")
                raise RuntimeError(
                    f"SvS: {len(in_flight)} rollout group(s) still running {now - draining_since:.0f} s after the "
                    f"step's SvS work was abandoned ({shown}); the rollout looks stuck. The last checkpoint is "
                    "resumable (trainer.resume_mode=auto)")
            self._check_rollout_alive()
            time.sleep(self.poll_interval)

    def _append_svs_groups(self, batch: KVBatchMeta, plan) -> tuple[KVBatchMeta, dict]:
        rnd = self.round
        kept = [*plan.syntheses, *plan.solves]
        all_svs = self._svs_uids()
        snapshot = dict(self.partitions[TRAIN])
        by_uid = self._keys_by_uid(all_svs)

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
            tq.kv_batch_put(keys=keys, partition_id=TRAIN, fields=list_of_dict_to_tensordict(fields))

        # the step boundary, measured in TransferQueue itself: SvS groups whose marker still says pending or
        # running (must be 0), then what the update does not use is removed (prompt markers of all SvS
        # groups, trajectories of unkept ones) and what is left of SvS beyond the batch is counted (must be 0)
        census = (tq.kv_list(TRAIN) or {}).get(TRAIN, {})
        tracked = self._step_uids | set(self._orphans)
        in_flight = [u for u in tracked if census.get(u, {}).get("status") in ("pending", "running")]
        kept_set = set(kept)
        drop = [u for u in all_svs] + [k for u in all_svs - kept_set for k in by_uid.get(u, [])]
        if drop:
            tq.kv_clear(partition_id=TRAIN, keys=drop)

        new_keys, new_tags = list(batch.keys), list(batch.tags)
        self.roles = {key.split("_")[0]: "oqa" for key in batch.keys}
        for uid in kept:
            self.roles[uid] = "vps" if uid in rnd.syntheses else "spa"
            for key in sorted(by_uid[uid], key=_session_of):
                new_keys.append(key)
                new_tags.append(snapshot[key])
        in_batch = set(new_keys)
        left = [k for k in (tq.kv_list(TRAIN) or {}).get(TRAIN, {})
                if k not in in_batch and (k.split("_")[0] in tracked or k.split("-")[0] in self.roles)]

        metrics = dict(plan.metrics)
        # counted from the batch itself (verl's selection decides which originals are in it)
        metrics["svs/update/oqa_groups"] = float(sum(1 for u, r in self.roles.items() if r == "oqa"))
        for role in ROLES:
            metrics[f"svs/tokens/{role}"] = float(self._gen_tokens[role])
            metrics[f"svs/samples/{role}"] = float(sum(1 for k in new_keys if self.roles[k.split("_")[0]] == role))
        metrics["svs/step_end/inflight"] = float(len(in_flight))
        metrics["svs/tq/keys"] = float(len(left))
        if in_flight or left:
            logger.error("SvS step boundary: %d SvS group(s) still in flight, %d SvS key(s) left in TransferQueue "
                         "beyond the batch", len(in_flight), len(left))
        for name, value in rnd.counts.items():
            self.totals[name] += value
        metrics["svs/total/seeds"] = float(self.totals["seeds"])
        metrics["svs/total/accepted"] = float(self.totals["accepted"])
        self.totals["steps"] += 1
        metrics.update({f"svs/state/{name}": float(size) for name, size in self.state_sizes().items()})
        metrics.update({f"svs/state/round_{name}": float(size) for name, size in rnd.state_sizes().items()})
        return KVBatchMeta(partition_id=TRAIN, keys=new_keys, tags=new_tags), metrics

    def state_sizes(self) -> dict[str, int]:
        """Sizes of what the sampler keeps from one step to the next (``svs/state/<name>``: a long run shows them
        bounded). Per-step containers are cleared when a step starts; these are their sizes at the step's end."""
        tq_partition = self.partitions.get(TRAIN, {})
        return {"orphans": len(self._orphans),                 # bounded by ORPHAN_POLLS
                "status": len(self._status),                   # tracked uids; kept across steps for orphans only
                "step_uids": len(self._step_uids),             # this step's SvS task uids
                "seen": len(self._seen),                       # this step's originals fed to the round
                "parent_columns": len(self._parent_columns),   # this step's seeded originals
                "roles": len(self.roles),                      # groups of the last batch
                "totals": len(self.totals),                    # counter names (checkpointed)
                "tq_partition": len(tq_partition),             # verl's snapshot of TransferQueue's train partition
                "prompt_global_steps": len(self.prompt_global_steps.get(TRAIN, {}))}   # verl's per-prompt steps

    # -- checkpointing -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"version": 1, "totals": dict(self.totals)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError(f"unsupported SvS sampler state version "
                             f"{state.get('version') if isinstance(state, dict) else type(state).__name__!r}")
        totals = state.get("totals")   # (older checkpoints also hold "problem_stats" and "round": unused)
        if not isinstance(totals, dict) or not all(isinstance(v, (int, float)) for v in totals.values()):
            raise ValueError("SvS sampler state: 'totals' must map counter names to numbers")
        self.totals = Counter({str(k): int(v) for k, v in totals.items()})


def _reward_extra_info(extra_fields: Any) -> dict:
    value = getattr(extra_fields, "data", extra_fields)
    info = value.get("reward_extra_info") if isinstance(value, dict) else None
    return info if isinstance(info, dict) else {}


def _last_user_text(messages: Any) -> str:
    for msg in reversed(list(messages or [])):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""
