"""The start-up checks of an SvS run, without a GPU, Ray or verl's trainer modules.

    from svs_verl.verl_plugin.checks import check_run_config, compose_run_config
    cfg = compose_run_config("svs_dapo", ["svs.synthesis_n=4"])   # composed as main_ppo composes it, checked
    check_run_config(cfg)                                        # what the SvS trainer checks at start-up

``svs-verl check-config --config-name NAME [OVERRIDES ...]`` runs ``compose_run_config`` and prints
``ok: NAME`` or a one-line error naming the key. This module imports only hydra/omegaconf at import time
(no torch, no ray, no verl trainer), so the trainer and the quickstart can call it before anything heavy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

SVS_SAMPLER = {"path": "pkg://svs_verl.verl_plugin.sampler", "name": "SvsReplayBuffer"}
logger = logging.getLogger("svs_verl")

# The answer formats a prompt can ask for, told apart by the words of the instructions svs-verl writes and
# reads (svs_verl/data/schema.py: BOXED_INSTRUCTION, DAPO_PREFIX/DAPO_SUFFIX, LAST_NUMBER_INSTRUCTION); the first
# that matches names the format of a prompt.
ANSWER_FORMATS = (("\\boxed{}", re.compile(r"\\boxed")),
                  ('an "Answer:" line', re.compile(r"\bAnswer:")),
                  ("just the final number", re.compile(r"\bfinal number\b", re.IGNORECASE)))
FORMAT_SAMPLE_ROWS = 64   # training prompts read to tell their answer format (one parquet batch)


def _get(node: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if node is None:
            return default
        try:
            node = node.get(part, None)
        except AttributeError:
            return default
    return default if node is None else node


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def check_wiring(config) -> None:
    """Fail, naming the key, when a ``trainer_mode=svs`` run is not wired for SvS (sampler, reward manager)."""
    svs = config.get("svs", None)
    if svs is None:
        raise ValueError("trainer.v1.trainer_mode=svs needs an `svs:` section (use configs/svs_dapo.yaml)")
    custom = _get(config, "trainer.v1.sampler.custom_sampler") or {}
    if custom.get("name") != SVS_SAMPLER["name"]:
        raise ValueError("trainer.v1.trainer_mode=svs needs trainer.v1.sampler.custom_sampler."
                         "{path: pkg://svs_verl.verl_plugin.sampler, name: SvsReplayBuffer}, "
                         f"got {_plain(custom) or None}")
    manager = _get(config, "reward.reward_manager") or {}
    reward_model = _get(config, "reward.reward_model") or {}
    enabled = svs.get("enable", True)
    if enabled and reward_model.get("enable", False) and not reward_model.get("enable_resource_pool", False):
        raise ValueError("SvS needs rewards while the rollout runs: a colocated reward model "
                         "(reward.reward_model.enable=true without enable_resource_pool) scores after sampling "
                         "and would overwrite the synthesis rewards")
    if enabled and manager.get("name") != "svs":
        raise ValueError(f"SvS needs the role-aware reward manager: set reward.reward_manager.name=svs "
                         f"(got {manager.get('name')!r})")


def check_svs_section(svs: Any):
    """The ``svs:`` section as the sampler reads it: every key known and typed, the template loadable and
    rendering. Returns the algorithm's ``SvsSettings``."""
    from ..argtypes import load_template
    from ..core.config import validate_svs_section

    mapping = _plain(svs)
    if not isinstance(mapping, dict):
        raise ValueError(f"svs: expected a mapping, got {type(mapping).__name__}")
    settings, _ = validate_svs_section(mapping)   # ValueError naming svs.<key>
    try:
        template = load_template(settings.template)
        template.messages("The sum is 3 + 4 = 7, so the answer is \\boxed{7}.", "7")   # it renders
    except ValueError as exc:
        raise ValueError(f"svs.template={settings.template}: {exc}") from None
    return settings


def answer_format(text: str) -> str | None:
    """The answer format a prompt text asks for (``ANSWER_FORMATS``), or None when it asks for none of them."""
    for name, pattern in ANSWER_FORMATS:
        if pattern.search(text):
            return name
    return None


