"""KL in the reward (``shared/algorithms.md`` §1): ``r_tok ← r_tok − β·k1(logp_old, logp_ref)``.

The penalty of every sampled token is charged to the reward of the turn that sampled it, before any
advantage is computed, so it flows through each estimator's own return computation (GRPO's episode
outcome, GiGPO's discounted step returns). β is fixed, or adaptive with a target KL: after each step
``β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon)``, n being the step's number of episodes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentenv.trajectory import Trajectory

from .rows import pack_by_tokens, step_rows

if TYPE_CHECKING:
    from .learner import Learner


@dataclass
class KLReward:
    beta: float
    target: float | None = None
    horizon: int = 10_000

    def __post_init__(self) -> None:
        if self.beta < 0 or (self.target is not None and self.target <= 0) or self.horizon < 1:
            raise ValueError("kl_reward_coef must be >= 0, kl_reward_target > 0 and kl_reward_horizon >= 1")

    def apply(self, trajectories: Sequence[Trajectory], learner: Learner) -> tuple[list[Trajectory], dict[str, float]]:
        """Copies of ``trajectories`` with each turn's reward (and the episode's) reduced by β times the
        summed k1 of its sampled tokens, and the step's metrics; then β adapts if a target is set."""
        rows = step_rows(trajectories)
        per_turn: dict[tuple[int, int], float] = {}
        tokens = 0.0
        for group in pack_by_tokens([len(r) for r in rows], learner.config.micro_batch_tokens):
            chunk = [rows[i] for i in group]
            batch = learner.collate(chunk)
            k1 = (batch.old_logp - learner.reference_logprobs(batch)) * batch.mask
            for row, value in zip(chunk, k1.sum(1).tolist(), strict=True):
                per_turn[(row.episode, row.turn or 0)] = value
            tokens += float(batch.mask.sum())
        penalised = []
        for index, trajectory in enumerate(trajectories):
            episode = copy.deepcopy(trajectory)
            for turn in episode.turns:
                charge = self.beta * per_turn.get((index, turn.index), 0.0)
                turn.reward -= charge
                episode.reward -= charge
            penalised.append(episode)
        kl = sum(per_turn.values()) / max(tokens, 1.0)
        metrics = {"kl_reward": kl, "kl_reward_coef": self.beta}
        if self.target is not None:
            error = min(max(kl / self.target - 1, -0.2), 0.2)
            self.beta *= 1 + error * len(trajectories) / self.horizon
        return penalised, metrics
