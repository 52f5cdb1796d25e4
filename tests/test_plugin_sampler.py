"""SvsReplayBuffer driven through a real local TransferQueue (Ray + TQ on this machine), with verl's own
sampling loop, DAPO filter and refill, and the real ``svs`` reward manager scoring every trajectory."""

from __future__ import annotations

import json
import uuid

import pytest

tq = pytest.importorskip("transfer_queue")

from svs_test_helpers import RolloutSimulator  # noqa: E402

from svs_verl.verl_plugin.sampler import SvsReplayBuffer  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer  # noqa: E402

PROBLEMS = {  # answer -> (problem solved 3/8 of the time, problem solved 8/8), written by "the policy"
    "42": ("A box holds 6 rows of 7 eggs. How many eggs are in the box?", "What is the product of 21 and 2?"),
    "12": ("A crate has 3 rows of 4 apples. How many apples does it hold?", "What is the product of 6 and 2?"),
    "5": ("A bag has 2 red and 3 blue marbles. How many marbles are in it?", "What is 10 divided by 2?"),
}


@pytest.fixture(scope="module")
def transfer_queue():
    import ray

    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)  # TQ wants more CPUs than 2
    tq.init()
    yield tq
    tq.close()
    ray.shutdown()


@pytest.fixture
def partition(transfer_queue):
    yield "train"
    left = list((tq.kv_list("train") or {}).get("train", {}))
    if left:
        tq.kv_clear(keys=left, partition_id="train")


def uid() -> str:
    return uuid.uuid4().hex[:12]


class ScriptedPolicy:
    """The model: scripted correctness for originals, syntheses and solves."""

    def __init__(self, correct: dict[str, list[bool]]):
        self.correct = correct  # original uid -> correctness of its 8 responses

    def __call__(self, row: dict, n: int) -> list[str]:
        role = row["extra_info"].get("svs_role")
        answer = row["reward_model"]["ground_truth"]
        if role is None:
            return [f"So the answer is \\boxed{{{answer if ok else 0}}}." for ok in self.correct[row["uid"]]]
        if role == "synthesis":
            hard, easy = PROBLEMS[answer]
            return ([f"```text\n{hard}\n```", f"```text\n{easy}\n```", "I cannot think of one.",
                     f"```text\nThere are {answer} eggs. How many eggs? (answer: {answer})\n```"] * n)[:n]
        hard, _ = PROBLEMS[answer]
        hits = 3 if row["extra_info"]["svs_problem"] == hard else 8   # the easy one and the giveaway: 8/8
        return [f"\\boxed{{{answer if i < hits else 1}}}" for i in range(n)]


def make_buffer(sim, **svs):
    settings = {"synthesis_n": 4, "solve_n": 8, "max_seeds_per_problem": 1, **svs}
    buf = SvsReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                          max_off_policy_strategy="drop", sampler_kwargs={}, refill_fn=None,
                          svs={**settings, "poll_interval_s": 0.05, "tail_timeout_s": 60}, train_batch_size=3, gen_batch_size=3)
    buf.attach(sim)
    return buf


# GRPO advantages (score - group mean) / (unbiased group std), worked out by hand for the groups below:
#   2 of 8 correct: mean 1/4, std sqrt(1.5/7) = 0.4629100 -> +1.6201852 / -0.5400617
#   3 of 8 correct: mean 3/8, std sqrt(1.875/7) = 0.5175492 -> +1.2076147 / -0.7245688
#   1 of 4 rewarded: mean 1/4, std sqrt(0.75/3) = 0.5 -> +1.5 / -0.5
ADV = {(2, 8): (1.6201852, -0.5400617), (3, 8): (1.2076147, -0.7245688), (1, 4): (1.5, -0.5)}


def check_grpo_advantages(batch, hits: dict[str, tuple[set[int], int]]):
    """Run verl's own GRPO advantage on the returned batch (rm_scores and response_mask from TQ, grouped by
    uid) and compare every trajectory with the hand-computed table: ``hits[uid] = (rewarded sessions, n)``."""
    import numpy as np
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    data = tq.kv_batch_get(keys=list(batch.keys), partition_id="train", select_fields=["rm_scores", "response_mask"])
    scores, masks = data["rm_scores"].unbind(0), data["response_mask"].unbind(0)
    width = max(len(x) for x in scores)
    rewards = torch.zeros(len(scores), width)
    mask = torch.zeros(len(scores), width)
    for i, (sc, m) in enumerate(zip(scores, masks)):
        rewards[i, :len(sc)] = sc
        mask[i, :len(m)] = m.float()
    index = np.array([k.split("_")[0] for k in batch.keys], dtype=object)
    adv, _ = compute_grpo_outcome_advantage(rewards, mask, index)
    assert set(index) == set(hits)
    for i, key in enumerate(batch.keys):
        uid, session = key.split("_")[0], int(key.split("_")[1])
        rewarded, n = hits[uid]
        up, down = ADV[(len(rewarded), n)]
        expected = up if session in rewarded else down
        length = int(mask[i].sum())
        assert adv[i, :length].tolist() == pytest.approx([expected] * length, abs=1e-5), key
        assert not adv[i, length:].any()


