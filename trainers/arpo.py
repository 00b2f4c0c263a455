"""ARPO: Agentic Reinforced Policy Optimization (``shared/algorithms.md`` §2).

Entropy rises right after a model reads tool feedback, so ARPO spends part of each task's budget there:
``N`` global samples start from the prompt, and at every turn boundary after tool feedback each episode
forks ``Z − 1`` copies, each with probability ``clip(α + β·ΔH, 0, 1)``, where ΔH is the entropy of the
segment generated after the feedback minus the episode's initial entropy (§2b, the released code's
Bernoulli rule). Forks stop when the group holds ``M`` episodes. Once a group has nothing running, a fresh
global sample takes the next free slot and may fork into the slots after it (``refill=one``, the released
loop's one refill per iteration; ``all`` starts every refill at once: more in flight, none of them forks).
The update is GRPO over all ``M`` sequences ("soft" attribution: a shared prefix token is trained once per
sequence that contains it, with the same ratio, so it gets the mean of their advantages);
``attribution=hard`` assigns that mean explicitly and counts the token once.

Where the code and the paper differ (§2h), the corrected behaviour is the default: the initial entropy is
per episode and per collection, inherited by forks (``branch_inherits_h_init``), and the decision after a
tool result uses the first tokens generated after it (``entropy_timing=paper_probe``); ``code_lagged``
uses the segment before it, one round behind, as the released code does.

How the collector realises the rule: the decisions are taken when an episode finishes, from its recorded
segments, boundary by boundary, each with its own seeded coin (so a resumed collection takes the same
ones); the ``paper_probe`` tokens are the parent's own continuation, and each fork re-samples from the
boundary. Forks are granted first come, first served while the group has slots, as the released code
grants them in loop order.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from agentenv.hooks import BranchRequest, TreeStrategy
from agentenv.trajectory import Trajectory

from .advantages import grpo
from .algorithm import RL_OPTIONS, Algorithm, BranchContext
from .entropy import EntropyProbe, SegmentEntropy
from .grouping import StepTable
from .rows import Row, sequence_rows
from .tree_credit import tree_attribution
from .trees import shared_prefix_lengths, tree_metrics

#: the options every ARPO-style tree rollout reads
TREE_OPTIONS = frozenset({"initial_rollouts", "beam_size", "branch_probability", "entropy_weight", "entropy_window",
                          "entropy_timing", "branch_inherits_h_init", "top_logprobs", "attribution", "norm",
                          "refill"})


class ARPOBudget(TreeStrategy):
    """ARPO's rollout budget: ``initial`` global samples, entropy-triggered forks, ``total`` per group."""

    def __init__(self, total: int, initial: int, probe: EntropyProbe, copies: int = 1, alpha: float = 0.5,
                 beta: float = 0.2, timing: str = "paper_probe", inherit_h_init: bool = True, seed: int = 0,
                 refill: str = "one"):
        if not 1 <= initial <= total:
            raise ValueError(f"ARPO needs 1 <= initial_rollouts ({initial}) <= group_size ({total})")
        if copies < 0:
            raise ValueError(f"beam_size must be >= 1, got {copies + 1}")
        if timing not in ("paper_probe", "code_lagged"):
            raise ValueError(f"entropy_timing must be paper_probe or code_lagged, got {timing!r}")
        if refill not in ("one", "all"):
            raise ValueError(f"refill must be one or all, got {refill!r}")
        self.refill_one_at_a_time = refill == "one"
        self.total, self.first, self.probe, self.copies = total, initial, probe, copies
        self.alpha, self.beta, self.timing, self.inherit_h_init, self.seed = alpha, beta, timing, inherit_h_init, seed

    def budget(self, task_index: int) -> int:
        return self.total

    def initial(self, task_index: int) -> int:
        return self.first

    # ----- the rule ---------------------------------------------------------------------------------------
    def h_init(self, trajectory: Trajectory) -> SegmentEntropy:
        """The episode's initial entropy: its first segment's (a fork's is its root's, which it shares,
        unless ``inherit_h_init`` is off: then the first segment it generated itself)."""
        first = 0 if self.inherit_h_init or trajectory.branch_turn is None else trajectory.branch_turn
        return self.probe.segment(trajectory.turns[min(first, len(trajectory.turns) - 1)])

    def boundaries(self, trajectory: Trajectory) -> list[int]:
        """Turns that start right after tool feedback: the previous action was a valid tool call or command
        and the env answered without ending the episode. A fork's boundaries begin after its branch point
        (the ones before it are its parent's)."""
        start = (trajectory.branch_turn or 0) + 1
        return [j for j in range(max(start, 1), len(trajectory.turns)) if trajectory.turns[j - 1].action_valid]

    def entropy_change(self, trajectory: Trajectory, boundary: int, h_init: SegmentEntropy) -> float:
        segment = boundary if self.timing == "paper_probe" else boundary - 1
        return self.probe.segment(trajectory.turns[segment]) - h_init

    def coin(self, trajectory: Trajectory, boundary: int) -> np.random.Generator:
        """One generator per (run seed, episode, boundary): the same episode always makes the same draws."""
        return np.random.default_rng([self.seed, zlib.crc32(trajectory.trajectory_id.encode()), boundary])

    def branch_probability(self, delta_h: float, trajectory: Trajectory) -> float:
        return float(np.clip(self.alpha + self.beta * delta_h, 0.0, 1.0))

    def decide(self, trajectory: Trajectory, boundary: int, delta_h: float) -> tuple[int, float]:
        """How many of the ``Z − 1`` copies fork here (each an independent coin), and their probability."""
        p = self.branch_probability(delta_h, trajectory)
        rng = self.coin(trajectory, boundary)
        return int(sum(rng.random() < p for _ in range(self.copies))), p

    def branches(self, trajectory: Trajectory) -> Sequence[BranchRequest]:
        boundaries = self.boundaries(trajectory)
        if not boundaries or not self.copies:
            return []
        h_init = self.h_init(trajectory)
        requests, record = [], []
        for j in boundaries:
            delta = self.entropy_change(trajectory, j, h_init)
            n, p = self.decide(trajectory, j, delta)
            record.append({"turn": j, "h": delta + h_init.value, "delta_h": delta, "p": p, "forks": n})
            if n:
                requests.append(BranchRequest(turn=j, count=n))
        trajectory.extra["arpo"] = {"h_init": h_init.value, "entropy_kind": h_init.kind, "boundaries": record}
        return requests


