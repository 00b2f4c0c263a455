"""GiGPO (``shared/algorithms.md`` §1): GRPO's episode advantage plus ω times a step advantage computed
within anchor groups (the steps of a group that saw the same current observation), in the step view."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from agentenv.trajectory import Trajectory

from .advantages import gigpo
from .algorithm import RL_OPTIONS, Algorithm
from .grouping import StepTable
from .rows import Row, step_rows


class GiGPO(Algorithm):
    name = "gigpo"
    uses = RL_OPTIONS | {"omega", "mode", "gamma"}
    preset: ClassVar[dict[str, Any]] = {"group_size": 8, "omega": 1.0, "mode": "mean_norm", "gamma": 0.95,
                                        "kl": "low_var_kl", "kl_coef": 0.01}

    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        c = self.config
        advantages = gigpo(StepTable.from_trajectories(trajectories), omega=c.omega, mode=c.mode,
                           gamma=c.gamma)
        return step_rows(trajectories), advantages.tolist()
