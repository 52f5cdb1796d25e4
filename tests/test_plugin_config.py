"""Registration through verl's entry-point loading, `svs-verl doctor`, config composition with every
ablation, and the SvS trainer built from those configs (its constructor runs on a CPU)."""

import json
import re
import os
import subprocess
import sys

import pytest
from svs_test_helpers import CONFIGS, build, compose

ENV = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_PLUGINS"}

PROBE = """
import json, verl
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
import sys
reg = sys.modules.get("svs_verl.verl_plugin.register")
print(json.dumps({"trainer": getattr(TRAINER_REGISTRY.get("svs"), "__name__", None),
                  "dapo": getattr(TRAINER_REGISTRY.get("dapo"), "__name__", None),
                  "reward": getattr(REWARD_MANAGER.get("svs"), "__name__", None),
                  "loaded_by_verl": reg is not None, "errors": getattr(reg, "ERRORS", None)}))
"""


def probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         env={**ENV, **env}, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plain_import_verl_registers_everything():
    assert probe() == {"trainer": "SvsTrainer", "dapo": "DapoTrainer", "reward": "SvsRewardManager",
                       "loaded_by_verl": True, "errors": {}}


def test_importing_a_role_module_first_still_registers_everything():
    code = "import svs_verl.verl_plugin.sampler\n" + PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["errors"] == {}


def test_registration_comes_from_the_entry_point():
    assert probe(VERL_USE_EXTERNAL_PLUGINS="none") == {"trainer": None, "dapo": None, "reward": None,
                                                      "loaded_by_verl": False, "errors": None}
    assert probe(VERL_USE_EXTERNAL_PLUGINS="svs")["trainer"] == "SvsTrainer"


def test_doctor():
    ok = subprocess.run([sys.executable, "-m", "svs_verl.cli", "doctor"], capture_output=True, text=True,
                        timeout=120, env=ENV)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "svs -> svs_verl.verl_plugin.trainer.SvsTrainer" in ok.stdout
    assert "dapo -> svs_verl.verl_plugin.trainer.DapoTrainer" in ok.stdout
    assert re.search(r"^verl +0\.9\.1$", ok.stdout, re.MULTILINE), ok.stdout     # whatever the column width
    bad = subprocess.run([sys.executable, "-m", "svs_verl.cli", "doctor"], capture_output=True, text=True,
                         timeout=120, env={**ENV, "VERL_USE_EXTERNAL_PLUGINS": "none"})
    assert bad.returncode == 1 and "VERL_USE_EXTERNAL_PLUGINS" in bad.stdout


def cfg_job(name, *overrides):
    out = subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(CONFIGS),
                          "--config-name", name, "--cfg", "job", *overrides],
                         capture_output=True, text=True, timeout=180, env=ENV, cwd="/tmp")
    return out


def test_main_ppo_composes_both_configs_and_they_differ_only_in_svs():
    import yaml

    jobs = {}
    for name in ("svs_dapo", "dapo"):
        out = cfg_job(name)
        assert out.returncode == 0, out.stderr[-3000:]
        jobs[name] = yaml.safe_load(out.stdout)
    svs, dapo = jobs["svs_dapo"], jobs["dapo"]
    assert svs["trainer"]["v1"]["trainer_mode"] == "svs" and dapo["trainer"]["v1"]["trainer_mode"] == "dapo"
    assert dapo["trainer"]["v1"]["sampler"]["custom_sampler"]["path"] is None
    assert "svs" in svs and "svs" not in dapo
    # every other key is identical: the paper's hyperparameters are shared
    for cfg in (svs, dapo):
        cfg.pop("svs", None)
        cfg["trainer"]["v1"].pop("trainer_mode")
        cfg["trainer"]["v1"]["sampler"].pop("custom_sampler")
    assert svs == dapo
    actor = dapo["actor_rollout_ref"]["actor"]
    assert (actor["clip_ratio_low"], actor["clip_ratio_high"], actor["loss_agg_mode"], actor["use_kl_loss"],
            actor["optim"]["lr"]) == (0.2, 0.28, "token-mean", False, 1e-6)
    assert dapo["actor_rollout_ref"]["rollout"]["n"] == 8 and dapo["actor_rollout_ref"]["rollout"]["temperature"] == 1.0
    assert dapo["algorithm"]["filter_groups"]["enable"] is True and dapo["reward"]["reward_manager"]["name"] == "svs"


