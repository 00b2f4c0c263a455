"""HGPO (``shared/algorithms.md`` §6): each step's return against the hierarchy of groups that share its
last k observations (k = 1..history+1), weighted towards the more consistent contexts, in the step view.

The grouping depth may not exceed the memory the prompts held: with a ``window`` of W past turns, a
``history`` above W would compare steps whose prompts differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from agentenv.trajectory import Trajectory

from .advantages import hgpo
from .algorithm import RL_OPTIONS, Algorithm
from .config import TrainConfig
from .grouping import StepTable
from .rows import Row, step_rows


class HGPO(Algorithm):
    name = "hgpo"
    uses = RL_OPTIONS | {"history", "alpha", "mode", "gamma", "base_group"}
    preset: ClassVar[dict[str, Any]] = {"group_size": 8, "history": 2, "alpha": 1.0, "mode": "mean_std_norm",
                                        "base_group": False, "kl": "low_var_kl", "kl_coef": 0.01}

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        if config.window is not None and config.history > config.window:
            raise ValueError(f"history={config.history} exceeds the prompt window of {config.window} past turns")

    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        c = self.config
        advantages = hgpo(StepTable.from_trajectories(trajectories), history=c.history, alpha=c.alpha,
                          mode=c.mode, gamma=c.gamma, base_group=c.base_group)
        return step_rows(trajectories), advantages.tolist()
