"""Advantage estimators against the hand-computed examples and invariants of algorithms.md §1(f) and §6(f)."""

from __future__ import annotations

import numpy as np
import pytest

from agentenv.trainers.advantages import ADVANTAGES, anchor_step, discounted_returns, estimator, gigpo, grpo, hgpo
from agentenv.trainers.grouping import StepTable, anchor_keys, context_keys


def one_step_episodes(rewards: list[float], group: str = "g") -> StepTable:
    return StepTable.from_episodes([{"group": group, "outcome": r, "anchors": ["s"]} for r in rewards])


def test_grpo_sample_and_population_std():
    table = one_step_episodes([1, 0, 0, 1])
    assert grpo(table) == pytest.approx([0.8660239, -0.8660239, -0.8660239, 0.8660239], abs=1e-7)
    assert grpo(table, norm="std_pop") == pytest.approx([0.999998, -0.999998, -0.999998, 0.999998], abs=1e-6)
    assert grpo(table, norm="none") == pytest.approx([0.5, -0.5, -0.5, 0.5])


def test_grpo_equal_rewards_give_zero_and_a_singleton_keeps_its_reward():
    assert grpo(one_step_episodes([0.7, 0.7, 0.7])) == pytest.approx([0, 0, 0], abs=1e-9)
    table = StepTable.from_episodes([{"group": "a", "outcome": 0.4, "anchors": ["x"]},
                                     {"group": "b", "outcome": 1.0, "anchors": ["x"]},
                                     {"group": "b", "outcome": 0.0, "anchors": ["x"]}])
    out = grpo(table)
    assert out[0] == pytest.approx(0.4) and grpo(table, singleton="zero")[0] == 0
    assert out[1] == pytest.approx(-out[2]) and out[1] > 0  # groups are normalised separately


# The GiGPO hand example of §1(f).3: gamma 0.5, omega 1, mean_norm, episode statistics over episodes.
GIGPO_EPISODES = [
    {"group": "g", "outcome": 1, "anchors": ["s0", "s1", "s2"], "rewards": [0, 0, 1]},
    {"group": "g", "outcome": 0, "anchors": ["s0", "s1", "s3"], "rewards": [0, 0, 0]},
    {"group": "g", "outcome": 1, "anchors": ["s0", "s4", "s2"], "rewards": [0, 0, 1]},
]


def test_gigpo_hand_example():
    table = StepTable.from_episodes(GIGPO_EPISODES)
    assert discounted_returns(table, 0.5) == pytest.approx([0.25, 0.5, 1.0, 0, 0, 0, 0.25, 0.5, 1.0])
    step = anchor_step(discounted_returns(table, 0.5), anchor_keys(table), "mean_norm")
    assert step == pytest.approx([1 / 12, 0.25, 0, -1 / 6, -0.25, 0, 1 / 12, 0, 0])
    out = gigpo(table, omega=1, mode="mean_norm", gamma=0.5, stats_scope="episodes")
    assert out == pytest.approx([0.4167, 0.5833, 0.3333, -0.8333, -0.9167, -0.6667, 0.4167, 0.3333, 0.3333],
                                abs=1e-4)


def test_gigpo_reductions():
    table = StepTable.from_episodes(GIGPO_EPISODES)
    episode_only = gigpo(table, omega=0, mode="mean_std_norm", gamma=0.5, stats_scope="episodes")
    assert episode_only == pytest.approx(grpo(table, norm="std_sample"))
    unique = StepTable.from_episodes([{**e, "anchors": [f"{i}-{a}" for a in e["anchors"]]}
                                      for i, e in enumerate(GIGPO_EPISODES)])
    assert anchor_step(discounted_returns(unique, 0.5), anchor_keys(unique), "mean_norm") == pytest.approx([0] * 9)
    # stats over step rows: every row enters the group's statistics (verl-agent's default)
    rows = gigpo(table, omega=0, mode="mean_norm", stats_scope="step_rows")
    assert rows == pytest.approx(np.repeat([1 / 3, -2 / 3, 1 / 3], 3))


