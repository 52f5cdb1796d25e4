"""One step of Algorithm 1 walked by hand through the streaming state machine."""

import json

import pytest

from svs_verl.core import GuardConfig, SvsRound, SvsSettings

FENCE = "```text\n{}\n```"


def make_round(**kw):
    kw.setdefault("synthesis_n", 4)
    kw.setdefault("solve_n", 8)
    return SvsRound(SvsSettings(**kw))


def responses(correct, answer="42"):
    return [f"... so the answer is \\boxed{{{answer if ok else 0}}}" for ok in correct]


def test_algorithm_1_worked_example():
    """Paper defaults: no guards, so a parsed problem is solved whatever it says (the giveaway too)."""
    r = make_round(max_seeds_per_problem=1)
    q1 = [False, True, False, False, True, False, False, False]     # 2/8: underperforming
    tasks = r.add_original("q1", "A farmer has 12 cows and buys 30 more. How many cows?", "42", responses(q1), q1)
    assert r.add_original("q2", "What is 40+2?", "42", responses([True] * 8), [True] * 8) == []   # 8/8: solved
    assert r.add_original("q3", "Hard one?", "7", responses([False] * 8, "7"), [False] * 8) == []  # 0/8: no seeds
    q4 = [True] * 6 + [False] * 2                                     # 6/8: above the band
    assert r.add_original("q4", "Medium one?", "5", responses(q4, "5"), q4) == []

    # seeds: the first correct response of q1 (cap 1), shown to the policy
    assert [(t.uid, t.parent_uid, t.seed_index, t.n) for t in tasks] == [("q1-syn1", "q1", 1, 4)]
    assert "\\boxed{42}" in tasks[0].messages[-1]["content"]

    outputs = [
        FENCE.format("A box holds 6 rows of 7 eggs. How many eggs are in the box?"),
        FENCE.format("What is the product of 21 and 2?"),
        "I think the problem is: how many eggs?",                      # no fence: unusable
        FENCE.format("There are 42 eggs. How many eggs? (answer: 42)"),  # a giveaway, but the paper has no guard
    ]
    solves = r.add_syntheses("q1-syn1", outputs)
    assert [(s.uid, s.sample_index, s.ground_truth, s.n) for s in solves] == [
        ("q1-syn1-v0", 0, "42", 8), ("q1-syn1-v1", 1, "42", 8), ("q1-syn1-v3", 3, "42", 8)]
    assert r.outstanding() == ["q1-syn1-v0", "q1-syn1-v1", "q1-syn1-v3"]
    r.add_solves("q1-syn1-v0", [True, True, True] + [False] * 5)     # 3/8: in the reward band -> reward 1
    r.add_solves("q1-syn1-v1", [True] * 8)                           # 8/8: too easy -> reward 0
    r.add_solves("q1-syn1-v3", [True] * 8)                           # 8/8 -> reward 0
    assert r.outstanding() == []

    plan = r.plan()
    assert plan.originals == ["q1", "q4"]                            # 0 < acc < 1
    assert plan.syntheses == {"q1-syn1": [1, 0, 0, 0]}
    assert plan.solves == ["q1-syn1-v0"]                             # 3/8 in band; 8/8 has no signal
    assert all("_" not in uid for uid in plan.uids)
    m = plan.metrics
    assert m["svs/seeds"] == 1 and m["svs/syntheses"] == 4 and m["svs/accepted"] == 3
    assert m["svs/reject/no_fence"] == 1 and "svs/reject/reveals_answer" not in m
    assert m["svs/valid_ratio"] == 0.75 and m["svs/vps/reward_mean"] == 0.25
    assert m["svs/update/oqa_groups"] == 2 and m["svs/update/vps_groups"] == 1 and m["svs/update/spa_groups"] == 1
    assert [(x["sample_index"], x["verdict"], x["solve_accuracy"], x["reward"]) for x in plan.records] == [
        (0, "ok", 0.375, 1), (1, "ok", 1.0, 0), (2, "no_fence", None, 0), (3, "ok", 1.0, 0)]
    json.dumps(plan.records)  # the JSONL dump needs plain data


