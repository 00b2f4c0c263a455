"""Hooks the trainers plug into the collector without changing it.

* :class:`BranchStrategy` (tree rollouts: ARPO, AEPO, APPO, TRACE): after an episode finishes, the
  strategy names points to branch at (a turn, or a token inside a turn); the collector clones the env at
  that point (re-playing the parent's actions on a fresh env under the same seed, or restoring a snapshot
  where the env keeps them), copies the parent's turns by reference, and lets the policy continue from the
  exact token prefix. :class:`TreeStrategy` adds the budget: an exact number of episodes per group, with
  fresh global samples when branching leaves slots unused, post-hoc rounds (APPO, TRACE) once every
  running episode has finished, and an optional pilot episode per task (AEPO).
* :class:`TeacherMixing` (DAgger): a teacher policy is asked at every visited state (its action is
  recorded as the label) and, with probability ``beta``, acts instead of the student.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from agentenv.policy import Policy
from agentenv.trajectory import Trajectory


@dataclass(frozen=True)
class BranchRequest:
    """Branch ``count`` children off a trajectory: they replay turns ``[0, turn)`` and act from ``turn``;
    with ``token_offset`` > 0 they also keep the first ``token_offset`` tokens of that turn's action and
    sample the rest of it (APPO's forks inside a turn)."""

    turn: int
    count: int = 1
    kind: str = "branch"
    token_offset: int = 0
    #: what the strategy wants recorded in each child's ``extra["branch"]`` (a score, a prediction...)
    note: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.turn < 0 or self.count < 0 or self.token_offset < 0:
            raise ValueError(f"a branch request needs turn, count and token_offset >= 0, got {self}")


class BranchStrategy(Protocol):
    def branches(self, trajectory: Trajectory) -> Sequence[BranchRequest]: ...


class TreeStrategy:
    """A budgeted tree rollout (``shared/algorithms.md`` §9.1). Subclasses override what they use.

    The collector keeps, per group, exactly :meth:`budget` episodes: :meth:`initial` roots, then the
    branches the strategy asks for (granted while slots remain), then fresh ``global_refill`` roots for the
    slots left once the group has nothing running. Every decision must be a function of the finished
    episodes and seeded randomness, so that a resumed collection makes the same ones.
    """

    #: run one ``pilot`` episode per task first and size its roots from it (:meth:`roots_after_pilot`)
    pilot: ClassVar[bool] = False
    #: the strategy branches in rounds after everything running has finished (:meth:`after_round`);
    #: refills then wait for the last round instead of starting as soon as a group goes idle
    post_hoc: ClassVar[bool] = False
    #: refill a group's free slots one global sample at a time (each may branch into the slots after it,
    #: as ARPO's released rollout loop does), instead of all at once (more episodes in flight, no branches)
    refill_one_at_a_time: bool = False

    def budget(self, task_index: int) -> int | None:
        """Episodes per group, exactly (None: no budget; branches add to the group)."""
        return None

    def initial(self, task_index: int) -> int | None:
        """Roots per group (None: the collection's ``group_size``)."""
        return None

    def expected(self, task_index: int) -> int | None:
        """The episodes the group holds once the collection is done (the invariant's count; by default
        its budget). A strategy whose groups have no fixed budget (TRACE) knows it after allocating."""
        return self.budget(task_index)

    def roots_after_pilot(self, pilot: Trajectory) -> int:
        raise NotImplementedError(f"{type(self).__name__} asks for a pilot but does not size roots from it")

    def branches(self, trajectory: Trajectory) -> Sequence[BranchRequest]:
        """Branch points chosen when ``trajectory`` finishes (ARPO, AEPO)."""
        return []

    def granted(self, trajectory: Trajectory, asked: int, given: int) -> None:
        """The collector gave ``given`` of the ``asked`` children (fewer when the group's slots ran out)."""

    def after_round(self, finished: Sequence[Trajectory]) -> Sequence[tuple[Trajectory, BranchRequest]]:
        """Branch points chosen once nothing is running, from every finished episode (APPO, TRACE)."""
        return []


@dataclass
class TeacherMixing:
    teacher: Policy
    #: probability that the teacher acts at a turn (a constant, or a function of the turn index)
    beta: float | Callable[[int], float] = 0.0
    #: ask the teacher at every visited state and record its action (the DAgger label)
    label_all_states: bool = True
    seed: int = 0

    def beta_at(self, turn: int) -> float:
        return float(self.beta(turn) if callable(self.beta) else self.beta)

    def teacher_acts(self, trajectory_id: str, turn: int) -> bool:
        """A coin seeded by (seed, trajectory, turn): the same run flips the same coins."""
        beta = self.beta_at(turn)
        if beta <= 0:
            return False
        rng = np.random.default_rng([self.seed, zlib.crc32(trajectory_id.encode()), turn])
        return bool(rng.random() < beta)
