"""Group statistics and the two inclusive accuracy bands of SvS (paper §3, Algorithm 1).

A *group* is the G responses sampled for one prompt (one verl ``uid``). SvS reads two bands off group
accuracy:

* the **underperforming band** (default 12.5 %-50 %, i.e. 1-4 correct of 8): problems the policy
  rarely solves; their correct responses seed variational-problem synthesis;
* the **synthesis reward band** (default 12.5 %-62.5 %, i.e. 1-5 of 8): a synthesized problem is
  "well posed and challenging" when the policy's solve accuracy on it lies here.

Both bands are inclusive and compared exactly (rational arithmetic), so a boundary such as 4/8 = 0.5
never falls on the wrong side through float rounding, whatever the group size.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence


def _exact(value: float | int | str | Fraction, name: str) -> Fraction:
    """Turn a user-given bound into an exact fraction: 0.3 means 3/10, not the nearest binary float."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    try:
        frac = value if isinstance(value, Fraction) else Fraction(str(value))
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from exc
    if not 0 <= frac <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return frac


@dataclass(frozen=True)
class AccuracyBand:
    """Inclusive accuracy interval ``[low, high]``; ``name`` is used in error messages."""

    low: float
    high: float
    name: str = "band"

    def __post_init__(self) -> None:
        lo = _exact(self.low, f"{self.name}.low")
        hi = _exact(self.high, f"{self.name}.high")
        if lo > hi:
            raise ValueError(f"{self.name}: low ({self.low}) must not exceed high ({self.high})")
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)

    def contains(self, correct: int, n: int) -> bool:
        """True iff ``low <= correct / n <= high`` exactly."""
        _check_counts(correct, n)
        acc = Fraction(correct, n)
        return self._lo <= acc <= self._hi  # type: ignore[attr-defined]

    def counts(self, n: int) -> list[int]:
        """The numbers of correct answers out of ``n`` that fall inside the band."""
        return [c for c in range(n + 1) if self.contains(c, n)]


def _check_counts(correct: int, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"group size must be a positive integer, got {n!r}")
    if isinstance(correct, bool) or not isinstance(correct, int) or not 0 <= correct <= n:
        raise ValueError(f"correct count must be an integer in [0, {n}], got {correct!r}")


# Paper defaults (Liang et al. 2025, §3.2 / Appendix): 1-4 of 8 and 1-5 of 8.
UNDERPERFORMING_BAND = AccuracyBand(0.125, 0.5, "underperforming_band")
SYNTHESIS_REWARD_BAND = AccuracyBand(0.125, 0.625, "synthesis_reward_band")


@dataclass(frozen=True)
class GroupStats:
    """Correctness of the G responses of one prompt."""

    uid: str
    correct: tuple[bool, ...]

    @classmethod
    def of(cls, uid: str, correct: Sequence[bool | int | float]) -> "GroupStats":
        flags = tuple(bool(c) and float(c) > 0 for c in correct)
        if not flags:
            raise ValueError(f"group {uid!r} has no responses")
        return cls(uid, flags)

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def n_correct(self) -> int:
        return sum(self.correct)

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n

    @property
    def all_same(self) -> bool:
        """Zero reward variance: GRPO gives every response zero advantage."""
        return self.n_correct in (0, self.n)

    def in_band(self, band: AccuracyBand) -> bool:
        return band.contains(self.n_correct, self.n)
