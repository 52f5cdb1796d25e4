"""Unbiased pass@k estimator (Chen et al. 2021), the metric behind the SvS headline (Pass@32 .. Pass@1024).

    pass@k = 1 - C(n - c, k) / C(n, k)

for ``n`` samples of which ``c`` are correct. The ratio of binomials is evaluated as the product
``prod_{i = n-c+1}^{n} (1 - k / i)``, which needs no factorials, stays in [0, 1] and is accurate to a
few ulps for any n (tested against exact rational enumeration).
"""

from __future__ import annotations

from typing import Mapping, Sequence


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"pass_at_k: {name} must be an int, got {type(value).__name__} {value!r}")
    return value


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples drawn without replacement from ``n`` is correct.

    Raises ``ValueError`` for ``n < 1``, ``c`` outside ``[0, n]`` or ``k`` outside ``[1, n]``.
    """
    n, c, k = _check_int("n", n), _check_int("c", c), _check_int("k", k)
    if n < 1:
        raise ValueError(f"pass_at_k: n (samples) must be >= 1, got n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c (correct samples) must be in [0, n={n}], got c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k must be in [1, n={n}], got k={k} (cannot estimate pass@{k} from {n} samples)")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(correct_by_problem: Mapping[str, Sequence[bool]], k: int) -> float:
    """Mean over problems of ``pass_at_k(n_i, c_i, k)``: the benchmark's pass@k from per-sample verdicts.

    Raises ``ValueError`` naming a problem that has fewer than ``k`` samples (never skips it silently).
    """
    return mean_pass_at_k_counts({pid: (len(v), sum(bool(x) for x in v)) for pid, v in correct_by_problem.items()}, k)


def mean_pass_at_k_counts(counts: Mapping[str, tuple[int, int]], k: int) -> float:
    """``mean_pass_at_k`` from ``{problem: (n samples, c correct)}``."""
    if not counts:
        raise ValueError("mean_pass_at_k: no problems")
    short = [(pid, n) for pid, (n, _) in counts.items() if n < k]
    if short:
        pid, n = short[0]
        raise ValueError(f"problem {pid!r} has {n} samples, fewer than k={k} "
                         f"({len(short)} problem(s) too short for pass@{k})")
    return sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)


def k_ladder(n: int) -> list[int]:
    """The k at which pass@k is reported for n samples: powers of two below n, and n itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n] if n >= 1 else []
