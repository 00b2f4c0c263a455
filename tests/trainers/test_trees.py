"""Rollout trees and the one group invariant of algorithms.md §9.1."""

from __future__ import annotations

import pytest

from agentenv.trainers.trees import BranchPoint, TreeInvariantError, build_trees, check_groups
from agentenv.trajectory import Trajectory, Turn


def ep(tid: str, group: str, actions: list[str], parent: str | None = None, turn: int | None = None,
       tree: str | None = None) -> Trajectory:
    turns = [Turn(index=i, observation=[], action=a, completion_ids=[ord(a[0]), i]) for i, a in enumerate(actions)]
    return Trajectory(trajectory_id=tid, group_id=group, task_id=group, task_index=0, sample_index=0, seed=0,
                      env_id="e", turns=turns, parent_trajectory_id=parent, branch_turn=turn, tree_id=tree)


def test_roots_only_groups_keep_their_budget():
    batch = [ep(f"t{i}", "g0", ["a", "b"]) for i in range(4)] + [ep(f"u{i}", "g1", ["c"]) for i in range(4)]
    check_groups(batch, budget=4)
    with pytest.raises(TreeInvariantError, match="holds 3 episodes, not its budget of 4"):
        check_groups(batch[1:], budget=4)


def test_a_branch_must_repeat_its_parent_before_the_branch_point():
    root = ep("r", "g", ["go", "look", "take"], tree="T")
    good = ep("b1", "g", ["go", "look", "drop"], parent="r", turn=2, tree="T")
    check_groups([root, good], budget=2)
    bad = ep("b2", "g", ["go", "jump", "drop"], parent="r", turn=2, tree="T")
    with pytest.raises(TreeInvariantError, match="does not repeat its parent"):
        check_groups([root, bad], budget=2)
    orphan = ep("b3", "g", ["go"], parent="missing", turn=1)
    with pytest.raises(TreeInvariantError, match="not in the batch"):
        check_groups([root, orphan], budget=2)


def test_the_forest_of_a_batch():
    root = ep("r", "g", ["go", "look"], tree="T")
    child = ep("c", "g", ["go", "wait"], parent="r", turn=1, tree="T")
    grandchild = ep("gc", "g", ["go", "wait"], parent="c", turn=1, tree="T")
    lone = ep("x", "h", ["go"])
    trees = build_trees([root, child, grandchild, lone])
    assert set(trees) == {"T", "x"}
    tree = trees["T"]
    assert tree.roots == ["r"] and tree.children("r") == ["c"] and tree.depth("gc") == 2
    assert tree.branch_point["c"] == BranchPoint(1, 0) and tree.branch_point["r"] is None
