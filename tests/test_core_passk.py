import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svs_verl import pass_at_k


def brute_force(n: int, c: int, k: int) -> Fraction:
    """Share of k-subsets of n samples (c correct) that contain a correct sample, by enumeration."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_equals_enumeration(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(brute_force(n, c, k)), abs=1e-12)


def test_hand_computed():
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)           # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25)          # pass@1 = c/n
    assert pass_at_k(5, 4, 2) == 1.0                          # n - c < k


@pytest.mark.parametrize("n,c,k", [(4096, 1, 1), (4096, 7, 1024), (4096, 4000, 32), (1024, 3, 512), (4096, 0, 4096)])
def test_large_n_matches_exact_rational(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("args,msg", [((4, 1, 5), "k must be in"), ((4, 5, 1), "c \\(correct"),
                                      ((0, 0, 1), "n \\(samples"), ((4, -1, 1), "c \\(correct"),
                                      ((4, 1, 0), "k must be in"), ((4.0, 1, 1), "must be an int"),
                                      ((4, True, 1), "must be an int")])
def test_invalid_input(args, msg):
    with pytest.raises(ValueError, match=msg):
        pass_at_k(*args)


def test_mean_pass_at_k_averages_problems_and_names_a_short_one():
    from svs_verl.core import mean_pass_at_k

    # p: n=4, c=1 -> pass@2 = 1 - C(3,2)/C(4,2) = 1/2 ; q: n=2, c=2 -> 1
    assert mean_pass_at_k({"p": [True, False, False, False], "q": [True, True]}, 2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"problem 'q' has 2 samples, fewer than k=4"):
        mean_pass_at_k({"p": [False] * 4, "q": [True, True]}, 4)
    with pytest.raises(ValueError, match="no problems"):
        mean_pass_at_k({}, 1)


@pytest.mark.parametrize("n,ks", [(1, [1]), (2, [1, 2]), (8, [1, 2, 4, 8]), (12, [1, 2, 4, 8, 12]), (0, [])])
def test_k_ladder(n, ks):
    from svs_verl.core import k_ladder

    assert k_ladder(n) == ks
