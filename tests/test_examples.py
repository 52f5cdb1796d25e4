"""examples/: each script runs as a user runs it (DRY_RUN, or `--cfg job` appended so verl's main_ppo composes
its config and exits), and what it configures reaches svs-verl: the custom template through the SvS parser
into the trainer's sampler, the custom verifier through verl's reward loading into the `svs` manager's scores,
the user's parquet files through the script's checks into the run config."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from svs_test_helpers import char_tokenizer, compose, dataproto
from test_recipes import BASE_ENV, check_run_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SOLUTION = "There are 6 rows of 7 chairs, so 6 * 7 = 42 chairs. The answer is \\boxed{42}."


def run_example(name: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=240, cwd=cwd,
                          env={**BASE_ENV, **env})


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path)
    return path


def problem(i: int, answer: str = "42", prompt=None) -> dict:
    return {"data_source": "mine", "ability": "math",
            "prompt": prompt if prompt is not None else [{"role": "user", "content": f"Problem {i}: what is 6*7?"}],
            "reward_model": {"ground_truth": answer, "style": "rule"}, "extra_info": {"index": i, "split": "train"}}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Both examples started with `--cfg job` appended (verl's main_ppo composes their run and exits), side by
    side, from a directory holding the user's files under relative names."""
    cwd = tmp_path_factory.mktemp("examples")
    write_parquet(cwd / "train.parquet", [problem(i) for i in range(3)])
    write_parquet(cwd / "val.parquet", [problem(9)])
    runs = {"custom_template.sh": dict(MODEL="Qwen/Qwen2.5-3B-Instruct", TRAIN="train.parquet", VAL="val.parquet"),
            "own_parquet.sh": dict(MODEL="Qwen/Qwen2.5-3B-Instruct", TRAIN="train.parquet", VAL="val.parquet",
                                   NGPU="4")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(runs, pool.map(lambda item: run_example(item[0], "--cfg", "job", cwd=cwd, **item[1]),
                                       runs.items())))
    return cwd, done


# ---- custom synthesis template --------------------------------------------------------------------------
def test_my_template_is_valid_and_renders_with_the_cli():
    from svs_verl.core.synthesis import SynthesisTemplate, parse_synthesis

    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "template", str(EXAMPLES / "my_template.yaml"),
                          "--solution", SOLUTION, "--answer", "42"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("--- system\nYou are a mathematics teacher")
    assert SOLUTION in out.stdout and "final answer is 42" in out.stdout and "<problem>" in out.stdout
    t = SynthesisTemplate.load(EXAMPLES / "my_template.yaml")
    assert t.name == "my_template"
    reply = "Let me think.\n<problem>\nA hall has 6 rows of 7 seats. How many seats are there?\n</problem>"
    assert parse_synthesis(reply, t).problem == "A hall has 6 rows of 7 seats. How many seats are there?"
    assert parse_synthesis("A hall has 6 rows of 7 seats. How many?", t).reason == "no_fence"


