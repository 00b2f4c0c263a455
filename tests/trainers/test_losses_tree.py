"""The AEPO and APPO pieces of PolicyLoss against algorithms.md §3(f).3-6, §4(f).4 and §9.5."""

from __future__ import annotations

import math

import pytest
import torch

from agentenv.trainers.losses import (
    EntropyStats,
    FutureKL,
    LossConfig,
    PolicyLoss,
    aggregate,
    clipped_surrogate,
    discounted_suffix_sum,
    entropy_aware_multipliers,
    future_kl_weights,
)


def grad_of(loss_fn, logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = logp.clone().requires_grad_(True)
    loss = loss_fn(logp)
    loss.backward()
    assert logp.grad is not None
    return loss.detach(), logp.grad


def random_batch(seed: int, rows: int = 4, tokens: int = 9) -> tuple[torch.Tensor, ...]:
    """Ratios spread over [e^-1.5, e^1.5] so both clips and the dual clip fire; a ragged mask."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(rows, tokens, generator=g) * 3
    logp = old + (torch.rand(rows, tokens, generator=g) - 0.5) * 3
    adv = torch.randn(rows, tokens, generator=g)
    mask = (torch.rand(rows, tokens, generator=g) > 0.2).float()
    mask[0] = 1.0
    entropy = torch.rand(rows, tokens, generator=g) * 2
    return logp, old, adv, mask, entropy


def reference_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2, dual_clip=3.0):
    """The loss as it was before the AEPO/APPO options (verbatim §1b), the baseline for bit-identity."""
    ratio = torch.exp(logp - old)
    plain = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(plain, clipped)
    bound = -adv * dual_clip
    loss = torch.where(adv < 0, torch.minimum(bound, loss), loss)
    return aggregate(loss, mask, "token-mean")


# ---- §3(f).3-4: entropy-balanced clipping ----

@pytest.mark.parametrize("seed", range(5))
def test_entropy_balanced_clip_has_the_ppo_value(seed):
    g = torch.Generator().manual_seed(seed)
    ratio = torch.exp((torch.rand(64, 32, generator=g) - 0.5) * 4)
    adv = torch.randn(64, 32, generator=g)
    for dual in (None, 3.0):
        standard, active = clipped_surrogate(ratio, adv, 0.2, 0.28, dual)
        balanced, active_b = clipped_surrogate(ratio, adv, 0.2, 0.28, dual, clip_mode="entropy_balanced")
        assert (balanced - standard).abs().max().item() <= 1e-7
        assert torch.equal(active, active_b)
    logp, old, adv, mask, _ = random_batch(seed)
    plain = PolicyLoss()(logp, old, adv, mask).loss
    eb = PolicyLoss(LossConfig(clip_mode="entropy_balanced"))(logp, old, adv, mask).loss
    assert abs(eb.item() - plain.item()) <= 1e-7


@pytest.mark.parametrize(("adv", "ratio", "balanced", "vanilla"), [
    (1.0, 1.5, -1.2, 0.0),   # clipped at the top: AEPO still passes (1+ε_h)·A
    (1.0, 1.1, -1.1, -1.1),
    (-1.0, 1.5, 1.5, 1.5),
    (1.0, 0.7, -0.7, -0.7),
    (-1.0, 0.7, 0.0, 0.0),   # the lower bound keeps no gradient
])
def test_entropy_balanced_gradient_hand_cases(adv, ratio, balanced, vanilla):
    old, a, mask = torch.zeros(1, 1), torch.tensor([[adv]]), torch.ones(1, 1)
    logp = torch.tensor([[math.log(ratio)]])
    eb = PolicyLoss(LossConfig(clip_mode="entropy_balanced", clip_high=0.2))
    _, g_eb = grad_of(lambda lp: eb(lp, old, a, mask).loss, logp)
    _, g_pl = grad_of(lambda lp: PolicyLoss()(lp, old, a, mask).loss, logp)
    assert g_eb.item() == pytest.approx(balanced, abs=1e-6)
    assert g_pl.item() == pytest.approx(vanilla, abs=1e-6)


def test_entropy_balanced_has_finite_gradients_on_padding_with_zero_ratio():
    logp = torch.tensor([[0.0, -math.inf]])
    old, adv, mask = torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[1.0, 0.0]])
    eb = PolicyLoss(LossConfig(clip_mode="entropy_balanced"))
    _, grad = grad_of(lambda lp: eb(lp, old, adv, mask).loss, logp)
    assert torch.isfinite(grad).all()


def test_unknown_clip_mode_is_refused():
    with pytest.raises(ValueError, match="clip mode"):
        clipped_surrogate(torch.ones(1, 1), torch.ones(1, 1), 0.2, 0.2, None, clip_mode="upper")  # type: ignore[arg-type]


# ---- §3(f).5: entropy-aware advantage ----

def test_entropy_multipliers_by_hand():
    h = torch.tensor([[1.0, 2.0, 3.0]])
    mult = entropy_aware_multipliers(h, torch.ones(1, 3), 0.2)
    assert mult.tolist()[0] == pytest.approx([0.8, 1.0, 1.2], abs=1e-6)
    # a masked token neither enters the statistics nor changes the valid tokens' multipliers
    padded = entropy_aware_multipliers(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1.0, 1, 1, 0]]), 0.2)
    assert padded[0, :3].tolist() == pytest.approx([0.8, 1.0, 1.2], abs=1e-6)


@pytest.mark.parametrize("value", [0.0, 0.7, 1.3, 7.123])
def test_constant_entropy_gives_multipliers_of_one(value):
    h = torch.full((3, 50), value)
    assert torch.equal(entropy_aware_multipliers(h, torch.ones(3, 50), 0.2), torch.ones(3, 50))
    single = entropy_aware_multipliers(torch.tensor([[value, 5.0]]), torch.tensor([[1.0, 0.0]]), 0.2)
    assert single[0, 0].item() == 1.0  # one token: std := 1, z = 0


def test_entropy_stats_over_chunks_equal_the_concatenation():
    _, _, _, mask, h = random_batch(3, rows=6, tokens=11)
    whole = EntropyStats()
    whole.add(h, mask)
    chunked = EntropyStats()
    chunked.add(h[:2], mask[:2])
    chunked.add(h[2:], mask[2:])
    assert chunked.count == whole.count == mask.sum().item()
    valid = h[mask.bool()]
    mean, std = whole.mean_std()
    assert mean == pytest.approx(valid.mean().item(), rel=1e-6) and std == pytest.approx(valid.std().item(), rel=1e-5)
    expected = entropy_aware_multipliers(h, mask, 0.2)
    for part in (slice(0, 2), slice(2, 6)):
        got = entropy_aware_multipliers(h[part], mask[part], 0.2, chunked)
        assert torch.allclose(got, expected[part], atol=1e-6)
        own = entropy_aware_multipliers(h[part], mask[part], 0.2)
        assert not torch.allclose(own, expected[part], atol=1e-3)  # the scope matters, so the test can fail


def test_policy_loss_uses_the_entropy_stats_it_is_given():
    logp, old, adv, mask, h = random_batch(5, rows=6)
    stats = EntropyStats()
    stats.add(h, mask)
    loss = PolicyLoss(LossConfig(entropy_advantage=0.2))
    part = slice(0, 3)
    weighted = adv[part] * entropy_aware_multipliers(h[part], mask[part], 0.2, stats)
    expected = PolicyLoss()(logp[part], old[part], weighted, mask[part])
    got = loss(logp[part], old[part], adv[part], mask[part], entropy=h[part], entropy_stats=stats)
    assert got.loss.item() == pytest.approx(expected.loss.item(), abs=1e-7)
    own = loss(logp[part], old[part], adv[part], mask[part], entropy=h[part])
    assert own.loss.item() != pytest.approx(got.loss.item(), abs=1e-6)
    assert "entropy_adv_multiplier_mean" in got.metrics and "entropy_adv_multiplier_mean" not in expected.metrics


def test_entropy_advantage_without_entropy_is_an_error():
    logp, old, adv, mask, _ = random_batch(0)
    with pytest.raises(ValueError, match="entropy"):
        PolicyLoss(LossConfig(entropy_advantage=0.2))(logp, old, adv, mask)


def test_entropy_advantage_weights_the_gradient_by_hand():
    old, adv, mask = torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1, 3)
    h = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    loss = PolicyLoss(LossConfig(entropy_advantage=0.2))
    out = loss(old.clone().requires_grad_(True), old, adv, mask, entropy=h)
    _, grad = grad_of(lambda lp: loss(lp, old, adv, mask, entropy=h).loss, old)
    assert grad[0].tolist() == pytest.approx([-0.8 / 3, -1.0 / 3, -1.2 / 3], abs=1e-6)
    assert out.metrics["entropy_adv_multiplier_mean"] == pytest.approx(1.0)
    out.loss.backward()
    assert h.grad is None  # sg(z): the weight passes no gradient into the entropy


# ---- §3(f).6 analogue: all options off is the old loss, bit for bit ----

@pytest.mark.parametrize("seed", range(6))
def test_all_new_options_off_is_bit_identical_to_the_old_loss(seed):
    logp, old, adv, mask, h = random_batch(seed)
    explicit = LossConfig(clip_mode="standard", entropy_advantage=0.0, future_kl=None,
                          drop_dual_clipped_sequences=False)
    v_ref, g_ref = grad_of(lambda lp: reference_loss(lp, old, adv, mask), logp)
    for cfg in (LossConfig(), explicit):
        v, g = grad_of(lambda lp, cfg=cfg: PolicyLoss(cfg)(lp, old, adv, mask, entropy=h).loss, logp)
        assert torch.equal(v, v_ref) and torch.equal(g, g_ref)


# ---- §4(b), §4(f).4: future-KL weights (FIPO) ----

def test_fipo_at_theta_old_doubles_the_ppo_loss_and_gradient():
    logp, _, adv, mask, _ = random_batch(7)
    old = logp.clone()
    fipo = PolicyLoss(LossConfig(future_kl=FutureKL(weight=1.0)))
    v1, g1 = grad_of(lambda lp: PolicyLoss()(lp, old, adv, mask).loss, old)
    v2, g2 = grad_of(lambda lp: fipo(lp, old, adv, mask).loss, old)
    assert v2.item() == pytest.approx(2 * v1.item(), rel=1e-6) and v1.abs().item() > 1e-3
    assert torch.allclose(g2, 2 * g1, rtol=1e-6, atol=0)
    assert fipo(old, old, adv, mask).metrics["future_kl_weight_mean"] == pytest.approx(2.0)


def weights_for(delta: list[float], adv: list[float], mask: list[float] | None = None, **kw) -> list[float]:
    old = torch.zeros(1, len(delta))
    cfg = FutureKL(decay_rate=1.0, **kw)  # γ = 2^-1 = 0.5
    m = torch.tensor([mask or [1.0] * len(delta)])
    return future_kl_weights(torch.tensor([delta]), old, torch.tensor([adv]), m, cfg, dual_clip=3.0)[0].tolist()


def test_future_kl_weights_by_hand():
    # Δ = [0.1, 1.5, -0.2]; Δ_1 > log 3 does not participate, γ = 0.5:
    # FKL = [0.1 + 0.25·(-0.2), 0.5·(-0.2), -0.2] = [0.05, -0.1, -0.2]
    delta, adv = [0.1, 1.5, -0.2], [1.0, 1.0, 1.0]
    high_only = weights_for(delta, adv, weight=1.0)
    assert high_only == pytest.approx([1 + math.exp(0.05), 2.0, 2.0], abs=1e-6)  # lower bound 1
    both = weights_for(delta, adv, weight=0.5, clip=0.1, high_only=False)
    assert both == pytest.approx([1 + 0.5 * math.exp(0.05), 1 + 0.5 * math.exp(-0.1), 1 + 0.5 * 0.9], abs=1e-6)
    # a masked token contributes nothing either: FKL_0 = 0.1
    masked = weights_for(delta, adv, [1.0, 1.0, 0.0], weight=1.0)
    assert masked[0] == pytest.approx(1 + math.exp(0.1), abs=1e-6)


def test_future_kl_upper_clip_and_safety_clamp():
    # FKL_0 = 1.0 → exp = e → clipped to 1.2; r_0 = e
    delta = [1.0, 0.0, 0.0]
    assert weights_for(delta, [-1.0, -1.0, 1.0])[0] == pytest.approx(2.2, abs=1e-6)
    safe = weights_for(delta, [-1.0, -1.0, 1.0], safety_thresh=2.5)
    assert safe[0] == pytest.approx(2.0, abs=1e-6)  # A<0 and r>2.5: f clamped to [0.8, 1]
    assert weights_for(delta, [1.0, -1.0, 1.0], safety_thresh=2.5)[0] == pytest.approx(2.2, abs=1e-6)


def test_future_kl_weights_carry_no_gradient():
    logp = torch.tensor([[0.1, -0.2]], requires_grad=True)
    w = future_kl_weights(logp, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), FutureKL(), 3.0)
    assert not w.requires_grad


@pytest.mark.parametrize("width", [1, 127, 128, 300])
def test_discounted_suffix_sum_matches_the_quadratic_form(width):
    values = torch.randn(3, width, dtype=torch.float64, generator=torch.Generator().manual_seed(width))
    gamma = 2 ** (-1 / 64)
    k, t = torch.arange(width)[None, :], torch.arange(width)[:, None]
    power = torch.where(k >= t, gamma ** (k - t).clamp(min=0).double(), torch.zeros((), dtype=torch.float64))
    assert torch.allclose(discounted_suffix_sum(values, gamma), values @ power.T, atol=1e-10)


# ---- §4(b): the dual-clip sequence filter ----

def test_rows_with_more_than_one_dual_clipped_token_are_dropped():
    # A = -1 everywhere, c = 3: a token with r = 5 is dual-clipped (loss 5 > 3)
    ratio = torch.tensor([[5.0, 5.0, 1.0], [5.0, 1.0, 1.0], [5.0, 1.0, 5.0]])  # row 2: 2nd one untrained
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    old, adv = torch.zeros(3, 3), -torch.ones(3, 3)
    flt = PolicyLoss(LossConfig(drop_dual_clipped_sequences=True))
    value, grad = grad_of(lambda lp: flt(lp, old, adv, mask).loss, ratio.log())
    assert value.item() == pytest.approx((3 + 1 + 1 + 3 + 1) / 5)  # row 0 out of the loss and the count
    assert torch.equal(grad[0], torch.zeros(3)) and grad[1, 1].item() != 0.0 and grad[2, 1].item() != 0.0
    assert flt(ratio.log(), old, adv, mask).metrics["dropped_sequences"] == 1.0
    plain = PolicyLoss()(ratio.log(), old, adv, mask)
    assert plain.loss.item() == pytest.approx((3 + 3 + 1 + 3 + 1 + 1 + 3 + 1) / 8)
    with pytest.raises(ValueError, match="dual clip"):
        PolicyLoss(LossConfig(dual_clip=None, drop_dual_clipped_sequences=True))


# ---- §9.5: at θ = θ_old with the reweighting disabled every variant is vanilla PPO ----

@pytest.mark.parametrize("cfg", [
    LossConfig(clip_mode="entropy_balanced"),
    LossConfig(entropy_advantage=0.0),
    LossConfig(entropy_advantage=0.2),  # with a constant entropy, z = 0
    LossConfig(future_kl=FutureKL(weight=0.0)),
    LossConfig(future_kl=FutureKL(weight=0.0, high_only=False, safety_thresh=0.5)),
    LossConfig(drop_dual_clipped_sequences=True),
    LossConfig(clip_mode="entropy_balanced", entropy_advantage=0.2, future_kl=FutureKL(weight=0.0),
               drop_dual_clipped_sequences=True),
])
@pytest.mark.parametrize("seed", range(3))
def test_every_variant_at_theta_old_without_reweighting_is_vanilla(cfg, seed):
    logp, _, adv, mask, _ = random_batch(seed)
    old, flat = logp.clone(), torch.full_like(logp, 0.9)
    v1, g1 = grad_of(lambda lp: PolicyLoss()(lp, old, adv, mask).loss, old)
    v2, g2 = grad_of(lambda lp: PolicyLoss(cfg)(lp, old, adv, mask, entropy=flat).loss, old)
    assert torch.equal(v1, v2) and torch.equal(g1, g2)
    assert g1.abs().sum().item() > 0