def rm_last(keys):
    data = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["rm_scores"])
    return [float(x[-1]) for x in data["rm_scores"].unbind(0)]


def test_svs_step_streams_synthesis_and_solves_into_the_batch(partition, tmp_path):
    q1, q2, q3 = uid(), uid(), uid()
    policy = ScriptedPolicy({q1: [False, True, False, False, True, False, False, False],   # 2/8: underperforming
                             q2: [True] * 8,                                               # 8/8
                             q3: [True, False, False, True, True, False, False, False]})  # 3/8: underperforming
    sim = RolloutSimulator(policy)
    rows = {q1: sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0),
            q2: sim.prompt(q2, "What is 40 + 2?", "42", 1),
            q3: sim.prompt(q3, "Tom has 5 apples and gets 7 more. How many apples?", "12", 2)}
    sim.run(rows[q1])
    sim.run(rows[q2])
    sim.run(rows[q3], status="running")          # q3 is still generating when the sampler starts
    running_at_first_submit = []

    def finish_q3_after_first_submit(submitted_rows):
        if not running_at_first_submit:
            tags = (tq.kv_list("train") or {}).get("train", {})
            running_at_first_submit.append(tags[q3]["status"])
            sim.finish(q3)
    sim.on_submit = finish_q3_after_first_submit

    buf = make_buffer(sim, dump_dir=str(tmp_path / "dump"))
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=3)

    # streaming: q1's synthesis went to the rollout while q3 was still running
    assert running_at_first_submit == ["running"]
    assert [r["uid"] for r in sim.submitted[0]] == [f"{q1}-syn1"]   # the first correct answer of q1 seeds
    submitted = [r["uid"] for rows_ in sim.submitted for r in rows_]
    # paper default: no guards, so the giveaway (sample 3) is solved too; sample 2 has no fence
    assert sorted(submitted) == sorted([f"{q1}-syn1", f"{q1}-syn1-v0", f"{q1}-syn1-v1", f"{q1}-syn1-v3",
                                        f"{q3}-syn0", f"{q3}-syn0-v0", f"{q3}-syn0-v1", f"{q3}-syn0-v3"])
    syn_row = sim.submitted[0][0]
    assert syn_row["__rollout_n__"] == 4 and syn_row["extra_info"]["svs_role"] == "synthesis"
    assert "\\boxed{42}" in syn_row["raw_prompt"][-1]["content"]          # shows the seed solution
    solve_row = next(r for rows_ in sim.submitted for r in rows_ if r["uid"] == f"{q1}-syn1-v0")
    assert solve_row["__rollout_n__"] == 8 and solve_row["reward_model"]["ground_truth"] == "42"
    # asked with the originals' instruction (svs-verl data prepare --rewrap), the default solve template
    assert solve_row["raw_prompt"] == [{"role": "user", "content": PROBLEMS["42"][0] + "\nPlease reason step by "
                                        "step, and put your final answer within \\boxed{}."}]

    groups = {}
    for key in batch.keys:
        groups.setdefault(key.split("_")[0], []).append(key)
    # verl's DAPO filter is off here, so the reference's filter applies: q2 (8/8, no reward variance) is
    # left out; then the VPS group and the in-band SPA group of each seed
    assert set(groups) == {q1, q3, f"{q1}-syn1", f"{q3}-syn0", f"{q1}-syn1-v0", f"{q3}-syn0-v0"}
    assert all(len(v) == (4 if "-syn" in u and "-v" not in u else 8) for u, v in groups.items())
    assert len(batch.tags) == len(batch.keys) and all("seq_len" in t for t in batch.tags)
    # synthesis rewards were written into rm_scores: sample 0 solved 3/8 (in band) -> 1; the rest 0; the
    # score tensor spans the whole response (response_len tokens), zero except the last token
    tags = dict(zip(batch.keys, batch.tags))
    for vps in (f"{q1}-syn1", f"{q3}-syn0"):
        keys = sorted(groups[vps], key=lambda k: int(k.split("_")[1]))
        assert rm_last(keys) == [1.0, 0.0, 0.0, 0.0]
        scores = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["rm_scores"])["rm_scores"].unbind(0)
        for key, row in zip(keys, scores):
            assert row.shape == (tags[key]["response_len"],) and not row[:-1].any()
    check_grpo_advantages(batch, {q1: ({1, 4}, 8), q3: ({0, 3, 4}, 8), f"{q1}-syn1": ({0}, 4),
                                  f"{q3}-syn0": ({0}, 4), f"{q1}-syn1-v0": ({0, 1, 2}, 8),
                                  f"{q3}-syn0-v0": ({0, 1, 2}, 8)})
    assert buf.roles[q1] == "oqa" and buf.roles[f"{q1}-syn1"] == "vps" and buf.roles[f"{q1}-syn1-v0"] == "spa"

    # TQ holds exactly the batch's trajectories plus nothing of the unkept SvS groups or any prompt marker
    left = (tq.kv_list("train") or {}).get("train", {})
    assert set(left) == set(batch.keys)

    assert metrics["svs/seeds"] == 2 and metrics["svs/syntheses"] == 8 and metrics["svs/accepted"] == 6
    assert metrics["svs/reject/no_fence"] == 2 and not [k for k in metrics if k.startswith("svs/reject/") and
                                                           k != "svs/reject/no_fence"]
    assert metrics["svs/valid_ratio"] == 0.75 and metrics["svs/vps/reward_mean"] == 0.25
    assert metrics["svs/update/oqa_groups"] == 2 and metrics["svs/dropped/oqa_no_variance"] == 1
    assert metrics["svs/update/vps_groups"] == 2 and metrics["svs/update/spa_groups"] == 2
    assert (metrics["svs/samples/oqa"], metrics["svs/samples/vps"], metrics["svs/samples/spa"]) == (16, 8, 16)
    assert metrics["svs/tokens/vps"] > 0 and metrics["svs/tokens/spa"] > 0 and metrics["svs/tokens/oqa"] > 0

    from svs_verl.verl_plugin.dumps import read_dump

    records = list(read_dump(tmp_path / "dump" / "syntheses_step000001.jsonl.gz"))
    assert metrics["svs/dump/records"] == metrics["svs/dump/records_seen"] == 8
    assert len(records) == 8
    first = next(r for r in records if r["synthesis_uid"] == f"{q1}-syn1" and r["sample_index"] == 0)
    assert first["problem"] == PROBLEMS["42"][0] and first["solve_accuracy"] == 0.375 and first["reward"] == 1
    assert first["parent_problem"].startswith("A farmer") and first["ground_truth"] == "42"


