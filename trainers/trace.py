"""TRACE: Tree Rollout Allocation for Contrastive Exploration (``shared/algorithms.md`` §5) [RECONSTRUCTED].

Only the abstract is sourced; the rule below is the specification's reconstruction, implemented as
written. A group whose outcomes are all equal gives GRPO no signal, so TRACE spends a fixed sampling
budget where outcomes are most likely to be **mixed**. A shared predictor p̂(h) of the chance of success
from a prefix history h (the prompt alone, or the prompt and the first turns of a rollout) scores every
anchor, and the budget goes, one sample at a time, to the anchor whose next sample most raises the
probability that its sibling group is mixed (``C(n, p) = 1 − pⁿ − (1−p)ⁿ``, greedy, ties to shallower
anchors). Phase R spends ``root_fraction`` of the budget on prompt roots (at least ``min_roots`` each);
phase P, once those rollouts have finished, spends the rest on continuations from turn prefixes of them
(every turn boundary but the final answer). Siblings under the same anchor then form the groups of the
advantage: a token takes the advantage of the deepest anchor group (of two or more) it was generated
under; shared prefix tokens are trained once per sequence (soft attribution).

How the phases map onto the collector: every task starts with ``min_roots`` roots; the rest of phase R
is a post-hoc round of fresh samples from the prompt (forks at turn 0, so the prompt's text, known only
after a reset, is what the predictor reads); phase P is the next round. The predictor learns after each
step from every (prefix, final reward of a rollout through it) pair, and its predictions at allocation
are recorded on each child (``extra["branch"]["p"]``) for the calibration metrics.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from agentenv.hooks import BranchRequest, TreeStrategy
from agentenv.messages import content_text
from agentenv.trajectory import Trajectory

from .algorithm import RL_OPTIONS, Algorithm, BranchContext
from .allocation import Anchor, greedy_allocate
from .predictor import BetaBernoulliPredictor, LearnedPredictor, Prefix, SuccessPredictor, calibration
from .rows import Row, sequence_rows
from .tree_credit import tree_group_advantage
from .trees import tree_metrics

TRACE_OPTIONS = frozenset({"root_fraction", "min_roots", "contrast", "predictor", "norm"})


def prefix_of(trajectory: Trajectory, turns: int) -> Prefix:
    """The history before turn ``turns``: the task (the first observation) and each earlier turn's action
    and the env's answer, as text."""
    def text(messages: list[dict[str, Any]]) -> str:
        return "\n".join(content_text(m.get("content", "")) for m in messages)

    root = text(trajectory.turns[0].observation) if trajectory.turns else trajectory.task_id
    return Prefix(root, tuple(f"{t.action}\n{text(t.feedback)}" for t in trajectory.turns[:turns]))


def origin(trajectory: Trajectory, turn: int, by_id: dict[str, Trajectory]) -> str:
    """The episode that generated ``trajectory``'s history before ``turn`` (a fork copies its parent's)."""
    node = trajectory
    while node.parent_trajectory_id in by_id and node.branch_turn is not None and turn <= node.branch_turn:
        node = by_id[node.parent_trajectory_id]
    return node.trajectory_id


class TRACEBudget(TreeStrategy):
    """The two-phase greedy allocation of a step's ``n_tasks × per_task`` samples."""

    post_hoc = True

    def __init__(self, n_tasks: int, per_task: int, predictor: SuccessPredictor, root_fraction: float = 0.5,
                 min_roots: int = 2, objective: str = "mixed_prob", seed: int = 0):
        if not 0 < root_fraction <= 1:
            raise ValueError(f"root_fraction must be in (0, 1], got {root_fraction}")
        if min_roots < 1 or min_roots > per_task:
            raise ValueError(f"min_roots must be in [1, group_size={per_task}], got {min_roots}")
        self.total = n_tasks * per_task
        self.root_budget = max(n_tasks * min_roots, round(root_fraction * self.total))
        self.min_roots, self.predictor, self.objective, self.seed = min_roots, predictor, objective, seed
        self.allocated: dict[int, int] = {}
        self.phase = 0

    def initial(self, task_index: int) -> int:
        self.allocated[task_index] = self.min_roots
        return self.min_roots

    def expected(self, task_index: int) -> int | None:
        return self.allocated.get(task_index)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.phase])

    def after_round(self, finished: Sequence[Trajectory]) -> Sequence[tuple[Trajectory, BranchRequest]]:
        spent = sum(self.allocated.values())
        if self.phase == 0:
            self.phase = 1
            requests = self.allocate_roots(finished, self.root_budget - spent)
            if requests:
                return requests
            spent = sum(self.allocated.values())
        if self.phase == 1:
            self.phase = 2
            requests = self.allocate_prefixes(finished, self.total - spent)
            return requests or self.allocate_roots(finished, self.total - spent)
        return []

    def _grant(self, parent: Trajectory, turn: int, count: int, p: float,
               kind: str) -> tuple[Trajectory, BranchRequest]:
        self.allocated[parent.task_index] = self.allocated.get(parent.task_index, 0) + count
        return parent, BranchRequest(turn, count, kind, note={"p": p, "anchor_turn": turn})

    def allocate_roots(self, finished: Sequence[Trajectory], budget: int) -> list[tuple[Trajectory, BranchRequest]]:
        """More samples from the prompts whose outcomes are likeliest to come out mixed."""
        roots: dict[str, list[Trajectory]] = defaultdict(list)
        for t in finished:
            roots[t.group_id].append(t)
        groups = sorted(roots)
        if budget <= 0 or not groups:
            return []
        firsts = [min(roots[g], key=lambda t: t.trajectory_id) for g in groups]
        p = self.predictor.predict([prefix_of(t, 0) for t in firsts])
        anchors = [Anchor(g, len(roots[g]), float(pi), 0) for g, pi in zip(groups, p, strict=True)]
        counts = greedy_allocate(anchors, budget, self.rng(), objective=self.objective)  # type: ignore[arg-type]
        return [self._grant(t, 0, k, float(pi), "init") for t, k, pi in zip(firsts, counts, p, strict=True) if k]

    def allocate_prefixes(self, finished: Sequence[Trajectory], budget: int) -> list[tuple[Trajectory, BranchRequest]]:
        """Continuations from the turn prefixes (all but the final answer) of the rollouts so far."""
        if budget <= 0:
            return []
        by_id = {t.trajectory_id: t for t in finished}
        below: dict[tuple[str, int], int] = defaultdict(int)
        for t in finished:
            for j in range(1, len(t.turns)):
                below[(origin(t, j, by_id), j)] += 1
        owners = sorted((key for key in below if key[0] in by_id), key=lambda k: (k[0], k[1]))
        if not owners:
            return []
        prefixes = [prefix_of(by_id[tid], j) for tid, j in owners]
        p = self.predictor.predict(prefixes)
        anchors = [Anchor(key, below[key], float(pi), j) for key, pi, (_, j) in zip(owners, p, owners, strict=True)]
        counts = greedy_allocate(anchors, budget, self.rng(), objective=self.objective)  # type: ignore[arg-type]
        return [self._grant(by_id[tid], j, k, float(pi), "branch")
                for (tid, j), k, pi in zip(owners, counts, p, strict=True) if k]


