"""recipes/: the script of every setting x variant gives its command (DRY_RUN=1, shown to print exactly what the
script runs), the command's config is composed with main_ppo's hydra and config directory (in process; verl's
real main_ppo, started by the script with `--cfg job`, is shown to compose the same), and the config passes
verl's start-up validation and config dataclasses, svs-verl's own parser of the `svs` section, and builds the
trainer main_ppo would build. The SvS and DAPO variants of a setting differ only in SvS; the paper's settings
are what the runs get."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from svs_test_helpers import CONFIGS, compose

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
VARIANTS = ("svs", "dapo")
# what each recipe must run: the paper's settings (SVS_SPEC.md) and our 7B one
SETTINGS = {
    "qwen2.5-3b_math12k.sh": dict(model="Qwen/Qwen2.5-3B-Instruct", data="math-12k", steps=300, nnodes=1, tp=1,
                                  sp=1, offload=False),
    "llama3.1-8b_math12k.sh": dict(model="meta-llama/Llama-3.1-8B-Instruct", data="math-12k", steps=300, nnodes=1,
                                   tp=2, sp=1, offload=False),
    "qwen2.5-7b_dapo17k.sh": dict(model="Qwen/Qwen2.5-7B-Instruct", data="dapo-17k", steps=300, nnodes=1, tp=2,
                                  sp=1, offload=False),
    "qwen2.5-32b_dapo17k.sh": dict(model="Qwen/Qwen2.5-32B-Instruct", data="dapo-17k", steps=600, nnodes=4, tp=4,
                                   sp=4, offload=True),
}
# everything a recipe reads from the environment: the tests start from none of them set
RECIPE_ENV = ("VARIANT", "MODEL", "TRAIN", "VAL", "DATA_DIR", "STEPS", "NNODES", "GPUS_PER_NODE", "ROLLOUT_TP", "SP",
              "OFFLOAD", "MAX_TOKENS_PER_GPU", "GPU_MEM_UTIL", "PROJECT", "EXP", "OUT", "MINI_BATCH", "SAVE_FREQ",
              "TEST_FREQ", "KEEP_CKPTS", "SOLVE_TEMPLATE", "PYTHON", "CONFIG_PATH", "DRY_RUN",
              "VERL_USE_EXTERNAL_PLUGINS")
# what `svs-verl data prepare` puts around every problem: the variational problems are asked the same way
PAPER_SOLVE_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
BASE_ENV = {**{k: v for k, v in os.environ.items() if k not in RECIPE_ENV}, "PYTHON": sys.executable}


def run_script(script: Path, *args: str, cwd: Path, timeout: int = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**BASE_ENV, **env})


def check_run_config(job: dict) -> SimpleNamespace:
    """What main_ppo does with a composed config before any GPU work: verl's validate_config and config
    dataclasses, svs-verl's parser of `svs`, and the trainer TaskRunnerV1 builds (with its replay buffer)."""
    import verl  # noqa: F401  (registers svs-verl)
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    from svs_verl.core.config import SvsSettings
    from svs_verl.core.synthesis import SynthesisTemplate
    from svs_verl.verl_plugin.sampler import SvsReplayBuffer

    cfg = OmegaConf.create(job)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Disabled critic")   # GRPO has no critic: expected
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    settings = None
    if "svs" in job:  # the sampler's own keys, the rest is the algorithm's (unknown keys are an error there)
        settings = SvsSettings.from_mapping({k: v for k, v in job["svs"].items()
                                             if k not in SvsReplayBuffer.PLUGIN_KEYS})
    return SimpleNamespace(
        cfg=cfg, settings=settings,
        template=SynthesisTemplate.load(settings.template) if settings else None,
        rollout=omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout),
        actor=omega_conf_to_dataclass(cfg.actor_rollout_ref.actor),
        trainer=get_trainer_cls(cfg.trainer.v1.trainer_mode)(cfg))


