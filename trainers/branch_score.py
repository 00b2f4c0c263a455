"""APPO's branching score and the choice of where to fork (``shared/algorithms.md`` §4(b), §4(d), §4(h)).

APPO forks new rollouts at tokens that are both uncertain (high entropy) and followed by tokens the current
policy likes more than the sampler did (high "future value" Ω). Each is z-scored over the valid tokens of one
rollout and the product is the Branching Score ``BS_t = zH_t · zΩ_t``; only tokens where both z-scores are
positive are strict candidates. Per prompt, the top-B candidates across its initial rollouts become branch
points. The optional reward scale M of the released code is here too (§4(b)), default off in the algorithm.

Everything is pure numpy on plain arrays, one rollout at a time; nothing here knows about Trajectory objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-6
OMEGA_LOG_CLAMP = 20.0  # the released code clamps the discounted log-ratio sum to [-20, 20] before exp

log = logging.getLogger("agentenv.train")


# ----- the two factors ------------------------------------------------------------------------------------
def token_entropy_proxy(top_logprobs: Sequence[Sequence[float]]) -> np.ndarray:
    """Per token ``H_t = -Σ_{c in top-k} p_c log p_c`` from the sampler's top-k log-probs.

    This is APPO's ``rollout_entropys``: the sampler only returns the top-k, so the mass outside them is
    ignored (no renormalisation), which makes it a lower bound on the true entropy. A token with no top-k
    entries gets 0; ``-inf`` log-probs contribute 0 (``p log p -> 0`` as ``p -> 0``).
    """
    out = np.zeros(len(top_logprobs), dtype=np.float64)
    for t, lps in enumerate(top_logprobs):
        lp = np.asarray(lps, dtype=np.float64)
        lp = lp[np.isfinite(lp)]
        if lp.size:
            out[t] = float(-(np.exp(lp) * lp).sum())
    return out


def future_value(delta: np.ndarray, mask: np.ndarray, gamma: float = 1.0, clip: float = 0.2) -> np.ndarray:
    """Ω_t = clip(exp(clamp(Σ_{k≥t} γ^{k-t} Δ_k m_k, -20, 20)), 1-clip, 1+clip) for one rollout.

    ``delta`` is ``log π_cur(a_k) - log π_rollout(a_k)`` per token and ``mask`` its validity (1-D, same
    length). The suffix sum runs backwards once, so it is O(T). Masked tokens add nothing to the sum but still
    get an Ω (the caller ignores it through ``valid``). With Δ ≡ 0, Ω ≡ 1 (§4(f).2, §4(h)).
    """
    delta = np.asarray(delta, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.float64)
    if delta.ndim != 1 or delta.shape != mask.shape:
        raise ValueError(f"delta and mask must be 1-D of equal length, got {delta.shape} and {mask.shape}")
    weighted = delta * mask
    suffix = np.zeros_like(weighted)
    running = 0.0
    for t in range(len(weighted) - 1, -1, -1):
        running = weighted[t] + gamma * running
        suffix[t] = running
    return np.clip(np.exp(np.clip(suffix, -OMEGA_LOG_CLAMP, OMEGA_LOG_CLAMP)), 1.0 - clip, 1.0 + clip)


def zscore_pop(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """z-score over the valid entries with the POPULATION std; invalid entries get 0.

    A std below 1e-6 uses 1e-6 as the denominator (not ``std + eps``), as the released code does, so a
    constant input gives exactly 0 and the §4(f).1 numbers come out exact. No valid entry: all 0.
    """
    x = np.asarray(x, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if x.shape != valid.shape:
        raise ValueError(f"x and valid must have the same shape, got {x.shape} and {valid.shape}")
    out = np.zeros_like(x)
    if not valid.any():
        return out
    v = x[valid]
    out[valid] = (v - v.mean()) / max(float(v.std()), EPS)
    return out


def branching_scores(entropy: np.ndarray, omega: np.ndarray, valid: np.ndarray,
                     trivial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``BS_t = zH_t · zΩ_t`` for one rollout, with z over its valid tokens; returns ``(scores, strict)``.

    ``strict = zH > 0 & zΩ > 0 & BS > 0 & valid & ~trivial``: a token with both z-scores negative has a
    positive product but is neither uncertain nor valuable, so it is not strict (§4(f).1). ``trivial`` marks
    whitespace-only tokens (the caller decides from the token text). Invalid tokens score 0. The non-strict
    candidates are ``valid & ~trivial`` (see :func:`rollout_candidates`).
    """
    valid = np.asarray(valid, dtype=bool)
    trivial = np.asarray(trivial, dtype=bool)
    if valid.shape != trivial.shape:
        raise ValueError(f"valid and trivial must have the same shape, got {valid.shape} and {trivial.shape}")
    z_h = zscore_pop(entropy, valid)
    z_o = zscore_pop(omega, valid)
    scores = z_h * z_o
    strict = (z_h > 0) & (z_o > 0) & (scores > 0) & valid & ~trivial
    return scores, strict