def families(batch) -> dict[str, set[str]]:
    """Original uid -> the uids of the SvS groups of its family in the batch."""
    out: dict[str, set[str]] = {}
    for key in batch.keys:
        uid = key.split("_")[0]
        out.setdefault(uid.split("-")[0], set()).add(uid)
    return out


def dapo_refill_step(**svs):
    """verl's DAPO loop on 4 originals (1/8, 8/8, 0/8, 2/8 correct): it evicts the two flat groups, refills
    2 x 2 prompts (4/8 correct each: underperforming, 4 seeds each) and discards the surplus."""
    q = [uid() for _ in range(4)]
    policy = ScriptedPolicy({q[0]: [True] + [False] * 7, q[1]: [True] * 8, q[2]: [False] * 8,
                             q[3]: [True, True, False, False, False, False, False, False]})
    sim = RolloutSimulator(policy)
    refills = []
    extra = {uid(): [True, False] * 4 for _ in range(4)}
    policy.correct.update(extra)
    pending = list(extra)

    def refill(k):
        refills.append(k)
        for _ in range(k):
            u = pending.pop()
            sim.run(sim.prompt(u, "What is 2 + 3?", "5", 9, step=2))  # newer than q[0]
        return k

    for i, u in enumerate(q[:3]):
        sim.run(sim.prompt(u, f"Problem {i}: what is 6 times 7?", "42", i))
    sim.run(sim.prompt(q[3], "Tom has 5 apples and gets 7 more. How many apples?", "12", 3))
    buf = SvsReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                          max_off_policy_strategy="drop", sampler_kwargs={}, refill_fn=refill,
                          svs={"synthesis_n": 4, "solve_n": 8, "poll_interval_s": 0.05, **svs},
                          filter_groups_metric="acc", train_batch_size=3, gen_batch_size=1, max_inflight_gen_batches=2)
    buf.attach(sim)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=3)
    SUBMITTED.append(sim.submitted)
    return batch, metrics, q, extra, refills


SUBMITTED: list = []   # the rows each dapo_refill_step submitted to the rollout