@pytest.mark.parametrize("name", ["svs_dapo", "dapo"])
def test_base_configs_pass_verls_own_validation(name):
    """The README's plain main_ppo command: verl's validate_config accepts the composed config as it is."""
    import verl  # noqa: F401
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = compose(name, ["trainer.n_gpus_per_node=8"])
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert list(cfg.trainer.logger) == ["console", "file"]


def test_misspelled_key_fails_composition():
    out = cfg_job("svs_dapo", "svs.synthesis_nn=4")
    assert out.returncode != 0 and "synthesis_nn" in out.stderr


# ---- the trainer built from composed configs (hydra compose API, in process) ----------------------------
def test_svs_trainer_wires_verl_dapo_into_the_svs_sampler():
    from svs_verl.verl_plugin.sampler import SvsReplayBuffer

    t = build()
    assert type(t).__name__ == "SvsTrainer" and t.registered_mode == "svs" and t.trainer_mode == "sync"
    buf = t.replay_buffer
    assert isinstance(buf, SvsReplayBuffer) and buf.host is t
    assert (buf.filter_groups_metric, buf.train_batch_size, buf.gen_batch_size, buf.max_inflight_gen_batches) == \
        ("acc", 4, 1, 2)
    assert buf.settings.underperforming().counts(8) == [1, 2, 3, 4] and buf.settings.reward().counts(8) == [1, 2, 3, 4, 5]
    assert str(buf.dump_dir).endswith("svs") and buf.template.name == "paper"


ABLATIONS = {
    "svs.enable=false": lambda s: not s.enable,
    "svs.train_on_syntheses=false": lambda s: not s.rules().train_on_syntheses,
    "svs.train_on_solves=false": lambda s: not s.rules().train_on_solves,
    "svs.underperforming_band=[0.25,0.75]": lambda s: s.underperforming().counts(8) == [2, 3, 4, 5, 6],
    "svs.reward_band=[0.0,1.0]": lambda s: s.reward().counts(4) == [0, 1, 2, 3, 4],
    "svs.synthesis_n=4": lambda s: s.synthesis_n == 4,
    "svs.solve_n=16": lambda s: s.solve_n == 16,
    "svs.max_seeds_per_problem=2": lambda s: s.max_seeds_per_problem == 2,
    "svs.max_seeds_per_step=8": lambda s: s.max_seeds_per_step == 8,
    "svs.spa_filter=nonzero_std": lambda s: s.rules().spa_filter == "nonzero_std",
    "svs.template=oneline": lambda s: s.template == "oneline",
    "svs.template=problem_fence": lambda s: s.template == "problem_fence",
    "svs.guards.enable=true": lambda s: s.guards.enable,
    "svs.vps_keep_all_rewarded=true": lambda s: s.rules().vps_keep_all_rewarded,
}


@pytest.mark.parametrize("override", list(ABLATIONS))
def test_ablation_switches_reach_the_sampler(override):
    assert ABLATIONS[override](build([override]).replay_buffer.settings)


