
import pytest

from svs_verl.core import (SYNTHESIS_REWARD_BAND, UNDERPERFORMING_BAND, AccuracyBand, GroupStats,
                           UpdateRules, select_seeds, synthesis_reward)


def test_paper_bands_for_group_of_eight():
    assert UNDERPERFORMING_BAND.counts(8) == [1, 2, 3, 4]
    assert SYNTHESIS_REWARD_BAND.counts(8) == [1, 2, 3, 4, 5]


# Hand-computed: the correct counts c with low <= c/n <= high, boundaries included. For n = 8 the bounds
# 1/8, 4/8, 5/8 fall exactly on counts; for 10, 16, 24, 5 and 3 they fall on counts or between them.
BAND_TABLE = [
    # n, underperforming [1/8, 1/2], reward [1/8, 5/8], [0.3, 0.7]
    (1, [], [], []),
    (2, [1], [1], [1]),
    (3, [1], [1], [1, 2]),
    (4, [1, 2], [1, 2], [2]),
    (5, [1, 2], [1, 2, 3], [2, 3]),
    (8, [1, 2, 3, 4], [1, 2, 3, 4, 5], [3, 4, 5]),
    (10, [2, 3, 4, 5], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7]),
    (16, [2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9, 10], [5, 6, 7, 8, 9, 10, 11]),
    (24, list(range(3, 13)), list(range(3, 16)), list(range(8, 17))),
]


@pytest.mark.parametrize("n,under,reward,mid", BAND_TABLE)
def test_band_counts_match_hand_computed_table(n, under, reward, mid):
    assert UNDERPERFORMING_BAND.counts(n) == under
    assert SYNTHESIS_REWARD_BAND.counts(n) == reward
    assert AccuracyBand(0.3, 0.7).counts(n) == mid


def test_decimal_bounds_are_read_exactly():
    # 0.3 as a float is slightly above 3/10; the band must still include 3/10 exactly
    assert AccuracyBand(0.3, 1.0).contains(3, 10)
    assert AccuracyBand(0.0, 0.7).contains(7, 10)


@pytest.mark.parametrize("low,high", [(-0.1, 0.5), (0.5, 0.4), (0.1, 1.5), ("x", 0.5), (True, 0.5)])
def test_invalid_band_is_rejected_with_its_name(low, high):
    with pytest.raises(ValueError, match="myband"):
        AccuracyBand(low, high, "myband")


@pytest.mark.parametrize("c,n", [(-1, 8), (9, 8), (1, 0), (1.0, 8)])
def test_invalid_counts(c, n):
    with pytest.raises(ValueError):
        UNDERPERFORMING_BAND.contains(c, n)


def test_group_stats():
    g = GroupStats.of("u1", [1, 0, 0.0, True, 0, 0, 0, 0])
    assert (g.n, g.n_correct, g.accuracy, g.all_same) == (8, 2, 0.25, False)
    assert GroupStats.of("u", [0] * 8).all_same and GroupStats.of("u", [1] * 8).all_same
    with pytest.raises(ValueError, match="u9"):
        GroupStats.of("u9", [])


@pytest.mark.parametrize("n_correct,expected", [(0, []), (1, [0]), (4, [0, 1, 2, 3]), (5, []), (8, [])])
def test_seeds_are_the_correct_answers_of_underperforming_problems(n_correct, expected):
    g = GroupStats.of("q", [True] * n_correct + [False] * (8 - n_correct))
    assert select_seeds(g) == expected


def test_seed_cap_per_problem():
    g = GroupStats.of("q", [False, True, False, True, True, False, False, False])
    assert select_seeds(g) == [1, 3, 4]
    assert select_seeds(g, max_per_problem=2) == [1, 3]
    assert select_seeds(g, max_per_problem=0) == []
    with pytest.raises(ValueError, match="max_seeds_per_problem"):
        select_seeds(g, max_per_problem=-1)


@pytest.mark.parametrize("n_correct,reward", [(0, 0), (1, 1), (5, 1), (6, 0), (8, 0)])
def test_synthesis_reward_band(n_correct, reward):
    assert synthesis_reward(GroupStats.of("s", [1] * n_correct + [0] * (8 - n_correct))) == reward


def test_rejected_synthesis_earns_zero():
    assert synthesis_reward(None) == 0


def test_update_rules_paper_defaults_and_reference_options():
    paper = UpdateRules()
    assert paper.keep_synthesis_group([1, 0, 0, 0])
    assert not paper.keep_synthesis_group([0, 0, 0, 0])
    assert not paper.keep_synthesis_group([1, 1, 1, 1])  # zero advantage
    assert UpdateRules(vps_keep_all_rewarded=True).keep_synthesis_group([1, 1, 1, 1])
    six = GroupStats.of("s", [1] * 6 + [0] * 2)           # 6/8: outside the reward band
    assert not paper.keep_solve_group(six)
    assert UpdateRules(spa_filter="nonzero_std").keep_solve_group(six)
    assert not UpdateRules(spa_filter="nonzero_std").keep_solve_group(GroupStats.of("s", [1] * 8))
    assert not UpdateRules(reward_band=AccuracyBand(0, 1)).keep_solve_group(GroupStats.of("s", [0] * 8))
    assert not UpdateRules(train_on_solves=False).keep_solve_group(GroupStats.of("s", [1] + [0] * 7))
    assert not UpdateRules(train_on_syntheses=False).keep_synthesis_group([1, 0])
    assert paper.keep_original(GroupStats.of("o", [1, 0])) and not paper.keep_original(GroupStats.of("o", [1, 1]))
    with pytest.raises(ValueError, match="spa_filter"):
        UpdateRules(spa_filter="band")
