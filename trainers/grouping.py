"""The step table and its grouping keys (``shared/algorithms.md`` §9.2), as pure functions.

Every advantage estimator compares a row with the rows that share a key: the episode group (same task, same
env seed), the anchor group (same current observation, GiGPO), or the context group (the same last k
observations, HGPO). Keys are computed here, once, from the recorded ``group_id`` and per-turn
``anchor_key``; estimators never look at raw observations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentenv.trajectory import Trajectory


@dataclass(frozen=True)
class StepTable:
    """The step view's rows (one per turn) of a batch of episodes, in episode order then turn order.

    ``outcome`` is each row's episode reward R(τ) (the same on every row of an episode); ``reward`` the
    step reward r_t; ``anchor`` the canonical current observation (never the memory window).
    """

    episode: np.ndarray  # int64[rows]: index of the row's episode in the batch
    step: np.ndarray  # int64[rows]: turn index within the episode
    group: tuple[Hashable, ...]  # per row: the episode group (task uid)
    anchor: tuple[Hashable, ...]  # per row: anchor key of the current observation
    reward: np.ndarray  # float64[rows]
    outcome: np.ndarray  # float64[rows]

    def __post_init__(self) -> None:
        n = len(self.episode)
        if not all(len(x) == n for x in (self.step, self.group, self.anchor, self.reward, self.outcome)):
            raise ValueError("every column of a StepTable must have one entry per row")

    def __len__(self) -> int:
        return len(self.episode)

    @classmethod
    def from_episodes(cls, episodes: Sequence[dict[str, Any]]) -> StepTable:
        """From plain episodes: ``{"group": g, "outcome": R, "anchors": [...], "rewards": [...]}``."""
        cols: dict[str, list[Any]] = defaultdict(list)
        for i, ep in enumerate(episodes):
            anchors, rewards = list(ep["anchors"]), list(ep.get("rewards") or [0.0] * len(ep["anchors"]))
            if len(anchors) != len(rewards):
                raise ValueError(f"episode {i}: {len(anchors)} anchor keys but {len(rewards)} step rewards")
            for t, (anchor, reward) in enumerate(zip(anchors, rewards, strict=True)):
                cols["episode"].append(i)
                cols["step"].append(t)
                cols["group"].append(ep["group"])
                cols["anchor"].append(anchor)
                cols["reward"].append(float(reward))
                cols["outcome"].append(float(ep["outcome"]))
        return cls(np.asarray(cols["episode"], dtype=np.int64), np.asarray(cols["step"], dtype=np.int64),
                   tuple(cols["group"]), tuple(cols["anchor"]), np.asarray(cols["reward"], dtype=np.float64),
                   np.asarray(cols["outcome"], dtype=np.float64))

    @classmethod
    def from_trajectories(cls, trajectories: Iterable[Trajectory]) -> StepTable:
        return cls.from_episodes([{"group": t.group_id, "outcome": t.reward, "anchors": [u.anchor_key for u in t.turns],
                                   "rewards": [u.reward for u in t.turns]} for t in trajectories])

    def episode_rows(self) -> dict[int, np.ndarray]:
        """Row indices of each episode, in turn order."""
        out: dict[int, list[int]] = defaultdict(list)
        for row, ep in enumerate(self.episode.tolist()):
            out[ep].append(row)
        return {ep: np.asarray(rows, dtype=np.int64) for ep, rows in out.items()}


def index(keys: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """``{key: row indices}`` in first-seen order."""
    out: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        out.setdefault(key, []).append(row)
    return {key: np.asarray(rows, dtype=np.int64) for key, rows in out.items()}


def episode_group_keys(table: StepTable) -> tuple[Hashable, ...]:
    """GRPO's group: the task uid (every member started from the same env seed)."""
    return table.group


def anchor_keys(table: StepTable) -> tuple[Hashable, ...]:
    """GiGPO's step group: ``(group_id, anchor_key(o_t))``."""
    return tuple(zip(table.group, table.anchor, strict=True))


def context_keys(table: StepTable, k: int) -> tuple[Hashable | None, ...]:
    """HGPO's level-k group: ``(group_id, o_{t-k+1..t})``; None for steps with fewer than k observations."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    keys: list[Hashable | None] = [None] * len(table)
    for rows in table.episode_rows().values():
        for t, row in enumerate(rows.tolist()):
            if t + 1 >= k:
                window = tuple(table.anchor[r] for r in rows[t - k + 1:t + 1].tolist())
                keys[row] = (table.group[row], window)
    return tuple(keys)
