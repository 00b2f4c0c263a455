"""Hooks the trainers plug into the collector without changing it.

* :class:`BranchStrategy` (tree rollouts: ARPO, AEPO, TRACE...): after an episode finishes, the strategy
  names turns to branch at; the collector re-runs the parent's actions up to that turn on a fresh env
  (same seed), copies those turns, and lets the policy continue. The child records its parent and the
  branch turn.
* :class:`TeacherMixing` (DAgger): a teacher policy is asked at every visited state (its action is
  recorded as the label) and, with probability ``beta``, acts instead of the student.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agentenv.policy import Policy
from agentenv.trajectory import Trajectory


@dataclass(frozen=True)
class BranchRequest:
    """Branch ``count`` children off a trajectory: they replay turns ``[0, turn)`` and act from ``turn``."""

    turn: int
    count: int = 1
    kind: str = "branch"


class BranchStrategy(Protocol):
    def branches(self, trajectory: Trajectory) -> Sequence[BranchRequest]: ...


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
