"""Seed selection, the synthesis reward, and which groups enter the policy update (paper Algorithm 1).

Roles of the three kinds of groups in one step:

* **OQA** (original problem-answer): G solutions of a training problem, reward = verifier.
* **VPS** (variational problem synthesis): G syntheses written from one seed solution; each synthesis
  earns reward 1 iff the policy's accuracy on its problem is inside the synthesis reward band.
* **SPA** (synthetic problem-answer): G solutions of one accepted variational problem, scored against
  the *original* ground truth.

Where the paper and the reference implementation disagree, the paper is the default and the reference
behaviour is an option (``spa_filter="nonzero_std"``, ``vps_keep_all_rewarded=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .bands import SYNTHESIS_REWARD_BAND, UNDERPERFORMING_BAND, AccuracyBand, GroupStats

SPA_FILTERS = ("reward_band", "nonzero_std")


def select_seeds(
    group: GroupStats,
    band: AccuracyBand = UNDERPERFORMING_BAND,
    max_per_problem: int | None = None,
) -> list[int]:
    """Indices of the responses that seed synthesis: the correct ones of an underperforming problem.

    With ``max_per_problem`` the first that many correct responses are taken (responses are i.i.d.
    samples, so the first k are as good as a random k, and the choice is reproducible).
    """
    if max_per_problem is not None and max_per_problem < 0:
        raise ValueError(f"max_seeds_per_problem must be >= 0 or null, got {max_per_problem}")
    if not group.in_band(band):
        return []
    seeds = [i for i, ok in enumerate(group.correct) if ok]
    return seeds if max_per_problem is None else seeds[:max_per_problem]


def synthesis_reward(solve: GroupStats | None, band: AccuracyBand = SYNTHESIS_REWARD_BAND) -> int:
    """1 iff the synthesized problem was solved with an accuracy inside ``band``; 0 otherwise.

    ``solve`` is ``None`` for a synthesis that was rejected (unparsable, failed a guard): reward 0.
    """
    return int(solve is not None and solve.in_band(band))


@dataclass(frozen=True)
class UpdateRules:
    """Which groups join the policy update."""

    train_on_originals: bool = True
    train_on_syntheses: bool = True     # VPS loss (ablation: off)
    train_on_solves: bool = True        # SPA loss (ablation: off)
    spa_filter: str = "reward_band"     # paper; "nonzero_std" = reference implementation (0 < acc < 1)
    vps_keep_all_rewarded: bool = False  # reference kept VPS groups whose rewards are all 1 (zero signal)
    reward_band: AccuracyBand = SYNTHESIS_REWARD_BAND

    def __post_init__(self) -> None:
        if self.spa_filter not in SPA_FILTERS:
            raise ValueError(f"spa_filter must be one of {SPA_FILTERS}, got {self.spa_filter!r}")

    def keep_original(self, group: GroupStats) -> bool:
        """DAPO dynamic sampling: a group whose rewards are all equal has no GRPO signal."""
        return self.train_on_originals and not group.all_same

    def keep_synthesis_group(self, rewards: Sequence[int]) -> bool:
        """Paper: at least one synthesis earned reward 1; an all-1 group has zero advantage."""
        if not self.train_on_syntheses or not rewards:
            return False
        hits = sum(rewards)
        return hits > 0 and (hits < len(rewards) or self.vps_keep_all_rewarded)

    def keep_solve_group(self, group: GroupStats) -> bool:
        if not self.train_on_solves:
            return False
        if group.all_same:  # zero GRPO advantage whatever the band says
            return False
        return self.spa_filter == "nonzero_std" or group.in_band(self.reward_band)
