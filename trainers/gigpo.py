"""GiGPO (``shared/algorithms.md`` §1): GRPO's episode advantage plus ω times a step advantage computed
within anchor groups (the steps of a group that saw the same current observation), in the step view."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentenv.trajectory import Trajectory

from .advantages import gigpo
from .algorithm import RL_OPTIONS, Algorithm
from .grouping import StepTable
from .rows import Row, step_rows


class GiGPO(Algorithm):
    name = "gigpo"
    uses = RL_OPTIONS | {"omega", "mode", "gamma"}

    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        c = self.config
        advantages = gigpo(StepTable.from_trajectories(trajectories), omega=c.omega, mode=c.mode,
                           gamma=c.gamma)
        return step_rows(trajectories), advantages.tolist()
