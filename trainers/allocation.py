"""TRACE's budget allocation over anchors (``shared/algorithms.md`` §5(b) and §5(d)).

**[RECONSTRUCTED]**: TRACE's paper was read as an abstract only; the contrast objective, its marginal gain and
the greedy allocator below are the spec's reconstruction, not the authors' code.

An anchor is a prompt root or a turn prefix of an existing rollout. A group of sibling outcomes gives a GRPO
signal only if it is mixed (some successes, some failures), so each extra continuation goes to the anchor
whose predicted success ``p`` makes one more sample most likely to add contrast. Under ``mixed_prob`` the
gain is non-increasing in ``n`` (for ``n >= 1``), so the greedy allocation is optimal for this separable
objective.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Objective = Literal["mixed_prob", "pair_count"]
# gains closer than this are ties (so float noise does not decide between equal anchors)
TIE_TOL = 1e-12


def _check(n: int, p: float) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")


def contrast(n: int, p: float, objective: Objective = "mixed_prob") -> float:
    """The contrast value of ``n`` i.i.d. Bernoulli(``p``) sibling outcomes.

    ``mixed_prob``: ``1 - p^n - (1-p)^n``, the probability that the group is mixed (0 for ``n = 0``: no
    outcomes are not a mixed group, though the formula would give -1). ``pair_count``: ``n(n-1)p(1-p)``, the
    expected number of (success, failure) pairs.
    """
    _check(n, p)
    if objective == "mixed_prob":
        return 0.0 if n == 0 else float(1.0 - p**n - (1.0 - p) ** n)
    if objective == "pair_count":
        return float(n * (n - 1) * p * (1.0 - p))
    raise ValueError(f"unknown contrast objective {objective!r}")


def marginal_gain(n: int, p: float, objective: Objective = "mixed_prob") -> float:
    """``C(n+1, p) - C(n, p)``: what one more continuation adds.

    ``mixed_prob``: ``p^n(1-p) + (1-p)^n p`` for ``n >= 1`` (non-increasing in ``n``), 0 at ``n = 0`` (one
    outcome cannot be mixed). ``pair_count``: ``2 n p(1-p)``, which GROWS with ``n``, so the greedy
    allocator concentrates that objective's budget on the best anchors instead of spreading it.
    """
    return contrast(n + 1, p, objective) - contrast(n, p, objective)


def _gains(n: np.ndarray, p: np.ndarray, objective: Objective) -> np.ndarray:
    """Vectorised :func:`marginal_gain` (inputs already checked)."""
    if objective == "mixed_prob":
        gain = p**n * (1.0 - p) + (1.0 - p) ** n * p
        return np.where(n == 0, 0.0, gain)
    if objective == "pair_count":
        return 2.0 * n * p * (1.0 - p)
    raise ValueError(f"unknown contrast objective {objective!r}")


@dataclass(frozen=True)
class Anchor:
    """A root or turn prefix that can receive continuations.

    ``n``: terminal outcomes already observed below it (>= 0 for a root, >= 1 for a prefix, whose own
    rollout is one); ``p``: the predicted success probability; ``depth``: 0 for a root, the number of turns
    of a prefix (ties prefer shallower anchors).
    """

    key: Hashable
    n: int
    p: float
    depth: int = 0

    def __post_init__(self) -> None:
        _check(self.n, self.p)
        if self.depth < 0:
            raise ValueError(f"anchor {self.key!r}: depth must be >= 0, got {self.depth}")
        if self.depth > 0 and self.n < 1:
            raise ValueError(f"anchor {self.key!r}: a turn prefix has at least its own rollout below it (n >= 1)")


def greedy_allocate(anchors: Sequence[Anchor], budget: int, rng: np.random.Generator, floor: int = 0,
                    objective: Objective = "mixed_prob") -> list[int]:
    """The extra samples for each anchor, summing to ``budget`` exactly.

    Every anchor first gets ``floor`` samples (TRACE's roots use ``n_min = 2``; floors that alone exceed the
    budget are an error). Then, one unit at a time, the anchor with the largest ``marginal_gain(n + given, p)``
    gets the next sample; ties go to the shallower anchor, then to a uniform draw from ``rng``.

    When every gain is 0 (every ``p`` is 0 or 1), the rest of the budget is still spent by the same rule
    (all tie at 0: shallower first, then at random): the caller needs exactly ``budget`` samples (equal
    sampling cost with the baseline), and a zero-gain sample is better spent than dropped. So anchors with
    ``p`` in {0, 1} get nothing above the floor only while some other anchor still has a positive gain.
    Note that an anchor at ``n + floor = 0`` gains 0 from its first sample (``mixed_prob``): give roots a
    floor of 2.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if floor < 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    k = len(anchors)
    if k == 0:
        if budget:
            raise ValueError(f"a budget of {budget} samples cannot be spent on no anchors")
        return []
    if floor * k > budget:
        raise ValueError(f"the floors alone ({k} anchors x {floor} = {floor * k}) exceed the budget of {budget}")
    alloc = np.full(k, floor, dtype=np.int64)
    n = np.asarray([a.n for a in anchors], dtype=np.int64)
    p = np.asarray([a.p for a in anchors], dtype=np.float64)
    depth = np.asarray([a.depth for a in anchors], dtype=np.int64)
    gains = _gains(n + alloc, p, objective)
    for _ in range(budget - floor * k):
        best = np.flatnonzero(gains >= gains.max() - TIE_TOL)
        if len(best) > 1:
            best = best[depth[best] == depth[best].min()]
        pick = int(best[0] if len(best) == 1 else best[rng.integers(len(best))])
        alloc[pick] += 1
        gains[pick] = _gains(n[pick : pick + 1] + alloc[pick], p[pick : pick + 1], objective)[0]
    return [int(a) for a in alloc]
