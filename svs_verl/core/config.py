"""SvS settings: the paper's hyperparameters as one validated, documented object.

``SvsSettings.from_mapping`` takes the plain mapping found under ``svs:`` in a run config and names the
offending key in every error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .bands import AccuracyBand
from .guards import GuardConfig
from .selection import UpdateRules

# Keys of the `svs:` config section that configure the verl-side sampler (where dumps go, how it polls,
# how long it waits), not the algorithm; with their defaults. ``SvsSettings.from_mapping`` rejects them.
SAMPLER_KEYS = {"dump_dir": None, "poll_interval_s": 0.5, "tail_timeout_s": 3600.0}


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
    template: str = "paper"              # built-in name or a YAML/JSON file
    strip_reasoning: bool = True         # show the seed solution after its last </think> only
    solve_template: str = "{problem}"    # user message that asks to solve a variational problem
    train_on_syntheses: bool = True      # VPS loss
    train_on_solves: bool = True         # SPA loss
    spa_filter: str = "reward_band"      # paper; "nonzero_std" = reference implementation
    vps_keep_all_rewarded: bool = False  # reference implementation kept all-1 VPS groups
    guards: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        for key in ("synthesis_n", "solve_n"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"svs.{key} must be a positive integer, got {value!r}")
        for key in ("max_seeds_per_problem", "max_seeds_per_step"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"svs.{key} must be a non-negative integer or null, got {value!r}")
        if "{problem}" not in self.solve_template:
            raise ValueError(f"svs.solve_template must contain the placeholder {{problem}}, got {self.solve_template!r}")
        if self.max_solution_chars < 1:
            raise ValueError(f"svs.max_solution_chars must be positive, got {self.max_solution_chars}")
        self.underperforming()  # validates both bands
        self.rules()

    def underperforming(self) -> AccuracyBand:
        return _band(self.underperforming_band, "svs.underperforming_band")

    def reward(self) -> AccuracyBand:
        return _band(self.reward_band, "svs.reward_band")

    def rules(self) -> UpdateRules:
        return UpdateRules(train_on_syntheses=self.train_on_syntheses, train_on_solves=self.train_on_solves,
                           spa_filter=self.spa_filter, vps_keep_all_rewarded=self.vps_keep_all_rewarded,
                           reward_band=self.reward())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "SvsSettings":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown svs config key(s) {unknown}; known keys: {sorted(known)}")
        guards = dict(data.pop("guards", None) or {})
        known_g = {f.name for f in fields(GuardConfig)}
        bad = sorted(set(guards) - known_g)
        if bad:
            raise ValueError(f"unknown svs.guards key(s) {bad}; known keys: {sorted(known_g)}")
        for key in ("underperforming_band", "reward_band"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(guards=GuardConfig(**guards), **data)


def _band(pair: Any, name: str) -> AccuracyBand:
    try:
        low, high = pair
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair [low, high], got {pair!r}") from exc
    return AccuracyBand(low, high, name)