def test_dapo_refill_starts_families_only_for_the_batch(partition):
    """With the paper default (every correct response seeds) and verl's DAPO refill: q0 and q3 arrive first,
    then the 4 refills at once; verl's selection takes the originals in arrival order, so the batch is q0, q3
    and the first refill, and the other three refills (4 seeds each) never start a family."""
    batch, metrics, q, extra, refills = dapo_refill_step()
    fam = families(batch)
    assert refills == [4] and metrics["training/filter_groups/evicted_samples"] == 2
    assert metrics["training/filter_groups/discarded_surplus_samples"] == 3
    kept = min(extra)                          # the 4 refills became sampleable in one poll: uid order
    assert set(fam) == {q[0], q[3], kept}
    assert fam == {
        q[0]: {q[0], f"{q[0]}-syn0", f"{q[0]}-syn0-v0"},
        q[3]: {q[3], f"{q[3]}-syn0", f"{q[3]}-syn1", f"{q[3]}-syn0-v0", f"{q[3]}-syn1-v0"},
        kept: {kept} | {f"{kept}-syn{i}" for i in (0, 2, 4, 6)} | {f"{kept}-syn{i}-v0" for i in (0, 2, 4, 6)},
    }
    submitted = {r["uid"].split("-")[0] for rows in SUBMITTED[-1] for r in rows}
    assert submitted == {q[0], q[3], kept}     # nothing of a discarded refill was ever generated
    assert metrics["svs/not_started/parent_surplus"] == 12 and metrics["svs/seeds"] == 1 + 2 + 4
    assert "svs/dropped/parent_not_in_batch" not in metrics
    assert metrics["svs/abandoned/parent_not_in_batch"] == metrics["svs/abandoned/tail_timeout"] == 0
    assert metrics["svs/update/oqa_groups"] == 3 and metrics["svs/update/vps_groups"] == 7
    assert metrics["svs/step_end/inflight"] == 0 and metrics["svs/tq/keys"] == 0
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)


def test_verl_batch_order_abandons_and_waits_out_families_of_discarded_originals(partition):
    """batch_order=verl: verl picks among the sampleable in its own order, so families of originals it
    discards may already run; they are dropped, counted, and their rollouts waited out before sample()
    returns (nothing in flight, nothing left in TransferQueue)."""
    batch, metrics, q, extra, _ = dapo_refill_step(batch_order="verl")
    fam = families(batch)
    assert {q[0], q[3]} < set(fam) and len(fam) == 3
    [kept] = set(fam) - {q[0], q[3]}
    assert kept in extra
    started = {r["uid"].split("-")[0] for rows in SUBMITTED[-1] for r in rows} - {q[0], q[3]}
    assert kept in started or metrics["svs/update/vps_groups"] == 3
    dropped = metrics.get("svs/dropped/parent_not_in_batch", 0)
    assert dropped == 4 * len(started - {kept})       # every started family of a discarded refill, counted
    assert metrics["svs/step_end/inflight"] == 0 and metrics["svs/tq/keys"] == 0
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)


def test_seed_cap_counts_only_parents_that_enter_the_batch(partition):
    """max_seeds_per_step=4: q0 (1 seed) and q3 (2 seeds) take 3 slots, the kept refill the last one; its
    other 3 seeds wait for a slot that no discarded family frees."""
    batch, metrics, q, extra, _ = dapo_refill_step(max_seeds_per_step=4)
    fam = families(batch)
    kept = min(extra)
    assert fam == {q[0]: {q[0], f"{q[0]}-syn0", f"{q[0]}-syn0-v0"},
                   q[3]: {q[3], f"{q[3]}-syn0", f"{q[3]}-syn1", f"{q[3]}-syn0-v0", f"{q[3]}-syn1-v0"},
                   kept: {kept, f"{kept}-syn0", f"{kept}-syn0-v0"}}
    assert metrics["svs/seeds_over_cap"] == 3 and metrics["svs/update/vps_groups"] == 4
    assert metrics["svs/not_started/parent_surplus"] == 12
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)