def training_prompts(config, limit: int = FORMAT_SAMPLE_ROWS) -> tuple[str | None, list]:
    """(file, up to ``limit`` prompts) of the first local parquet file of ``data.train_files``, each a list of
    chat messages (``data.prompt_key``); ``(None, [])`` when none can be read here (a missing file is
    ``check_run_files``' business; remote and non-parquet files are not read)."""
    files = _plain(_get(config, "data.train_files"))
    files = [files] if isinstance(files, str) else list(files or [])
    key = str(_get(config, "data.prompt_key", "prompt"))
    for path in map(str, files):
        if "://" in path or not path.endswith(".parquet") or not Path(path).expanduser().is_file():
            continue
        try:
            import pyarrow.parquet as pq

            batch = next(pq.ParquetFile(Path(path).expanduser()).iter_batches(batch_size=limit, columns=[key]), None)
        except Exception:  # noqa: BLE001 - unreadable here: verl's dataset names the problem when it loads
            return None, []
        return path, [] if batch is None else [row.get(key) for row in batch.to_pylist()]
    return None, []


def check_solve_format(config, settings, prompts: list | None = None, source: str = "") -> str | None:
    """One warning line (logged, and returned) when ``svs.solve_template`` asks for another answer format than
    the training prompts: the variational problems would be asked differently from the originals (e.g. data
    kept in DAPO-17k's "Answer:" format with the default \\boxed{} solve template). Compared per row, system
    messages included on both sides (a solve prompt keeps its parent's system messages); silent when most
    rows agree, when no prompt can be read, or when neither side asks for a known format."""
    if prompts is None:
        source, prompts = training_prompts(config)
    instruction = settings.solve_template.replace("{problem}", " ")
    pairs = []
    for messages in prompts:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        msgs = [m for m in (messages or []) if isinstance(m, dict) and isinstance(m.get("content"), str)]
        system = " ".join(m["content"] for m in msgs if m.get("role") == "system")
        pairs.append((answer_format(" ".join(m["content"] for m in msgs)), answer_format(f"{instruction} {system}")))
    differ = Counter(pair for pair in pairs if pair[0] != pair[1])
    if not pairs or 2 * sum(differ.values()) <= len(pairs):
        return None
    (data_format, solve_format), _ = differ.most_common(1)[0]
    message = (f"svs.solve_template asks for {solve_format or 'no known answer format'}, but the training prompts "
               f"({source or 'data.train_files'}: {sum(differ.values())} of {len(pairs)} rows read) ask for "
               f"{data_format or 'no known answer format'}: variational problems are asked differently from the "
               f"originals; set svs.solve_template to the training prompts' instruction")
    logger.warning("SvS: %s", message)
    return message


def check_schedule(config) -> None:
    """verl schedules SvS can run under: one ``sample()`` per weight sync, no rollout replay, a group
    advantage estimator, and a batch that is not empty."""
    tbs = _get(config, "data.train_batch_size")
    if not isinstance(tbs, int) or isinstance(tbs, bool) or tbs < 1:
        raise ValueError(f"data.train_batch_size must be a positive integer, got {tbs!r}")
    sync_step = _get(config, "trainer.v1.sync.parameter_sync_step", 1)
    if sync_step != 1:
        raise ValueError(f"trainer.v1.sync.parameter_sync_step={sync_step}: SvS needs 1 (several sample() calls "
                         "per weight sync would re-derive the synthesis uids of one step's families)")
    if _get(config, "skip.rollout_tq.enable", False):
        raise ValueError("skip.rollout_tq.enable=true: verl's rollout skip replays only what verl submitted, not "
                         "SvS's synthesis and solve groups; turn it off for SvS runs")
    if str(_get(config, "algorithm.adv_estimator", "grpo")) == "gae":
        raise ValueError(f"algorithm.adv_estimator={_get(config, 'algorithm.adv_estimator')}: SvS needs a "
                         "group-relative estimator (grpo, rloo, ...): its VPS/SPA groups are scored as groups, "
                         "and a critic-based estimator would need a critic model")


def _achievable(band, n: int) -> list[int]:
    """Correct counts k of a group of n with reward variance (0 < k < n) whose accuracy k/n is in the band."""
    return [k for k in band.counts(n) if 0 < k < n]


