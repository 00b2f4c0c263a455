"""Replay recorded episodes: the action of each (trajectory, turn), token-exact.

A replayed output carries the recorded prompt and completion token ids, log-probs, top-k log-probs and
entropies, so a replayed episode is indistinguishable from the original to everything downstream (the
next turn's :class:`~agentenv.policy.Continuation` extends exactly the recorded tokens). With the same env
seeds, replay reproduces a collection without a model: the whole collect-then-train loop runs on a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest
from agentenv.trajectory import Trajectory, Turn


class ReplayPolicy:
    """Answers ``(request.trajectory_id, request.turn)`` with the recorded turn.

    When a trajectory id was recorded more than once (a retried episode), the successful, latest attempt wins.
    """

    wants_expert = False

    def __init__(self, trajectories: Iterable[Trajectory], name: str = "replay"):
        self.name = name
        self.version = 0
        best: dict[str, Trajectory] = {}
        for t in trajectories:
            kept = best.get(t.trajectory_id)
            if kept is None or (t.status == "ok", t.attempt) >= (kept.status == "ok", kept.attempt):
                best[t.trajectory_id] = t
        self.trajectories = best
        self._turns: dict[tuple[str, int], tuple[Trajectory, Turn]] = {
            (t.trajectory_id, turn.index): (t, turn) for t in best.values() for turn in t.turns
        }

    @classmethod
    def from_trajectories(cls, trajectories: Iterable[Trajectory], **kwargs: Any) -> ReplayPolicy:
        return cls(trajectories, **kwargs)

    @classmethod
    def from_store(cls, path: str | os.PathLike[str], **kwargs: Any) -> ReplayPolicy:
        """Replay every readable episode of the trajectory store at ``path``."""
        from agentenv.store import TrajectoryStore  # the store pulls in pyarrow; import it only when used

        if not Path(path).is_dir():
            raise ValueError(f"no trajectory store at {path}: not a directory")
        return cls(TrajectoryStore(path).episodes(errors="skip"), **kwargs)

    def recorded(self, trajectory_id: str, turn: int) -> bool:
        return (trajectory_id, turn) in self._turns

    def __len__(self) -> int:
        return len(self.trajectories)

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return [self.replay(r) for r in requests]

    async def aclose(self) -> None:
        pass

    def replay(self, request: PolicyRequest) -> PolicyOutput:
        hit = self._turns.get((request.trajectory_id, request.turn))
        if hit is None:
            known = self.trajectories.get(request.trajectory_id)
            where = (f"it has {len(known.turns)} recorded turns" if known is not None
                     else f"the {len(self.trajectories)} recorded trajectories do not include it")
            raise PolicyError(
                f"no recorded action for trajectory {request.trajectory_id!r} turn {request.turn}: {where}"
            )
        trajectory, turn = hit
        if not turn.completion_ids:  # recorded from a text-only policy (random, expert, human, API)
            return PolicyOutput(text=turn.action, finish_reason=turn.finish_reason or "stop",
                                policy_version=turn.policy_version)
        return PolicyOutput(
            text=turn.action,
            prompt_ids=trajectory.full_prompt_ids(turn.index),
            completion_ids=list(turn.completion_ids),
            logprobs=list(turn.logprobs) or None,
            top_ids=[list(x) for x in turn.top_ids] or None,
            top_logprobs=[list(x) for x in turn.top_logprobs] or None,
            entropies=list(turn.entropies) or None,
            entropy_kind=turn.entropy_kind,
            token_source=turn.token_source or "sampled",
            finish_reason=turn.finish_reason or "stop",
            policy_version=turn.policy_version,
        )
