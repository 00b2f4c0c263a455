"""APPO: Agentic Procedural Policy Optimization (``shared/algorithms.md`` §4).

Influential decisions are spread through the whole sequence, not only at tool boundaries, and entropy
alone also flags merely rare tokens. So APPO scores every generated token with the **branching score**
``BS_t = z(H_t)·z(Ω_t)``: entropy times "future value", the clipped, discounted log-likelihood ratio of the
tokens that follow. Each task gets ``N`` initial rollouts; once they have finished, the top ``B = n − N``
strict candidates across them (both z-scores positive) are forked **inside their turn**: the child keeps
the parent's tokens up to and including the split token and samples the rest, tools included. Credit is
**dual-group GRPO**: initial and branch rollouts are normalised in separate groups, and each branch's
advantage is added (averaged over the branches covering a token) to its parent's tokens up to the split;
branch rows are never trained on directly. The loss reweights each token by the **future KL**
``1 + b·f_t`` (FIPO) and drops sequences with more than one dual-clipped token.

Ω's "current policy" (§4h): the released code compares the trainer's log-probs at θ_old with the
sampler's, which differ only by numerics, so the score degenerates; ``omega_reference=trainer_recompute``
reproduces it. The default, ``post_update_policy``, compares the policy after the last update with the one
before it, a real policy change [our reading, recorded as a decision]. Before the first update there is no
change, every score is 0, and the selection falls back to score order (with a warning).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from agentenv.hooks import BranchRequest, TreeStrategy
from agentenv.trajectory import Trajectory

from .algorithm import RL_OPTIONS, Algorithm, BranchContext
from .branch_score import (
    branching_scores,
    future_value,
    reward_scale,
    rollout_candidates,
    select_branches,
    token_entropy_proxy,
)
from .prefix_credit import dual_group_advantage
from .rows import Row, sequence_rows
from .trees import tree_metrics

APPO_OPTIONS = frozenset({"initial_rollouts", "top_logprobs", "omega_reference", "omega_gamma", "omega_clip",
                          "reward_scale", "reward_scale_discount", "future_kl_decay", "future_kl_clip",
                          "future_kl_weight", "future_kl_high_only", "safety_thresh", "drop_dual_clipped"})


def action_positions(trajectory: Trajectory) -> list[tuple[int, int, int]]:
    """(row position, turn, offset in the turn) of every action token of the episode's sequence row."""
    out = []
    for turn, prompt in trajectory.full_prompts():
        start = len(prompt)
        out += [(start + k, turn.index, k) for k in range(len(turn.completion_ids))]
    return out


def token_entropies(trajectory: Trajectory) -> list[float]:
    """Each action token's entropy, from the sampler's top-k log-probs (APPO's proxy) or, when none were
    recorded, its exact entropy."""
    out: list[float] = []
    for turn in trajectory.turns:
        if turn.top_logprobs:
            out += token_entropy_proxy(turn.top_logprobs).tolist()
        elif turn.entropies:
            out += list(turn.entropies)
        else:
            raise ValueError(f"{trajectory.trajectory_id} turn {turn.index} recorded no entropies; APPO needs "
                             "top_logprobs > 0 or a policy that records exact entropies")
    return out


class APPOBudget(TreeStrategy):
    """``initial`` rollouts per task, then one post-hoc round of ``total − initial`` forks at the top
    branching scores."""

    post_hoc = True

    def __init__(self, total: int, initial: int, context: BranchContext, omega_reference: str = "post_update_policy",
                 gamma: float = 1.0, clip: float = 0.2):
        if not 1 <= initial <= total:
            raise ValueError(f"APPO needs 1 <= initial_rollouts ({initial}) <= group_size ({total})")
        self.total, self.first, self.context = total, initial, context
        self.omega_reference, self.gamma, self.clip = omega_reference, gamma, clip
        self.handled: set[str] = set()

    def budget(self, task_index: int) -> int:
        return self.total

    def initial(self, task_index: int) -> int:
        return self.first

    def deltas(self, episodes: Sequence[Trajectory], rows: Sequence[Row]) -> list[np.ndarray]:
        """Δ_t per row position: the log-ratio Ω is built from (0 where there is no reference yet)."""
        ctx = self.context
        current = ctx.logprobs(episodes) if ctx.logprobs is not None else None
        reference: list[list[float]] | None
        if self.omega_reference == "trainer_recompute":
            reference = [row.old_logp for row in rows]
        else:
            reference = ctx.previous_logprobs(episodes) if ctx.previous_logprobs is not None else None
        if current is None or reference is None:
            return [np.zeros(len(row)) for row in rows]
        return [(np.asarray(c) - np.asarray(r)) * np.asarray(row.mask) for c, r, row in
                zip(current, reference, rows, strict=True)]

    def after_round(self, finished: Sequence[Trajectory]) -> Sequence[tuple[Trajectory, BranchRequest]]:
        by_group: dict[str, list[Trajectory]] = defaultdict(list)
        for t in finished:
            if t.parent_trajectory_id is None and t.group_id not in self.handled:
                by_group[t.group_id].append(t)
        if not by_group:
            return []
        episodes = [t for group in sorted(by_group) for t in by_group[group]]
        rows = sequence_rows(episodes)
        deltas = self.deltas(episodes, rows)
        index = {id(t): i for i, t in enumerate(episodes)}
        requests: list[tuple[Trajectory, BranchRequest]] = []
        for group in sorted(by_group):
            self.handled.add(group)
            members = by_group[group]
            candidates: list[Any] = []
            places: dict[int, dict[int, tuple[int, int] | None]] = {}
            for t in members:
                i = index[id(t)]
                places[i] = self.points(t)
                valid = np.asarray(rows[i].mask, dtype=bool)
                entropy = np.zeros(len(rows[i]))
                entropy[list(places[i])] = token_entropies(t)
                omega = future_value(deltas[i], valid, self.gamma, self.clip)
                forkable = np.zeros(len(rows[i]), dtype=bool)
                for position, point in places[i].items():
                    forkable[position] = point is not None
                scores, strict = branching_scores(entropy, omega, valid, ~forkable)
                candidates += rollout_candidates(i, scores, strict, valid, ~forkable)
            chosen = select_branches(candidates, self.total - len(members))
            best = max((c.score for c in chosen), default=0.0)
            for c in chosen:
                point = places[c.episode][c.position]
                assert point is not None  # only forkable tokens are candidates
                turn, keep = point
                note = {"score": c.score, "strict": c.strict, "split": c.position, "max_score": best}
                requests.append((episodes[c.episode], BranchRequest(turn, 1, "branch", keep, note)))
        return requests

    def points(self, trajectory: Trajectory) -> dict[int, tuple[int, int] | None]:
        """Where forking after each action token resumes: (turn, tokens kept), or None where it cannot
        (a whitespace-only token, or the episode's very last token: nothing would be left to sample)."""
        text = self.context.token_text
        out: dict[int, tuple[int, int] | None] = {}
        last = len(trajectory.turns) - 1
        for position, turn, k in action_positions(trajectory):
            ids = trajectory.turns[turn].completion_ids
            if text is not None and not text(ids[k]).strip():
                out[position] = None
            elif k + 1 < len(ids):
                out[position] = (turn, k + 1)
            else:
                out[position] = (turn + 1, 0) if turn < last else None
        return out


