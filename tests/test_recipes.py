"""recipes/: the script of every setting x variant gives its command (DRY_RUN=1, shown to print exactly what the
script runs), the command's config is composed with main_ppo's hydra and config directory (in process; verl's
real main_ppo, started by the script with `--cfg job`, is shown to compose the same), and the config passes
verl's start-up validation and config dataclasses, svs-verl's own parser of the `svs` section, and builds the
trainer main_ppo would build. The SvS and DAPO variants of a setting differ only in SvS; the paper's settings
are what the runs get."""

from __future__ import annotations

import importlib.util
import os
import re
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
              "VERL_USE_EXTERNAL_PLUGINS", "BACKEND", "ATTN", "TRAIN_TP", "PP", "TQ_SIZE", "WORKER_ENV",
              "VLLM_USE_FLASHINFER_SAMPLER")
# what `svs-verl data prepare` puts around every problem: the variational problems are asked the same way
PAPER_SOLVE_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
BASE_ENV = {**{k: v for k, v in os.environ.items() if k not in RECIPE_ENV}, "PYTHON": sys.executable}
# the production attention (verl's flash_attention_2 + remove-padding): the sdpa fallback of a node without
# flash-attn is tested on its own (test_attention_*)
FLASH = {"ATTN": "flash"}
# a coarse bound on the trajectories one SvS step holds at the paper's settings: originals x
# max_inflight_gen_batches x (n + seeds x (synthesis_n + synthesis_n x solve_n)) with seeds = n = 8 (every
# sample of an in-flight original a seed): 256 x 2 x (8 + 8 x (8 + 64)). The band allows at most 4 seeds per
# original and only originals of the batch seed: 3 x 256 x 8 + 256 x 4 x 72 = 79,872 (recipes/README.md)
WORST_CASE_TRAJECTORIES = 299_008


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

    from svs_verl.core.config import validate_svs_section
    from svs_verl.core.synthesis import SynthesisTemplate

    cfg = OmegaConf.create(job)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Disabled critic")   # GRPO has no critic: expected
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    settings = None
    if "svs" in job:  # the algorithm's settings and the sampler's own keys, every one checked
        settings, _ = validate_svs_section(job["svs"])
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
            for backend in ("fsdp", "megatron"):
                dry = run_script(RECIPES / script, cwd=launch_dir, VARIANT=variant, DRY_RUN="1", BACKEND=backend,
                                 **FLASH)
                assert dry.returncode == 0, f"{script} VARIANT={variant} BACKEND={backend}:\n{dry.stderr[-3000:]}"
                out[(script, variant) if backend == "fsdp" else (script, variant, backend)] = shlex.split(dry.stdout)
    return out


@pytest.fixture(scope="module")
def jobs(argvs, launch_dir):
    return {"cwd": launch_dir, **{key: compose_argv(argv) for key, argv in argvs.items()}}


def test_main_ppo_composes_the_same_config(jobs, launch_dir):
    """verl's real main_ppo, started by the recipe script (`--cfg job` appended: hydra prints the config and
    exits), gives the config the other tests check; both variants of the largest setting, side by side."""
    def one(variant):
        out = run_script(RECIPES / "qwen2.5-32b_dapo17k.sh", "--cfg", "job", cwd=launch_dir, VARIANT=variant, **FLASH)
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
    # every Ray worker on every node gets the run's environment (strings: Ray refuses other types)
    assert job["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"] == {"VERL_FILE_LOGGER_ROOT": f"{cwd}/outputs",
                                                                        "VLLM_USE_FLASHINFER_SAMPLER": "0"}
    # the SvS worst case of a step fits TransferQueue (a cap; nothing is allocated up front)
    assert job["transfer_queue"]["backend"]["SimpleStorage"]["total_storage_size"] >= WORST_CASE_TRAJECTORIES
    from svs_verl.verl_plugin import checks

    if variant == "svs" and hasattr(checks, "check_capacity"):   # svs-verl's own start-up capacity check
        from omegaconf import OmegaConf

        from svs_verl.core.config import validate_svs_section

        checks.check_capacity(OmegaConf.create(job), validate_svs_section(job["svs"])[0])
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
               OUT="runs", STEPS="7", ARGV_FILE=str(tmp_path / "argv"), **FLASH)
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
    dry = run_script(RECIPES / "qwen2.5-7b_dapo17k.sh", cwd=tmp_path, DRY_RUN="1", SOLVE_TEMPLATE=template, **FLASH)
    assert dry.returncode == 0, dry.stderr
    assert compose_argv(shlex.split(dry.stdout))["svs"]["solve_template"] == template


