"""SvS settings: the paper's hyperparameters as one validated, documented object.

``validate_svs_section(mapping)`` is the one place that checks a run config's ``svs:`` section: every key
known, every value of the right type and range (booleans must be real booleans: the string ``'false'``
is an error, not "true"), and it returns the algorithm's ``SvsSettings`` plus the sampler's own options
(``SAMPLER_KEYS``). Every error is a ``ValueError`` whose message names the key (``svs.<key>``) and the
bad value. Pure Python: callable before verl or torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from ._checks import need_band, need_bool, need_choice, need_int, need_positive, need_str
from .bands import AccuracyBand
from .guards import GuardConfig
from .selection import SPA_FILTERS, UpdateRules

# Keys of the `svs:` config section that configure the verl-side sampler (where dumps go, how it polls,
# how long it waits), not the algorithm; with their defaults. ``SvsSettings.from_mapping`` rejects them.
SAMPLER_KEYS = {"dump_dir": None, "poll_interval_s": 0.5, "tail_timeout_s": None, "tail_timeout_factor": 4.0,
                "batch_order": "arrival", "dump_enable": True, "dump_compress": True,
                "dump_max_records_per_step": 512, "dump_keep_steps": None}
BATCH_ORDERS = ("arrival", "verl")

# The instruction `svs-verl data prepare --rewrap` appends to every training problem
# (svs_verl.data.schema.BOXED_INSTRUCTION): variational problems are asked the same way by default.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_SOLVE_TEMPLATE = "{problem}\n" + BOXED_INSTRUCTION

_BOOLS = ("enable", "strip_reasoning", "train_on_syntheses", "train_on_solves", "vps_keep_all_rewarded")


@dataclass(frozen=True)
class SvsSettings:
    enable: bool = True
    underperforming_band: tuple[float, float] = (0.125, 0.5)   # acc(q) range whose correct answers seed VPS
    reward_band: tuple[float, float] = (0.125, 0.625)          # solve accuracy that earns synthesis reward 1
    synthesis_n: int = 8                 # syntheses sampled per seed (G for VPS)
    solve_n: int = 8                     # solutions sampled per variational problem (G for SPA)
    max_seeds_per_problem: int | None = None   # paper: every correct answer of an underperforming problem
    max_seeds_per_step: int | None = None      # bound on extra work per step (None: unbounded)
    max_solution_chars: int = 16000      # longer seed solutions are not used as seeds (prompt budget)
    template: str = "paper"              # built-in name or a YAML/JSON/text file
    strip_reasoning: bool = True         # show the seed solution after its last </think> only
    solve_template: str = DEFAULT_SOLVE_TEMPLATE   # user message that asks to solve a variational problem
    train_on_syntheses: bool = True      # VPS loss
    train_on_solves: bool = True         # SPA loss
    spa_filter: str = "reward_band"      # paper; "nonzero_std" = reference implementation
    vps_keep_all_rewarded: bool = False  # reference implementation kept all-1 VPS groups
    guards: GuardConfig = field(default_factory=GuardConfig)   # ours, off by default (guards.enable)

    def __post_init__(self) -> None:
        for key in _BOOLS:
            need_bool(f"svs.{key}", getattr(self, key))
        for key in ("synthesis_n", "solve_n", "max_solution_chars"):
            need_int(f"svs.{key}", getattr(self, key), 1)
        for key in ("max_seeds_per_problem", "max_seeds_per_step"):
            need_int(f"svs.{key}", getattr(self, key), 1, nullable=True)
        for key in ("underperforming_band", "reward_band"):
            object.__setattr__(self, key, need_band(f"svs.{key}", getattr(self, key)))
        need_str("svs.template", self.template)
        need_str("svs.solve_template", self.solve_template)
        if "{problem}" not in self.solve_template:
            raise ValueError(f"svs.solve_template must contain the placeholder {{problem}}, got {self.solve_template!r}")
        need_choice("svs.spa_filter", self.spa_filter, SPA_FILTERS)
        if not isinstance(self.guards, GuardConfig):
            raise ValueError(f"svs.guards must be a mapping, got {self.guards!r}")
        self.underperforming()
        self.rules()

    def underperforming(self) -> AccuracyBand:
        return AccuracyBand(*self.underperforming_band, "svs.underperforming_band")

    def reward(self) -> AccuracyBand:
        return AccuracyBand(*self.reward_band, "svs.reward_band")

    def rules(self) -> UpdateRules:
        return UpdateRules(train_on_syntheses=self.train_on_syntheses, train_on_solves=self.train_on_solves,
                           spa_filter=self.spa_filter, vps_keep_all_rewarded=self.vps_keep_all_rewarded,
                           reward_band=self.reward())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "SvsSettings":
        """The algorithm's settings from an ``svs:`` mapping without sampler keys (see ``validate_svs_section``)."""
        if data is not None and not isinstance(data, Mapping):
            raise ValueError(f"svs must be a mapping of settings, got {data!r}")
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown svs config key(s) {['svs.' + k for k in unknown]}; known keys: {sorted(known)}")
        guards = data.pop("guards", None)
        if guards is None:
            guards = {}
        if not isinstance(guards, Mapping):
            raise ValueError(f"svs.guards must be a mapping, got {guards!r}")
        guards = dict(guards)
        known_g = {f.name for f in fields(GuardConfig)}
        bad = sorted(set(guards) - known_g)
        if bad:
            raise ValueError(f"unknown svs.guards key(s) {bad}; known keys: {sorted(known_g)}")
        return cls(guards=GuardConfig(**guards), **data)


def validate_sampler_options(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The sampler's keys of the ``svs:`` section (``SAMPLER_KEYS``), defaults filled in, checked."""
    data = dict(data or {})
    unknown = sorted(set(data) - set(SAMPLER_KEYS))
    if unknown:
        raise ValueError(f"unknown svs sampler key(s) {unknown}; known: {sorted(SAMPLER_KEYS)}")
    opts = {**SAMPLER_KEYS, **data}
    opts["poll_interval_s"] = need_positive("svs.poll_interval_s", opts["poll_interval_s"])
    if opts["tail_timeout_s"] is not None:
        opts["tail_timeout_s"] = need_positive("svs.tail_timeout_s", opts["tail_timeout_s"])
    opts["tail_timeout_factor"] = need_positive("svs.tail_timeout_factor", opts["tail_timeout_factor"])
    need_choice("svs.batch_order", opts["batch_order"], BATCH_ORDERS)
    for key in ("dump_enable", "dump_compress"):
        opts[key] = need_bool(f"svs.{key}", opts[key])
    for key in ("dump_max_records_per_step", "dump_keep_steps"):
        opts[key] = need_int(f"svs.{key}", opts[key], 1, nullable=True)
    opts["dump_dir"] = need_str("svs.dump_dir", opts["dump_dir"], nullable=True)
    return opts


def validate_svs_section(data: Mapping[str, Any] | None) -> tuple[SvsSettings, dict[str, Any]]:
    """Check a whole ``svs:`` section: ``(SvsSettings, sampler options)``, or a ValueError naming the key."""
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"svs must be a mapping of settings, got {data!r}")
    data = dict(data or {})
    sampler = {k: data.pop(k) for k in list(data) if k in SAMPLER_KEYS}
    return SvsSettings.from_mapping(data), validate_sampler_options(sampler)