def predictor_pairs(trajectories: Sequence[Trajectory]) -> list[tuple[Prefix, float]]:
    """(prefix, final reward) for every prefix of every rollout: each leaf counts under all its anchors."""
    return [(prefix_of(t, j), float(min(max(t.reward, 0.0), 1.0)))
            for t in trajectories for j in range(0, max(len(t.turns), 1))]


class LockedPredictor:
    """A predictor shared by the collection running ahead (allocating) and the update (learning) of the
    asynchronous loop: one at a time."""

    def __init__(self, inner: SuccessPredictor):
        self.inner, self.lock = inner, threading.Lock()

    def predict(self, prefixes: Sequence[Prefix]) -> np.ndarray:
        with self.lock:
            return self.inner.predict(prefixes)

    def update(self, pairs: Sequence[tuple[Prefix, float]]) -> dict[str, float]:
        with self.lock:
            return self.inner.update(pairs)

    def state_dict(self) -> dict[str, Any]:
        with self.lock:
            return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.inner.load_state_dict(state)


class TRACE(Algorithm):
    name = "trace"
    uses = RL_OPTIONS | TRACE_OPTIONS
    preset: ClassVar[dict[str, Any]] = {"group_size": 8, "root_fraction": 0.5, "min_roots": 2}

    def __init__(self, config: Any):
        super().__init__(config)
        self.predictor = LockedPredictor(BetaBernoulliPredictor() if config.predictor == "beta"
                                         else LearnedPredictor(seed=config.seed))

    def branching(self, step: int, context: BranchContext) -> TreeStrategy:
        c = self.config
        return TRACEBudget(c.tasks_per_step, c.group_size, self.predictor, c.root_fraction, c.min_roots, c.contrast,
                           seed=c.seed * 1_000_003 + step)

    def restore(self, steps: Sequence[Sequence[Trajectory]], label_tokens: Callable[[str], list[int]]) -> None:
        """The predictor of a resumed run: trained again on the stored steps, in order."""
        for episodes in steps:
            self.predictor.update(predictor_pairs([t for t in episodes if t.status == "ok"]))

    def rows_and_advantages(self, trajectories: Sequence[Trajectory], label_tokens: Callable[[str], list[int]]
                            ) -> tuple[list[Row], list[Any]]:
        by_id = {t.trajectory_id: t for t in trajectories}
        rows = sequence_rows(trajectories)
        anchors = []
        for t in trajectories:
            starts = [len(prompt) for _, prompt in t.full_prompts()]
            anchors.append([(f"{origin(t, j, by_id)}@{j}", starts[j]) for j in range(1, len(t.turns))])
        advantages = tree_group_advantage([t.reward for t in trajectories], [t.group_id for t in trajectories],
                                          anchors, [len(r) for r in rows], norm=self.config.norm)  # type: ignore[arg-type]
        self.last_update = self.predictor.update(predictor_pairs(trajectories))
        return rows, [a.tolist() for a in advantages]

    def metrics(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        out = tree_metrics(trajectories)
        judged = [(float(t.extra["branch"]["p"]), float(t.success)) for t in trajectories
                  if t.status == "ok" and "p" in t.extra.get("branch", {})]
        if judged:
            p, y = (np.asarray(x) for x in zip(*judged, strict=True))
            scores = calibration(p, y)
            out.update(predictor_brier=scores["brier"], predictor_ece=scores["ece"],
                       predicted_success_mean=float(p.mean()))
        return out
