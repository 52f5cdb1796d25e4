"""``validate_svs_section``: every svs.* value type-checked in one place, the key and value named on error.

Each bad value below was accepted by the code before this check existed (a string counted as true, a
negative timeout, a zero poll interval ...)."""

import pytest

from svs_verl.core.config import DEFAULT_SOLVE_TEMPLATE, SAMPLER_KEYS, SvsSettings, validate_svs_section

BOOLS = ["enable", "strip_reasoning", "train_on_syntheses", "train_on_solves", "vps_keep_all_rewarded"]


@pytest.mark.parametrize("key", BOOLS)
@pytest.mark.parametrize("value", ["off", "false", "False", "flase", "true", "no", "", 0, 1, None, 0.0])
def test_booleans_must_be_real_booleans(key, value):
    with pytest.raises(ValueError, match=rf"svs\.{key} must be true or false.*got {value!r}".replace("(", r"\(")
                       .replace(")", r"\)")):
        validate_svs_section({key: value})


@pytest.mark.parametrize("key", BOOLS)
def test_real_booleans_pass(key):
    assert getattr(validate_svs_section({key: False})[0], key) is False


BAD = [
    # key, value, words the message must carry
    ("synthesis_n", 0, "integer >= 1"),
    ("synthesis_n", -3, "integer >= 1"),
    ("synthesis_n", 2.5, "integer >= 1"),
    ("synthesis_n", "8", "integer >= 1"),
    ("synthesis_n", True, "integer >= 1"),
    ("solve_n", 0, "integer >= 1"),
    ("solve_n", None, "integer >= 1"),
    ("max_solution_chars", 0, "integer >= 1"),
    ("max_seeds_per_problem", 0, "integer >= 1 or null"),
    ("max_seeds_per_problem", "all", "integer >= 1 or null"),
    ("max_seeds_per_step", -1, "integer >= 1 or null"),
    ("max_seeds_per_step", 1.5, "integer >= 1 or null"),
    ("underperforming_band", [0.5, 0.1], "must not exceed"),
    ("underperforming_band", [-0.1, 0.5], "[0, 1]"),
    ("underperforming_band", [0.1, 1.5], "[0, 1]"),
    ("underperforming_band", [0.1], "pair"),
    ("underperforming_band", "0.1,0.5", "pair"),
    ("underperforming_band", ["0.1", "0.5"], "pair"),
    ("underperforming_band", [True, 0.5], "pair"),
    ("reward_band", [0.7, 0.2], "must not exceed"),
    ("reward_band", [0.1, 0.5, 0.9], "pair"),
    ("reward_band", 0.5, "pair"),
    ("template", "", "non-empty string"),
    ("template", 3, "non-empty string"),
    ("solve_template", "no placeholder", "{problem}"),
    ("solve_template", None, "string"),
    ("spa_filter", "band", "one of"),
    ("spa_filter", None, "one of"),
    ("poll_interval_s", 0, "> 0"),
    ("poll_interval_s", -0.5, "> 0"),
    ("poll_interval_s", "0.5", "> 0"),
    ("poll_interval_s", True, "> 0"),
    ("tail_timeout_s", -1, "> 0"),
    ("tail_timeout_s", 0, "> 0"),
    ("tail_timeout_s", "1h", "> 0"),
    ("tail_timeout_s", False, "> 0"),
    ("tail_timeout_factor", 0, "> 0"),
    ("tail_timeout_factor", None, "> 0"),
    ("batch_order", "random", "one of"),
    ("dump_compress", "yes", "svs.dump_compress"),
    ("dump_max_records_per_step", 0, "svs.dump_max_records_per_step"),
    ("dump_dir", 5, "string or null"),
    ("dump_dir", "", "string or null"),
    ("dump_dir", ["a"], "string or null"),
    ("guards", "on", "mapping"),
]


@pytest.mark.parametrize("key,value,words", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_values_name_the_key_and_the_value(key, value, words):
    with pytest.raises(ValueError) as err:
        validate_svs_section({key: value})
    message = str(err.value)
    assert f"svs.{key}" in message and words in message and repr(value) in message


BAD_GUARDS = [
    ("enable", "true", "true or false"),
    ("enable", 1, "true or false"),
    ("require_question", "no", "true or false"),
    ("min_chars", -1, "integer >= 0"),
    ("min_chars", "10", "integer >= 0"),
    ("max_chars", 0, "integer >= 1"),
    ("leak_min_answer_chars", 0, "integer >= 1 or null"),
    ("max_original_similarity", 0, "(0, 1]"),
    ("max_sibling_similarity", 1.5, "(0, 1]"),
    ("max_solution_copy", "0.6", "(0, 1]"),
    ("max_solution_copy", True, "(0, 1]"),
]


@pytest.mark.parametrize("key,value,words", BAD_GUARDS, ids=[f"{k}={v!r}" for k, v, _ in BAD_GUARDS])
def test_bad_guard_values_name_the_key(key, value, words):
    with pytest.raises(ValueError) as err:
        validate_svs_section({"guards": {key: value}})
    message = str(err.value)
    assert f"svs.guards.{key}" in message and words in message and repr(value) in message


@pytest.mark.parametrize("data,match", [
    ({"synthesis_nn": 4}, "synthesis_nn"),
    ({"guards": {"min_char": 3}}, "svs.guards"),
    ({"guards": {"min_chars": 50, "max_chars": 20}}, "min_chars <= max_chars"),
    ("enable=false", "mapping"),
])
def test_unknown_keys_and_bad_shapes(data, match):
    with pytest.raises(ValueError, match=match):
        validate_svs_section(data)


def test_defaults_and_good_values():
    settings, sampler = validate_svs_section(None)
    assert settings == SvsSettings() and sampler == SAMPLER_KEYS
    assert settings.guards.enable is False                      # the paper has no guards
    assert settings.solve_template == DEFAULT_SOLVE_TEMPLATE
    settings, sampler = validate_svs_section({
        "enable": False, "reward_band": [0, 1], "underperforming_band": (0.25, 0.75), "max_seeds_per_step": 3,
        "poll_interval_s": 2, "tail_timeout_s": 0.5, "dump_dir": "/tmp/x", "guards": {"enable": True, "min_chars": 0}})
    assert settings.enable is False and settings.reward().counts(4) == [0, 1, 2, 3, 4]
    assert settings.underperforming().counts(8) == [2, 3, 4, 5, 6] and settings.max_seeds_per_step == 3
    assert sampler == {"poll_interval_s": 2.0, "tail_timeout_s": 0.5, "dump_dir": "/tmp/x",
                       "tail_timeout_factor": 4.0, "batch_order": "arrival", "dump_enable": True,
                       "dump_compress": True, "dump_max_records_per_step": 512, "dump_keep_steps": None}
    assert settings.guards.enable is True and settings.guards.min_chars == 0


def test_default_solve_template_is_the_instruction_data_prepare_appends():
    from svs_verl.data import schema

    assert DEFAULT_SOLVE_TEMPLATE == "{problem}\n" + schema.BOXED_INSTRUCTION
    assert schema.wrap("What is 6 * 7?", schema.BOXED_INSTRUCTION) == \
        DEFAULT_SOLVE_TEMPLATE.replace("{problem}", "What is 6 * 7?")
