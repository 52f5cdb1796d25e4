"""What each training step logs for the step-cost model (benchmarks/svs_step_cost.py): prompt tokens per role
from the sampler, the batch's sequence / dummy / padded tokens from the trainer (``batch_cost``, which replays
verl's own micro-batch split), the sampler's state gauges, and verl's padding dummies shortened to 2 tokens.

    .venv/bin/python -m pytest tests/test_step_cost_metrics.py -q

Every expected figure below is worked out by hand from the lengths given (comments show the arithmetic).
"""

from __future__ import annotations

import pytest
import torch

from svs_verl.verl_plugin.trainer import batch_cost, micro_batch_shapes, shorten_padding_dummies

DYNAMIC = {"max_token_len": 1000, "micro_batch_size": None}


# ---- micro-batches as verl forms them -----------------------------------------------------------------------
def test_micro_batches_follow_verls_token_budget_and_fixed_sizes():
    # 100+100+300+50 = 550 tokens, budget 400: ceil(550/400) = 2 micro-batches; verl balances the workload
    # 24576*s + s^2 (Karmarkar-Karp): {300} = 7,462,800 against {100, 100, 50} = 6,166,500, both within 400 tokens
    assert sorted(micro_batch_shapes([100, 100, 300, 50], max_token_len=400)) == [(1, 300), (3, 100)]
    # 3 x 300 with a budget of 300: one sequence per micro-batch
    assert micro_batch_shapes([300, 300, 300], max_token_len=300) == [(1, 300)] * 3
    # everything within the budget: one micro-batch padded to its longest sequence
    assert micro_batch_shapes([10, 200, 30], max_token_len=1000) == [(3, 200)]
    # fixed micro-batch size 2 (use_dynamic_bsz off): in order
    assert micro_batch_shapes([10, 50, 20, 20], micro_batch_size=2) == [(2, 50), (2, 20)]
    with pytest.raises(AssertionError):      # verl refuses a sequence longer than the budget
        micro_batch_shapes([500], max_token_len=400)


# ---- the batch's cost ---------------------------------------------------------------------------------------
def _batch():
    """4 oqa samples of 100 tokens, 2 vps samples of 200, and 2 of verl's 2-token dummies, in verl's order."""
    keys = [f"a_{i}_0" for i in range(4)] + ["a-syn0_0_0", "a-syn0_1_0", "padX_0_0", "padX_1_0"]
    tags = [{"seq_len": 100}] * 4 + [{"seq_len": 200}] * 2 + [{"seq_len": 2, "is_padding": True}] * 2
    return keys, tags, {"a": "oqa", "a-syn0": "vps"}


def test_batch_cost_without_remove_padding_counts_rows_times_longest():
    keys, tags, roles = _batch()
    m = batch_cost(keys, tags, roles, dp_size=1, remove_padding=False, mini_batch_size=4, epochs=1, shuffle=False,
                   log_prob=DYNAMIC, update=DYNAMIC)
    assert m["svs/batch/samples"] == 6 and m["svs/batch/seq_tokens"] == 800          # 4 x 100 + 2 x 200
    assert m["svs/batch/seq_tokens/oqa"] == 400 and m["svs/batch/seq_tokens/vps"] == 400
    assert m["svs/batch/dummy_samples"] == 2 and m["svs/batch/dummy_tokens"] == 4
    # old-log-prob: 804 tokens <= 1000: one micro-batch of 8 rows x 200
    assert m["svs/batch/padded_tokens/old_log_prob"] == 1600 and m["svs/batch/micro_batches/old_log_prob"] == 1
    # update: mini-batches of 4 in order: [100 x 4] -> 4 x 100 = 400; [200, 200, 2, 2] -> 4 x 200 = 800
    assert m["svs/batch/padded_tokens/update"] == 1200 and m["svs/batch/micro_batches/update"] == 2
    assert m["svs/batch/mini_batches"] == 2
    two_epochs = batch_cost(keys, tags, roles, dp_size=1, remove_padding=False, mini_batch_size=4, epochs=2,
                            shuffle=False, log_prob=DYNAMIC, update=DYNAMIC)
    assert two_epochs["svs/batch/padded_tokens/update"] == 2400 and two_epochs["svs/batch/mini_batches"] == 4
    shuffled = batch_cost(keys, tags, roles, dp_size=1, remove_padding=False, mini_batch_size=4, epochs=1,
                          shuffle=True, log_prob=DYNAMIC, update=DYNAMIC)
    assert "svs/batch/padded_tokens/update" not in shuffled      # mini-batches are random: not replayed


