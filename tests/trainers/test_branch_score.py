"""APPO's branching score and branch selection against the hand examples of algorithms.md §4(f)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from agentenv.trainers.branch_score import (
    Candidate,
    branching_scores,
    future_value,
    reward_scale,
    rollout_candidates,
    scale_init_rewards,
    select_branches,
    token_entropy_proxy,
    zscore_pop,
)


def test_entropy_proxy_of_two_equal_halves_is_ln2():
    lp = math.log(0.5)
    out = token_entropy_proxy([[lp, lp], [0.0], [], [0.0, -math.inf]])
    assert out == pytest.approx([math.log(2), 0.0, 0.0, 0.0])


def test_future_value_hand_example_with_discount():
    delta = np.array([0.1, 0.2, -0.1, 0.05])
    mask = np.array([1, 1, 0, 1])
    # suffix sums with gamma 0.5 (token 2 masked): s3 = 0.05, s2 = 0 + 0.025, s1 = 0.2 + 0.0125, s0 = 0.1 + 0.10625
    expected = np.exp([0.20625, 0.2125, 0.025, 0.05])
    assert future_value(delta, mask, gamma=0.5, clip=0.5) == pytest.approx(expected)
    assert future_value(delta, mask, gamma=0.5, clip=0.2) == pytest.approx([1.2, 1.2, math.exp(0.025), math.exp(0.05)])
    # the clip bites: a large positive and a large negative sum
    assert future_value(np.array([30.0, -30.0]), np.ones(2), gamma=1.0) == pytest.approx([1.0, 0.8])
    assert future_value(np.array([5.0]), np.ones(1)) == pytest.approx([1.2])


def test_zscore_pop_constant_gives_zero_and_invalid_zero():
    assert zscore_pop(np.full(4, 3.0), np.ones(4, bool)) == pytest.approx(np.zeros(4))
    out = zscore_pop(np.array([1.0, 99.0, 3.0]), np.array([True, False, True]))
    assert out == pytest.approx([-1.0, 0.0, 1.0])
    assert zscore_pop(np.zeros(2), np.zeros(2, bool)) == pytest.approx([0.0, 0.0])


def test_branching_score_hand_example():  # §4(f).1
    entropy = np.array([1.0, 2.0, 3.0, 4.0])
    omega = np.array([1.0, 1.1, 0.9, 1.2])
    valid = np.ones(4, bool)
    trivial = np.zeros(4, bool)
    assert zscore_pop(entropy, valid) == pytest.approx([-1.3416, -0.4472, 0.4472, 1.3416], abs=1e-4)
    assert zscore_pop(omega, valid) == pytest.approx([-0.4472, 0.4472, -1.3416, 1.3416], abs=1e-4)
    scores, strict = branching_scores(entropy, omega, valid, trivial)
    assert scores == pytest.approx([0.6, -0.2, -0.6, 1.8], abs=1e-4)
    assert strict.tolist() == [False, False, False, True]  # token 0: BS > 0 but both z < 0
    cands = rollout_candidates(0, scores, strict, valid, trivial)
    assert [c.position for c in select_branches(cands, 2)] == [3, 0]  # strict first, then by score


def test_branching_score_ignores_invalid_and_trivial_tokens():
    entropy = np.array([1.0, 2.0, 100.0, 3.0, 4.0])
    omega = np.array([1.0, 1.1, 0.8, 0.9, 1.2])
    valid = np.array([True, True, False, True, True])
    trivial = np.array([False, False, False, False, True])
    scores, strict = branching_scores(entropy, omega, valid, trivial)
    assert scores == pytest.approx([0.6, -0.2, 0.0, -0.6, 1.8], abs=1e-4)  # same z as §4(f).1: token 2 excluded
    assert not strict.any()  # token 4 would be strict but is whitespace
    cands = rollout_candidates(7, scores, strict, valid, trivial)
    assert [(c.episode, c.position) for c in cands] == [(7, 0), (7, 1), (7, 3)]


def test_zero_delta_degenerates_to_batch_order_with_a_warning(caplog):  # §4(f).2
    candidates = []
    for episode in range(2):
        omega = future_value(np.zeros(3), np.ones(3))
        assert omega == pytest.approx(np.ones(3))
        assert zscore_pop(omega, np.ones(3, bool)) == pytest.approx(np.zeros(3))
        scores, strict = branching_scores(np.array([3.0, 1.0, 2.0]), omega, np.ones(3, bool), np.zeros(3, bool))
        assert scores == pytest.approx(np.zeros(3)) and not strict.any()
        candidates += rollout_candidates(episode, scores, strict, np.ones(3, bool), np.zeros(3, bool))
    with caplog.at_level(logging.WARNING, logger="agentenv.train"):
        chosen = select_branches(candidates, 4)
    assert [(c.episode, c.position) for c in chosen] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert any("no strict candidate" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_no_warning_when_a_strict_candidate_exists(caplog):
    with caplog.at_level(logging.WARNING, logger="agentenv.train"):
        select_branches([Candidate(1.0, 0, 0, True)], 1)
    assert not caplog.records


def test_fallback_order_strict_then_nonstrict_by_score_ties_stable():
    cands = [
        Candidate(0.5, 0, 0, False),
        Candidate(0.2, 0, 1, True),
        Candidate(0.9, 1, 0, False),
        Candidate(0.5, 1, 1, False),
        Candidate(0.7, 1, 2, True),
    ]
    chosen = select_branches(cands, 5)
    assert [(c.episode, c.position) for c in chosen] == [(1, 2), (0, 1), (1, 0), (0, 0), (1, 1)]
    assert select_branches(cands, 1) == [cands[4]]


def test_cyclic_fill_reaches_exactly_the_budget_with_duplicates():
    cands = [Candidate(0.1, 0, 4, False), Candidate(2.0, 1, 2, True)]
    chosen = select_branches(cands, 5)
    assert len(chosen) == 5
    assert chosen == [cands[1], cands[0], cands[1], cands[0], cands[1]]


def test_no_candidates_or_no_budget_gives_empty():
    assert select_branches([], 3) == []
    assert select_branches([Candidate(1.0, 0, 0, True)], 0) == []


def test_reward_scale_hand_example():  # §4(f).5
    assert reward_scale(5, 2, score=1.5, max_score=1.5, discount=0.9) == pytest.approx([1.81, 1.9, 2.0, 1.0, 1.0])
    assert reward_scale(3, 1, score=0.5, max_score=1.0) == pytest.approx([1.45, 1.5, 1.0])
    assert reward_scale(3, 1, score=0.0, max_score=0.0) == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        reward_scale(3, 3, 1.0, 1.0)


def test_scale_init_rewards_averages_branches_and_is_inert_for_outcome_rewards():
    rewards = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    m1 = reward_scale(5, 2, 1.0, 1.0)
    m2 = reward_scale(5, 4, 1.0, 1.0)
    assert scale_init_rewards(rewards, []) == pytest.approx(rewards)
    assert scale_init_rewards(rewards, [m1]) == pytest.approx(rewards)  # split before the reward token: no-op
    assert scale_init_rewards(rewards, [m1, m2]) == pytest.approx([0, 0, 0, 0, 1.5])  # mean of M=1 and M=2
    dense = np.ones(5)
    assert scale_init_rewards(dense, [m1]) == pytest.approx([1.81, 1.9, 2.0, 1.0, 1.0])