def test_opt_in_guards_reject_the_giveaway():
    r = make_round(max_seeds_per_problem=1, guards=GuardConfig(enable=True))
    c = [True] + [False] * 7
    r.add_original("q", "A farmer has 12 cows and buys 30 more. How many cows?", "42", responses(c), c)
    solves = r.add_syntheses("q-syn0", [FENCE.format("There are 42 eggs. How many eggs? (answer: 42)"),
                                        FENCE.format("What is the product of 21 and 2?")] + ["x"] * 2)
    assert [s.sample_index for s in solves] == [1]
    assert r.plan().metrics["svs/reject/reveals_answer"] == 1


def test_every_correct_response_seeds_by_default():
    """Paper: max_seeds_per_problem null -> each correct answer of an underperforming problem is a seed."""
    r = make_round()
    c = [False, True, False, True, True, False, False, True]         # 4/8: still underperforming
    tasks = r.add_original("q", "Q?", "9", responses(c, "9"), c)
    assert [t.uid for t in tasks] == ["q-syn1", "q-syn3", "q-syn4", "q-syn7"]


def test_sibling_rule_does_not_depend_on_finish_order():
    """Opt-in sibling guard: two synthesis groups of one parent write the same problem. Whichever finishes
    first, both keep it; inside one group the later sample (by session index) is the duplicate."""
    same = "What is the product of six and seven, in total?"
    outs = {"q-syn0": [FENCE.format(same), FENCE.format(same + " "), "x", "x"],
            "q-syn1": [FENCE.format(same), "x", "x", "x"]}

    def verdicts(order):
        r = make_round(guards=GuardConfig(enable=True))
        c = [True, True] + [False] * 6
        r.add_original("q", "A farmer has 12 cows and buys 30 more. How many cows?", "42", responses(c), c)
        for uid in order:
            r.add_syntheses(uid, outs[uid])
        return {uid: r.syntheses[uid].reasons for uid in outs}

    first = verdicts(["q-syn0", "q-syn1"])
    assert first == verdicts(["q-syn1", "q-syn0"])
    assert first == {"q-syn0": ["ok", "duplicate_of_sibling", "no_fence", "no_fence"],
                     "q-syn1": ["ok", "no_fence", "no_fence", "no_fence"]}


def test_families_of_parents_outside_the_batch_are_dropped_and_free_their_cap_slots():
    r = make_round(max_seeds_per_step=2)
    two = [True, True] + [False] * 6
    assert [t.uid for t in r.add_original("a", "A?", "1", responses(two, "1"), two)] == ["a-syn0", "a-syn1"]
    assert r.add_original("b", "B?", "2", responses(two, "2"), two) == []          # cap reached: b waits
    r.add_syntheses("a-syn0", [FENCE.format("What is 3 - 2?")] + ["x"] * 3)
    assert sorted(r.outstanding()) == ["a-syn0-v0", "a-syn1"]
    abandoned, admitted = r.restrict_to_parents({"b"})                              # verl kept b, not a
    assert sorted(abandoned) == ["a-syn0-v0", "a-syn1"]
    assert [t.uid for t in admitted] == ["b-syn0", "b-syn1"]                        # a's two slots go to b
    assert sorted(r.outstanding()) == ["b-syn0", "b-syn1"]
    r.add_syntheses("b-syn0", [FENCE.format("What is 5 - 3?")] + ["x"] * 3)
    r.add_syntheses("b-syn1", ["x"] * 4)
    r.add_solves("b-syn0-v0", [True] + [False] * 7)
    plan = r.plan()
    assert plan.originals == ["b"] and plan.syntheses == {"b-syn0": [1, 0, 0, 0]} and plan.solves == ["b-syn0-v0"]
    m = plan.metrics
    assert m["svs/dropped/parent_not_in_batch"] == 2 and m["svs/seeds"] == 4 and "svs/seeds_over_cap" not in m
    assert m["svs/update/oqa_groups"] == 1
    assert {x["synthesis_uid"]: x["dropped"] for x in plan.records} == {   # a-syn1 never came back: no record
        "a-syn0": "parent_not_in_batch", "b-syn0": None, "b-syn1": None}


