"""One training step of SvS as a streaming state machine (paper Algorithm 1, event-driven).

The rollout reports groups as they finish, in any order; the round answers with the next work:

    score_original(uid, correct)      an OQA group finished -> True if it is underperforming (its texts are
                        needed: its correct responses are seed candidates)
    add_original_texts(...)          the texts of such a group -> its seed candidates, not started yet
    arrived(uids)       verl now counts these originals as sampleable (in arrival order) -> SynthesisTasks for
                        the seeds of those among the first ``batch_size`` arrivals; later arrivals are never
                        in the batch (``batch_order``), so their seeds are never started
    add_original(...)   the three above for one group (tests, the preview)
    add_syntheses(...)  a VPS group finished    -> SolveTasks (one per accepted problem, solve_n samples)
    add_solves(...)     an SPA group finished   -> the synthesis reward of its synthesis is now known
    fail(uid)           a task's rollout failed -> its family is dropped from the update, counted
    reject_solve(uid)   a solve prompt cannot be submitted (too long) -> that synthesis sample earns 0
    restrict_to_parents(uids)  the originals that entered the update are known -> every family of another
                        parent is dropped (counted), and seeds that waited for a cap slot get the freed ones
    abandon_outstanding(reason)  stop waiting for the results of what is still running (tail timeout): those
                        families leave the update and no work they would unlock is started (counted)

``plan()`` then says which groups enter the policy update and the reward of every synthesis sample.

The step boundary: a family is started only for an original that will be in the batch. The round knows
the batch size and the order in which originals became sampleable; ``batch_order`` is the order the
sampler hands verl's selection, so the first ``batch_size`` arrivals are exactly the batch and no family
of a discarded original (DAPO surplus, originals finishing while verl drains) is ever generated.
Nothing here touches verl: uids are plain strings and verl-side code translates its events into calls.
Derived uids use ``-`` (verl reserves ``_``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .bands import GroupStats
from .config import SvsSettings
from .guards import check_problem
from .selection import select_seeds, synthesis_reward
from .synthesis import SynthesisTemplate, final_part, parse_synthesis


# why a started task stopped being waited for (``svs/abandoned/<reason>``): its parent is not in the batch, the
# tail timeout passed, or its submission to the rollout raised
ABANDON_REASONS = ("parent_not_in_batch", "tail_timeout", "submit_failed")


@dataclass(frozen=True)
class SynthesisTask:
    uid: str
    parent_uid: str
    seed_index: int
    solution: str          # the seed: a correct solution of the parent problem
    messages: list[dict[str, str]]
    ground_truth: str
    n: int


@dataclass(frozen=True)
class SolveTask:
    uid: str
    synthesis_uid: str
    sample_index: int      # which of the synthesis group's samples wrote this problem
    parent_uid: str
    problem: str
    ground_truth: str      # the ORIGINAL problem's reference answer
    n: int


@dataclass
class _Original:
    uid: str
    problem: str
    ground_truth: str
    stats: GroupStats


@dataclass
class _Synthesis:
    task: SynthesisTask
    outputs: list[str] | None = None
    problems: list[str | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)        # "ok" or a rejection reason, per sample
    solve_uids: dict[int, str] = field(default_factory=dict)  # sample index -> solve task uid
    failed: bool = False
    dropped: bool = False      # its parent did not enter the update


@dataclass(frozen=True)
class _WaitingSeed:
    parent_uid: str
    seed_index: int
    solution: str
    ground_truth: str


@dataclass
class _Solve:
    task: SolveTask
    stats: GroupStats | None = None
    failed: bool = False
    dropped: bool = False


@dataclass(frozen=True)
class UpdatePlan:
    """What one step hands to the policy update."""

    originals: list[str]                    # OQA group uids with reward variance (of the batch, once restricted)
    syntheses: dict[str, list[int]]         # VPS group uid -> per-sample synthesis reward
    solves: list[str]                       # SPA group uids
    metrics: dict[str, float]
    records: list[dict[str, Any]]           # one per synthesis sample, for the JSONL dump

    @property
    def uids(self) -> list[str]:
        return [*self.originals, *self.syntheses, *self.solves]


class SvsRound:
    def __init__(self, settings: SvsSettings, template: SynthesisTemplate | None = None,
                 batch_size: int | None = None) -> None:
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.s = settings
        self.batch_size = batch_size     # originals verl trains this step (None: all that arrive)
        self.template = template or SynthesisTemplate.load(settings.template)
        self._band = settings.underperforming()
        self._reward_band = settings.reward()
        self._rules = settings.rules()
        self.originals: dict[str, _Original] = {}
        self.syntheses: dict[str, _Synthesis] = {}
        self.solves: dict[str, _Solve] = {}
        self.counts: Counter[str] = Counter()
        self._seeds_admitted = 0
        self._waiting: list[_WaitingSeed] = []   # seeds over max_seeds_per_step, in the order they came
        self._batch_parents: set[str] | None = None
        self._candidates: dict[str, list[_WaitingSeed]] = {}   # seeds of an original not yet placed in the batch
        self._arrival: dict[str, int] = {}       # original uid -> position among the sampleable, in arrival order
        self._abandoned: set[str] = set()        # task uids whose results are no longer waited for

    # -- events --------------------------------------------------------------------------------------
    def score_original(self, uid: str, correct: Sequence[bool]) -> bool:
        """An original group finished with these verdicts. True iff it is underperforming and would seed:
        its texts are then needed (``add_original_texts``). A group without reward variance never seeds: it
        is not trained (DAPO evicts it; with DAPO off the reference's filter leaves it out), so neither is
        a family of it."""
        if uid in self.originals:
            raise ValueError(f"original group {uid!r} reported twice")
        stats = GroupStats.of(uid, correct)
        self.originals[uid] = _Original(uid, "", "", stats)
        self.counts["oqa_groups"] += 1
        self.counts["seeds"] += 0   # the metric exists (0) as soon as an original is scored
        if not self.s.enable or stats.all_same:
            return False
        return bool(select_seeds(stats, self._band, self.s.max_seeds_per_problem))

    def add_original_texts(self, uid: str, problem: str, ground_truth: str,
                           responses: Sequence[str]) -> list[SynthesisTask]:
        """The problem, answer and responses of an underperforming original: its seed candidates. They are
        started once the original's place in the batch is known (``arrived``); returns what that admits
        now (when it arrived already)."""
        original = self.originals[uid]
        stats = original.stats
        if len(responses) != stats.n:
            raise ValueError(f"group {uid!r}: {len(responses)} responses but {stats.n} scores")
        if uid in self._candidates:
            raise ValueError(f"texts of original group {uid!r} reported twice")
        original.problem, original.ground_truth = problem, ground_truth
        seeds = select_seeds(stats, self._band, self.s.max_seeds_per_problem)
        candidates = []
        if seeds:
            self.counts["underperforming"] += 1
        for i in seeds:
            solution = final_part(responses[i]).strip() if self.s.strip_reasoning else responses[i]
            if len(solution) > self.s.max_solution_chars:
                self.counts["seeds_too_long"] += 1
                continue
            candidates.append(_WaitingSeed(uid, i, solution, ground_truth))
        self._candidates[uid] = candidates
        return self._place(uid) if uid in self._arrival else []

    def arrived(self, uids: Sequence[str]) -> list[SynthesisTask]:
        """verl now counts these originals as sampleable, in this order (after any that arrived before).
        The first ``batch_size`` arrivals are the batch (``batch_order``): their seeds start now (up to
        ``max_seeds_per_step``; the rest wait for a freed slot); the seeds of later arrivals never start."""
        tasks: list[SynthesisTask] = []
        for uid in uids:
            if uid in self._arrival:
                continue
            self._arrival[uid] = len(self._arrival)
            if uid in self._candidates:
                tasks += self._place(uid)
        return tasks

    def _place(self, uid: str) -> list[SynthesisTask]:
        candidates = self._candidates.get(uid, [])
        if not candidates:
            return []
        if self.batch_size is not None and self._arrival[uid] >= self.batch_size:
            self.counts["not_started/parent_surplus"] += len(candidates)
            self._candidates[uid] = []
            return []
        tasks = []
        for seed in candidates:
            if self.s.max_seeds_per_step is not None and self._seeds_admitted >= self.s.max_seeds_per_step:
                self._waiting.append(seed)   # may still get the slot of a seed whose parent is discarded
                continue
            tasks.append(self._admit(seed))
        self._candidates[uid] = []
        return tasks

    def batch_order(self, uids: Sequence[str] | set[str]) -> list[str]:
        """The order in which verl should select the batch from these sampleable originals: arrival order
        (originals the round has not seen last, by uid). Its first ``batch_size`` are the originals whose
        families were started."""
        far = len(self._arrival)
        return sorted(uids, key=lambda u: (self._arrival.get(u, far), u))

    def add_original(self, uid: str, problem: str, ground_truth: str, responses: Sequence[str],
                     correct: Sequence[bool]) -> list[SynthesisTask]:
        """An original group finished and is sampleable now: ``score_original``, ``add_original_texts`` and
        ``arrived`` in one call. Returns the synthesis tasks it starts."""
        if len(responses) != len(correct):
            raise ValueError(f"group {uid!r}: {len(responses)} responses but {len(correct)} scores")
        if self.score_original(uid, correct):
            self.add_original_texts(uid, problem, ground_truth, responses)
        else:
            self.originals[uid].problem, self.originals[uid].ground_truth = problem, ground_truth
        return self.arrived([uid])

    def _admit(self, seed: _WaitingSeed) -> SynthesisTask:
        self._seeds_admitted += 1
        self.counts["seeds"] += 1
        task = SynthesisTask(uid=f"{seed.parent_uid}-syn{seed.seed_index}", parent_uid=seed.parent_uid,
                             seed_index=seed.seed_index, solution=seed.solution,
                             messages=self.template.messages(seed.solution, seed.ground_truth),
                             ground_truth=seed.ground_truth, n=self.s.synthesis_n)
        self.syntheses[task.uid] = _Synthesis(task)
        return task

    def add_syntheses(self, uid: str, outputs: Sequence[str]) -> list[SolveTask]:
        syn = self._pending(self.syntheses, uid, "synthesis")
        syn.outputs = list(outputs)
        parent = self.originals[syn.task.parent_uid]
        # siblings: the accepted problems of the earlier samples of this group (session order), so the
        # verdict never depends on the order in which groups finish
        siblings: list[str] = []
        tasks = []
        for j, text in enumerate(outputs):
            parsed = parse_synthesis(text, self.template)
            reason = parsed.reason
            if parsed.ok:
                reason = check_problem(parsed.problem, answer=syn.task.ground_truth, solution=syn.task.solution,
                                       original=parent.problem, siblings=siblings, cfg=self.s.guards) or "ok"
            self.counts["syntheses"] += 1
            if reason != "ok":
                self.counts[f"reject/{reason}"] += 1
                syn.problems.append(None)
                syn.reasons.append(reason)
                continue
            self.counts["accepted"] += 1
            syn.problems.append(parsed.problem)
            syn.reasons.append("ok")
            siblings.append(parsed.problem)
            task = SolveTask(uid=f"{uid}-v{j}", synthesis_uid=uid, sample_index=j, parent_uid=parent.uid,
                             problem=parsed.problem, ground_truth=syn.task.ground_truth, n=self.s.solve_n)
            syn.solve_uids[j] = task.uid
            self.solves[task.uid] = _Solve(task)
            tasks.append(task)
        return tasks

    def add_solves(self, uid: str, correct: Sequence[bool]) -> None:
        solve = self._pending(self.solves, uid, "solve")
        solve.stats = GroupStats.of(uid, correct)

    def fail(self, uid: str) -> None:
        """A submitted task's rollout failed; the family it belongs to cannot be scored."""
        if uid in self.syntheses:
            self.syntheses[uid].failed = True
            self.counts["failed/synthesis"] += 1
        elif uid in self.solves:
            self.solves[uid].failed = True
            self.counts["failed/solve"] += 1
        else:
            raise KeyError(f"unknown SvS task uid {uid!r}")

    def keeps_original(self, uid: str) -> bool:
        """The update rule for an original group (reward variance), as the reference filters originals."""
        return self._rules.keep_original(self.originals[uid].stats)

    def reject_solve(self, uid: str, reason: str) -> None:
        """A solve task that cannot be submitted (e.g. its prompt is over the budget): the synthesis sample
        that wrote it earns reward 0, as if rejected; its group stays in the update (as in the reference)."""
        solve = self.solves.pop(uid)
        syn = self.syntheses[solve.task.synthesis_uid]
        j = solve.task.sample_index
        syn.solve_uids.pop(j, None)
        syn.problems[j] = None
        syn.reasons[j] = reason
        self.counts["accepted"] -= 1
        self.counts[f"reject/{reason}"] += 1

    def restrict_to_parents(self, parents: Sequence[str] | set[str]) -> tuple[list[str], list[SynthesisTask]]:
        """Only the originals in ``parents`` entered the update: drop every family of any other parent.

        Returns the uids of dropped tasks still outstanding (their late writes must be cleared) and the
        synthesis tasks of waiting seeds (kept parents only, in arrival order) that take the cap slots the
        dropped seeds freed. May be called again with a smaller set.
        """
        keep = set(parents)
        self._batch_parents = keep if self._batch_parents is None else self._batch_parents & keep
        outstanding = set(self.outstanding())
        abandoned: list[str] = []
        for uid, syn in self.syntheses.items():
            if syn.task.parent_uid in self._batch_parents or syn.dropped:
                continue
            syn.dropped = True
            self._seeds_admitted -= 1
            self.counts["dropped/parent_not_in_batch"] += 1
            if uid in outstanding:
                abandoned.append(uid)
        for uid, solve in self.solves.items():
            if solve.task.parent_uid not in self._batch_parents and not solve.dropped:
                solve.dropped = True
                if uid in outstanding:
                    abandoned.append(uid)
        self.counts["abandoned/parent_not_in_batch"] += len(abandoned)
        self._abandoned.update(abandoned)
        self._candidates = {u: c for u, c in self._candidates.items() if u in self._batch_parents}
        self._waiting = [w for w in self._waiting if w.parent_uid in self._batch_parents]
        admitted = []
        while self._waiting and (self.s.max_seeds_per_step is None or self._seeds_admitted < self.s.max_seeds_per_step):
            admitted.append(self._admit(self._waiting.pop(0)))
        return abandoned, admitted

    def abandon_outstanding(self, reason: str) -> list[str]:
        """Stop waiting for every task still running (e.g. the tail timeout): each one's family leaves the
        update and nothing it would unlock is started. Returns their uids (counted as
        ``abandoned/<reason>``); the caller still has to let their rollouts end."""
        uids = self.outstanding()
        for uid in uids:
            if uid in self.syntheses:
                self.syntheses[uid].failed = True
            else:
                self.solves[uid].failed = True
        self.counts[f"abandoned/{reason}"] += len(uids)
        self._abandoned.update(uids)
        return uids

    def is_abandoned(self, uid: str) -> bool:
        return uid in self._abandoned

    @staticmethod
    def _pending(table: dict, uid: str, kind: str):
        if uid not in table:
            raise KeyError(f"unknown {kind} task uid {uid!r}")
        entry = table[uid]
        done = entry.outputs is not None if kind == "synthesis" else entry.stats is not None
        if done or entry.failed:
            raise ValueError(f"{kind} task {uid!r} reported twice")
        return entry

    # -- state ---------------------------------------------------------------------------------------
    def outstanding(self) -> list[str]:
        """Uids of submitted tasks whose results have not come back."""
        return [u for u, s in self.syntheses.items() if s.outputs is None and not s.failed and not s.dropped] + \
               [u for u, s in self.solves.items() if s.stats is None and not s.failed and not s.dropped]

    def synthesis_rewards(self, uid: str) -> list[int] | None:
        """Per-sample rewards of a finished synthesis group; None while any of its solves is pending/failed."""
        syn = self.syntheses[uid]
        if syn.outputs is None or syn.failed:
            return None
        rewards = []
        for j, problem in enumerate(syn.problems):
            if problem is None:
                rewards.append(0)
                continue
            solve = self.solves[syn.solve_uids[j]]
            if solve.stats is None:
                return None
            rewards.append(synthesis_reward(solve.stats, self._reward_band))
        return rewards

    # -- the update batch ----------------------------------------------------------------------------
    def plan(self) -> UpdatePlan:
        rules = self._rules
        batch = self._batch_parents
        originals = [u for u, o in self.originals.items()
                     if rules.keep_original(o.stats) and (batch is None or u in batch)]
        syntheses: dict[str, list[int]] = {}
        solves: list[str] = []
        records: list[dict[str, Any]] = []
        c = Counter(self.counts)
        for reason in ABANDON_REASONS:   # present (0) in every step, so a plot of them has every point
            c[f"abandoned/{reason}"] += 0
        if self._waiting:   # seeds that never got a max_seeds_per_step slot
            c["seeds_over_cap"] += len(self._waiting)
        all_rewards = {uid: self.synthesis_rewards(uid) for uid, syn in self.syntheses.items() if not syn.dropped}
        for uid, syn in self.syntheses.items():
            rewards = all_rewards.get(uid)
            if syn.dropped:
                pass
            elif rewards is None:
                c["vps_unscored"] += 1
            elif rules.keep_synthesis_group(rewards):
                syntheses[uid] = rewards
            for j, problem in enumerate(syn.problems):
                solve = self.solves.get(syn.solve_uids.get(j, ""))
                stats = solve.stats if solve else None
                records.append({
                    "synthesis_uid": uid, "sample_index": j, "parent_uid": syn.task.parent_uid,
                    "parent_problem": self.originals[syn.task.parent_uid].problem,
                    "ground_truth": syn.task.ground_truth, "synthesis": syn.outputs[j] if syn.outputs else None,
                    "problem": problem, "verdict": syn.reasons[j],
                    "solve_accuracy": stats.accuracy if stats else None,
                    "reward": rewards[j] if rewards is not None else None,
                    "dropped": "parent_not_in_batch" if syn.dropped else None,
                })
        for uid, solve in self.solves.items():
            if solve.stats is not None and not solve.dropped and rules.keep_solve_group(solve.stats):
                solves.append(uid)
        metrics = self._metrics(c, originals, syntheses, solves, all_rewards)
        return UpdatePlan(originals, syntheses, solves, metrics, records)

    def _metrics(self, c: Counter, originals, syntheses, solves, all_rewards) -> dict[str, float]:
        m = {f"svs/{k}": float(v) for k, v in sorted(c.items())}
        n_syn = c["syntheses"]
        m["svs/valid_ratio"] = c["accepted"] / n_syn if n_syn else 0.0
        scored = [r for r in all_rewards.values() if r is not None]
        flat = [x for r in scored for x in r]
        m["svs/vps/reward_mean"] = sum(flat) / len(flat) if flat else 0.0
        oqa = [o.stats for o in self.originals.values()]
        spa = [s.stats for s in self.solves.values() if s.stats is not None]
        m["svs/oqa/acc_mean"] = sum(s.accuracy for s in oqa) / len(oqa) if oqa else 0.0
        m["svs/spa/acc_mean"] = sum(s.accuracy for s in spa) / len(spa) if spa else 0.0
        m["svs/update/oqa_groups"] = float(len(originals))
        m["svs/update/vps_groups"] = float(len(syntheses))
        m["svs/update/spa_groups"] = float(len(solves))
        return m

    def state_sizes(self) -> dict[str, int]:
        """Sizes of the round's containers (the sampler logs them as ``svs/state/round_<name>`` at the step's end;
        a round lives for one step, so each is bounded by that step's originals and tasks)."""
        return {"originals": len(self.originals), "syntheses": len(self.syntheses), "solves": len(self.solves),
                "waiting": len(self._waiting), "candidates": len(self._candidates), "arrival": len(self._arrival),
                "abandoned": len(self._abandoned), "counts": len(self.counts)}

    # -- checkpointing -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "originals": {u: {"problem": o.problem, "ground_truth": o.ground_truth, "correct": list(o.stats.correct)}
                          for u, o in self.originals.items()},
            "syntheses": {u: {"task": asdict(s.task), "outputs": s.outputs, "problems": s.problems,
                              "reasons": s.reasons, "solve_uids": {str(k): v for k, v in s.solve_uids.items()},
                              "failed": s.failed, "dropped": s.dropped} for u, s in self.syntheses.items()},
            "solves": {u: {"task": asdict(s.task), "correct": list(s.stats.correct) if s.stats else None,
                           "failed": s.failed, "dropped": s.dropped} for u, s in self.solves.items()},
            "counts": dict(self.counts),
            "seeds_admitted": self._seeds_admitted,
            "waiting": [asdict(w) for w in self._waiting],
            "batch_parents": sorted(self._batch_parents) if self._batch_parents is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.originals = {u: _Original(u, o["problem"], o["ground_truth"], GroupStats.of(u, o["correct"]))
                          for u, o in state["originals"].items()}
        self.syntheses = {}
        for u, s in state["syntheses"].items():
            self.syntheses[u] = _Synthesis(SynthesisTask(**s["task"]), s["outputs"], list(s["problems"]),
                                           list(s["reasons"]), {int(k): v for k, v in s["solve_uids"].items()},
                                           s["failed"], s.get("dropped", False))
        self.solves = {u: _Solve(SolveTask(**s["task"]),
                                 GroupStats.of(u, s["correct"]) if s["correct"] is not None else None, s["failed"],
                                 s.get("dropped", False))
                       for u, s in state["solves"].items()}
        self.counts = Counter(state["counts"])
        self._seeds_admitted = state["seeds_admitted"]
        self._waiting = [_WaitingSeed(**w) for w in state.get("waiting", [])]
        parents = state.get("batch_parents")
        self._batch_parents = set(parents) if parents is not None else None