def test_svs_groups_in_flight_are_hidden_from_verls_dapo_loop(partition):
    """Synthesis groups still running and solve groups still pending while verl's DAPO loop decides: it
    must neither wait for them (they are not in its in-flight count) nor select them."""
    q1, q2, q3 = uid(), uid(), uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7, q2: [True, False] * 4, q3: [True] * 8}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    sim.run(sim.prompt(q2, "Tom has 5 apples and gets 7 more. How many apples?", "12", 1))
    sim.run(sim.prompt(q3, "What is 40 + 2?", "42", 2), status="running")   # an original still generating
    roles = lambda row: row["extra_info"]["svs_role"]   # noqa: E731
    # q2's synthesis keeps generating; q1's synthesis finishes at once and its solves wait in the queue
    sim.hold = lambda row: ("running" if roles(row) == "synthesis" and row["uid"].startswith(q2)
                            else "pending" if roles(row) == "solve" else None)
    buf = SvsReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                          max_off_policy_strategy="drop", sampler_kwargs={}, refill_fn=lambda k: 0,
                          svs={"synthesis_n": 4, "solve_n": 8, "max_seeds_per_problem": 1, "poll_interval_s": 0.05},
                          filter_groups_metric="acc", train_batch_size=2, gen_batch_size=1, max_inflight_gen_batches=2)
    buf.attach(sim)
    at_selection = []
    select = buf._select_prompt_uids

    def recording_select(partition_id, sampleable, batch_size):
        tags = (tq.kv_list("train") or {}).get("train", {})
        at_selection.append(({u: tags[u]["status"] for u in tags if "-syn" in u and "_" not in u}, set(sampleable)))
        return select(partition_id, sampleable, batch_size)
    buf._select_prompt_uids = recording_select

    finish_tail = buf._finish_tail

    def release_then_finish(pid):   # after verl's selection the rollout gets to the held groups
        sim.hold = None
        sim.release()
        return finish_tail(pid)
    buf._finish_tail = release_then_finish
    polls = []
    wait = buf._wait_for_next_poll

    def bounded_wait(pid, last):     # were SvS groups counted as in flight, verl would wait here for ever
        polls.append(1)
        if len(polls) == 5:          # the original q3 ends (8/8: DAPO evicts it); verl may then select
            sim.finish(q3)
        if len(polls) == 100:
            sim.hold = None
            sim.release()
        return wait(pid, last)
    buf._wait_for_next_poll = bounded_wait
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=2)
    [(statuses, sampleable)] = at_selection
    assert statuses == {f"{q1}-syn0": "finished", f"{q1}-syn0-v0": "pending", f"{q1}-syn0-v1": "pending",
                        f"{q1}-syn0-v3": "pending", f"{q2}-syn0": "running"}   # in flight, not waited for
    assert sampleable == {q1, q2}                                            # and never offered to verl
    assert families(batch) == {q1: {q1, f"{q1}-syn0", f"{q1}-syn0-v0"}, q2: {q2, f"{q2}-syn0", f"{q2}-syn0-v0"}}
    assert "svs/tail_timeout" not in metrics


def test_svs_disabled_is_verl_replay_buffer(partition):
    def fill():
        ids = [uid() for _ in range(3)]
        policy = ScriptedPolicy({u: [True] + [False] * 7 for u in ids})
        sim = RolloutSimulator(policy)
        for i, u in enumerate(ids):
            sim.run(sim.prompt(u, "What is 6 times 7?", "42", i, step=(3, 1, 2)[i]))  # verl picks the oldest
        return sim, ids

    sim, ids = fill()
    buf = make_buffer(sim, enable=False)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=2)
    assert sim.submitted == [] and [k for k in metrics if k.startswith("svs/")] == ["svs/tokens/oqa"]
    # all three groups were generated (identical responses), two were sampled
    assert metrics.pop("svs/tokens/oqa") == sum(t["response_len"] for t in batch.tags) * 3 / 2
    ours = sorted({k.split("_")[0] for k in batch.keys})
    tq.kv_clear(keys=list((tq.kv_list("train") or {}).get("train", {})), partition_id="train")

    sim, ids2 = fill()
    ref = ReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                       max_off_policy_strategy="drop", sampler_kwargs={}, poll_interval=0.05)
    ref_batch, ref_metrics = ref.sample(global_steps=1, partition_id="train", batch_size=2)
    theirs = sorted({k.split("_")[0] for k in ref_batch.keys})
    assert {ids.index(u) for u in ours} == {ids2.index(u) for u in theirs} == {1, 2}
    assert len(batch.keys) == len(ref_batch.keys) == 16 and metrics == ref_metrics


def test_failed_solve_drops_its_family_and_is_counted(partition):
    q1 = uid()
    policy = ScriptedPolicy({q1: [True] + [False] * 7})
    sim = RolloutSimulator(policy)
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))

    def fail_first_solve(rows):
        for row in rows:
            if row["uid"].endswith("-v0"):
                tq.kv_put(key=row["uid"], partition_id="train", tag={"status": "failure"})
    sim.on_submit = fail_first_solve
    buf = make_buffer(sim)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=1)
    groups = {k.split("_")[0] for k in batch.keys}
    assert groups == {q1}                       # VPS unscored (a solve failed); v1 is 8/8: no SPA signal
    assert metrics["svs/failed/solve"] == 1 and metrics["svs/vps_unscored"] == 1
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)


def test_rollout_submission_error_is_counted_not_fatal(partition):
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))

    def broken(rows):
        raise ConnectionError("rollout workers unreachable")
    sim.svs_submit = broken
    buf = make_buffer(sim)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=1)
    assert {k.split("_")[0] for k in batch.keys} == {q1}
    assert metrics["svs/abandoned/submit_failed"] == 1 and metrics["svs/failed/synthesis"] == 1