# The HGPO example of §6(f): four episodes of three steps, mean_norm, alpha 1.
HGPO_EPISODES = [
    {"group": "g", "outcome": 1, "anchors": ["S0", "S1", "S2"], "rewards": [0, 0, 1]},
    {"group": "g", "outcome": 1, "anchors": ["S0", "S1", "S2"], "rewards": [0, 0, 1]},
    {"group": "g", "outcome": 0, "anchors": ["S0", "S3", "S2"], "rewards": [0, 0, 0]},
    {"group": "g", "outcome": 1, "anchors": ["S0", "S3", "S2"], "rewards": [0, 0, 1]},
]


def by_step(values: np.ndarray, step: int) -> list[float]:
    return [float(values[3 * e + step]) for e in range(4)]


def test_hgpo_hand_examples():
    table = StepTable.from_episodes(HGPO_EPISODES)
    k0 = hgpo(table, history=0, alpha=1, mode="mean_norm", gamma=0.5)
    assert by_step(k0, 2) == pytest.approx([0.25, 0.25, -0.75, 0.25], rel=1e-5)
    assert by_step(k0, 1) == pytest.approx([0, 0, -0.25, 0.25], rel=1e-5)
    assert by_step(k0, 0) == pytest.approx([0.0625, 0.0625, -0.1875, 0.0625], rel=1e-5)
    k1 = hgpo(table, history=1, alpha=1, mode="mean_norm", gamma=0.5)
    assert by_step(k1, 2) == pytest.approx([0.25, 0.25, -0.6, 0.4], rel=1e-5)
    k2 = hgpo(table, history=2, alpha=1, mode="mean_norm", gamma=0.5)
    assert by_step(k2, 2)[2:] == pytest.approx([-5 / 9, 4 / 9], rel=1e-5)


def test_hgpo_reductions_and_symmetry():
    table = StepTable.from_episodes(HGPO_EPISODES)
    step = anchor_step(discounted_returns(table, 0.5), anchor_keys(table), "mean_norm")
    assert hgpo(table, history=0, mode="mean_norm", gamma=0.5) == pytest.approx(step, rel=1e-6)
    same = StepTable.from_episodes([{**e, "anchors": ["S0", "S1", "S2"]} for e in HGPO_EPISODES])
    same_step = anchor_step(discounted_returns(same, 0.5), anchor_keys(same), "mean_norm")
    for history in (0, 1, 2):
        assert hgpo(same, history=history, mode="mean_norm", gamma=0.5) == pytest.approx(same_step, rel=1e-6)
    # alpha 0: the uniform average of the nonzero items (E2 step 2 with K=1: (-0.75 - 0.5) / 2)
    uniform = hgpo(table, history=1, alpha=0, mode="mean_norm", gamma=0.5)
    assert by_step(uniform, 2)[2] == pytest.approx(-0.625, rel=1e-5)
    lonely = StepTable.from_episodes([{"group": "g", "outcome": 1, "anchors": ["a"], "rewards": [1]},
                                      {"group": "g", "outcome": 0, "anchors": ["b"], "rewards": [0]}])
    assert hgpo(lonely, history=1) == pytest.approx([0, 0])
    order = [2, 0, 3, 1]
    permuted = StepTable.from_episodes([HGPO_EPISODES[i] for i in order])
    original = hgpo(table, history=1, mode="mean_std_norm", gamma=0.5)
    moved = hgpo(permuted, history=1, mode="mean_std_norm", gamma=0.5)
    for new_index, old_index in enumerate(order):
        assert moved[3 * new_index:3 * new_index + 3] == pytest.approx(original[3 * old_index:3 * old_index + 3])


def test_hgpo_mean_std_norm_uses_the_population_std():
    table = StepTable.from_episodes(HGPO_EPISODES)
    out = hgpo(table, history=0, mode="mean_std_norm", gamma=0.5)
    returns = np.array([1.0, 1.0, 0.0, 1.0])
    expected = (returns - returns.mean()) / (returns.std(ddof=0) + 1e-6)
    assert by_step(out, 2) == pytest.approx(list(expected * 2 / (2 + 1e-6)), rel=1e-6)


def test_context_keys_hold_the_last_k_observations_within_the_episode_group():
    table = StepTable.from_episodes(HGPO_EPISODES[:1])
    assert context_keys(table, 2) == (None, ("g", ("S0", "S1")), ("g", ("S1", "S2")))
    with pytest.raises(ValueError):
        context_keys(table, 0)


def test_registry():
    assert {"grpo", "gigpo", "hgpo", "none"} <= set(ADVANTAGES)
    assert estimator("gigpo") is gigpo
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'"):
        estimator("ppo")