@pytest.mark.parametrize("env,message", [
    (dict(VARIANT="grpo"), "VARIANT must be svs or dapo"),
    (dict(GPUS_PER_NODE="4", ROLLOUT_TP="8"), "ROLLOUT_TP=8 must divide GPUS_PER_NODE=4"),
    (dict(NNODES="1", GPUS_PER_NODE="2", ROLLOUT_TP="1", SP="4"), "SP=4 the 2 GPUs"),
    (dict(BACKEND="deepspeed"), "BACKEND must be fsdp or megatron, got 'deepspeed'"),
    (dict(ATTN="xformers"), "ATTN must be auto, flash or sdpa, got 'xformers'"),
    (dict(BACKEND="megatron", TRAIN_TP="4", PP="4", SP="1"), "TRAIN_TP=4 x PP=4 x SP=1 must divide the 8 GPUs"),
    (dict(WORKER_ENV="NCCL_DEBUG=INFO oops", **FLASH), "WORKER_ENV: expected NAME=VALUE pairs, got 'oops'"),
    (dict(ATTN="sdpa", SP="2"), "SP=2 (Ulysses sequence parallel) needs flash-attn"),
])
def test_impossible_settings_are_refused(tmp_path, env, message):
    out = run_script(RECIPES / "qwen2.5-3b_math12k.sh", cwd=tmp_path, DRY_RUN="1", CONFIG_PATH=str(CONFIGS), **env)
    assert out.returncode == 2 and message in out.stderr and not out.stdout


def test_scripts_are_strict_and_portable():
    for path in [*RECIPES.glob("*.sh")]:
        text = path.read_text()
        if path.name != "common.sh":
            assert text.startswith("#!/usr/bin/env bash\n#") and "set -euo pipefail" in text, path.name
        # remove-padding / sdpa appear only in common.sh's flash-attn fallback (test_attention_*)
        banned = ("CUDA_VISIBLE_DEVICES", "localhost", "127.0.0.1") + \
            (("use_remove_padding", "sdpa") if path.name != "common.sh" else ())
        for word in banned:
            assert word not in text, (path.name, word)


def test_readme_covers_every_recipe_and_variant():
    readme = (RECIPES / "README.md").read_text()
    for script in SETTINGS:
        for variant in VARIANTS:
            assert f"VARIANT={variant}" + " " * (5 - len(variant)) + f"bash recipes/{script}" in readme
    for name in ("math-12k", "dapo-17k"):
        assert f"svs-verl data prepare {name} --src PATH_OR_HUB_ID --out" in readme