def test_prompt_columns_missing_from_transfer_queue_fall_back(partition):
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.extra_columns = ["never_stored"]
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    batch, metrics = make_buffer(sim).sample(global_steps=1, partition_id="train", batch_size=1)
    assert metrics["svs/seeds"] == 1 and metrics["svs/syntheses"] == 4
    row = sim.submitted[0][0]
    assert "never_stored" not in row and "agent_name" not in row and row["ability"] == "math"


def test_prompts_over_the_budget_are_left_out_and_counted(partition):
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    sim.svs_prompt_fits = lambda messages: False
    batch, metrics = make_buffer(sim).sample(global_steps=1, partition_id="train", batch_size=1)
    assert sim.submitted == [] and {k.split("_")[0] for k in batch.keys} == {q1}
    assert metrics["svs/prompt_too_long"] == 1 and metrics["svs/failed/synthesis"] == 1


def tail_timeout_buffer(sim, **svs):
    buf = SvsReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                          max_off_policy_strategy="drop", sampler_kwargs={},
                          svs={"synthesis_n": 4, "max_seeds_per_problem": 1, "poll_interval_s": 0.05,
                               "tail_timeout_s": 0.5, **svs})
    buf.attach(sim)
    return buf


def test_tail_timeout_abandons_the_family_and_waits_out_its_rollout(partition, monkeypatch):
    """The synthesis rollout outlives the tail timeout: its family leaves the update (counted), nothing it
    would unlock starts, and sample() returns only once the rollout has ended: nothing in flight, nothing of
    the family left in TransferQueue for the next step."""
    from svs_verl.core.round import SvsRound

    q1, q2 = uid(), uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7, q2: [True] * 8}))
    sim.hold_roles = {"synthesis"}                       # the synthesis rollout does not finish in time
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    abandon = SvsRound.abandon_outstanding

    def abandon_then_the_rollout_ends(self, reason):
        uids = abandon(self, reason)
        sim.release()                                    # ... and ends afterwards, on its own
        return uids
    monkeypatch.setattr(SvsRound, "abandon_outstanding", abandon_then_the_rollout_ends)
    buf = tail_timeout_buffer(sim)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=1)
    assert {k.split("_")[0] for k in batch.keys} == {q1} and metrics["svs/abandoned/tail_timeout"] == 1
    assert [r["uid"] for rows in sim.submitted for r in rows] == [f"{q1}-syn0"]   # no solve was started
    assert metrics["svs/step_end/inflight"] == 0 and metrics["svs/tq/keys"] == 0
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)
    tq.kv_clear(keys=list(batch.keys), partition_id="train")      # what verl's fit does after the update
    sim.run(sim.prompt(q2, "What is 40 + 2?", "42", 1, step=2))
    batch2, metrics2 = buf.sample(global_steps=2, partition_id="train", batch_size=1)
    assert {k.split("_")[0] for k in batch2.keys} == {q2} and metrics2["svs/abandoned/tail_timeout"] == 0
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch2.keys)


def test_a_rollout_that_never_ends_fails_the_step_in_one_line(partition):
    """A synthesis that never finishes (a stuck or dead engine): after the tail timeout and the same again
    for its rollout to end, the step fails with a one-line error naming the group, instead of hanging or
    handing the replicas a request that would cross into the next step."""
    import time

    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.hold_roles = {"synthesis"}
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    buf = tail_timeout_buffer(sim)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        buf.sample(global_steps=1, partition_id="train", batch_size=1)
    assert time.monotonic() - t0 < 20
    message = str(err.value)
    assert "\n" not in message and f"{q1}-syn0" in message and "resumable" in message
    sim.release()


def test_empty_finished_synthesis_group_fails_at_once(partition):
    """A synthesis group whose sessions all came back empty must fail now, not wait for the tail timeout."""
    import time

    q1 = uid()
    policy = ScriptedPolicy({q1: [True] + [False] * 7})
    scripted = policy.__call__
    sim = RolloutSimulator(lambda row, n: [] if row["extra_info"].get("svs_role") == "synthesis" else scripted(row, n))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    buf = SvsReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                          max_off_policy_strategy="drop", sampler_kwargs={},
                          svs={"synthesis_n": 4, "max_seeds_per_problem": 1, "poll_interval_s": 0.05,
                               "tail_timeout_s": 20})
    buf.attach(sim)
    t0 = time.monotonic()
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=1)
    assert time.monotonic() - t0 < 10
    assert {k.split("_")[0] for k in batch.keys} == {q1}
    assert metrics["svs/failed/synthesis"] == 1 and "svs/tail_timeout" not in metrics
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)