# ----- selection ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One possible branch point: token ``position`` (row coordinates) of initial rollout ``episode``."""

    score: float
    episode: int
    position: int
    strict: bool


def rollout_candidates(episode: int, scores: np.ndarray, strict: np.ndarray, valid: np.ndarray,
                       trivial: np.ndarray) -> list[Candidate]:
    """The candidates of one rollout, in token order: every ``valid & ~trivial`` token."""
    keep = np.asarray(valid, dtype=bool) & ~np.asarray(trivial, dtype=bool)
    strict = np.asarray(strict, dtype=bool)
    return [Candidate(float(scores[t]), episode, int(t), bool(strict[t])) for t in np.flatnonzero(keep)]


def select_branches(candidates: Sequence[Candidate], budget: int) -> list[Candidate]:
    """The ``budget`` branch points of one prompt (§4(b)): strict candidates first, best score first.

    If there are too few strict ones, fill from the non-strict candidates by score; if still short, cycle
    through the ones already selected (so the same point is forked more than once) to reach exactly
    ``budget``. Ties keep the candidates' given order (stable sort), so with Δ ≡ 0 (all scores 0, §4(f).2)
    the choice is batch order. With no candidates at all this returns ``[]`` and the caller decides (for
    example, fork nothing, or re-sample whole rollouts). A warning is logged when no strict candidate exists,
    since then the score carries no information (the degenerate case of §4(h)).
    """
    if budget <= 0:
        return []
    if not any(c.strict for c in candidates):
        log.warning("APPO branch selection: no strict candidate among %d (branching score degenerate, e.g. "
                    "Δ ≡ 0); falling back to score order", len(candidates))
    if not candidates:
        return []
    strict = sorted((c for c in candidates if c.strict), key=lambda c: -c.score)
    loose = sorted((c for c in candidates if not c.strict), key=lambda c: -c.score)
    chosen = (strict + loose)[:budget]
    return [chosen[i % len(chosen)] for i in range(budget)]


# ----- reward scale M (optional, default off) -------------------------------------------------------------
def reward_scale(length: int, split: int, score: float, max_score: float, discount: float = 0.9) -> np.ndarray:
    """``M[t] = 1 + (score / max_score) · discount^(split - t)`` for ``t ≤ split``, 1 after (§4(b), §4(f).5).

    ``max_score`` is the largest branch score of the prompt. ``max_score ≤ 0`` (no positive score, e.g. the
    Δ ≡ 0 fallback) treats the ratio as 0, so M ≡ 1 rather than dividing by zero or flipping sign.
    """
    if not 0 <= split < length:
        raise ValueError(f"split {split} outside a row of length {length}")
    ratio = score / max_score if max_score > 0 else 0.0
    out = np.ones(length, dtype=np.float64)
    t = np.arange(split + 1)
    out[: split + 1] += ratio * discount ** (split - t)
    return out


def scale_init_rewards(token_rewards: np.ndarray, scales: Sequence[np.ndarray]) -> np.ndarray:
    """``r_t · mean_b M_b[t]`` over the branches of one initial row; no branches leaves it unchanged.

    With outcome-only rewards, which sit on the last token, this changes the return only when a split is the
    last token, so in practice it is inert (§4(b) NOTE). It exists for parity with the released code and is
    off by default in the algorithm.
    """
    rewards = np.asarray(token_rewards, dtype=np.float64)
    if not scales:
        return rewards.copy()
    stacked = np.stack([np.asarray(m, dtype=np.float64) for m in scales])
    if stacked.shape[1:] != rewards.shape:
        raise ValueError(f"scales have shape {stacked.shape[1:]}, rewards {rewards.shape}")
    return rewards * stacked.mean(axis=0)
