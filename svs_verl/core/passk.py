"""Unbiased pass@k estimator (Chen et al. 2021), the metric behind the SvS headline (Pass@32 .. Pass@1024).

    pass@k = 1 - C(n - c, k) / C(n, k)

for ``n`` samples of which ``c`` are correct. The ratio of binomials is evaluated as the product
``prod_{i = n-c+1}^{n} (1 - k / i)``, which needs no factorials, stays in [0, 1] and is accurate to a
few ulps for any n (tested against exact rational enumeration).
"""

from __future__ import annotations


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
