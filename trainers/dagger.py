"""DAgger for LLM agents (``shared/algorithms.md`` §7) [RECONSTRUCTED schedule].

At step i the collector lets the teacher act with probability β_i = beta0 · beta_decay^i at each turn and
asks it for a label at every visited state, including the states the student reached by its own mistakes;
the labels of all steps so far form the aggregated dataset, and the student is trained on it with the SFT
loss (the label tokens after the exact prompt the student saw).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentenv.hooks import TeacherMixing
from agentenv.policies import make_policy
from agentenv.trajectory import Trajectory

from .algorithm import Algorithm
from .config import TrainConfig
from .rows import Row, step_rows


class DAgger(Algorithm):
    name = "dagger"
    uses = frozenset({"teacher", "beta0", "beta_decay", "aggregation"})
    sft = True

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        if not 0 <= config.beta0 <= 1 or not 0 <= config.beta_decay <= 1:
            raise ValueError("beta0 and beta_decay must be in [0, 1]")
        self.teacher_policy = make_policy(config.teacher)
        self.dataset: list[Row] = []

    def beta(self, step: int) -> float:
        return self.config.beta0 * self.config.beta_decay ** step

    def teacher(self, step: int) -> TeacherMixing | None:
        return TeacherMixing(self.teacher_policy, beta=self.beta(step), label_all_states=True,
                             seed=self.config.seed + step)

    def eval_teacher(self) -> TeacherMixing:
        return TeacherMixing(self.teacher_policy, beta=0.0, label_all_states=True, seed=self.config.seed)

    def restore(self, steps: Sequence[Sequence[Trajectory]], label_tokens: Callable[[str], list[int]]) -> None:
        """The aggregated dataset of a resumed run: the labels of every step done so far, from its store."""
        self.dataset = [row for episodes in steps
                        for row in step_rows(episodes, labels=True, label_tokens=label_tokens)]

    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        self.dataset += step_rows(trajectories, labels=True, label_tokens=label_tokens)
        return self.dataset, [0.0] * len(self.dataset)
