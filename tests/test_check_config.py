"""``svs-verl check-config`` / ``svs_verl.verl_plugin.checks``: the config composed as main_ppo composes it,
checked on the CPU the way the SvS trainer checks it at start-up; every bad input is one line naming the key."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from svs_verl.cli import main

GOOD = ["actor_rollout_ref.rollout.name=vllm"]


@pytest.mark.parametrize("name,overrides", [("svs_dapo", GOOD), ("quickstart", []), ("dapo", GOOD)])
def test_good_configs_are_ok(name, overrides, capsys):
    assert main(["check-config", "--config-name", name, *overrides]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"ok: {name}"


@pytest.mark.parametrize("overrides,match", [
    (["svs.underperforming_band=[0.6,0.2]"], "svs.underperforming_band"),
    (["+svs.synthesis_nn=4"], "synthesis_nn"),
    (["svs.synthesis_nn=4"], "svs.synthesis_nn"),                     # hydra: not in the config
    (["svs.reward_band=[0.9,0.1]"], "svs.reward_band"),
    (["svs.solve_template=no placeholder"], "svs.solve_template"),
    (["svs.template=/nonexistent/t.yaml"], "svs.template=/nonexistent/t.yaml"),
    (["trainer.v1.sampler.custom_sampler.name=ReplayBuffer"], "trainer.v1.sampler.custom_sampler"),
    (["reward.reward_manager.name=naive"], "reward.reward_manager.name=svs"),
    (["trainer.v1.trainer_mode=nosuch"], "trainer.v1.trainer_mode=nosuch"),
    (["actor_rollout_ref.rollout.temperature=0"], "validation gen temperature"),   # verl's validate_config
    # settings under which SvS can never act, or that fail minutes later inside verl
    (["actor_rollout_ref.rollout.n=1"], "actor_rollout_ref.rollout.n=1"),
    (["actor_rollout_ref.rollout.n=0"], "actor_rollout_ref.rollout.n=0"),
    (["svs.solve_n=1"], "svs.reward_band=[0.125, 0.625] holds no accuracy k/1"),
    (["svs.synthesis_n=1"], "svs.synthesis_n=1"),
    (["svs.underperforming_band=[0.01,0.1]"], "svs.underperforming_band=[0.01, 0.1] holds no accuracy k/8"),
    (["svs.reward_band=[0.9,0.95]", "svs.solve_n=4"], "svs.reward_band=[0.9, 0.95] holds no accuracy k/4"),
    (["+trainer.v1.sync.parameter_sync_step=2"], "trainer.v1.sync.parameter_sync_step=2"),
    (["skip.rollout_tq.enable=true"], "skip.rollout_tq.enable"),
    (["algorithm.adv_estimator=gae"], "SvS needs a group-relative estimator"),
    (["data.train_batch_size=0"], "data.train_batch_size"),
    (["transfer_queue.backend.SimpleStorage.total_storage_size=1000"],
     "transfer_queue.backend.SimpleStorage.total_storage_size=1000 is below the worst case of one SvS step"),
])
def test_bad_configs_fail_in_one_line_naming_the_key(overrides, match, capsys):
    assert main(["check-config", "--config-name", "svs_dapo", *GOOD, *overrides]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("svs-verl check-config: ") and match in err, err
    assert "Traceback" not in err


def test_a_mandatory_value_main_ppo_needs_is_named(capsys):
    assert main(["check-config", "--config-name", "svs_dapo"]) == 1    # the README command sets rollout.name
    assert "actor_rollout_ref.rollout.name" in capsys.readouterr().err




def test_unknown_config_name_lists_the_known_ones(capsys):
    assert main(["check-config", "--config-name", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "--config-name nosuch" in err and "svs_dapo" in err


def test_check_run_config_is_the_trainers_check_and_skips_other_modes():
    from svs_verl.verl_plugin.checks import check_run_config, compose_run_config

    cfg = compose_run_config("svs_dapo", GOOD)
    cfg.svs.synthesis_n = 0
    with pytest.raises(ValueError, match="svs.synthesis_n"):
        check_run_config(cfg)
    cfg.trainer.v1.trainer_mode = "dapo"
    check_run_config(cfg)    # a dapo run has no SvS checks
    import ray

    assert not ray.is_initialized()   # composed and checked without starting Ray or any worker


def test_checks_module_defines_no_heavy_imports_itself():
    """The module's own imports are hydra/omegaconf only (verl is imported inside compose_run_config)."""
    import ast
    from pathlib import Path

    import svs_verl.verl_plugin.checks as checks

    tree = ast.parse(Path(checks.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert not names & {"torch", "ray", "verl"}, names


def test_console_command_is_fast_and_needs_no_ray():
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "check-config", "--config-name", "svs_dapo",
                          "svs.underperforming_band=[0.6,0.2]"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("svs-verl check-config: svs.underperforming_band")
    assert time.time() - t0 < 120


def test_worst_case_of_a_step_against_transfer_queue_capacity():
    """Hand-computed: 4 originals x 8 samples, DAPO window of 2 batches in flight plus the batch being
    completed (12 originals resident), band [0.125, 0.5] -> at most 4 correct answers of 8 seed, 4 parents in
    the batch -> 16 seeds, each 4 syntheses + 4 x 2 solves = 12 trajectories: 96 + 192 = 288."""
    from svs_verl.verl_plugin.checks import compose_run_config, worst_case_trajectories
    from svs_verl.core.config import validate_svs_section

    small = [*GOOD, "data.train_batch_size=4", "svs.synthesis_n=4", "svs.solve_n=2", "svs.reward_band=[0.5,0.5]"]
    cfg = compose_run_config("svs_dapo", small)
    settings, _ = validate_svs_section(dict(cfg.svs))
    assert worst_case_trajectories(cfg, settings) == (288, {"originals": 12, "n": 8, "seeds": 16, "per_seed": 12})
    compose_run_config("svs_dapo", [*small, "transfer_queue.backend.SimpleStorage.total_storage_size=288"])
    with pytest.raises(ValueError, match="287 is below the worst case of one SvS step: 288 trajectories"):
        compose_run_config("svs_dapo", [*small, "transfer_queue.backend.SimpleStorage.total_storage_size=287"])
    capped = [*small, "svs.max_seeds_per_step=2", "transfer_queue.backend.SimpleStorage.total_storage_size=120"]
    cfg = compose_run_config("svs_dapo", capped)                       # 96 + 2 x 12 = 120: fits exactly
    assert worst_case_trajectories(cfg, validate_svs_section(dict(cfg.svs))[0])[0] == 120


def test_the_trainer_checks_its_files_before_any_worker(tmp_path):
    from omegaconf import OmegaConf

    from svs_verl.verl_plugin.checks import check_run_files, compose_run_config

    data = tmp_path / "train.parquet"
    data.write_bytes(b"x")
    cfg = compose_run_config("svs_dapo", [*GOOD, f"data.train_files={data}", f"data.val_files=[{data}]",
                                          f"trainer.default_local_dir={tmp_path / 'ckpt'}"])
    check_run_files(cfg)                                                  # the dump folder can be made
    missing = OmegaConf.merge(cfg, {"data": {"val_files": [str(tmp_path / "val.parquet")]}})
    with pytest.raises(ValueError, match=f"data.val_files: no such file {tmp_path / 'val.parquet'}"):
        check_run_files(missing)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    unwritable = OmegaConf.merge(cfg, {"svs": {"dump_dir": str(blocker / "dumps")}})
    with pytest.raises(ValueError, match="svs.dump_dir: cannot write"):
        check_run_files(unwritable)


# ---- svs.solve_template against the training prompts' answer format (a start-up warning) -------------------
def _data(tmp_path, name, instruction, n=8, system=None, sep="\n"):
    from svs_verl.data.schema import make_row, write_parquet

    rows = [make_row("t", f"What is {i} + {i}?", str(2 * i), split="train", index=i, instruction=instruction, sep=sep)
            for i in range(n)]
    if system is not None:
        for row in rows:
            row["prompt"] = [{"role": "system", "content": system}, *row["prompt"]]
    return write_parquet(rows, tmp_path / f"{name}.parquet")


DAPO_17K = ("Solve the following math problem step by step. The last line of your response should be of the form "
            "Answer: $Answer (without quotes) where $Answer is the answer to the problem.")
BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


def _warnings(caplog, name, overrides):
    from svs_verl.verl_plugin.checks import compose_run_config

    caplog.clear()
    with caplog.at_level("WARNING", logger="svs_verl"):
        compose_run_config(name, overrides)
    return [r.getMessage() for r in caplog.records if "svs.solve_template" in r.getMessage()]


def test_solve_template_in_another_answer_format_than_the_training_prompts_warns_in_one_line(tmp_path, caplog):
    dapo = _data(tmp_path, "dapo17k", DAPO_17K)
    got = _warnings(caplog, "svs_dapo", [*GOOD, f"data.train_files={dapo}"])   # default solve template: \boxed{}
    assert len(got) == 1 and "\n" not in got[0], got
    assert got[0].startswith("SvS: svs.solve_template asks for \\boxed{}, but the training prompts")
    assert f"({dapo}: 8 of 8 rows read) ask for an \"Answer:\" line" in got[0], got[0]
    # the same data with a solve template in its own format: silent
    same = "svs.solve_template='{problem}\\nRemember to put your answer on its own line after \"Answer:\".'"
    assert _warnings(caplog, "svs_dapo", [*GOOD, f"data.train_files={dapo}", same]) == []
    # boxed data (svs-verl data prepare's default) with the default template: silent
    assert _warnings(caplog, "svs_dapo", [*GOOD, f"data.train_files={_data(tmp_path, 'boxed', BOXED)}"]) == []


def test_solve_format_warning_both_ways_with_the_quickstart(tmp_path, caplog):
    """The quickstart asks for "just the final number"; boxed training data is the mismatch, and vice versa."""
    boxed = _data(tmp_path, "boxed", BOXED)
    got = _warnings(caplog, "quickstart", [f"data.train_files={boxed}"])
    assert len(got) == 1 and "asks for just the final number" in got[0] and "ask for \\boxed{}" in got[0], got
    number = _data(tmp_path, "number", "Answer with just the final number.", sep=" ")
    assert _warnings(caplog, "quickstart", [f"data.train_files={number}"]) == []


def test_solve_format_rule_counts_system_messages_and_majorities(tmp_path, caplog):
    from svs_verl.core.config import validate_svs_section
    from svs_verl.verl_plugin.checks import check_solve_format

    # the instruction in a system message: a solve prompt keeps the parent's system messages, so a bare
    # "{problem}" solve template asks the same way
    sysdata = _data(tmp_path, "system", None, system=BOXED)
    bare_template = "svs.solve_template='{problem}'"
    assert _warnings(caplog, "svs_dapo", [*GOOD, f"data.train_files={sysdata}", bare_template]) == []
    # ... while originals with no instruction at all and a boxed solve template differ
    bare = _data(tmp_path, "bare", None)
    got = _warnings(caplog, "svs_dapo", [*GOOD, f"data.train_files={bare}"])
    assert len(got) == 1 and "ask for no known answer format" in got[0], got
    # a minority of rows in another format does not warn; a majority does
    settings, _ = validate_svs_section({})
    boxed = [[{"role": "user", "content": f"Problem {i}. {BOXED}"}] for i in range(5)]
    dapo = [[{"role": "user", "content": f"{DAPO_17K} Problem {i}."}] for i in range(3)]
    assert check_solve_format(None, settings, boxed + dapo) is None
    assert "3 of 5 rows read" in check_solve_format(None, settings, boxed[:2] + dapo, "f.parquet")
    assert check_solve_format(None, settings, []) is None       # nothing read: nothing to compare
