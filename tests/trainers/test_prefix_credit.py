"""APPO's dual-group advantage with prefix credit against algorithms.md §4(f).3 and §4(f).4."""

from __future__ import annotations

import numpy as np
import pytest

from agentenv.trainers.prefix_credit import dual_group_advantage

ONE = 0.5 / (0.5 + 1e-6)  # population-std GRPO of rewards [1, 0]: ±0.999998


def test_hand_example():  # §4(f).3
    masks = [np.ones(6)] * 4
    out = dual_group_advantage(outcomes=[1, 0, 1, 0], groups=["p"] * 4, kinds=["init", "init", "branch", "branch"],
                               parents=[None, None, 0, 1], splits=[None, None, 1, 3], masks=masks)
    assert out[0] == pytest.approx([2 * ONE] * 2 + [ONE] * 4)
    assert out[1] == pytest.approx([-2 * ONE] * 4 + [-ONE] * 2)
    assert out[0][:2] == pytest.approx(2.0, abs=1e-5) and out[1][-1] == pytest.approx(-1.0, abs=1e-5)
    assert not out[2].any() and not out[3].any()


def grpo_pop(rewards: list[float]) -> np.ndarray:
    r = np.asarray(rewards, dtype=float)
    return (r - r.mean()) / (r.std() + 1e-6)


def test_no_branches_equals_population_std_grpo():  # §4(f).4
    rewards = [1.0, 0.0, 0.0, 1.0, 0.5]
    masks = [np.array([0, 1, 1, 0, 1]), np.ones(3), np.array([1, 0]), np.ones(4), np.array([0, 0, 1])]
    out = dual_group_advantage(rewards, ["p"] * 5, ["init"] * 5, [None] * 5, [None] * 5, masks)
    expected = grpo_pop(rewards)
    for row, mask, a in zip(out, masks, expected, strict=True):
        assert row.shape == mask.shape
        assert row == pytest.approx(np.where(mask > 0, a, 0.0))


def test_masked_tokens_stay_zero_and_split_covers_only_valid_tokens():
    masks = [np.array([0, 1, 0, 1, 1]), np.ones(5), np.ones(3)]
    out = dual_group_advantage([1, 0, 1], ["p"] * 3, ["init", "init", "branch"], [None, None, 0], [None, None, 3],
                               masks)
    # the branch is alone in its group: Â_b = 0, so row 0 is just its own advantage on valid tokens
    assert out[0] == pytest.approx([0, ONE, 0, ONE, ONE])
    assert not out[2].any()


def test_two_branches_covering_a_token_are_averaged():
    masks = [np.ones(5), np.ones(5), np.ones(5), np.ones(5), np.ones(5)]
    # init rows [1, 0] → ±ONE; branches of row 0 with R = [1, 0, 0] → Â = [√2, -1/√2, -1/√2] (pop std)
    b = grpo_pop([1, 0, 0])
    out = dual_group_advantage([1, 0, 1, 0, 0], ["p"] * 5, ["init", "init", "branch", "branch", "branch"],
                               [None, None, 0, 0, 0], [None, None, 1, 3, 3], masks)
    expected0 = [ONE + b.mean()] * 2 + [ONE + (b[1] + b[2]) / 2] * 2 + [ONE]
    assert out[0] == pytest.approx(expected0)
    assert out[1] == pytest.approx([-ONE] * 5)  # no branches of its own
    assert all(not out[i].any() for i in (2, 3, 4))


def test_groups_are_separated_by_prompt():
    masks = [np.ones(3)] * 6
    out = dual_group_advantage([1, 0, 3, 1, 1, 0], ["a", "a", "b", "b", "a", "b"],
                               ["init", "init", "init", "init", "branch", "branch"],
                               [None, None, None, None, 0, 2], [None, None, None, None, 0, 0], masks)
    # prompt "b" rewards [3, 1] normalise to ±1 like "a"'s [1, 0]; single branches per group give Â_b = 0
    assert out[0] == pytest.approx([ONE] * 3)
    assert out[1] == pytest.approx([-ONE] * 3)
    assert out[2] == pytest.approx([1.0 / (1.0 + 1e-6)] * 3)
    assert out[3] == pytest.approx([-1.0 / (1.0 + 1e-6)] * 3)


def test_init_and_branch_groups_are_normalised_separately():
    masks = [np.ones(2)] * 4
    # all inits 0 → Â_init = 0; branches [1, 0] → ±ONE even though the inits are all 0
    out = dual_group_advantage([0, 0, 1, 0], ["p"] * 4, ["init", "init", "branch", "branch"], [None, None, 0, 1],
                               [None, None, 0, 1], masks)
    assert out[0] == pytest.approx([ONE, 0.0])
    assert out[1] == pytest.approx([-ONE, -ONE])


def test_singleton_group_gives_zero():
    out = dual_group_advantage([5.0], ["p"], ["init"], [None], [None], [np.ones(2)])
    assert out[0] == pytest.approx([0.0, 0.0])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kinds": ["init", "branch", "branch"], "parents": [None, 2, 0], "splits": [None, 0, 1]}, "not an init row"),
    ({"parents": [None, None, 5]}, "not an init row"),
    ({"splits": [None, None, 4]}, "outside"),
    ({"splits": [None, None, -1]}, "outside"),
    ({"splits": [None, None, None]}, "needs a parent and a split"),
    ({"groups": ["p", "p"]}, "groups has 2 entries"),
    ({"masks": [np.ones(4)] * 2}, "masks has 2 entries"),
    ({"kinds": ["init", "init", "leaf"]}, "kind must be"),
    ({"groups": ["p", "p", "q"]}, "group"),
])
def test_invalid_inputs_raise(kwargs, match):
    args = {"outcomes": [1, 0, 1], "groups": ["p"] * 3, "kinds": ["init", "init", "branch"],
            "parents": [None, None, 0], "splits": [None, None, 1], "masks": [np.ones(4)] * 3}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        dual_group_advantage(**args)