def test_batch_cost_with_remove_padding_counts_the_packed_tokens():
    keys, tags, roles = _batch()
    m = batch_cost(keys, tags, roles, dp_size=1, remove_padding=True, mini_batch_size=4, epochs=1, shuffle=False,
                   log_prob=DYNAMIC, update=DYNAMIC)
    assert m["svs/batch/padded_tokens/old_log_prob"] == 804 and m["svs/batch/padded_tokens/update"] == 804


def test_batch_cost_across_dp_ranks_runs_as_many_micro_batches_as_the_busiest_rank():
    keys = [f"u_{i}_0" for i in range(4)]
    tags = [{"seq_len": n} for n in (100, 100, 200, 200)]
    budget = {"max_token_len": 250, "micro_batch_size": None}
    m = batch_cost(keys, tags, {}, dp_size=2, remove_padding=False, mini_batch_size=4, epochs=1, shuffle=False,
                   log_prob=budget, update=budget)
    # rank 0 gets [100, 100] (200 tokens: one micro-batch), rank 1 [200, 200] (400 > 250: two); verl makes rank 0
    # run two as well: (1 x 100) + (1 x 100) + (1 x 200) + (1 x 200) = 600 tokens in 4 micro-batches
    assert m["svs/batch/padded_tokens/old_log_prob"] == 600 and m["svs/batch/micro_batches/old_log_prob"] == 4
    assert m["svs/batch/padded_tokens/update"] == 600 and m["svs/batch/mini_batches"] == 1
    assert m["svs/batch/seq_tokens/oqa"] == 600       # groups the sampler did not name are originals


# ---- verl's padding dummies ---------------------------------------------------------------------------------
def test_dummies_are_two_tokens_with_nothing_to_learn(monkeypatch):
    from verl.trainer.ppo import padding_utils

    monkeypatch.setattr(padding_utils, "SYNTHETIC_PADDING_SEQ_LEN", 128)       # verl 0.9.1's value
    source = {"prompts": torch.arange(5), "responses": torch.arange(3), "input_ids": torch.arange(8),
              "position_ids": torch.arange(8), "response_mask": torch.ones(3, dtype=torch.int64)}
    sample, tag = padding_utils.construct_minimal_padding_template(source, {"seq_len": 8}, eos_token_id=7)
    assert sample["input_ids"].shape == (128,) and tag["seq_len"] == 128         # verl's own dummy

    assert shorten_padding_dummies() is True
    sample, tag = padding_utils.construct_minimal_padding_template(source, {"seq_len": 8}, eos_token_id=7)
    assert sample["input_ids"].tolist() == [7, 7] and sample["position_ids"].tolist() == [0, 1]
    assert (tag["prompt_len"], tag["response_len"], tag["seq_len"], tag["is_padding"]) == (1, 1, 2, True)
    assert sample["response_mask"].tolist() == [0] and sample["loss_mask"].tolist() == [0]
    assert sample["rm_scores"].tolist() == [0.0]
    assert shorten_padding_dummies() is True                                      # idempotent


def test_dummies_of_another_verl_are_left_alone(monkeypatch):
    from verl.trainer.ppo import padding_utils

    monkeypatch.setattr(padding_utils, "SYNTHETIC_PADDING_SEQ_LEN", 64)
    assert shorten_padding_dummies() is False and padding_utils.SYNTHETIC_PADDING_SEQ_LEN == 64
    monkeypatch.setattr(padding_utils, "SYNTHETIC_PADDING_SEQ_LEN", 128)
    monkeypatch.setattr("verl.__version__", "0.9.2")
    assert shorten_padding_dummies() is False and padding_utils.SYNTHETIC_PADDING_SEQ_LEN == 128