def test_template_file_override(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("user: 'Solution: {solution}'\nfence_open: '<q>'\nfence_close: '</q>'\n")
    assert build([f"svs.template={f}"]).replay_buffer.template.messages("s", "1")[-1]["content"] == "Solution: s"


@pytest.mark.parametrize("overrides,match", [
    (["+svs.synthesis_nn=4"], "synthesis_nn"),
    (["svs.reward_band=[0.9,0.1]"], "svs.reward_band"),
    (["reward.reward_manager.name=naive"], "reward.reward_manager.name=svs"),
    (["trainer.v1.sampler.custom_sampler.name=ReplayBuffer"], "custom_sampler"),
    (["svs.solve_template=no placeholder"], "solve_template"),
])
def test_bad_config_fails_at_start_naming_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        build(overrides)


# Issue 12 item 1: each of these built the trainer before (a non-empty string counted as true, a negative
# timeout or zero poll interval was taken as it is). Hydra gives a real bool only for true/false unquoted.
BAD_SVS_OVERRIDES = [
    ("svs.enable=off", "svs.enable", "'off'"),
    ("svs.enable='false'", "svs.enable", "'false'"),
    ("svs.enable=flase", "svs.enable", "'flase'"),
    ("svs.enable=1", "svs.enable", "1"),
    ("svs.train_on_syntheses=no", "svs.train_on_syntheses", "'no'"),
    ("svs.train_on_solves='False'", "svs.train_on_solves", "'False'"),
    ("svs.strip_reasoning=yes", "svs.strip_reasoning", "'yes'"),
    ("svs.vps_keep_all_rewarded=on", "svs.vps_keep_all_rewarded", "'on'"),
    ("svs.guards.enable=off", "svs.guards.enable", "'off'"),
    ("svs.tail_timeout_s=-1", "svs.tail_timeout_s", "-1"),
    ("svs.poll_interval_s=0", "svs.poll_interval_s", "0"),
    ("svs.synthesis_n=0", "svs.synthesis_n", "0"),
    ("svs.max_seeds_per_step=-2", "svs.max_seeds_per_step", "-2"),
    ("svs.reward_band=[0.1,1.5]", "svs.reward_band", "1.5"),
    ("svs.dump_dir=5", "svs.dump_dir", "5"),
]


@pytest.mark.parametrize("override,key,shown", BAD_SVS_OVERRIDES, ids=[o for o, _, _ in BAD_SVS_OVERRIDES])
def test_svs_values_are_type_checked_at_start(override, key, shown):
    with pytest.raises(ValueError) as err:
        build([override])
    assert key in str(err.value) and shown in str(err.value)


def test_real_booleans_from_hydra_are_accepted():
    s = build(["svs.enable=false", "svs.train_on_solves=false", "svs.poll_interval_s=1"]).replay_buffer.settings
    assert s.enable is False and s.train_on_solves is False


def test_dapo_config_builds_verls_own_trainer_and_buffer():
    import verl  # noqa: F401
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls

    cfg = compose("dapo", ["data.train_batch_size=4"])
    t = get_trainer_cls(cfg.trainer.v1.trainer_mode)(cfg)
    assert type(t).__name__ == "DapoTrainer" and type(t.replay_buffer) is ReplayBuffer
    assert t.replay_buffer.filter_groups_metric == "acc" and t.trainer_mode == "sync"
    # nothing but validation metrics differs from verl's own sync trainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    own = {name for klass in type(t).__mro__[:type(t).__mro__.index(PPOTrainerSync)] for name in vars(klass)}
    assert {name for name in own if not name.startswith(("__", "_abc"))} == {"trainer_mode", "_val_metrics_update"}


@pytest.mark.parametrize("name", ["dapo", "svs_dapo"])
def test_validation_reports_pass_at_k_through_verls_own_metric_code(name):
    """verl's _val_metrics_update (mean@n, best@n, ...) runs as it is; pass@k for k = 1, 2, 4 comes on top.
    Problem p1 has 1 of 4 correct, p2 3 of 4 (one of them lost in the rollout: counted wrong, as verl does)."""
    import verl  # noqa: F401
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls

    cfg = compose(name, ["data.train_batch_size=4"])
    t = get_trainer_cls(cfg.trainer.v1.trainer_mode)(cfg)
    sources = ["gsm"] * 7 + ["aime"] * 2
    uids = ["p1"] * 4 + ["p2"] * 3 + ["a1"] * 2
    acc = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    metrics = t._val_metrics_update(sources, uids, {"acc": acc, "reward": acc}, [],
                                    expected_acc_counts={("gsm", "p1"): 4, ("gsm", "p2"): 4, ("aime", "a1"): 2})
    # pass@k = 1 - C(n-c, k)/C(n, k):  p1 (n=4, c=1): 1/4, 1/2, 1;  p2 (n=4, c=3): 3/4, 1, 1
    assert metrics["val-core/gsm/acc/pass@1"] == pytest.approx((0.25 + 0.75) / 2)
    assert metrics["val-core/gsm/acc/pass@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["val-core/gsm/acc/pass@4"] == pytest.approx(1.0)
    assert metrics["val-core/aime/acc/pass@1"] == 0.5 and metrics["val-core/aime/acc/pass@2"] == 1.0
    assert "val-core/aime/acc/pass@4" not in metrics
    # verl's own figure agrees with pass@1 (the failed session counted wrong by both)
    assert metrics["val-core/gsm/acc/mean@4"] == pytest.approx(metrics["val-core/gsm/acc/pass@1"])


def test_validation_pass_at_k_skips_non_binary_verdicts():
    from svs_verl.verl_plugin.trainer import validation_pass_at_k

    assert validation_pass_at_k(["s", "s"], ["u", "u"], [0.5, 1.0]) == {}
    assert validation_pass_at_k(["s", "s"], ["u", "u"], None) == {}
    assert validation_pass_at_k(["s", "s"], ["u", "u"], [0.0, 1.0]) == {"val-core/s/acc/pass@1": 0.5,
                                                                        "val-core/s/acc/pass@2": 1.0}


def test_gpu_run_overrides_compose_and_build(tmp_path):
    """tests/gpu/svs_gpu_run.py's settings are valid keys: the GPU run cannot die of a typo."""
    sys.path.insert(0, str(CONFIGS.parent / "tests" / "gpu"))
    from svs_gpu_run import overrides

    ov = overrides("/tmp/smol", tmp_path / "t.parquet", tmp_path / "v.parquet", 5, tmp_path)
    trainer = build([o for o in ov if not o.startswith("data.train_batch_size")])
    s = trainer.replay_buffer.settings
    assert s.template == "oneline" and s.solve_template == "{problem} Answer with just the final number."
    assert s.guards.leak_min_answer_chars is None and s.max_seeds_per_step == 8
    assert compose("dapo", [o for o in ov if not o.startswith("svs.")]).reward.reward_kwargs.answer_extraction == \
        "last_number"


def test_checkpoint_save_and_resume_carry_svs_state(tmp_path):
    """verl's own _save_checkpoint/_load_checkpoint (sync path) with the SvS state beside them. The actor
    worker group and dataloader stand in for GPU workers; everything else is verl's code."""

    class Workers:  # the FSDP actor's save/load endpoints
        def save_checkpoint(self, path, *args, **kwargs):
            os.makedirs(path, exist_ok=True)

        def load_checkpoint(self, local_path, **kwargs):
            assert os.path.isdir(local_path)

    class Loader:
        def __init__(self):
            self.state = {"epoch": 0}

        def state_dict(self):
            return {"epoch": 7}

        def load_state_dict(self, state):
            self.state = state

    overrides = [f"trainer.default_local_dir={tmp_path}", "trainer.resume_mode=auto"]
    first = build(overrides)
    first.actor_rollout_wg, first.train_dataloader, first.global_steps = Workers(), Loader(), 3
    first.replay_buffer.totals.update({"seeds": 5, "accepted": 2, "steps": 3})
    first._save_checkpoint()
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text() == "3"
    assert json.loads((tmp_path / "global_step_3" / "svs_state.json").read_text())["totals"]["seeds"] == 5

    resumed = build(overrides)
    resumed.actor_rollout_wg, resumed.train_dataloader = Workers(), Loader()
    resumed._load_checkpoint()
    assert resumed.global_steps == 3 and resumed.train_dataloader.state == {"epoch": 7}
    assert resumed.replay_buffer.totals == first.replay_buffer.totals

    # a truncated state file (a crash while it was written by hand, a disk that filled): one line naming
    # the file and how to resume without it, not a JSON traceback
    state = tmp_path / "global_step_3" / "svs_state.json"
    state.write_text(state.read_text()[:20])
    again = build(overrides)
    again.actor_rollout_wg, again.train_dataloader = Workers(), Loader()
    with pytest.raises(ValueError) as err:
        again._load_checkpoint()
    message = str(err.value)
    assert str(state) in message and "delete or rename it" in message and "\n" not in message
