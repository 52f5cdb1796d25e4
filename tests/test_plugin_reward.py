"""The `svs` reward manager's run_single on DataProtos shaped like verl's agent loop builds them."""

import asyncio

import pytest
from svs_test_helpers import char_tokenizer, dataproto, reward_config

from svs_verl.verl_plugin.reward import SvsRewardManager


def score(manager, response, role=None, answer="42", data_source="toy", prompt="What is 6*7?"):
    info = {"index": 0}
    if role:
        info["svs_role"] = role
    row = {"data_source": data_source, "reward_model": {"ground_truth": answer, "style": "rule"},
           "extra_info": info, "uid": "u", "session_id": 0, "global_steps": 1,
           "raw_prompt": [{"role": "user", "content": prompt}]}
    return asyncio.run(manager.run_single(dataproto(prompt, response, row)))


def manager(**kw):
    return SvsRewardManager(reward_config(**kw), char_tokenizer(), None)


def test_roles():
    m = manager()
    assert score(m, "so \\boxed{42}") == {"reward_score": 1.0, "reward_extra_info": {
        "svs_role": 0.0, "verify_timeout": 0.0, "verify_error": 0.0, "bad_ground_truth": 0.0, "acc": 1.0}}
    bad_truth = score(m, "so \\boxed{42}", answer="")          # a dataset row without a usable answer
    assert bad_truth["reward_score"] == 0.0 and bad_truth["reward_extra_info"]["bad_ground_truth"] == 1.0
    assert score(m, "so \\boxed{41}")["reward_score"] == 0.0
    syn = score(m, "```problem\nWhat is 6 times 7?\n```", role="synthesis")
    assert syn["reward_score"] == 0.0 and syn["reward_extra_info"]["svs_role"] == 1.0
    solve = score(m, "It is \\boxed{\\dfrac{84}{2}}", role="solve")   # scored against the original answer
    assert solve["reward_score"] == 1.0 and solve["reward_extra_info"]["svs_role"] == 2.0


def test_extraction_per_data_source_and_rewards():
    m = manager(answer_extraction={"arith": "last_number", "default": "boxed"}, correct_reward=1.0, wrong_reward=-1.0)
    assert score(m, "6 times 7 is 42", data_source="arith")["reward_score"] == 1.0
    assert score(m, "6 times 7 is 42", data_source="competition")["reward_score"] == -1.0  # needs \boxed
    with pytest.raises(ValueError, match="answer_extraction\\['x'\\]"):
        manager(answer_extraction={"x": "lastnumber"})


def test_overlong_penalty_is_a_clipped_float():
    m = manager(max_resp_len=20, overlong_buffer_cfg={"enable": True, "len": 10, "penalty_factor": 0.5})
    short = score(m, "\\boxed{42}")                       # 10 tokens: no penalty
    assert short["reward_score"] == 1.0 and short["reward_extra_info"]["overlong"] == 0.0
    mid = score(m, "\\boxed{42}" + " " * 5)               # 15 tokens: 5 past 10 -> -0.25
    assert mid["reward_score"] == pytest.approx(0.75)
    huge = score(m, "\\boxed{42}" + " " * 200)            # clipped at -penalty_factor
    assert huge["reward_score"] == pytest.approx(0.5) and isinstance(huge["reward_score"], float)
    with pytest.raises(ValueError, match="overlong"):
        manager(max_resp_len=5, overlong_buffer_cfg={"enable": True, "len": 10})


def test_custom_verifier_and_verl_selection(tmp_path):
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import load_reward_manager

    module = tmp_path / "my_verifier.py"
    module.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):\n"
                      "    return {'score': float(solution_str.strip() == 'FORTYTWO' and ground_truth == '42')}\n")
    cfg = reward_config()
    cfg.reward.custom_reward_function.path = str(module)
    m = load_reward_manager(cfg, char_tokenizer())       # verl's own selection path (source=register, name=svs)
    assert type(m) is SvsRewardManager
    assert score(m, "FORTYTWO")["reward_score"] == 1.0         # only the custom verifier accepts this
    assert score(m, "\\boxed{42} and more")["reward_score"] == 0.0
    plain = load_reward_manager(OmegaConf.merge(reward_config(), {}), char_tokenizer())
    assert score(plain, "FORTYTWO")["reward_score"] == 0.0
    assert score(plain, "\\boxed{42} and more")["reward_score"] == 1.0


@pytest.mark.parametrize("truth", [None, float("nan"), float("inf"), "", "  ", "None", "nan", "\\boxed{}", [], {"a": 1}])
def test_a_ground_truth_that_cannot_be_verified_is_counted_and_never_rewarded(truth, caplog):
    m = manager()
    # str(None) == "None": this response earned reward 1 against a null ground truth
    for response in ("The answer is None.", "\\boxed{None}", "\\boxed{nan}", "\\boxed{inf}", "\\boxed{}"):
        out = score(m, response, answer=truth)
        assert out["reward_score"] == 0.0, (truth, response)
        assert out["reward_extra_info"]["bad_ground_truth"] == 1.0
        assert out["reward_extra_info"]["acc"] == 0.0 and out["reward_extra_info"]["verify_error"] == 0.0
    warnings = [r.getMessage() for r in caplog.records if "row index 0" in r.getMessage()]
    assert len(warnings) == 1, warnings               # once per row, not once per sample
    assert "toy" in warnings[0] and "ground_truth" in warnings[0]


def test_a_numeric_ground_truth_is_verified_as_its_number():
    m = manager()
    assert score(m, "so \\boxed{42}", answer=42)["reward_score"] == 1.0
    assert score(m, "so \\boxed{0.5}", answer=0.5)["reward_score"] == 1.0
    assert score(m, "so \\boxed{42}", answer=42.0)["reward_extra_info"]["bad_ground_truth"] == 0.0