# ---- the sampler: prompt tokens per role, state gauges ------------------------------------------------------
tq = pytest.importorskip("transfer_queue")

from test_plugin_sampler import (ScriptedPolicy, make_buffer, partition, transfer_queue,  # noqa: E402,F401
                                 uid)
from svs_test_helpers import RolloutSimulator  # noqa: E402


def _text(row) -> str:
    return "\n".join(m["content"] for m in row["raw_prompt"])   # the simulator's prompt: one token per character


def test_disabled_sampler_counts_the_prompt_tokens_of_every_generated_group(partition):
    ids = [uid() for _ in range(3)]
    sim = RolloutSimulator(ScriptedPolicy({u: [True] + [False] * 7 for u in ids}))
    for i, u in enumerate(ids):
        sim.run(sim.prompt(u, "What is 6 times 7?", "42", i))
    buf = make_buffer(sim, enable=False)
    buf.sample(global_steps=1, partition_id="train", batch_size=2)
    assert buf.prompt_tokens == {"oqa": 3 * 8 * 18}       # 3 groups x 8 samples x len("What is 6 times 7?")


def test_svs_sampler_counts_prompt_tokens_per_role_and_reports_its_state(partition):
    q1, q2 = uid(), uid()
    sim = RolloutSimulator(ScriptedPolicy({q1: [False, True, False, False, True, False, False, False],  # 2/8
                                           q2: [True] * 8}))                                          # 8/8
    p1, p2 = "A farmer has 12 cows and buys 30 more. How many cows?", "What is 40 + 2?"
    sim.run(sim.prompt(q1, p1, "42", 0))
    sim.run(sim.prompt(q2, p2, "42", 1))
    buf = make_buffer(sim)
    batch, metrics = buf.sample(global_steps=1, partition_id="train", batch_size=2)

    rows = [r for rows_ in sim.submitted for r in rows_]
    synth = [r for r in rows if r["extra_info"]["svs_role"] == "synthesis"]
    solves = [r for r in rows if r["extra_info"]["svs_role"] == "solve"]
    assert len(synth) == 1 and len(solves) == 3      # one seed; 3 of its 4 syntheses parse (as in test_plugin_sampler)
    assert buf.prompt_tokens["oqa"] == 8 * len(p1) + 8 * len(p2) == 8 * 53 + 8 * 15
    assert buf.prompt_tokens["vps"] == 4 * len(_text(synth[0]))            # synthesis_n = 4 samples
    assert buf.prompt_tokens["spa"] == sum(8 * len(_text(r)) for r in solves)   # solve_n = 8 samples each

    # the batch: q1 (q2 has no reward variance), its synthesis group, the one in-band solve group
    assert {k.split("_")[0] for k in batch.keys} == {q1, f"{q1}-syn1", f"{q1}-syn1-v0"}
    state = {k[len("svs/state/"):]: v for k, v in metrics.items() if k.startswith("svs/state/")}
    assert state["orphans"] == 0 and state["step_uids"] == 4 and state["status"] == 4   # 1 synthesis + 3 solves
    assert state["seen"] == 2 and state["parent_columns"] == 1 and state["roles"] == 3
    assert len(batch.keys) == 8 + 4 + 8
    # verl's snapshot of the partition from the last poll: q1's group, the synthesis group and all three solve
    # groups (the two unkept ones were cleared from TransferQueue and leave the snapshot at the next poll)
    assert state["tq_partition"] == 8 + 4 + 3 * 8
    assert state["round_originals"] == 2 and state["round_syntheses"] == 1 and state["round_solves"] == 3
    assert state["round_waiting"] == 0 and state["round_abandoned"] == 0
    assert state["totals"] == len(buf.totals) > 0
