"""Rollout trees and the budget controller (``shared/algorithms.md`` §9.1).

Every algorithm's rollout is a forest: GRPO, GiGPO, HGPO, DAgger and DynaWeb grow depth-0 trees (roots
only); ARPO and AEPO fork at turn boundaries after tool feedback, TRACE where its allocator says, APPO at
token positions. The structure here is what they share: who forked from whom and where, and the one
invariant every group must keep, checked in one place (:func:`check_groups`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agentenv.hooks import BranchRequest
from agentenv.trajectory import Trajectory


@dataclass(frozen=True)
class BranchPoint:
    """Where a child leaves its parent: before turn ``turn`` (``token_offset`` 0), or inside that turn's
    action after ``token_offset`` of its tokens (APPO)."""

    turn: int
    token_offset: int = 0


@dataclass
class RolloutTree:
    """One task's rollouts: roots and their branches, by trajectory id."""

    tree_id: str
    group_id: str
    parent: dict[str, str | None] = field(default_factory=dict)
    branch_point: dict[str, BranchPoint | None] = field(default_factory=dict)

    def add(self, trajectory: Trajectory) -> None:
        tid = trajectory.trajectory_id
        self.parent[tid] = trajectory.parent_trajectory_id
        self.branch_point[tid] = (None if trajectory.branch_turn is None
                                  else BranchPoint(trajectory.branch_turn, trajectory.branch_token_offset or 0))

    @property
    def roots(self) -> list[str]:
        return [t for t, p in self.parent.items() if p is None]

    def children(self, tid: str) -> list[str]:
        return [t for t, p in self.parent.items() if p == tid]

    def depth(self, tid: str) -> int:
        depth, node = 0, self.parent.get(tid)
        while node is not None:
            depth, node = depth + 1, self.parent.get(node)
        return depth


def build_trees(trajectories: Iterable[Trajectory]) -> dict[str, RolloutTree]:
    """The forest of a batch, keyed by tree id (a root's tree id defaults to its own trajectory id)."""
    trees: dict[str, RolloutTree] = {}
    for t in trajectories:
        tree_id = t.tree_id or t.trajectory_id
        trees.setdefault(tree_id, RolloutTree(tree_id, t.group_id)).add(t)
    return trees


class BudgetPolicy(Protocol):
    """How many episodes a task gets and where they branch (§9.1): ``initial`` roots per task;
    ``on_boundary`` extra copies at a turn boundary (ARPO/AEPO/TRACE); ``post_hoc`` branch requests after
    the roots finish (APPO, TRACE); ``refill`` global samples that top a group up to its total."""

    def initial(self, task_index: int) -> int: ...

    def on_boundary(self, trajectory: Trajectory, turn: int) -> int: ...

    def post_hoc(self, trajectories: Sequence[Trajectory]) -> list[tuple[str, BranchRequest]]: ...

    def refill(self, group_size: int, have: int) -> int: ...


@dataclass(frozen=True)
class RootsOnly:
    """The budget of GRPO, GiGPO, HGPO and DAgger: ``n`` independent roots per task, never a branch."""

    n: int

    def initial(self, task_index: int) -> int:
        return self.n

    def on_boundary(self, trajectory: Trajectory, turn: int) -> int:
        return 0

    def post_hoc(self, trajectories: Sequence[Trajectory]) -> list[tuple[str, BranchRequest]]:
        return []

    def refill(self, group_size: int, have: int) -> int:
        return max(0, self.n - have)


class TreeInvariantError(AssertionError):
    """A group does not hold its budget of episodes, or a branch does not extend its parent."""


def check_groups(trajectories: Sequence[Trajectory], budget: int) -> None:
    """The invariant of §9.1: every group holds exactly ``budget`` episodes, and every branch's turns before
    its branch point equal its parent's (same actions and the same sampled tokens)."""
    by_group: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_group[t.group_id].append(t)
    for group, members in by_group.items():
        if len(members) != budget:
            raise TreeInvariantError(f"group {group} holds {len(members)} episodes, not its budget of {budget}")
    by_id = {t.trajectory_id: t for t in trajectories}
    for t in trajectories:
        if t.parent_trajectory_id is None:
            continue
        parent = by_id.get(t.parent_trajectory_id)
        if parent is None:
            raise TreeInvariantError(f"{t.trajectory_id} branches from {t.parent_trajectory_id}, which is not in "
                                     "the batch")
        turn = t.branch_turn or 0
        mine = [(u.action, u.completion_ids) for u in t.turns[:turn]]
        theirs = [(u.action, u.completion_ids) for u in parent.turns[:turn]]
        if mine != theirs:
            raise TreeInvariantError(f"{t.trajectory_id} does not repeat its parent {parent.trajectory_id} before "
                                     f"its branch point (turn {turn})")
