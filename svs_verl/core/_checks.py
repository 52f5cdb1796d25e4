"""Strict type checks for configuration values: each error names the key and shows the bad value.

YAML and hydra give real booleans for ``true``/``false``; a string such as ``'false'``, ``off`` or a typo is
refused rather than read as "non-empty, so true".
"""

from __future__ import annotations

from typing import Any


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def need_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false (a boolean), got {value!r}")
    return value


def need_int(key: str, value: Any, minimum: int, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if not is_int(value) or value < minimum:
        extra = " or null" if nullable else ""
        raise ValueError(f"{key} must be an integer >= {minimum}{extra}, got {value!r}")
    return value


def need_positive(key: str, value: Any) -> float:
    if not is_number(value) or not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{key} must be a number > 0, got {value!r}")
    return float(value)


def need_fraction(key: str, value: Any, *, nullable: bool = False, open_low: bool = True) -> float | None:
    """A number in (0, 1] (``open_low``) or [0, 1]."""
    if value is None and nullable:
        return None
    ok = is_number(value) and (0 < value <= 1 if open_low else 0 <= value <= 1)
    if not ok:
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{key} must be a number in {interval}{' or null' if nullable else ''}, got {value!r}")
    return value


def need_str(key: str, value: Any, *, nullable: bool = False, non_empty: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise ValueError(f"{key} must be a {'non-empty ' if non_empty else ''}string"
                         f"{' or null' if nullable else ''}, got {value!r}")
    return value


def need_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{key} must be one of {list(choices)}, got {value!r}")
    return value


def need_band(key: str, value: Any) -> tuple[float, float]:
    """``[low, high]``: two numbers in [0, 1] with low <= high."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{key} must be a pair [low, high] of numbers in [0, 1], got {value!r}")
    low, high = value[0], value[1]
    for bound in (low, high):
        if not is_number(bound) or not 0 <= bound <= 1:
            raise ValueError(f"{key} must be a pair [low, high] of numbers in [0, 1], got {value!r}")
    if low > high:
        raise ValueError(f"{key}: low ({low}) must not exceed high ({high}), got {value!r}")
    return (low, high)