# ---- Megatron (BACKEND=megatron: verl's model_engine=megatron) ---------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("script", list(SETTINGS))
def test_megatron_branch_maps_the_setting_and_composes(jobs, script, variant):
    """The same setting on Megatron: verl's megatron actor schema (no fsdp_config), SP -> context parallel,
    offload -> Megatron's, TP of the update = the rollout's; composed, validated and built like the FSDP one."""
    from svs_verl.verl_plugin.engine_keys import ENGINE_KEYS, check_engine

    want, job, fsdp_job = SETTINGS[script], jobs[(script, variant, "megatron")], jobs[(script, variant)]
    checked = check_run_config(job)
    check_engine(checked.cfg)
    assert job["model_engine"] == "megatron" and type(checked.actor).__name__ == "McoreActorConfig"
    assert "fsdp_config" not in job["actor_rollout_ref"]["actor"]
    flat, fsdp_flat = flatten(job), flatten(fsdp_job)
    for setting, value in (("sp", want["sp"]), ("param_offload", want["offload"]),
                           ("optimizer_offload", want["offload"]), ("train_tp", want["tp"]), ("pp", 1)):
        assert flat[ENGINE_KEYS[setting]["megatron"]] == value, setting
        if ENGINE_KEYS[setting]["fsdp"]:
            assert fsdp_flat[ENGINE_KEYS[setting]["fsdp"]] == value, setting
    # everything that is not the engine's stays the FSDP run's
    engine_only = ("model_engine", "actor_rollout_ref.actor.", "actor_rollout_ref.ref.", "critic.")
    differ = {k for k in flat.keys() | fsdp_flat.keys() if flat.get(k, "<absent>") != fsdp_flat.get(k, "<absent>")}
    assert {k for k in differ if not k.startswith(engine_only)} == set()
    for key in ("ppo_mini_batch_size", "ppo_max_token_len_per_gpu", "use_dynamic_bsz", "clip_ratio_high"):
        assert job["actor_rollout_ref"]["actor"][key] == fsdp_job["actor_rollout_ref"]["actor"][key], key
    if variant == "svs":
        assert checked.trainer.replay_buffer.settings == checked.settings


def test_check_config_composes_svs_dapo_with_megatron_on_the_cpu(argvs):
    """`svs-verl check-config` (the CLI, a subprocess) on the 32B SvS recipe's overrides with Megatron."""
    argv = argvs[("qwen2.5-32b_dapo17k.sh", "svs", "megatron")]
    out = subprocess.run([sys.executable, "-m", "svs_verl.cli", "check-config", "--config-name", "svs_dapo",
                          *argv[7:]], capture_output=True, text=True, timeout=240, env=BASE_ENV)
    assert out.returncode == 0 and out.stdout.strip() == "ok: svs_dapo", out.stderr[-2000:]
    bad = subprocess.run([sys.executable, "-m", "svs_verl.cli", "check-config", "--config-name", "svs_dapo",
                          *argv[7:], "actor_rollout_ref.actor.fsdp_config.param_offload=true"],
                         capture_output=True, text=True, timeout=240, env=BASE_ENV)
    assert bad.returncode != 0 and "fsdp_config" in bad.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("overrides,message", [
    (["actor_rollout_ref.actor.strategy=megatron"],
     "actor_rollout_ref.actor.strategy=megatron needs model_engine=megatron"),
    (["model_engine=megatron", "actor_rollout_ref.actor.strategy=fsdp"],
     "actor_rollout_ref.actor.strategy=fsdp needs model_engine=dp (got model_engine=megatron)"),
])
def test_a_strategy_without_its_engine_is_refused(overrides, message):
    """verl composes and validates these on a CPU, then fails inside the GPU worker; check_engine says why,
    and check-config (compose_run_config) runs it."""
    from svs_verl.verl_plugin.checks import compose_run_config
    from svs_verl.verl_plugin.engine_keys import check_engine

    with pytest.raises(ValueError, match=re.escape(message)) as err:
        compose_run_config("svs_dapo", ["actor_rollout_ref.rollout.name=vllm", *overrides])
    assert "\n" not in str(err.value)
    check_engine(compose_run_config("svs_dapo", ["actor_rollout_ref.rollout.name=vllm", "model_engine=megatron"]))


def test_megatron_needs_its_packages_in_one_line(tmp_path):
    if importlib.util.find_spec("megatron") is not None:
        pytest.skip("Megatron is installed here")
    out = run_script(RECIPES / "qwen2.5-7b_dapo17k.sh", cwd=tmp_path, BACKEND="megatron", CONFIG_PATH=str(CONFIGS),
                     PYTHONPATH=str(_stub_modules(tmp_path, "mbridge")))
    assert out.returncode == 2 and not out.stdout
    assert out.stderr.count("\n") == 1 and "BACKEND=megatron needs megatron.core transformer_engine" in out.stderr
    assert "'verl[megatron]==0.9.1'" in out.stderr