def check_bands(config, settings) -> None:
    """SvS can act only if each band contains an accuracy a group can reach with reward variance."""
    n = _get(config, "actor_rollout_ref.rollout.n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"actor_rollout_ref.rollout.n={n}: SvS needs at least 2 samples per problem (a group "
                         "of one has no reward variance, so no problem is ever underperforming)")
    low, high = settings.underperforming_band
    if not _achievable(settings.underperforming(), n):
        raise ValueError(f"svs.underperforming_band=[{low}, {high}] holds no accuracy k/{n} with 0 < k < {n} "
                         f"(actor_rollout_ref.rollout.n={n}): no problem could ever seed a synthesis")
    if settings.synthesis_n < 2:
        raise ValueError(f"svs.synthesis_n={settings.synthesis_n}: a VPS group needs at least 2 samples to have "
                         "reward variance")
    low, high = settings.reward_band
    if not _achievable(settings.reward(), settings.solve_n):
        raise ValueError(f"svs.reward_band=[{low}, {high}] holds no accuracy k/{settings.solve_n} with "
                         f"0 < k < {settings.solve_n} (svs.solve_n={settings.solve_n}): no synthesis could ever "
                         "earn reward 1")


def worst_case_trajectories(config, settings) -> tuple[int, dict[str, int]]:
    """Trajectories one SvS step can hold in TransferQueue at once, at most, and the numbers it comes from.

    Originals: the batch (``data.train_batch_size``), or with DAPO's dynamic sampling verl's in-flight
    window (``max_inflight_gen_batches`` batches) plus the batch it is completing, n samples each. SvS
    families start only for originals in the batch: per parent at most the correct answers an
    underperforming group can have (``max_seeds_per_problem`` caps it), all parents at most
    ``max_seeds_per_step``; each seed adds ``synthesis_n`` syntheses and ``synthesis_n x solve_n`` solves."""
    tbs = int(_get(config, "data.train_batch_size"))
    n = int(_get(config, "actor_rollout_ref.rollout.n"))
    dapo = bool(_get(config, "algorithm.filter_groups.enable", False))
    inflight = int(_get(config, "algorithm.filter_groups.max_inflight_gen_batches", 1) or 1) if dapo else 0
    originals = tbs * (inflight + 1) if dapo else tbs
    per_parent = max(_achievable(settings.underperforming(), n), default=0)
    if settings.max_seeds_per_problem is not None:
        per_parent = min(per_parent, settings.max_seeds_per_problem)
    seeds = tbs * per_parent
    if settings.max_seeds_per_step is not None:
        seeds = min(seeds, settings.max_seeds_per_step)
    per_seed = settings.synthesis_n + settings.synthesis_n * settings.solve_n
    total = originals * n + (seeds * per_seed if settings.enable else 0)
    return total, {"originals": originals, "n": n, "seeds": seeds, "per_seed": per_seed}


def check_capacity(config, settings) -> None:
    """One line naming both keys when the worst case of a step cannot fit TransferQueue's storage."""
    size = _get(config, "transfer_queue.backend.SimpleStorage.total_storage_size")
    backend = _get(config, "transfer_queue.backend.storage_backend", "SimpleStorage")
    if backend != "SimpleStorage" or size is None:
        return
    total, parts = worst_case_trajectories(config, settings)
    if total > int(size):
        raise ValueError(
            f"transfer_queue.backend.SimpleStorage.total_storage_size={size} is below the worst case of one SvS "
            f"step: {total} trajectories ({parts['originals']} originals x {parts['n']} + {parts['seeds']} seeds "
            f"x {parts['per_seed']}); raise it or bound the step with svs.max_seeds_per_step")


def check_run_config(config) -> None:
    """Every check the SvS trainer runs at start-up; a no-op unless ``trainer.v1.trainer_mode == "svs"``.

    Raises ``ValueError`` naming the key at fault."""
    if _get(config, "trainer.v1.trainer_mode") != "svs":
        return
    settings = None
    if config.get("svs", None) is not None:
        settings = check_svs_section(config.svs)   # first: the wiring check reads svs.enable (a real bool)
    check_wiring(config)
    if settings is not None and settings.enable:
        check_schedule(config)
        check_bands(config, settings)
        check_capacity(config, settings)
        check_solve_format(config, settings)   # a warning, not an error


def check_run_files(config) -> None:
    """What the trainer checks on the machine it starts on, before any worker: the data files are there,
    the synthesis dump folder can be written. Raises ``ValueError`` naming the key."""
    if _get(config, "trainer.v1.trainer_mode") != "svs":
        return
    for key in ("data.train_files", "data.val_files"):
        value = _plain(_get(config, key))
        for path in ([value] if isinstance(value, str) else list(value or [])):
            path = str(path)
            if "://" in path:   # hdfs://, s3://: verl copies them itself
                continue
            if not Path(path).expanduser().exists():
                raise ValueError(f"{key}: no such file {path}")
    svs = config.get("svs", None)
    dump = _get(svs, "dump_dir") if svs is not None else None
    if dump is None:
        local = _get(config, "trainer.default_local_dir")
        dump = str(Path(str(local)) / "svs") if local is not None else None
    if dump is not None:
        folder = Path(str(dump)).expanduser()
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"svs.dump_dir: cannot write {folder} ({existing} is not a writable folder)")


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if "full_key:" in text:  # omegaconf appends full_key / object_type lines to its message
        text = text.split("full_key:")[0].strip()
        key = getattr(exc, "full_key", None)
        if key and key not in text:
            text += f" (key {key})"
    return " ".join(text.split()) or type(exc).__name__