def test_solve_prompt_over_the_budget_costs_one_reward_not_the_group(partition):
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    easy = PROBLEMS["42"][1]
    sim.svs_prompt_fits = lambda messages: easy not in messages[-1]["content"]   # the easy problem's prompt is too long
    batch, metrics = make_buffer(sim).sample(global_steps=1, partition_id="train", batch_size=1)
    assert families(batch) == {q1: {q1, f"{q1}-syn0", f"{q1}-syn0-v0"}}
    assert [r["uid"] for rows in sim.submitted for r in rows] == [f"{q1}-syn0", f"{q1}-syn0-v0", f"{q1}-syn0-v3"]
    vps = sorted((k for k in batch.keys if k.startswith(f"{q1}-syn0_")), key=lambda k: int(k.split("_")[1]))
    assert rm_last(vps) == [1.0, 0.0, 0.0, 0.0]
    assert metrics["svs/prompt_too_long"] == 1 and metrics["svs/reject/prompt_too_long"] == 1
    assert metrics["svs/accepted"] == 2 and "svs/failed/synthesis" not in metrics and "svs/vps_unscored" not in metrics


def test_submission_that_raises_after_its_markers_leaves_nothing_behind(partition):
    q1, q2 = uid(), uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7, q2: [True] * 8}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    lost = []

    def half_broken(rows):   # the prompt markers are written, then generation cannot be reached
        tq.kv_batch_put(keys=[r["uid"] for r in rows], partition_id="train",
                        tags=[{"is_prompt": True, "status": "pending", "global_steps": 1} for _ in rows])
        lost.extend(rows)
        raise ConnectionError("rollout workers unreachable")
    real_submit, sim.svs_submit = sim.svs_submit, half_broken
    buf = make_buffer(sim)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=1)
    assert {k.split("_")[0] for k in batch.keys} == {q1} and metrics["svs/abandoned/submit_failed"] == 1
    left = set((tq.kv_list("train") or {}).get("train", {}))
    assert left == set(batch.keys), (left - set(batch.keys), set(batch.keys) - left)
    tq.kv_clear(keys=list(batch.keys), partition_id="train")       # what verl's fit does after the update
    sim.svs_submit = real_submit
    sim.run(lost[0])                                               # a session started anyway and ends late
    sim.run(sim.prompt(q2, "What is 40 + 2?", "42", 1, step=2))
    batch2, _ = buf.sample(global_steps=2, partition_id="train", batch_size=1)
    assert {k.split("_")[0] for k in batch2.keys} == {q2}
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch2.keys)


def test_a_prompt_file_in_the_reference_format_drives_a_step(partition, tmp_path):
    """svs.template pointing at a plain-text prompt with the reference's {REPLACE} placeholder (our text,
    the reference file's shape): the seed response goes where {REPLACE} is, the ```text answers parse."""
    prompt = tmp_path / "variational_problem_synthesis.txt"
    prompt.write_text("Here is a correct response:\n\n<response>\n{REPLACE}\n</response>\n\nWrite the problem "
                      "it most plausibly answers, as\n\n```text\n[problem]\n```")
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0))
    batch, metrics = make_buffer(sim, template=str(prompt)).sample(global_steps=1, partition_id="train", batch_size=1)
    syn_row = sim.submitted[0][0]
    assert syn_row["raw_prompt"] == [{"role": "user", "content": prompt.read_text().replace(
        "{REPLACE}", "So the answer is \\boxed{42}.")}]
    assert families(batch) == {q1: {q1, f"{q1}-syn0", f"{q1}-syn0-v0"}}
    assert metrics["svs/accepted"] == 3 and metrics["svs/reject/no_fence"] == 1


def test_sampler_state_round_trip(partition):
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True, True] + [False] * 6}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 7))
    buf = make_buffer(sim)
    buf.sample(global_steps=1, partition_id="train", batch_size=1)
    state = json.loads(json.dumps(buf.state_dict()))
    other = make_buffer(sim)
    other.load_state_dict(state)
    assert other.totals == buf.totals and other.totals["seeds"] == 1
    other.load_state_dict({**state, "problem_stats": {"7": [1, 1]}, "round": None})   # an older checkpoint
    assert other.totals == buf.totals
    with pytest.raises(ValueError, match="version"):
        other.load_state_dict({"version": 99})
    with pytest.raises(ValueError, match="totals"):
        other.load_state_dict({"version": 1, "totals": {"seeds": "many"}})


def test_bad_svs_settings_fail_at_construction():
    with pytest.raises(ValueError, match="synthesis_nn"):
        SvsReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                        max_off_policy_strategy="drop", sampler_kwargs={}, svs={"synthesis_nn": 2})


