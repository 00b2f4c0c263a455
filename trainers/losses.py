"""One composable policy loss (``shared/algorithms.md`` §1b and §9.5): ratio, clip, token weights,
aggregation, regularisers, and the SFT loss, each a small function so that every algorithm is a choice of
pieces rather than a new loss.

Tensors are ``[rows, tokens]``: ``logp`` (current policy, with gradient), ``old_logp`` (behaviour),
``advantages`` (broadcast per token), and ``mask`` (1 on the tokens trained on; tool and observation tokens
and padding are 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

Aggregation = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
KLKind = Literal["kl", "mse", "low_var_kl", "abs"]


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: Aggregation = "token-mean",
              max_tokens: int | None = None) -> torch.Tensor:
    """verl's ``agg_loss``: how per-token values become one number (§1b).

    ``seq-mean-token-sum-norm`` (Dr. GRPO) divides the total by a constant ``max_tokens`` (default: the
    row width), so no episode's tokens count more for being in a short episode.
    """
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        return (values * mask).sum() / mask.sum().clamp(min=1)
    per_row = (values * mask).sum(-1)
    rows = (mask.sum(-1) > 0).to(values.dtype)
    n_rows = rows.sum().clamp(min=1)
    if mode == "seq-mean-token-sum":
        return (per_row * rows).sum() / n_rows
    if mode == "seq-mean-token-mean":
        return (per_row / mask.sum(-1).clamp(min=1) * rows).sum() / n_rows
    if mode == "seq-mean-token-sum-norm":
        return per_row.sum() / float(max_tokens or values.shape[-1])
    raise ValueError(f"unknown aggregation {mode!r}")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-token KL estimators between the policy and the reference (§1b: k1, k2 "mse", k3 "low_var_kl")."""
    diff = logp - ref_logp
    if kind == "kl":
        return diff
    if kind == "mse":
        return 0.5 * diff.square()
    if kind == "low_var_kl":
        return (torch.exp(-diff) + diff - 1).clamp(-10, 10)
    if kind == "abs":
        return diff.abs()
    raise ValueError(f"unknown KL estimator {kind!r}")


def ratios(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor,
           kind: Literal["token", "sequence"] = "token") -> torch.Tensor:
    """``r_t = exp(logp - logp_old)`` per token, or GSPO's ``s_i = exp(mean_t(logp - logp_old))`` per row,
    broadcast over the row's tokens."""
    log_ratio = logp - old_logp
    if kind == "token":
        return torch.exp(log_ratio)
    mask = mask.to(logp.dtype)
    mean = (log_ratio * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
    return torch.exp(mean).expand_as(logp)


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float,
                      dual_clip: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The PPO loss per token (verl's ``compute_policy_loss``) and where the clip is active.

    ``L = max(-A r, -A clip(r, 1-ε_low, 1+ε_high))``; with dual clip, tokens with ``A < 0`` are further
    bounded by ``-A c``, so a huge ratio on a negative advantage cannot blow the loss up.
    """
    plain = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(plain, clipped)
    active = clipped > plain
    if dual_clip is not None:
        if dual_clip <= 1:
            raise ValueError(f"the dual-clip constant must be > 1, got {dual_clip}")
        bound = -advantages * dual_clip
        dual = (advantages < 0) & (loss > bound)
        loss = torch.where(advantages < 0, torch.minimum(bound, loss), loss)
        active = active | dual
    return loss, active


@dataclass(frozen=True)
class LossConfig:
    """Which pieces the loss is made of (the presets of §9.8 choose them)."""

    ratio: Literal["token", "sequence"] = "token"
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    aggregation: Aggregation = "token-mean"
    max_tokens: int | None = None
    kl: KLKind | None = None
    kl_coef: float = 0.0
    entropy_coef: float = 0.0


@dataclass
class LossOutput:
    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class PolicyLoss:
    """The clipped policy-gradient loss with optional KL and entropy terms (see :class:`LossConfig`)."""

    def __init__(self, config: LossConfig | None = None):
        self.config = config or LossConfig()
        if self.config.kl_coef and self.config.kl is None:
            raise ValueError("kl_coef is set but no KL estimator is chosen (kl=kl|mse|low_var_kl|abs)")

    def __call__(self, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                 ref_logp: torch.Tensor | None = None, entropy: torch.Tensor | None = None,
                 token_weights: torch.Tensor | None = None) -> LossOutput:
        c = self.config
        ratio = ratios(logp, old_logp, mask, c.ratio)
        per_token, active = clipped_surrogate(ratio, advantages, c.clip_low, c.clip_high, c.dual_clip)
        if token_weights is not None:
            per_token = per_token * token_weights
        loss = aggregate(per_token, mask, c.aggregation, c.max_tokens)
        trained = mask.bool()
        metrics = {"pg_loss": float(loss.detach()),
                   "clip_fraction": float(active[trained].float().mean()) if trained.any() else 0.0,
                   "ratio_mean": float(ratio.detach()[trained].mean()) if trained.any() else 1.0}
        if c.kl is not None:
            if ref_logp is None:
                raise ValueError("a KL term needs the reference model's log-probs (ref_logp)")
            kl = aggregate(kl_penalty(logp, ref_logp, c.kl), mask, c.aggregation, c.max_tokens)
            loss = loss + c.kl_coef * kl
            metrics["kl"] = float(kl.detach())
        if c.entropy_coef:
            if entropy is None:
                raise ValueError("an entropy bonus needs the policy's per-token entropy")
            ent = aggregate(entropy, mask, c.aggregation, c.max_tokens)
            loss = loss - c.entropy_coef * ent
            metrics["entropy"] = float(ent.detach())
        metrics["loss"] = float(loss.detach())
        return LossOutput(loss, metrics)


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, aggregation: Aggregation = "token-mean") -> LossOutput:
    """``-mean log π(label tokens)``: DAgger's loss on teacher labels (also DynaWeb's world model)."""
    loss = -aggregate(logp, mask, aggregation)
    return LossOutput(loss, {"loss": float(loss.detach()), "sft_nll": float(loss.detach())})
