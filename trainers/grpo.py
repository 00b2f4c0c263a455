"""GRPO (``shared/algorithms.md`` §1): each episode's outcome against its group's, as the advantage of
every action token of the episode, trained with the clipped surrogate.

The sequence view (one row per episode: the prompt is computed once) is used while the episodes are
prefix-stable; with a history ``window`` the prompts are re-rendered and the step view is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from agentenv.trajectory import Trajectory

from .advantages import grpo
from .algorithm import RL_OPTIONS, Algorithm
from .grouping import StepTable
from .rows import Row, sequence_rows, step_rows


class GRPO(Algorithm):
    name = "grpo"
    uses = RL_OPTIONS | {"norm"}
    preset: ClassVar[dict[str, Any]] = {"kl": "low_var_kl", "kl_coef": 0.001}

    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        episodes = StepTable.from_episodes([{"group": t.group_id, "outcome": t.reward, "anchors": [None]}
                                            for t in trajectories])
        per_episode = grpo(episodes, norm=self.config.norm).tolist()
        if self.config.window is None:
            return sequence_rows(trajectories), per_episode
        rows = step_rows(trajectories)
        return rows, [per_episode[r.episode] for r in rows]