def test_solve_prompt_that_cannot_be_submitted_earns_zero_and_keeps_the_group():
    r = make_round()
    c = [True] + [False] * 7
    r.add_original("q", "Q?", "9", responses(c, "9"), c)
    r.add_syntheses("q-syn0", [FENCE.format("What is 3 times 3?"), FENCE.format("What is 81 / 9?"), "x", "x"])
    r.reject_solve("q-syn0-v1", "prompt_too_long")
    r.add_solves("q-syn0-v0", [True, True] + [False] * 6)
    plan = r.plan()
    assert plan.syntheses == {"q-syn0": [1, 0, 0, 0]} and plan.solves == ["q-syn0-v0"]
    assert plan.metrics["svs/accepted"] == 1 and plan.metrics["svs/reject/prompt_too_long"] == 1
    assert plan.records[1]["verdict"] == "prompt_too_long"


def test_spa_reference_filter_and_ablations():
    def run(**kw):
        r = make_round(**kw)
        r.add_original("q", "Q?", "9", responses([True] + [False] * 7, "9"), [True] + [False] * 7)
        r.add_syntheses("q-syn0", [FENCE.format("What is 3 times 3?")] + ["junk"] * 3)
        r.add_solves("q-syn0-v0", [True] * 6 + [False] * 2)             # 6/8: outside the band
        return r.plan()

    assert run().solves == [] and run().syntheses == {}                    # reward 0 everywhere -> no VPS
    assert run(spa_filter="nonzero_std").solves == ["q-syn0-v0"]
    assert run(reward_band=(0.125, 0.75)).syntheses == {"q-syn0": [1, 0, 0, 0]}
    assert run(reward_band=(0.125, 0.75), train_on_syntheses=False).syntheses == {}
    assert run(spa_filter="nonzero_std", train_on_solves=False).solves == []


def test_disabled_svs_only_scores_originals():
    r = make_round(enable=False)
    assert r.add_original("q", "Q?", "1", responses([True] + [False] * 7, "1"), [True] + [False] * 7) == []
    assert r.plan().uids == ["q"]


def test_per_step_seed_cap_and_long_solutions():
    r = make_round(max_seeds_per_step=3, max_solution_chars=200)
    c = [True, True, False, False, False, False, False, False]
    assert len(r.add_original("a", "A?", "1", responses(c, "1"), c)) == 2
    long = ["x" * 500 + " \\boxed{1}", "\\boxed{1}"] + ["\\boxed{0}"] * 6
    assert [t.seed_index for t in r.add_original("b", "B?", "1", long, c)] == [1]   # seed 0 too long
    assert r.add_original("c", "C?", "1", responses(c, "1"), c) == []                # cap reached
    m = r.plan().metrics
    assert m["svs/seeds_too_long"] == 1 and m["svs/seeds_over_cap"] == 2 and m["svs/seeds"] == 3


def test_failed_solve_makes_its_synthesis_group_unscored_not_zero():
    r = make_round()
    r.add_original("q", "Q?", "9", responses([True] + [False] * 7, "9"), [True] + [False] * 7)
    r.add_syntheses("q-syn0", [FENCE.format("What is 3 times 3?"), FENCE.format("What is 81 / 9 ?")] + ["x"] * 2)
    r.add_solves("q-syn0-v0", [True] + [False] * 7)
    r.fail("q-syn0-v1")
    plan = r.plan()
    assert plan.syntheses == {} and plan.metrics["svs/vps_unscored"] == 1
    assert plan.solves == ["q-syn0-v0"]
    assert plan.records[1]["reward"] is None


def test_misuse_raises_clear_errors():
    r = make_round()
    r.add_original("q", "Q?", "9", responses([True] + [False] * 7, "9"), [True] + [False] * 7)
    with pytest.raises(ValueError, match="reported twice"):
        r.add_original("q", "Q?", "9", ["a"], [True])
    with pytest.raises(KeyError, match="nope"):
        r.add_syntheses("nope", [])
    r.add_syntheses("q-syn0", ["x"] * 4)
    with pytest.raises(ValueError, match="reported twice"):
        r.add_syntheses("q-syn0", ["x"] * 4)
    with pytest.raises(ValueError, match="3 responses but 2 scores"):
        r.add_original("z", "Z?", "1", ["a", "b", "c"], [True, False])


