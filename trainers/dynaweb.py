"""DynaWeb (``shared/algorithms.md`` §8) [RECONSTRUCTED dream reward and expert mixing]: GSPO on dreams.

The policy's episodes run in a learned web world model (``env=agentenv/Dream-<web env>``, see
:mod:`agentenv.envs.web.dream`), G per task. With probability ``expert_mix`` a group also gets a real
expert episode of the same task (the task its dreams started from), read from recorded real episodes
(``expert_data``, by default the dreams' own ``starts``):

* ``group_inject`` (the default): the expert episode takes the place of one dream of the group, with
  reward 1. The policy did not sample it, so its importance ratio uses π_old's log-probs of its tokens,
  recomputed when the update starts.
* ``aux_sft``: the G dreams stay, and the expert episode adds ``aux_sft_coef`` · NLL to the loss.

The loss is GSPO's: one sequence ratio per episode over its action tokens (observation tokens are
masked), clipped tightly, averaged per sequence (§11.3), against π_old's log-probs recomputed by the
learner when the update starts. Held-out evaluation runs on the real env.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from agentenv.prompting import PromptConfig
from agentenv.trajectory import Trajectory

from .advantages import grpo
from .algorithm import RL_OPTIONS, Algorithm
from .config import TrainConfig
from .grouping import StepTable
from .rows import Row, sequence_rows

log = logging.getLogger("agentenv.train")


class DynaWeb(Algorithm):
    name = "dynaweb"
    uses = RL_OPTIONS | {"norm", "ratio", "expert_mode", "expert_mix", "aux_sft_coef", "expert_data"}
    preset: ClassVar[dict[str, Any]] = {"ratio": "sequence", "clip_low": 3e-4, "clip_high": 4e-4,
                                        "dual_clip": None, "aggregation": "seq-mean-token-mean"}

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        from agentenv.envs.web.dream import real_id

        real = real_id(config.env)
        if real is None:
            raise ValueError(f"dynaweb trains in dreams: env must be a dream env (agentenv/Dream-<web env id>), "
                             f"got {config.env!r}")
        if config.window is not None:
            raise ValueError("dynaweb trains one sequence row per episode: leave window unset")
        self.real_env = real
        if config.eval_env is None:
            config.eval_env = real  # DynaWeb is judged on the real web, never in its own dreams
        #: real expert episodes in the policy's tokens, by the seed of their real task
        self.experts: dict[int, Trajectory] = {}
        self.step = 0

    def prepare(self, policy: Any, prompt: PromptConfig) -> None:
        """Load the real expert episodes and put them in the policy's tokens (once, before training)."""
        from agentenv.registry import resolve_id
        from agentenv.retokenize import tokenize_episode
        from agentenv.store import TrajectoryStore

        c = self.config
        paths = c.expert_data or c.env_kwargs.get("starts")
        if not paths or c.expert_mix == 0:
            return
        real = resolve_id(self.real_env)
        for path in [paths] if isinstance(paths, str) else list(paths):
            for episode in TrajectoryStore(path).episodes(errors="skip"):
                if episode.env_id == real and episode.success and episode.seed is not None:
                    self.experts.setdefault(episode.seed, tokenize_episode(episode, policy, prompt))
        if not self.experts:
            raise ValueError(f"expert_mix={c.expert_mix} but {paths} hold no successful {real} episode to "
                             "interleave; collect some (agentenv collect ... -p expert) or set expert_mix=0")
        log.info("dynaweb: %d real expert episodes to interleave", len(self.experts))

    def aux_sft_coef(self) -> float:
        return self.config.aux_sft_coef if self.config.expert_mode == "aux_sft" else 0.0

    def restore(self, steps: Sequence[Sequence[Trajectory]], label_tokens: Callable[[str], list[int]]) -> None:
        self.step = len(steps)

    def plan(self, trajectories: Sequence[Trajectory]) -> dict[str, tuple[Trajectory, int | None]]:
        """Per group that gets one: the expert episode, and which of its dreams it replaces (None under
        ``aux_sft``). The coins are seeded by (seed, step, group), so a step's plan is reproducible."""
        c = self.config
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(trajectories):
            groups.setdefault(t.group_id, []).append(i)
        chosen: dict[str, tuple[Trajectory, int | None]] = {}
        for group, members in sorted(groups.items()):
            expert = self.experts.get(trajectories[members[0]].extra.get("real_seed", -1))
            rng = np.random.default_rng([c.seed, self.step, zlib.crc32(group.encode())])
            if expert is None or rng.random() >= c.expert_mix:
                continue
            victim = members[int(rng.integers(len(members)))] if c.expert_mode == "group_inject" else None
            chosen[group] = (expert, victim)
        return chosen

    def metrics(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        turns = [turn for t in trajectories for turn in t.turns]
        dreams = [t for t in trajectories if t.kind == "dream"]
        return {"experts_interleaved": float(len(self.plan(trajectories))),
                "dream_episodes": float(len(dreams)),
                "dream_delta_errors": sum("delta_error" in turn.info for turn in turns) / max(len(turns), 1)}

    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        plan = self.plan(trajectories)
        self.step += 1
        episodes = list(trajectories)
        demonstrations: list[Trajectory] = []
        for group, (expert, victim) in plan.items():
            shown = _trained(expert, group)
            if victim is None:
                demonstrations.append(shown)
            else:
                episodes[victim] = shown
        table = StepTable.from_episodes([{"group": t.group_id, "outcome": t.reward, "anchors": [None]}
                                         for t in episodes])
        advantages = grpo(table, norm=self.config.norm).tolist()
        rows = sequence_rows(episodes)
        # GSPO's clip (4e-4 wide) is narrower than the gap between the sampler's log-probs and the learner's
        # (bfloat16 autocast, another batch shape): π_old is then the learner's own at the update's start,
        # as verl recomputes old_log_prob, or the ratio of every sampled sequence starts clipped.
        everyone = self.config.ratio == "sequence"
        rows = [dataclasses.replace(r, recompute_old_logp=True) if everyone or episodes[r.episode].kind == "expert"
                else r for r in rows]
        for row in sequence_rows(demonstrations):
            rows.append(dataclasses.replace(row, episode=len(episodes) + row.episode, sft=True))
            advantages.append(0.0)
        return rows, advantages


def _trained(expert: Trajectory, group: str) -> Trajectory:
    """The expert episode as a member of ``group``: reward 1 and every action token trained on (the
    collector's teacher turns are masked out of a sampled episode's loss; here they are the target)."""
    turns = [dataclasses.replace(turn, completion_mask=[1] * len(turn.completion_ids)) for turn in expert.turns]
    return dataclasses.replace(expert, turns=turns, group_id=group, reward=1.0, kind="expert")