class ARPO(Algorithm):
    name = "arpo"
    uses = RL_OPTIONS | TREE_OPTIONS
    preset: ClassVar[dict[str, Any]] = {"group_size": 16, "initial_rollouts": 8, "beam_size": 2,
                                        "branch_probability": 0.5, "entropy_weight": 0.2, "top_logprobs": 10}

    def branching(self, step: int, context: BranchContext) -> TreeStrategy:
        c = self.config
        return self.make_budget(c.group_size, c.initial_rollouts or c.group_size, self.probe(context.vocab_size),
                                c.beam_size - 1, c.branch_probability, c.entropy_weight, c.entropy_timing,
                                c.branch_inherits_h_init, seed=c.seed * 1_000_003 + step, refill=c.refill)

    def make_budget(self, *args: Any, **kwargs: Any) -> ARPOBudget:
        return ARPOBudget(*args, **kwargs)

    def probe(self, vocab_size: int) -> EntropyProbe:
        return EntropyProbe(vocab_size, self.config.entropy_window, "topk" if self.config.top_logprobs else "exact")

    def rows_and_advantages(self, trajectories: Sequence[Trajectory], label_tokens: Callable[[str], list[int]]
                            ) -> tuple[list[Row], list[Any]]:
        rows = sequence_rows(trajectories)
        table = StepTable.from_episodes([{"group": t.group_id, "outcome": t.reward, "anchors": [None]}
                                         for t in trajectories])
        per_episode = grpo(table, norm=self.config.norm).tolist()
        if self.config.attribution == "soft":
            return rows, per_episode
        parents, shared = shared_prefix_lengths(trajectories, rows)
        advantages, weights = tree_attribution(per_episode, parents, shared, [len(r) for r in rows], "hard")
        for row, weight in zip(rows, weights, strict=True):  # a shared token is trained once, in one row
            row.mask = [int(m and w) for m, w in zip(row.mask, weight.tolist(), strict=True)]
        return rows, [a.tolist() for a in advantages]

    def metrics(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        out = tree_metrics(trajectories)
        boundaries = [b for t in trajectories for b in t.extra.get("arpo", {}).get("boundaries", [])]
        if boundaries:
            out.update(boundary_entropy=float(np.mean([b["h"] for b in boundaries])),
                       boundary_entropy_change=float(np.mean([b["delta_h"] for b in boundaries])),
                       branch_probability_mean=float(np.mean([b["p"] for b in boundaries])))
        roots = [t.extra["aepo"]["roots"] for t in trajectories if t.kind == "pilot" and "aepo" in t.extra]
        if roots:
            out["pre_monitored_roots_mean"] = float(np.mean(roots))
        return out