def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def compose_argv(argv: list[str]) -> dict:
    """The config `python -m verl.trainer.main_ppo --config-path P --config-name N OVERRIDES...` composes, with
    the same hydra and config directory, in process (main_ppo itself: test_main_ppo_composes_the_same_config)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    assert argv[1:4] == ["-m", "verl.trainer.main_ppo", "--config-path"] and argv[5] == "--config-name", argv
    with initialize_config_dir(config_dir=argv[4], version_base=None):
        return OmegaConf.to_container(hydra_compose(config_name=argv[6], overrides=argv[7:]))


@pytest.fixture(scope="module")
def launch_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("launch")


@pytest.fixture(scope="module")
def argvs(launch_dir):
    """The command of every recipe x variant, as the script prints it with DRY_RUN=1 (it prints exactly what it
    runs: test_dry_run_prints_what_runs...), from a fresh directory with no recipe variable set."""
    out = {}
    for script in SETTINGS:
        for variant in VARIANTS:
            dry = run_script(RECIPES / script, cwd=launch_dir, VARIANT=variant, DRY_RUN="1")
            assert dry.returncode == 0, f"{script} VARIANT={variant}:\n{dry.stderr[-3000:]}"
            out[(script, variant)] = shlex.split(dry.stdout)
    return out


@pytest.fixture(scope="module")
def jobs(argvs, launch_dir):
    return {"cwd": launch_dir, **{key: compose_argv(argv) for key, argv in argvs.items()}}


def test_main_ppo_composes_the_same_config(jobs, launch_dir):
    """verl's real main_ppo, started by the recipe script (`--cfg job` appended: hydra prints the config and
    exits), gives the config the other tests check; both variants of the largest setting, side by side."""
    def one(variant):
        out = run_script(RECIPES / "qwen2.5-32b_dapo17k.sh", "--cfg", "job", cwd=launch_dir, VARIANT=variant)
        assert out.returncode == 0, out.stderr[-3000:]
        return variant, yaml.safe_load(out.stdout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for variant, job in pool.map(one, VARIANTS):
            assert job == jobs[("qwen2.5-32b_dapo17k.sh", variant)]


def test_a_misspelled_override_fails_the_recipe(argvs):
    argv = argvs[("qwen2.5-3b_math12k.sh", "svs")]
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="ppo_mini_batch_sise"):
        compose_argv([*argv, "actor_rollout_ref.actor.ppo_mini_batch_sise=8"])


def test_the_recipes_are_the_settings():
    assert {p.name for p in RECIPES.glob("*.sh")} - {"common.sh"} == set(SETTINGS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("script", list(SETTINGS))
def test_recipe_composes_validates_and_builds(jobs, script, variant):
    job = jobs[(script, variant)]
    checked = check_run_config(job)
    base = compose("svs_dapo" if variant == "svs" else "dapo")   # the plugin's own config, unmodified
    assert job["trainer"]["v1"]["trainer_mode"] == base.trainer.v1.trainer_mode
    buffer = type(checked.trainer.replay_buffer).__name__
    if variant == "svs":
        from svs_verl.core.config import SvsSettings

        # the paper's SvS settings; the solve prompt in the training prompts' format
        assert checked.settings == SvsSettings(solve_template=PAPER_SOLVE_TEMPLATE)
        assert checked.template.name == "paper" and buffer == "SvsReplayBuffer"
        assert checked.trainer.replay_buffer.settings == checked.settings
    else:
        assert "svs" not in job and buffer == "ReplayBuffer"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("script", list(SETTINGS))
def test_recipe_runs_the_paper_setting(jobs, script, variant):
    want, job, cwd = SETTINGS[script], jobs[(script, variant)], jobs["cwd"]
    exp = f"{script[:-3].replace('_', '-')}-{variant}"
    data, arr, trainer = job["data"], job["actor_rollout_ref"], job["trainer"]
    actor, rollout = arr["actor"], arr["rollout"]
    # paper §4.1 (SVS_SPEC.md)
    assert (data["train_batch_size"], rollout["n"], data["max_prompt_length"], data["max_response_length"]) == \
        (256, 8, 4096, 8192)
    assert (actor["optim"]["lr"], actor["clip_ratio_low"], actor["clip_ratio_high"], rollout["temperature"]) == \
        (1e-6, 0.2, 0.28, 1.0)
    # the reference's scripts (MasterVito/SvS scripts/run_svs_*.sh): ppo_mini_batch_size=256 (the paper is silent)
    assert actor["ppo_mini_batch_size"] == 256
    assert (rollout["val_kwargs"]["n"], rollout["val_kwargs"]["temperature"], trainer["total_training_steps"]) == \
        (32, 1.0, want["steps"])
    # model, data, cluster: the script's defaults, relative paths made absolute from where it was started
    assert arr["model"]["path"] == want["model"]
    assert data["train_files"] == f"{cwd}/data/{want['data']}/train.parquet"
    assert data["val_files"] == f"{cwd}/data/eval/test.parquet"
    assert (trainer["nnodes"], trainer["n_gpus_per_node"]) == (want["nnodes"], 8)
    # verl's production engine settings: nothing turns remove-padding / flash-attention off
    assert arr["model"]["use_remove_padding"] is True and "attn_implementation" not in arr["model"]["override_config"]
    assert rollout["name"] == "vllm" and rollout["tensor_model_parallel_size"] == want["tp"]
    assert 8 % want["tp"] == 0
    fsdp = actor["fsdp_config"]
    assert (fsdp["ulysses_sequence_parallel_size"], fsdp["param_offload"], fsdp["optimizer_offload"]) == \
        (want["sp"], want["offload"], want["offload"])
    assert actor["use_dynamic_bsz"] is True
    assert actor["ppo_max_token_len_per_gpu"] * want["sp"] >= data["max_prompt_length"] + data["max_response_length"]
    # logging and outputs
    assert trainer["logger"] == ["console", "file"]
    assert job["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"] == {"VERL_FILE_LOGGER_ROOT": f"{cwd}/outputs"}
    assert (trainer["project_name"], trainer["experiment_name"]) == ("svs-verl", exp)
    assert trainer["default_local_dir"] == f"{cwd}/outputs/svs-verl/{exp}/checkpoints"
    assert trainer["validation_data_dir"] == f"{cwd}/outputs/svs-verl/{exp}/validation"


# keys the SvS run may set differently from its DAPO baseline
SVS_ONLY = ("trainer.v1.trainer_mode", "trainer.v1.sampler.custom_sampler.", "svs.", "trainer.experiment_name",
            "trainer.default_local_dir", "trainer.validation_data_dir")


@pytest.mark.parametrize("script", list(SETTINGS))
def test_svs_and_dapo_variants_differ_only_in_svs(jobs, script):
    svs, dapo = flatten(jobs[(script, "svs")]), flatten(jobs[(script, "dapo")])
    differ = {k for k in svs.keys() | dapo.keys() if svs.get(k, "<absent>") != dapo.get(k, "<absent>")}
    assert differ, "the variants compose to the same config"
    assert {k for k in differ if not k.startswith(SVS_ONLY)} == set()
    assert "trainer.v1.trainer_mode" in differ and any(k.startswith("svs.") for k in differ)


FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\0' "$@" > "$ARGV_FILE"
"""


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("script", list(SETTINGS))
def test_dry_run_prints_what_runs_and_env_and_args_reach_it(tmp_path, script, variant):
    fake = tmp_path / "fakepython"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = dict(VARIANT=variant, PYTHON=str(fake), CONFIG_PATH=str(CONFIGS), MODEL="/models/m", TRAIN="t.parquet",
               VAL="/data/v.parquet", NNODES="2", GPUS_PER_NODE="4", ROLLOUT_TP="4", PROJECT="p", EXP="e",
               OUT="runs", STEPS="7", ARGV_FILE=str(tmp_path / "argv"))
    extra = ["trainer.val_before_train=false", "svs.solve_template='{problem} Answer briefly.'"]
    dry = run_script(RECIPES / script, *extra, cwd=tmp_path, DRY_RUN="1", **env)
    assert dry.returncode == 0, dry.stderr
    printed = shlex.split(dry.stdout)
    assert not (tmp_path / "argv").exists()              # a dry run runs nothing
    real = run_script(RECIPES / script, *extra, cwd=tmp_path, **env)
    assert real.returncode == 0, real.stderr
    ran = (tmp_path / "argv").read_text().split("\0")[:-1]
    assert printed == [str(fake), *ran]                  # the dry run shows exactly the command that runs
    assert ran[:5] == ["-m", "verl.trainer.main_ppo", "--config-path", str(CONFIGS), "--config-name"]
    assert ran[5] == ("svs_dapo" if variant == "svs" else "dapo") and ran[-2:] == extra
    svs_keys = [a for a in ran[6:-2] if a.startswith("svs.")]
    assert svs_keys == ([f"svs.solve_template='{PAPER_SOLVE_TEMPLATE}'"] if variant == "svs" else [])
    for override in ("actor_rollout_ref.model.path=/models/m", f"data.train_files={tmp_path}/t.parquet",
                     "data.val_files=/data/v.parquet", "trainer.nnodes=2", "trainer.n_gpus_per_node=4",
                     "actor_rollout_ref.rollout.tensor_model_parallel_size=4", "trainer.total_training_steps=7",
                     "trainer.project_name=p", "trainer.experiment_name=e",
                     f"trainer.default_local_dir={tmp_path}/runs/p/e/checkpoints"):
        assert override in ran