# ---- flash-attn on a stock node ---------------------------------------------------------------------------
def _stub_modules(tmp_path: Path, *names: str) -> Path:
    """A folder that makes `import NAME` findable (an empty package) for each name."""
    stubs = tmp_path / "stubs"
    for name in names:
        (stubs / name).mkdir(parents=True, exist_ok=True)
        (stubs / name / "__init__.py").write_text("")
    return stubs


def test_attention_falls_back_to_sdpa_without_flash_attn_and_says_so(tmp_path):
    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    dry = run_script(RECIPES / "qwen2.5-3b_math12k.sh", cwd=tmp_path, DRY_RUN="1", CONFIG_PATH=str(CONFIGS))
    assert dry.returncode == 0, dry.stderr
    assert dry.stderr.startswith("[recipe] attention: sdpa without remove-padding") and dry.stderr.count("\n") == 1
    assert "verl[flash-attn-cu130torch211]==0.9.1" in dry.stderr
    job = compose_argv(shlex.split(dry.stdout))
    model = job["actor_rollout_ref"]["model"]
    assert model["use_remove_padding"] is False and model["override_config"]["attn_implementation"] == "sdpa"
    checked = check_run_config(job)                     # verl's validation and dataclasses accept it
    assert checked.actor.ulysses_sequence_parallel_size == 1
    # SP > 1 needs remove-padding: a one-line error, no command
    sp = run_script(RECIPES / "qwen2.5-32b_dapo17k.sh", cwd=tmp_path, DRY_RUN="1", CONFIG_PATH=str(CONFIGS))
    assert sp.returncode == 2 and not sp.stdout and sp.stderr.count("\n") == 1
    assert sp.stderr.startswith("[recipe] SP=4 (Ulysses sequence parallel) needs flash-attn")


def test_attention_stays_verls_default_when_flash_attn_imports(tmp_path):
    env = dict(DRY_RUN="1", CONFIG_PATH=str(CONFIGS), PYTHONPATH=str(_stub_modules(tmp_path, "flash_attn")))
    for script in ("qwen2.5-3b_math12k.sh", "qwen2.5-32b_dapo17k.sh"):
        dry = run_script(RECIPES / script, cwd=tmp_path, **env)
        assert dry.returncode == 0 and not dry.stderr, dry.stderr
        model = compose_argv(shlex.split(dry.stdout))["actor_rollout_ref"]["model"]
        assert model["use_remove_padding"] is True and "attn_implementation" not in model["override_config"]


def test_worker_env_reaches_runtime_env_as_strings(tmp_path):
    dry = run_script(RECIPES / "qwen2.5-3b_math12k.sh", cwd=tmp_path, DRY_RUN="1", CONFIG_PATH=str(CONFIGS),
                     WORKER_ENV="NCCL_DEBUG=WARN HF_HOME=/shared/hf NCCL_TIMEOUT=1800", OUT="/shared/runs", **FLASH)
    assert dry.returncode == 0, dry.stderr
    env_vars = compose_argv(shlex.split(dry.stdout))["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]
    assert env_vars == {"VERL_FILE_LOGGER_ROOT": "/shared/runs", "VLLM_USE_FLASHINFER_SAMPLER": "0",
                        "NCCL_DEBUG": "WARN", "HF_HOME": "/shared/hf", "NCCL_TIMEOUT": "1800"}
    from ray._private.runtime_env.validation import parse_and_validate_env_vars

    assert parse_and_validate_env_vars(env_vars) == env_vars


def test_readme_states_the_multi_node_prerequisites():
    readme = (RECIPES / "README.md").read_text()
    for needle in ("on every node", "entry point", "shared storage", "ray_kwargs.ray_init.runtime_env.env_vars",
                   "(../docs/clusters.md)", "BACKEND=megatron", "flash-attn", "TQ_SIZE"):
        assert needle in readme, needle
