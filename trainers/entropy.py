"""The entropy of a generated segment, as ARPO and AEPO measure it (``shared/algorithms.md`` §2b, §9.7).

ARPO's released code scores a segment (one turn's action) by the entropy of its first ``window`` tokens
computed from the sampler's top-10 log-probs, summed (not averaged) and divided by ``log |V|``. When the
sampler recorded no top-k log-probs but exact per-token entropies (agentenv's embedded policy always
records them), the same sum over the exact entropies is used instead. The two are never mixed: every value
carries its kind, and comparing values of different kinds is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agentenv.trajectory import Turn

Kind = Literal["topk", "exact"]


@dataclass(frozen=True)
class SegmentEntropy:
    value: float
    kind: Kind

    def __sub__(self, other: SegmentEntropy) -> float:
        if self.kind != other.kind:
            raise ValueError(f"cannot compare a {self.kind} entropy with a {other.kind} one: the top-k proxy and "
                             "the exact entropy are different quantities")
        return self.value - other.value


def topk_entropy(top_logprobs: Sequence[Sequence[float]], vocab_size: int, window: int = 20) -> float:
    """``Σ_{j < window} Σ_{c ∈ top-k(j)} −p_c log p_c / log |V|`` (ARPO's proxy)."""
    total = 0.0
    for row in top_logprobs[:window]:
        for lp in row:
            if math.isfinite(lp):
                total -= math.exp(lp) * lp
    return total / math.log(vocab_size)


@dataclass(frozen=True)
class EntropyProbe:
    """Scores turns' actions; ``prefer`` picks the top-k proxy (ARPO's) or the exact entropy when a turn
    recorded both."""

    vocab_size: int
    window: int = 20
    prefer: Kind = "topk"

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.window < 1:
            raise ValueError(f"an entropy probe needs vocab_size >= 2 and window >= 1, got {self}")

    def segment(self, turn: Turn) -> SegmentEntropy:
        has_topk = bool(turn.top_logprobs)
        has_exact = bool(turn.entropies) and turn.entropy_kind == "exact"
        if has_topk and (self.prefer == "topk" or not has_exact):
            return SegmentEntropy(topk_entropy(turn.top_logprobs, self.vocab_size, self.window), "topk")
        if has_exact:
            return SegmentEntropy(sum(turn.entropies[: self.window]) / math.log(self.vocab_size), "exact")
        raise ValueError(f"turn {turn.index} recorded neither top-k log-probs nor exact entropies; sample with "
                         "top_logprobs > 0 (ARPO uses 10) to measure its entropy")
