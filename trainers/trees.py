"""Rollout trees and the budget controller (``shared/algorithms.md`` §9.1).

Every algorithm's rollout is a forest: GRPO, GiGPO, HGPO, DAgger and DynaWeb grow depth-0 trees (roots
only); ARPO and AEPO fork at turn boundaries after tool feedback, TRACE where its allocator says, APPO at
token positions. The structure here is what they share: who forked from whom and where, and the one
invariant every group must keep, checked in one place (:func:`check_groups`). The budget itself (roots,
grants, refills) is :class:`agentenv.hooks.TreeStrategy`, which the collector enforces.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agentenv.budget import slot_id
from agentenv.trajectory import Trajectory

from .rows import Row


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


def shared_prefix_lengths(trajectories: Sequence[Trajectory],
                          rows: Sequence[Row]) -> tuple[list[int | None], list[int]]:
    """Each episode's parent (its index in the batch) and how many of its row's tokens it shares with it:
    everything before the branch turn's action, plus the tokens a fork inside a turn kept."""
    index = {t.trajectory_id: i for i, t in enumerate(trajectories)}
    parents: list[int | None] = []
    shared: list[int] = []
    for t, row in zip(trajectories, rows, strict=True):
        parent = index.get(t.parent_trajectory_id or "")
        parents.append(parent)
        if parent is None or t.branch_turn is None:
            shared.append(0)
            continue
        prompt = t.full_prompt_ids(t.branch_turn)
        shared.append(min(len(row), len(prompt) + (t.branch_token_offset or 0)))
    return parents, shared


def tree_episodes(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """The episodes a tree algorithm trains on: finished, not pilots; a parent missing from the batch
    (failed, or too stale) leaves its children as roots of their own."""
    return [t for t in trajectories if t.status == "ok" and t.kind != "pilot"]


def generated_tokens(trajectory: Trajectory) -> int:
    """Tokens the policy sampled for this episode: a fork's copied turns (and the tokens it kept inside its
    branch turn) were sampled by its parent."""
    first = trajectory.branch_turn or 0
    return sum(len(t.completion_ids) for t in trajectory.turns[first:]) - (trajectory.branch_token_offset or 0)


def tree_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """The shape of a step's rollout trees: forks and refills per group, tokens sampled per episode."""
    episodes = [t for t in trajectories if t.kind != "pilot"]
    if not episodes:
        return {}
    groups = len({t.group_id for t in episodes})
    depth = build_trees(episodes)
    return {"branches_per_group": sum(t.parent_trajectory_id is not None for t in episodes) / groups,
            "refills_per_group": sum(t.kind == "global_refill" for t in episodes) / groups,
            "generated_tokens_per_sample": sum(generated_tokens(t) for t in episodes) / len(episodes),
            "tree_depth_max": float(max(tree.depth(tid) for tree in depth.values() for tid in tree.parent))}


class TreeInvariantError(AssertionError):
    """A group does not hold its budget of episodes, or a branch does not extend its parent."""


def final_attempts(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """One episode per slot: the last attempt of a retried one; pilots (AEPO's probes) take no slot."""
    latest: dict[str, Trajectory] = {}
    for t in trajectories:
        if t.kind == "pilot":
            continue
        key = slot_id(t.trajectory_id)
        if key not in latest or t.attempt > latest[key].attempt:
            latest[key] = t
    return list(latest.values())


def check_groups(trajectories: Sequence[Trajectory], budget: int | Callable[[str], int]) -> None:
    """The invariant of §9.1: every group holds exactly its budget of episodes (``budget``, or
    ``budget(group_id)`` where groups differ, as TRACE's do), counting each slot once, and every branch
    repeats its parent before the branch point: the same turns with the same sampled tokens, and inside
    the branch turn the tokens it kept."""
    trajectories = final_attempts(trajectories)
    by_group: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_group[t.group_id].append(t)
    for group, members in by_group.items():
        expected = budget(group) if callable(budget) else budget
        if len(members) != expected:
            raise TreeInvariantError(f"group {group} holds {len(members)} episodes, not its budget of {expected}")
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
        kept = t.branch_token_offset or 0
        if kept and (len(t.turns) <= turn or len(parent.turns) <= turn
                     or t.turns[turn].completion_ids[:kept] != parent.turns[turn].completion_ids[:kept]):
            mine.append(("", [-1]))
        if mine != theirs:
            raise TreeInvariantError(f"{t.trajectory_id} does not repeat its parent {parent.trajectory_id} before "
                                     f"its branch point (turn {turn}, token {kept})")
