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