def test_state_dict_round_trip_keeps_pending_work():
    r = make_round()
    r.add_original("q", "Q?", "9", responses([True] + [False] * 7, "9"), [True] + [False] * 7)
    r.add_syntheses("q-syn0", [FENCE.format("What is 3 times 3?")] + ["x"] * 3)
    state = json.loads(json.dumps(r.state_dict()))
    r2 = make_round()
    r2.load_state_dict(state)
    assert r2.outstanding() == ["q-syn0-v0"]
    r2.add_solves("q-syn0-v0", [True, True] + [False] * 6)
    assert r2.plan().syntheses == {"q-syn0": [1, 0, 0, 0]}


def test_settings_errors_name_the_key():
    with pytest.raises(ValueError, match="synthesis_nn"):
        SvsSettings.from_mapping({"synthesis_nn": 4})
    with pytest.raises(ValueError, match="svs.guards"):
        SvsSettings.from_mapping({"guards": {"min_char": 3}})
    with pytest.raises(ValueError, match="svs.reward_band"):
        SvsSettings.from_mapping({"reward_band": [0.7, 0.2]})
    with pytest.raises(ValueError, match="svs.solve_n"):
        SvsSettings.from_mapping({"solve_n": 0})
    s = SvsSettings.from_mapping({"reward_band": [0.25, 0.75], "guards": {"min_chars": 3}})
    assert s.reward().counts(8) == [2, 3, 4, 5, 6] and s.guards.min_chars == 3


def test_only_the_first_batch_size_arrivals_start_families():
    """batch_size=2: the texts of underperforming originals come in, but a family starts only when its
    original's place among the sampleable is known and is within the batch; the third arrival's seeds never
    start (counted), and batch_order hands verl the arrival order."""
    r = SvsRound(SvsSettings(synthesis_n=4, solve_n=8, max_seeds_per_problem=1), batch_size=2)
    one = [True] + [False] * 7
    for uid in ("a", "b", "c"):
        assert r.score_original(uid, one) is True                                   # 1/8: needs its texts
        assert r.add_original_texts(uid, f"{uid}?", "1", responses(one, "1")) == []  # not placed yet: waits
    assert r.score_original("flat", [True] * 8) is False                            # 8/8: never seeds
    assert r.score_original("none", [False] * 8) is False                           # 0/8: no correct answer
    assert [t.uid for t in r.arrived(["b", "flat"])] == ["b-syn0"]
    assert [t.uid for t in r.arrived(["b", "c", "a"])] == []                        # c and a are 3rd and 4th
    assert r.batch_order({"a", "c", "b", "flat", "zz"}) == ["b", "flat", "c", "a", "zz"]
    assert r.outstanding() == ["b-syn0"]
    m = r.plan().metrics
    assert m["svs/seeds"] == 1 and m["svs/not_started/parent_surplus"] == 2 and m["svs/underperforming"] == 3


def test_texts_after_arrival_start_the_family_at_once():
    r = SvsRound(SvsSettings(synthesis_n=4, max_seeds_per_problem=1), batch_size=1)
    one = [True] + [False] * 7
    r.score_original("a", one)
    assert r.arrived(["a"]) == []
    assert [t.uid for t in r.add_original_texts("a", "A?", "1", responses(one, "1"))] == ["a-syn0"]
    with pytest.raises(ValueError, match="twice"):
        r.add_original_texts("a", "A?", "1", responses(one, "1"))


def test_abandoned_tasks_leave_the_update_and_unlock_nothing():
    r = make_round(max_seeds_per_problem=1)
    one = [True] + [False] * 7
    [task] = r.add_original("q", "Q?", "42", responses(one), one)
    assert r.abandon_outstanding("tail_timeout") == [task.uid]
    assert r.outstanding() == [] and r.is_abandoned(task.uid)
    plan = r.plan()
    assert plan.syntheses == {} and plan.solves == [] and plan.originals == ["q"]
    assert plan.metrics["svs/abandoned/tail_timeout"] == 1 and plan.metrics["svs/abandoned/submit_failed"] == 0


def test_batch_size_must_be_positive():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            SvsRound(SvsSettings(), batch_size=bad)