def test_solve_template_reaches_svs_verbatim(tmp_path):
    template = "Problem: {problem}\nDon't guess: end with \\boxed{answer} or 'Answer: x'."
    dry = run_script(RECIPES / "qwen2.5-7b_dapo17k.sh", cwd=tmp_path, DRY_RUN="1", SOLVE_TEMPLATE=template)
    assert dry.returncode == 0, dry.stderr
    assert compose_argv(shlex.split(dry.stdout))["svs"]["solve_template"] == template


@pytest.mark.parametrize("env,message", [
    (dict(VARIANT="grpo"), "VARIANT must be svs or dapo"),
    (dict(GPUS_PER_NODE="4", ROLLOUT_TP="8"), "ROLLOUT_TP=8 must divide GPUS_PER_NODE=4"),
    (dict(NNODES="1", GPUS_PER_NODE="2", ROLLOUT_TP="1", SP="4"), "SP=4 the 2 GPUs"),
])
def test_impossible_settings_are_refused(tmp_path, env, message):
    out = run_script(RECIPES / "qwen2.5-3b_math12k.sh", cwd=tmp_path, DRY_RUN="1", CONFIG_PATH=str(CONFIGS), **env)
    assert out.returncode == 2 and message in out.stderr and not out.stdout


def test_scripts_are_strict_and_portable():
    for path in [*RECIPES.glob("*.sh")]:
        text = path.read_text()
        if path.name != "common.sh":
            assert text.startswith("#!/usr/bin/env bash\n#") and "set -euo pipefail" in text, path.name
        for banned in ("CUDA_VISIBLE_DEVICES", "localhost", "127.0.0.1", "use_remove_padding", "sdpa"):
            assert banned not in text, (path.name, banned)


def test_readme_covers_every_recipe_and_variant():
    readme = (RECIPES / "README.md").read_text()
    for script in SETTINGS:
        for variant in VARIANTS:
            assert f"VARIANT={variant}" + " " * (5 - len(variant)) + f"bash recipes/{script}" in readme
    for name in ("math-12k", "dapo-17k"):
        assert f"svs-verl data prepare {name} --src PATH_OR_HUB_ID --out" in readme