def test_custom_template_script_renders_without_a_model(tmp_path):
    out = run_example("custom_template.sh", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--- user" in out.stdout and "6 * 7 = 42" in out.stdout and "</problem>" in out.stdout


def test_custom_template_script_composes_a_run_that_uses_it(launched):
    """main_ppo composes the example's run; the SvS parser and the sampler main_ppo builds load the template."""
    cwd, done = launched
    out = done["custom_template.sh"]
    assert out.returncode == 0, out.stderr[-3000:]
    job = yaml.safe_load(out.stdout)
    assert job["svs"]["template"] == str(EXAMPLES / "my_template.yaml")   # absolute: Ray workers run elsewhere
    assert job["data"]["train_files"] == f"{cwd}/train.parquet"
    checked = check_run_config(job)
    assert checked.settings.template == job["svs"]["template"] and checked.template.name == "my_template"
    sampler = checked.trainer.replay_buffer
    assert type(sampler).__name__ == "SvsReplayBuffer" and sampler.template == checked.template
    assert sampler.template.messages(SOLUTION, "42")[0] == \
        {"role": "system", "content": "You are a mathematics teacher who writes exam problems."}


def test_custom_template_script_stops_on_a_broken_template(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("user: 'Write a problem.'\nfence_open: '<q>'\nfence_close: '</q>'\n")   # no {solution}
    out = run_example("custom_template.sh", cwd=tmp_path, TEMPLATE=str(bad), MODEL="m", TRAIN="t", VAL="v",
                      DRY_RUN="1")
    assert out.returncode != 0 and "{solution}" in out.stderr and "main_ppo" not in out.stdout


# ---- custom verifier ------------------------------------------------------------------------------------
def score(manager, response, role=None, answer="42"):
    info = {"index": 0, **({"svs_role": role} if role else {})}
    row = {"data_source": "toy", "reward_model": {"ground_truth": answer, "style": "rule"}, "extra_info": info,
           "uid": "u", "session_id": 0, "global_steps": 1, "raw_prompt": [{"role": "user", "content": "q"}]}
    return asyncio.run(manager.run_single(dataproto("q", response, row)))["reward_score"]


def test_custom_verifier_scores_through_the_svs_reward_manager():
    from verl.trainer.ppo.reward import load_reward_manager

    from svs_verl.verl_plugin.reward import SvsRewardManager

    plugged = [f"reward.custom_reward_function.path={EXAMPLES / 'custom_verifier.py'}",
               "reward.custom_reward_function.name=compute_score"]
    custom = load_reward_manager(compose("svs_dapo", plugged), char_tokenizer())   # verl's own loading path
    builtin = load_reward_manager(compose("svs_dapo"), char_tokenizer())
    assert type(custom) is SvsRewardManager and custom.custom_score is not None and builtin.custom_score is None
    calls = []
    inner = custom.custom_score
    custom.custom_score = lambda **kw: calls.append(kw) or inner(**kw)
    hedged = "It is \\boxed{41} or \\boxed{42}."
    assert (score(custom, hedged), score(builtin, hedged)) == (0.0, 1.0)     # the example's rule decides
    assert score(custom, "So \\boxed{\\dfrac{84}{2}}.") == 1.0
    assert score(custom, "<think>\\boxed{41}?</think> So \\boxed{42}.") == 1.0
    assert score(custom, "So \\boxed{42}.", role="solve") == 1.0            # variational solves use it too
    assert [c["solution_str"] for c in calls][-1] == "So \\boxed{42}." and calls[-1]["ground_truth"] == "42"
    n = len(calls)
    assert score(custom, "```problem\nWhat is 6*7?\n```", role="synthesis") == 0.0 and len(calls) == n


def test_custom_verifier_runs_as_a_script():
    out = subprocess.run([sys.executable, str(EXAMPLES / "custom_verifier.py")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["1", "1", "0", "0"]


# ---- own parquet ----------------------------------------------------------------------------------------
def test_own_parquet_checks_the_files_and_launches_svs(launched):
    cwd, done = launched
    dry = run_example("own_parquet.sh", cwd=cwd, DRY_RUN="1", TRAIN="train.parquet", VAL="val.parquet",
                      MODEL="Qwen/Qwen2.5-3B-Instruct")
    assert dry.returncode == 0, dry.stderr
    assert "train.parquet: 3 rows OK, data sources ['mine']" in dry.stderr
    argv = shlex.split(dry.stdout)
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"] and argv[argv.index("--config-name") + 1] == "svs_dapo"
    assert f"data.train_files={cwd}/train.parquet" in argv
    job_run = done["own_parquet.sh"]                     # the same script with `--cfg job`: main_ppo composes it
    assert job_run.returncode == 0, job_run.stderr[-3000:]
    assert "val.parquet: 1 rows OK" in job_run.stderr
    job = yaml.safe_load(job_run.stdout)
    assert (job["data"]["train_files"], job["data"]["val_files"]) == (f"{cwd}/train.parquet", f"{cwd}/val.parquet")
    assert job["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen2.5-3B-Instruct"
    assert job["trainer"]["n_gpus_per_node"] == 4
    checked = check_run_config(job)
    assert type(checked.trainer).__name__ == "SvsTrainer"


@pytest.mark.parametrize("rows,message", [
    ([problem(0, answer="")], "row 0: reward_model.ground_truth is empty"),
    ([problem(0), problem(1, prompt=[{"role": "user", "content": ""}])],
     "row 1: prompt must be a non-empty list of {role, content}"),
    ([problem(0, prompt="What is 6*7?")], "row 0: prompt must be a non-empty list of {role, content}"),
    ([{"question": "What is 6*7?", "answer": "42"}], "missing column(s) ['data_source', 'prompt', 'reward_model']"),
])
def test_own_parquet_refuses_a_bad_file(tmp_path, rows, message):
    write_parquet(tmp_path / "train.parquet", rows)
    write_parquet(tmp_path / "val.parquet", [problem(9)])
    out = run_example("own_parquet.sh", cwd=tmp_path, DRY_RUN="1", TRAIN="train.parquet", VAL="val.parquet",
                      MODEL="m")
    assert out.returncode == 1 and message in out.stderr and not out.stdout


def test_examples_say_what_they_show_and_how_to_run():
    for path in sorted(EXAMPLES.iterdir()):
        head = path.read_text().splitlines()[:4]
        if path.suffix == ".sh" and path.name != "quickstart.sh":   # quickstart.sh: the main job, not an example
            assert head[0] == "#!/usr/bin/env bash" and head[1].startswith("# Example:"), path.name
            assert "set -euo pipefail" in path.read_text(), path.name
        elif path.suffix == ".py":
            assert head[0].startswith('"""Example:'), path.name
