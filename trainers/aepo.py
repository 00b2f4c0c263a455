"""AEPO: Agentic Entropy-Balanced Policy Optimization (``shared/algorithms.md`` §3).

ARPO's tree rollout and GRPO update, changed in one place per phase. Rollout: **entropy pre-monitoring**
(``dynamic_rollouts``) runs a pilot episode per task and gives it ``m = clamp(⌊k·σ(β(H_root − H̄_tool))⌋ + 1,
1, k)`` global samples, more when the question itself is uncertain, more branches when tool feedback is;
and a **consecutive-branch penalty** shrinks the branch probability of a task that has branched in
several rounds in a row: ``P = clip(1 − α/f + w·ΔH, 0, 1)`` with ``f = max(0, 1 − 0.05·c)``, which is
ARPO's rule when ``c = 0``. Update: the **entropy-balanced clip** keeps the gradient of tokens clipped at
``1 + ε_h`` (rescaled to ``1 + ε_h``) and the **entropy-aware advantage** multiplies each token's advantage
by ``1 + 0.2·z(H)`` with H the current policy's entropy, normalised over the mini-batch (the released
code's per-micro-batch z depends on packing; ``entropy_norm_scope=micro`` reproduces it).

The released configs disable pre-monitoring, and the released trainer computes no entropy when the
entropy bonus is 0, so its entropy-aware advantage silently does nothing (§3h);
``compat_aepo_entropy_noop=true`` reproduces that. The pilot's ``H_root`` is the entropy of its first
segment (ARPO's proxy reads only the first 20 tokens, so this is the 50-token probe's value up to sampling
noise) [RECONSTRUCTED]. The counter ``c`` advances per boundary decision of the task's episodes, in the
order they finish (the released code advances it per generation round).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, ClassVar

import numpy as np

from agentenv.trajectory import Trajectory

from .arpo import ARPO, ARPOBudget

AEPO_OPTIONS = frozenset({"dynamic_rollouts", "pre_monitor_beta", "branch_penalty", "clip_mode",
                          "entropy_advantage", "entropy_norm_scope", "compat_aepo_entropy_noop"})


def pre_monitored_roots(k: int, h_root: float, h_tool: float, beta: float = 0.5) -> int:
    """Global samples out of ``k`` after pre-monitoring (the released code's floor-plus-one form)."""
    return int(min(max(math.floor(k / (1 + math.exp(-beta * (h_root - h_tool)))) + 1, 1), k))


def penalised_probability(branch_probability: float, entropy_weight: float, delta_h: float, streak: int,
                          penalty: float = 0.05) -> float:
    """P(branch) after ``streak`` consecutive branching rounds (0 once the penalty factor reaches 0)."""
    factor = max(0.0, 1.0 - penalty * streak)
    if factor == 0:
        return 0.0
    return float(np.clip(1 - branch_probability / factor + entropy_weight * delta_h, 0.0, 1.0))


class AEPOBudget(ARPOBudget):
    """ARPO's budget with the consecutive-branch penalty and, optionally, a pilot that sizes the roots."""

    def __init__(self, *args: Any, penalty: float = 0.05, dynamic: bool = False, pre_monitor_beta: float = 0.5,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.penalty, self.pre_monitor_beta = penalty, pre_monitor_beta
        self.pilot = dynamic  # type: ignore[misc]  # the class default is False
        self.streak: dict[str, int] = defaultdict(int)

    def roots_after_pilot(self, pilot: Trajectory) -> int:
        h_root = self.probe.segment(pilot.turns[0])
        segments = [self.probe.segment(turn) for turn in pilot.turns]
        h_tool = sum(s.value for s in segments) / len(segments)
        m = pre_monitored_roots(self.total, h_root.value, h_tool, self.pre_monitor_beta)
        pilot.extra["aepo"] = {"h_root": h_root.value, "h_tool": h_tool, "roots": m, "entropy_kind": h_root.kind}
        return m

    def decide(self, trajectory: Trajectory, boundary: int, delta_h: float) -> tuple[int, float]:
        """The released code's draw: ``u ~ U(0,1)``; branch iff ``clip((u + w·ΔH)·f, 0, 1) ≥ α``. The task's
        streak grows when the decision forks and resets when it does not."""
        streak = self.streak[trajectory.group_id]
        factor = max(0.0, 1.0 - self.penalty * streak)
        rng = self.coin(trajectory, boundary)
        forks = sum(float(np.clip((rng.random() + self.beta * delta_h) * factor, 0.0, 1.0)) >= self.alpha
                    for _ in range(self.copies)) if factor > 0 else 0
        self.streak[trajectory.group_id] = streak + 1 if forks else 0
        return int(forks), penalised_probability(self.alpha, self.beta, delta_h, streak, self.penalty)


class AEPO(ARPO):
    name = "aepo"
    uses = ARPO.uses | AEPO_OPTIONS
    preset: ClassVar[dict[str, Any]] = {**ARPO.preset, "clip_mode": "entropy_balanced", "entropy_advantage": 0.2,
                                        "branch_penalty": 0.05}

    def make_budget(self, *args: Any, **kwargs: Any) -> ARPOBudget:
        c = self.config
        return AEPOBudget(*args, penalty=c.branch_penalty, dynamic=c.dynamic_rollouts,
                          pre_monitor_beta=c.pre_monitor_beta, **kwargs)