def test_trainer_submits_svs_rows_as_verl_rollout_batches(partition):
    """SvsTrainer.svs_submit: rows -> verl's collate_fn/TensorDict -> verl's _submit_batch_to_rollout."""
    import torch
    from svs_test_helpers import build, char_tokenizer
    from verl.utils.tensordict_utils import NonTensorData, NonTensorStack

    trainer = build()
    captured = []

    class AgentLoopManager:  # receives what vLLM's agent loop workers would
        def generate_sequences(self, batch):
            captured.append(batch)

    trainer.agent_loop_manager = AgentLoopManager()
    trainer.global_steps = 3
    row = {"uid": "abc-syn0", "raw_prompt": [{"role": "user", "content": "Solution: 6*7=42"}], "data_source": "toy",
           "reward_model": {"ground_truth": "42", "style": "rule"}, "index": 4, "dummy_tensor": torch.zeros(1),
           "extra_info": {"index": 4, "svs_role": "synthesis", "svs_parent_uid": "abc"}, "__rollout_n__": 4}
    trainer.svs_submit([row, {**row, "uid": "abc-syn1"}])
    tok = char_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    trainer.tokenizer = tok
    # measured with verl's own Continuous Token builder, as the agent loop builds the prompt: one token per
    # character here, so the boundary is exact (prompt_length 4096)
    assert trainer.svs_prompt_fits([{"role": "user", "content": "x" * 4096}])
    assert not trainer.svs_prompt_fits([{"role": "user", "content": "x" * 4097}])
    assert len(trainer.svs_prompt_tokens([{"role": "user", "content": "abc"}])) == 3
    tags = tq.kv_list("train")["train"]
    assert tags["abc-syn0"] == {"is_prompt": True, "status": "pending", "global_steps": 3}
    [batch] = captured
    # unpack row 0 exactly as AgentLoopWorkerTQ.generate_sequences does
    prompt = {k: (v[0] if isinstance(v, torch.Tensor) else v[0].data if isinstance(v, NonTensorStack) else v.data)
              for k, v in batch.items() if isinstance(v, (torch.Tensor, NonTensorStack, NonTensorData))}
    assert prompt["uid"] == "abc-syn0" and prompt["__rollout_n__"] == 4 and prompt["global_steps"] == 3
    assert prompt["raw_prompt"] == row["raw_prompt"] and prompt["extra_info"]["svs_role"] == "synthesis"
    assert prompt["index"] == 4 and prompt["reward_model"]["ground_truth"] == "42"


def test_role_entropy_from_transfer_queue(partition):
    import torch
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from svs_verl.verl_plugin.trainer import role_entropy

    keys = ["a_0_0", "a_1_0", "b-syn0_0_0", "b-syn0-v0_0_0"]
    ents = [torch.tensor([1.0, 3.0]), torch.tensor([2.0]), torch.tensor([0.5, 0.5, 0.5]), torch.tensor([4.0])]
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict([{"entropy": e} for e in ents]),
                    tags=[{"status": "success"}] * 4)
    got = role_entropy(KVBatchMeta(partition_id="train", keys=keys, tags=[{}] * 4),
                       {"a": "oqa", "b-syn0": "vps", "b-syn0-v0": "spa"})
    assert got == {"svs/entropy/oqa": 2.0, "svs/entropy/vps": 0.5, "svs/entropy/spa": 4.0}


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed again): connections to it are refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_rollout_engine_ends_the_step_in_one_line(partition):
    """An original still running when its vLLM engine dies never finishes; verl's loop would poll for ever.
    The sampler asks the replicas' /health while it waits: a replica that does not answer (here a port
    nobody listens on) ends sample() with one line naming it and saying how to resume."""
    import time

    from svs_verl.verl_plugin.liveness import RolloutDeadError

    port = closed_port()
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.run(sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0), status="running")
    sim.svs_rollout_addresses = lambda: [f"127.0.0.1:{port}"]
    sim.svs_checkpoint_dir = "/ckpt"
    buf = make_buffer(sim)
    t0 = time.monotonic()
    with pytest.raises(RolloutDeadError) as err:
        buf.sample(global_steps=1, partition_id="train", batch_size=1)
    assert time.monotonic() - t0 < 30
    message = str(err.value)
    assert f"rollout replica 0 at 127.0.0.1:{port}" in message and "/ckpt" in message and "\n" not in message
    sim.finish(q1)


def test_when_verl_fails_the_step_a_dead_replica_is_named(partition):
    """Every group of the step failed because the engine died while they were queued: verl itself stops
    ("no materializable trajectories"); the sampler names the dead replica instead, in one line."""
    from svs_verl.verl_plugin.liveness import RolloutDeadError

    port = closed_port()
    q1 = uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [True] + [False] * 7}))
    sim.prompt(q1, "A farmer has 12 cows and buys 30 more. How many cows?", "42", 0, status="failure")
    sim.svs_rollout_addresses = lambda: [f"127.0.0.1:{port}"]
    with pytest.raises(RolloutDeadError, match=f"rollout replica 0 at 127.0.0.1:{port}") as err:
        make_buffer(sim).sample(global_steps=1, partition_id="train", batch_size=1)
    assert "materializable" in str(err.value.__cause__)