def configs_dir() -> Path:
    try:
        from ..quickstart import configs_dir as qs_configs_dir

        return Path(qs_configs_dir())
    except Exception:  # pragma: no cover - a broken install: the repository's configs/
        return Path(__file__).resolve().parents[2] / "configs"


def compose_run_config(config_name: str, overrides: Iterable[str] = (), config_dir: str | Path | None = None):
    """The run config as ``python -m verl.trainer.main_ppo --config-path <configs> --config-name NAME
    OVERRIDES`` composes it, checked as far as a CPU can without workers: hydra composition, interpolation,
    verl's ``validate_config``, verl's rollout/actor config dataclasses, the trainer mode being registered, and
    ``check_run_config``. Returns the composed (unresolved) config; raises ``ValueError`` naming the key."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    directory = Path(config_dir) if config_dir is not None else configs_dir()
    name = str(config_name)
    if name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0]
    if not (directory / f"{name}.yaml").is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ValueError(f"--config-name {config_name}: no such config in {directory} (known: {', '.join(known)})")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory.resolve()), version_base=None):
            cfg = compose(config_name=name, overrides=list(overrides))
    except Exception as exc:  # hydra: ConfigCompositionException, OverrideParseException, MissingConfigException
        cause = exc.__cause__ if exc.__cause__ is not None and str(exc.__cause__) else exc
        raise ValueError(_one_line(cause)) from exc
    try:
        OmegaConf.to_container(cfg, resolve=True)  # main_ppo resolves it before building the trainer
    except OmegaConfBaseException as exc:
        raise ValueError(_one_line(exc)) from exc

    check_run_config(cfg)
    from .engine_keys import check_engine

    check_engine(cfg)   # actor.strategy=megatron without model_engine=megatron fails only inside the workers

    with warnings.catch_warnings():  # verl's optional engines warn when they are not installed
        warnings.simplefilter("ignore")
        import verl  # noqa: F401  (registers svs-verl's trainers and reward manager)
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
        from verl.utils.config import omega_conf_to_dataclass, validate_config

    mode = _get(cfg, "trainer.v1.trainer_mode")
    if _get(cfg, "trainer.use_v1", True) and mode not in TRAINER_REGISTRY:
        raise ValueError(f"trainer.v1.trainer_mode={mode}: not a registered trainer (known: "
                         f"{', '.join(sorted(TRAINER_REGISTRY))})")
    for what, check in (
            ("verl's validate_config", lambda: validate_config(cfg, use_reference_policy=need_reference_policy(cfg),
                                                               use_critic=need_critic(cfg))),
            ("actor_rollout_ref.rollout", lambda: omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)),
            ("actor_rollout_ref.actor", lambda: omega_conf_to_dataclass(cfg.actor_rollout_ref.actor))):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.filterwarnings("ignore", message="Disabled critic")
                check()
        except (AssertionError, ValueError, TypeError, KeyError, AttributeError, OmegaConfBaseException) as exc:
            raise ValueError(f"{what}: {_one_line(exc)}") from exc
    return cfg


__all__ = ["answer_format", "check_run_config", "check_run_files", "check_solve_format", "check_wiring",
           "check_svs_section", "compose_run_config", "configs_dir", "training_prompts", "worst_case_trajectories"]
