"""One composable policy loss (``shared/algorithms.md`` §1b and §9.5): ratio, clip, token weights,
aggregation, regularisers, and the SFT loss, each a small function so that every algorithm is a choice of
pieces rather than a new loss.

Tensors are ``[rows, tokens]``: ``logp`` (current policy, with gradient), ``old_logp`` (behaviour),
``advantages`` (broadcast per token), and ``mask`` (1 on the tokens trained on; tool and observation tokens
and padding are 0).

The token reweightings of AEPO (entropy-balanced clip, entropy-aware advantage, §3b) and APPO (FIPO's
future-KL weights and the dual-clip sequence filter, §4b) are options of the same loss; with them off the
computation is exactly the plain one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

Aggregation = Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
KLKind = Literal["kl", "mse", "low_var_kl", "abs"]
ClipMode = Literal["standard", "entropy_balanced"]


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


def entropy_balanced_correction(ratio: torch.Tensor, advantages: torch.Tensor,
                                clip_high: float) -> torch.Tensor:
    """AEPO's stop-gradient upper clip (§3b) as a term worth exactly 0 that carries its gradient.

    AEPO clips at ``(1+ε_h)/sg(r)·r``: numerically ``1+ε_h``, but a token clipped there still gets the
    gradient ``-(1+ε_h)·A`` wrt ``logp``. Adding ``-A·(1+ε_h)·(r - sg r)/sg r`` where ``r > 1+ε_h`` to the
    standard clipped term gives that gradient while the forward value stays bit-identical to PPO's.
    """
    above = ratio > 1 + clip_high
    frozen = ratio.detach()
    safe = torch.where(above, frozen, torch.ones_like(frozen))  # r = 0 on padding must not make 0/0 gradients
    zero_with_grad = (ratio - frozen) / safe
    return torch.where(above, -advantages * (1 + clip_high) * zero_with_grad, torch.zeros_like(zero_with_grad))


def surrogate_parts(ratio: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float,
                    dual_clip: float | None, clip_mode: ClipMode = "standard"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The PPO loss per token, where the ratio clip is active, and where the dual clip is active.

    The dual clip is reported apart because APPO drops the rows where it fires more than once (§4b).
    """
    plain = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    if clip_mode == "entropy_balanced":
        clipped = clipped + entropy_balanced_correction(ratio, advantages, clip_high)
    elif clip_mode != "standard":
        raise ValueError(f"unknown clip mode {clip_mode!r}")
    loss = torch.maximum(plain, clipped)
    active = clipped > plain
    dual = torch.zeros_like(active)
    if dual_clip is not None:
        if dual_clip <= 1:
            raise ValueError(f"the dual-clip constant must be > 1, got {dual_clip}")
        bound = -advantages * dual_clip
        dual = (advantages < 0) & (loss > bound)
        loss = torch.where(advantages < 0, torch.minimum(bound, loss), loss)
    return loss, active, dual


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float,
                      dual_clip: float | None, clip_mode: ClipMode = "standard"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The PPO loss per token (verl's ``compute_policy_loss``) and where the clip is active.

    ``L = max(-A r, -A clip(r, 1-ε_low, 1+ε_high))``; with dual clip, tokens with ``A < 0`` are further
    bounded by ``-A c``, so a huge ratio on a negative advantage cannot blow the loss up. ``entropy_balanced``
    keeps the value and lets tokens clipped at the top still learn (see :func:`entropy_balanced_correction`).
    """
    loss, active, dual = surrogate_parts(ratio, advantages, clip_low, clip_high, dual_clip, clip_mode)
    return loss, active | dual


@dataclass
class EntropyStats:
    """Running count, sum and sum of squares of the entropy of trained tokens.

    AEPO z-scores entropy per micro-batch, which makes the advantage depend on how rows were packed (§3h); the
    learner can instead :meth:`add` every micro-batch of a mini-batch first and pass the result to the loss.
    """

    count: float = 0.0
    sum: float = 0.0
    sum_sq: float = 0.0

    def add(self, entropy: torch.Tensor, mask: torch.Tensor) -> None:
        """Accumulate the entropy of the tokens with ``mask == 1`` (in float64, so chunking barely matters)."""
        keep = mask.detach().bool()
        values = torch.where(keep, entropy.detach().to(torch.float64), 0.0)
        self.count += float(keep.sum())
        self.sum += float(values.sum())
        self.sum_sq += float(values.square().sum())

    def mean_std(self) -> tuple[float, float]:
        """Mean and sample std (ddof=1, torch.std's); the std is 1 with < 2 tokens or (rounding-level) no spread.

        A variance below 1e-10 of the mean square is rounding error of the sums, not spread: using it would
        turn noise into z-scores of order 1, whereas a constant entropy must give z = 0.
        """
        if self.count == 0:
            return 0.0, 1.0
        mean = self.sum / self.count
        if self.count < 2:
            return mean, 1.0
        var = max(self.sum_sq - self.sum * mean, 0.0) / (self.count - 1)
        if var <= 1e-10 * self.sum_sq / self.count:
            return mean, 1.0
        return mean, math.sqrt(var)


def entropy_aware_multipliers(entropy: torch.Tensor, mask: torch.Tensor, alpha: float,
                              stats: EntropyStats | None = None) -> torch.Tensor:
    """AEPO's ``1 + α·sg(z_t)`` (§3b), ``z`` the entropy z-score over ``stats`` (default: this call's tokens).

    Tokens where the policy is unsure get more of the advantage, confident ones less; no gradient flows into
    the entropy through the weight.
    """
    if stats is None:
        stats = EntropyStats()
        stats.add(entropy, mask)
    mean, std = stats.mean_std()
    return 1 + alpha * ((entropy.detach() - mean) / std)


@dataclass(frozen=True)
class FutureKL:
    """FIPO's future-KL advantage scaling as APPO runs it (§4b, §4c): ``A·(1 + weight·f_t)``."""

    decay_rate: float = 64.0
    clip: float = 0.2
    weight: float = 1.0
    high_only: bool = True
    safety_thresh: float = 6.0


def discounted_suffix_sum(values: torch.Tensor, gamma: float, chunk: int = 128) -> torch.Tensor:
    """``out_t = Σ_{k≥t} γ^{k-t} values_k`` along the last axis, in O(T·chunk) rather than O(T²).

    Each chunk is one small triangular matmul; the sum beyond the chunk enters as a carry discounted by the
    distance, so no power of ``γ`` ever exceeds ``γ^-chunk`` (no overflow on long rows).
    """
    width = values.shape[-1]
    steps = torch.arange(min(chunk, max(width, 1)), device=values.device)
    lag = (steps[None, :] - steps[:, None]).to(values.dtype)  # [t, k] = k - t
    weights = torch.where(lag >= 0, gamma ** lag.clamp(min=0), torch.zeros_like(lag))
    out = torch.empty_like(values)
    carry = torch.zeros_like(values[..., :1])
    for start in reversed(range(0, width, chunk)):
        end = min(start + chunk, width)
        n = end - start
        distance = (n - steps[:n]).to(values.dtype)  # from each t of the chunk to ``end``
        part = values[..., start:end] @ weights[:n, :n].T + carry * gamma ** distance
        out[..., start:end] = part
        carry = part[..., :1]
    return out


def future_kl_weights(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                      cfg: FutureKL, dual_clip: float | None) -> torch.Tensor:
    """FIPO's ``1 + b·f_t`` (§4b), all detached: ``f_t`` grows with how much the rest of the row already moved.

    ``FKL_t`` is the discounted sum of the later log-ratios, leaving out tokens whose ratio passed the dual-clip
    constant (their move is not trusted); ``f_t = clip(exp FKL_t)``. A negative-advantage token with a huge
    ratio is not amplified (safety clamp to [0.8, 1]).
    """
    c = dual_clip if dual_clip is not None else 3.0
    with torch.no_grad():
        log_ratio = logp.detach() - old_logp
        delta = log_ratio.clamp(-20, 20)
        take = (delta <= math.log(c)) & mask.bool()
        work = torch.promote_types(delta.dtype, torch.float32)
        fkl = discounted_suffix_sum(torch.where(take, delta, 0.0).to(work), 2.0 ** (-1.0 / cfg.decay_rate))
        low = 1.0 if cfg.high_only else 1 - cfg.clip
        f = torch.exp(fkl).clamp(low, 1 + cfg.clip).to(delta.dtype)
        unsafe = (advantages < 0) & (torch.exp(log_ratio) > cfg.safety_thresh)
        f = torch.where(unsafe, f.clamp(0.8, 1.0), f)
        return 1 + cfg.weight * f


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
    clip_mode: ClipMode = "standard"
    entropy_advantage: float = 0.0  # AEPO's α (0.2 there); needs the per-token entropy
    future_kl: FutureKL | None = None
    drop_dual_clipped_sequences: bool = False


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
        if self.config.drop_dual_clipped_sequences and self.config.dual_clip is None:
            raise ValueError("drop_dual_clipped_sequences needs a dual clip (dual_clip=c)")

    def __call__(self, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                 ref_logp: torch.Tensor | None = None, entropy: torch.Tensor | None = None,
                 token_weights: torch.Tensor | None = None,
                 entropy_stats: EntropyStats | None = None) -> LossOutput:
        c = self.config
        trained = mask.bool()
        metrics: dict[str, float] = {}
        advantages = self._reweighted(logp, old_logp, advantages, mask, entropy, entropy_stats, metrics)
        ratio = ratios(logp, old_logp, mask, c.ratio)
        per_token, active, dual = surrogate_parts(ratio, advantages, c.clip_low, c.clip_high, c.dual_clip,
                                                  c.clip_mode)
        active = active | dual
        if token_weights is not None:
            per_token = per_token * token_weights
        pg_mask = mask
        if c.drop_dual_clipped_sequences:
            pg_mask, dropped = drop_dual_clipped_rows(mask, dual)
            metrics["dropped_sequences"] = float(dropped)
        loss = aggregate(per_token, pg_mask, c.aggregation, c.max_tokens)
        metrics.update({"pg_loss": float(loss.detach()),
                        "clip_fraction": float(active[trained].float().mean()) if trained.any() else 0.0,
                        "ratio_mean": float(ratio.detach()[trained].mean()) if trained.any() else 1.0})
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

    def _reweighted(self, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, entropy: torch.Tensor | None, entropy_stats: EntropyStats | None,
                    metrics: dict[str, float]) -> torch.Tensor:
        """The advantages after the (detached) token reweightings: entropy-aware first, then future-KL.

        With both off the tensor is returned untouched, so the plain loss stays bit-identical.
        """
        c = self.config
        trained = mask.bool()
        if c.entropy_advantage:
            if entropy is None:
                raise ValueError("entropy_advantage needs the policy's per-token entropy (entropy=...); "
                                 "compute it whenever the entropy-aware advantage is on (§3h)")
            weight = entropy_aware_multipliers(entropy, mask, c.entropy_advantage, entropy_stats)
            advantages = advantages * weight
            metrics["entropy_adv_multiplier_mean"] = _masked_mean(weight, trained)
        if c.future_kl is not None:
            weight = future_kl_weights(logp, old_logp, advantages, mask, c.future_kl, c.dual_clip)
            advantages = advantages * weight
            metrics["future_kl_weight_mean"] = _masked_mean(weight, trained)
        return advantages


def drop_dual_clipped_rows(mask: torch.Tensor, dual: torch.Tensor) -> tuple[torch.Tensor, int]:
    """APPO's sequence filter (§4b): a row where the dual clip fired on more than one trained token is taken
    out of the loss mask, so it neither pushes the gradient nor counts in the normaliser."""
    drop = (dual & mask.bool()).sum(-1) > 1
    return mask * (~drop).unsqueeze(-1).to(mask.dtype), int(drop.sum())


def _masked_mean(values: torch.Tensor, keep: torch.Tensor) -> float:
    values = values.detach().expand(keep.shape)
    return float(values[keep].float().mean()) if keep.any() else 1.0


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, aggregation: Aggregation = "token-mean") -> LossOutput:
    """``-mean log π(label tokens)``: DAgger's loss on teacher labels (also DynaWeb's world model)."""
    loss = -aggregate(logp, mask, aggregation)
    return LossOutput(loss, {"loss": float(loss.detach()), "sft_nll": float(loss.detach())})