class APPO(Algorithm):
    name = "appo"
    uses = RL_OPTIONS | APPO_OPTIONS
    preset: ClassVar[dict[str, Any]] = {"group_size": 16, "initial_rollouts": 8, "top_logprobs": 10,
                                        "clip_high": 0.28, "kl": "low_var_kl", "kl_coef": 0.001,
                                        "future_kl_weight": 1.0, "drop_dual_clipped": True}

    def branching(self, step: int, context: BranchContext) -> TreeStrategy:
        c = self.config
        return APPOBudget(c.group_size, c.initial_rollouts or c.group_size, context, c.omega_reference,
                          c.omega_gamma, c.omega_clip)

    def keeps_previous_weights(self) -> bool:
        return self.config.omega_reference == "post_update_policy"

    def rows_and_advantages(self, trajectories: Sequence[Trajectory], label_tokens: Callable[[str], list[int]]
                            ) -> tuple[list[Row], list[Any]]:
        index = {t.trajectory_id: i for i, t in enumerate(trajectories)}
        # a branch whose parent is not in the batch (failed, or dropped as stale) has no prefix to credit
        episodes = [t for t in trajectories if t.kind != "branch" or t.parent_trajectory_id in index]
        index = {t.trajectory_id: i for i, t in enumerate(episodes)}
        rows = sequence_rows(episodes)
        kinds = ["branch" if t.kind == "branch" else "init" for t in episodes]
        parents = [index.get(t.parent_trajectory_id or "") if k == "branch" else None
                   for t, k in zip(episodes, kinds, strict=True)]
        splits = [self.split_of(t) if k == "branch" else None for t, k in zip(episodes, kinds, strict=True)]
        outcomes = [t.reward for t in episodes]
        if self.config.reward_scale:
            outcomes = self.scaled_outcomes(episodes, rows, parents, splits)
        advantages = dual_group_advantage(outcomes, [t.group_id for t in episodes], kinds, parents, splits,
                                          [np.asarray(r.mask) for r in rows])
        keep = [i for i, k in enumerate(kinds) if k == "init"]
        return [rows[i] for i in keep], [advantages[i].tolist() for i in keep]

    @staticmethod
    def split_of(branch: Trajectory) -> int:
        """The split token's position in the parent's row: as recorded at selection, else the last token
        before the branch point (the same trained tokens get the credit either way)."""
        recorded = branch.extra.get("branch", {}).get("split")
        if recorded is not None:
            return int(recorded)
        return len(branch.full_prompt_ids(branch.branch_turn or 0)) + (branch.branch_token_offset or 0) - 1

    def scaled_outcomes(self, episodes: Sequence[Trajectory], rows: Sequence[Row], parents: Sequence[int | None],
                        splits: Sequence[int | None]) -> list[float]:
        """The released code's reward scale M on each initial row's token rewards (the outcome on its last
        trained token), summed back to an outcome (inert unless a split is that token, §4b)."""
        scales: dict[int, list[np.ndarray]] = defaultdict(list)
        for b, (parent, split) in enumerate(zip(parents, splits, strict=True)):
            if parent is None or split is None:
                continue
            note = episodes[b].extra.get("branch", {})
            scales[parent].append(reward_scale(len(rows[parent]), split, float(note.get("score", 0.0)),
                                               float(note.get("max_score", 0.0)), self.config.reward_scale_discount))
        out = []
        for i, t in enumerate(episodes):
            trained = [p for p, m in enumerate(rows[i].mask) if m]
            if i not in scales or not trained:
                out.append(t.reward)
                continue
            factor = float(np.mean([m[trained[-1]] for m in scales[i]]))
            out.append(t.reward * factor)
        return out

    def metrics(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        out = tree_metrics(trajectories)
        scores = [float(t.extra["branch"]["score"]) for t in trajectories if "score" in t.extra.get("branch", {})]
        if scores:
            strict = [bool(t.extra["branch"].get("strict")) for t in trajectories if "branch" in t.extra]
            out.update(branch_score_mean=float(np.mean(scores)), branch_score_max=float(np.max(scores)),
                       branch_score_min=float(np.min(scores)), branch_strict_share=float(np.mean(strict)))
        return out
